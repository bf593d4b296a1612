package poll

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a fatal failure instead of
// stopping the test.
type recorder struct {
	testing.TB
	failed atomic.Bool
	msg    string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed.Store(true)
	r.msg = fmt.Sprintf(format, args...)
}

func TestWithin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		trueFrom int // the check from which cond holds; 0: never
		wantFail bool
	}{
		{"holds at once", 1, false},
		{"holds after some checks", 5, false},
		{"never holds", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &recorder{TB: t}
			n := 0
			Within(r, 200*time.Millisecond, "the condition", func() bool {
				n++
				return tc.trueFrom > 0 && n >= tc.trueFrom
			})
			if r.failed.Load() != tc.wantFail {
				t.Fatalf("failed = %v, want %v (%s)", r.failed.Load(), tc.wantFail, r.msg)
			}
			if tc.wantFail && !strings.Contains(r.msg, "waiting for the condition") {
				t.Errorf("failure %q does not name what it waited for", r.msg)
			}
			if !tc.wantFail && n != tc.trueFrom {
				t.Errorf("cond checked %d times, want %d (it must stop once it holds)", n, tc.trueFrom)
			}
		})
	}
}

func TestWithinReasonNamesTheLastReason(t *testing.T) {
	t.Parallel()
	r := &recorder{TB: t}
	n := 0
	WithinReason(r, 100*time.Millisecond, "the queue to drain", func() (bool, string) {
		n++
		return false, fmt.Sprintf("%d left", n)
	})
	if !r.failed.Load() || !strings.Contains(r.msg, "the queue to drain") || !strings.Contains(r.msg, fmt.Sprintf("%d left", n)) {
		t.Fatalf("failed %v with %q; want a failure naming the wait and the last reason (%d left)", r.failed.Load(), r.msg, n)
	}
	r = &recorder{TB: t}
	WithinReason(r, time.Minute, "x", func() (bool, string) { return true, "" })
	if r.failed.Load() {
		t.Fatalf("failed although the condition held: %q", r.msg)
	}
}
