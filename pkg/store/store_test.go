package store

import (
	"testing"
	"time"
)

func TestSecretActiveAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		expires time.Time
		want    bool
	}{
		{"no expiry", time.Time{}, true},
		{"expires later", now.Add(time.Nanosecond), true},
		{"expires now", now, false},
		{"expired", now.Add(-time.Hour), false},
	}
	for _, tt := range tests {
		if got := (Secret{Value: "whsec_x", ExpiresAt: tt.expires}).ActiveAt(now); got != tt.want {
			t.Errorf("%s: ActiveAt = %v, want %v", tt.name, got, tt.want)
		}
	}
}
