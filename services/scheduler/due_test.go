package scheduler

import (
	"log/slog"
	"testing"
	"time"

	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/wire"
)

// TestOnDueTracksWhatThePollWouldFindLate: an announced due time is
// tracked unless it lies beyond the horizon (the poll finds it there, late
// by a small part of its wait), a malformed signal is ignored, and the
// earliest tracked time wakes the release loop.
func TestOnDueTracksWhatThePollWouldFindLate(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name        string
		signals     [][]byte
		wantTracked int
		wantFirst   time.Time
		wantWake    bool
	}{
		{"soon", [][]byte{wire.WakeSignal(t0.Add(100 * time.Millisecond))}, 1, t0.Add(100 * time.Millisecond), true},
		{"after the next poll", [][]byte{wire.WakeSignal(t0.Add(2 * time.Second))}, 1, t0.Add(2 * time.Second), true},
		{"at the horizon", [][]byte{wire.WakeSignal(t0.Add(time.Minute))}, 1, t0.Add(time.Minute), true},
		{"beyond the horizon", [][]byte{wire.WakeSignal(t0.Add(time.Minute + time.Nanosecond))}, 0, time.Time{}, false},
		{"malformed", [][]byte{{1, 2, 3}}, 0, time.Time{}, false},
		{"earliest first", [][]byte{wire.WakeSignal(t0.Add(300 * time.Millisecond)), wire.WakeSignal(t0.Add(50 * time.Millisecond)),
			wire.WakeSignal(t0.Add(900 * time.Millisecond))}, 3, t0.Add(50 * time.Millisecond), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &Service{cfg: Config{PollInterval: time.Second},
				deps: deps.Deps[Store]{Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }}}
			s.dues.init()
			for _, sig := range tt.signals {
				s.onDue(sig)
			}
			if n := len(s.dues.h); n != tt.wantTracked {
				t.Fatalf("%d due times tracked, want %d", n, tt.wantTracked)
			}
			if got := s.dues.earliest(); !got.Equal(tt.wantFirst) {
				t.Fatalf("earliest %v, want %v", got, tt.wantFirst)
			}
			select {
			case <-s.dues.wake:
				if !tt.wantWake {
					t.Fatal("release loop woken for nothing")
				}
			default:
				if tt.wantWake {
					t.Fatal("release loop not woken")
				}
			}
		})
	}
}

// TestDueTimesPopAndBound: popDue drops every due time reached and only
// those; at most maxTrackedDues are kept.
func TestDueTimesPopAndBound(t *testing.T) {
	t.Parallel()
	var d dueTimes
	d.init()
	t0 := time.Unix(1_800_000_000, 0)
	for i := range maxTrackedDues + 10 {
		d.add(t0.Add(time.Duration(i) * time.Millisecond))
	}
	if n := len(d.h); n != maxTrackedDues {
		t.Fatalf("%d tracked, want the bound %d", n, maxTrackedDues)
	}
	if d.popDue(t0.Add(-time.Millisecond)) {
		t.Fatal("popDue before the earliest reported due times")
	}
	if !d.popDue(t0.Add(9 * time.Millisecond)) {
		t.Fatal("popDue reported nothing due")
	}
	if got := d.earliest(); !got.Equal(t0.Add(10 * time.Millisecond)) {
		t.Fatalf("earliest after popping %v, want %v", got, t0.Add(10*time.Millisecond))
	}
}
