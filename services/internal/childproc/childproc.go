// Package childproc is what the benchmark harness and the multi-process
// test share for running Hookline's binaries as child processes: a clean
// environment, builds without the race detector, process groups, and the
// tail of a child's log.
package childproc

import (
	"fmt"
	"os"
	"strings"
)

// Env is this process's environment without HOOKLINE_* variables, so only
// the flags a caller passes configure a child.
func Env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKLINE_") {
			out = append(out, kv)
		}
	}
	return out
}

// WithoutRace returns env with -race removed from GOFLAGS, so binaries
// built with it are not instrumented even under `go test -race` with
// GOFLAGS=-race.
func WithoutRace(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			var keep []string
			for _, f := range strings.Fields(v) {
				if f != "-race" && !strings.HasPrefix(f, "-race=") {
					keep = append(keep, f)
				}
			}
			kv = "GOFLAGS=" + strings.Join(keep, " ")
		}
		out = append(out, kv)
	}
	return out
}

// Tail returns the last n lines of the file at path, or a note saying why
// it could not be read.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
