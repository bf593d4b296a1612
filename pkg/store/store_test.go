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

func TestScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		scope    Scope
		zero     bool
		all      bool
		tenant   string
		includes map[string]bool
		str      string
	}{
		{"zero", Scope{}, true, false, "", map[string]bool{"": false, "acme": false}, "(none)"},
		{"empty tenant", TenantScope(""), true, false, "", map[string]bool{"": false, "acme": false}, "(none)"},
		{"tenant", TenantScope("acme"), false, false, "acme", map[string]bool{"": false, "acme": true, "globex": false}, "acme"},
		{"all", AllTenants(), false, true, "", map[string]bool{"": true, "acme": true, "globex": true}, "*"},
	}
	for _, tt := range tests {
		s := tt.scope
		if s.IsZero() != tt.zero || s.All() != tt.all || s.Tenant() != tt.tenant || s.String() != tt.str {
			t.Errorf("%s: IsZero %v All %v Tenant %q String %q", tt.name, s.IsZero(), s.All(), s.Tenant(), s.String())
		}
		for tenant, want := range tt.includes {
			if got := s.Includes(tenant); got != want {
				t.Errorf("%s: Includes(%q) = %v, want %v", tt.name, tenant, got, want)
			}
		}
	}
}
