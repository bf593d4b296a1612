package devserver

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
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
