package devserver

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/fanout"
	"github.com/hookline/hookline/services/scheduler"
)

// TestApplyMemoryLimit: the flag sets the runtime's soft limit unless
// GOMEMLIMIT is set or the flag is 0. It changes process-wide state, so it
// does not run in parallel and restores the limit it found.
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, tc := range []struct {
		name   string
		mib    int
		env    string // "": GOMEMLIMIT unset
		before int64
		want   int64
	}{
		{name: "flag sets the limit", mib: 64, before: math.MaxInt64, want: 64 << 20},
		{name: "zero leaves it alone", mib: 0, before: 1 << 30, want: 1 << 30},
		{name: "GOMEMLIMIT takes precedence", mib: 64, env: "1GiB", before: 1 << 30, want: 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("GOMEMLIMIT", tc.env)
			} else if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
				t.Setenv("GOMEMLIMIT", v) // restored afterwards
				os.Unsetenv("GOMEMLIMIT")
			}
			debug.SetMemoryLimit(tc.before)
			cfg := DefaultConfig()
			cfg.MemoryLimitMiB = tc.mib
			if got := cfg.ApplyMemoryLimit(); got != tc.want {
				t.Fatalf("ApplyMemoryLimit() = %d; want %d", got, tc.want)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.want {
				t.Fatalf("runtime limit %d; want %d", got, tc.want)
			}
		})
	}
}

// TestValidateRejectsNegativeMemoryLimit names the flag.
func TestValidateRejectsNegativeMemoryLimit(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.MemoryLimitMiB = -1
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "--memory-limit-mib") {
		t.Fatalf("Validate() = %v; want an error naming --memory-limit-mib", err)
	}
}

// TestDuplicateWindowCoversRedelivery: the broker's deduplication window
// outlasts fanout's ack wait and the scheduler's claim lease, so an event
// redelivered after a fanout crash, or a due retry re-released after a
// lease ran out, republishes under IDs the broker still remembers.
func TestDuplicateWindowCoversRedelivery(t *testing.T) {
	t.Parallel()
	const margin = 10 * time.Second
	for name, d := range map[string]time.Duration{
		"fanout ack wait":       fanout.DefaultConfig().AckWait,
		"scheduler claim lease": scheduler.DefaultConfig().ClaimLease,
	} {
		if natsjs.DefaultDuplicateWindow < d+margin {
			t.Errorf("duplicate window %v does not outlast the %s (%v) by %v", natsjs.DefaultDuplicateWindow, name, d, margin)
		}
	}
}
