package delivery

import (
	"testing"
	"time"
)

func TestRecordBreaker(t *testing.T) {
	t.Parallel()
	var b recordBreaker
	t0 := time.Unix(1000, 0)
	step := time.Second
	if !b.allow(t0, step) {
		t.Fatal("a closed breaker held an attempt back")
	}
	if !b.failed(t0, step) || b.failed(t0, step) {
		t.Fatal("failed must report opening once")
	}
	tests := []struct {
		at   time.Duration
		want bool
	}{
		{0, false},
		{step - 1, false},
		{step, true},  // the probe
		{step, false}, // one probe per interval
		{2*step - 1, false},
		{2 * step, true},
	}
	for _, tt := range tests {
		if got := b.allow(t0.Add(tt.at), step); got != tt.want {
			t.Errorf("allow at +%v = %v, want %v", tt.at, got, tt.want)
		}
	}
	if !b.recorded() || b.recorded() {
		t.Fatal("recorded must report closing once")
	}
	if !b.allow(t0, step) {
		t.Fatal("a closed breaker held an attempt back")
	}
}
