// Package poll is how Hookline's tests wait for something to become true:
// they check a condition again and again, with a short pause, until it
// holds or a deadline passes. Tests never sleep for a fixed time.
//
// Each check must bound its own work (a request with its own timeout, a
// store read with a context deadline): the deadline here is for the
// condition to become true, and a check that hangs would eat it.
package poll

import (
	"testing"
	"time"
)

// DefaultTimeout is how long Until waits. It is generous because tests run
// on busy machines, beside other test runs: a condition that holds at all
// holds well within it.
const DefaultTimeout = 60 * time.Second

// Interval is the pause between two checks.
const Interval = 10 * time.Millisecond

// Until checks cond every Interval until it returns true, and fails tb
// (naming what it waited for) if it has not after DefaultTimeout.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Within(tb, DefaultTimeout, what, cond)
}

// Within is Until with its own timeout.
func Within(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !wait(timeout, cond) {
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// UntilReason is Until for a condition that says why it does not hold yet:
// the last reason is in the failure message.
func UntilReason(tb testing.TB, what string, cond func() (ok bool, reason string)) {
	tb.Helper()
	WithinReason(tb, DefaultTimeout, what, cond)
}

// WithinReason is UntilReason with its own timeout.
func WithinReason(tb testing.TB, timeout time.Duration, what string, cond func() (ok bool, reason string)) {
	tb.Helper()
	var last string
	if !wait(timeout, func() bool {
		ok, reason := cond()
		last = reason
		return ok
	}) {
		tb.Fatalf("timed out after %v waiting for %s: %s", timeout, what, last)
	}
}

// wait checks cond until it holds (true) or timeout passes (false). It
// checks once more after the deadline, so a condition that became true
// during the last pause is not reported as a timeout.
func wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return cond()
		}
		<-t.C
	}
}
