// Package retry computes when a failed webhook delivery is attempted again.
//
// A schedule is a list of delays: the delay before retry i (1-based) is
// schedule[i-1], so a schedule of length n allows n retries and n+1
// attempts in total. Delays are jittered so that deliveries that failed
// together do not all come back at the same instant, and a receiver's
// Retry-After that asks for a longer wait than the schedule wins (up to
// MaxRetryAfter).
package retry

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultSchedule is the retry schedule used when a subscription has none:
// seven retries spread over about 28 hours.
var DefaultSchedule = []time.Duration{
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// MaxRetryAfter caps how long a receiver's Retry-After can postpone a
// retry, so a hostile or buggy receiver cannot park a delivery forever.
const MaxRetryAfter = 24 * time.Hour

// MaxDelay bounds a single entry of a schedule accepted by ParseSchedule.
const MaxDelay = 30 * 24 * time.Hour

// MaxScheduleLen bounds the number of retries ParseSchedule accepts.
const MaxScheduleLen = 100

// Delay returns how long to wait before the attempt that follows
// failedAttempt (1-based), and false when the schedule is exhausted
// (failedAttempt > len(schedule)) or failedAttempt < 1.
//
// The scheduled delay is scaled by a factor drawn uniformly from
// [1-jitter, 1+jitter] using rnd, which must return values in [0, 1)
// (nil means no jitter); jitter is clamped to [0, 1]. When retryAfter is
// longer than the jittered delay it is used instead, capped at
// MaxRetryAfter. The result is never negative.
func Delay(schedule []time.Duration, failedAttempt int, retryAfter time.Duration, jitter float64, rnd func() float64) (time.Duration, bool) {
	if failedAttempt < 1 || failedAttempt > len(schedule) {
		return 0, false
	}
	d := schedule[failedAttempt-1]
	if d < 0 {
		d = 0
	}
	if jitter > 0 && rnd != nil && !math.IsNaN(jitter) {
		if jitter > 1 {
			jitter = 1
		}
		r := rnd()
		if r < 0 || r >= 1 || math.IsNaN(r) {
			r = 0.5
		}
		f := 1 + jitter*(2*r-1)
		scaled := float64(d) * f
		if scaled >= math.MaxInt64 {
			d = time.Duration(math.MaxInt64)
		} else {
			d = time.Duration(scaled)
		}
	}
	if retryAfter > MaxRetryAfter {
		retryAfter = MaxRetryAfter
	}
	if retryAfter > d {
		d = retryAfter
	}
	if d < 0 {
		d = 0
	}
	return d, true
}

// ParseRetryAfter interprets an HTTP Retry-After header value, either
// delta-seconds ("120") or an HTTP-date, relative to now. It returns false
// for an empty or malformed value. A date in the past yields 0, true.
// Durations are capped at MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return 0, false
			}
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			// All digits but too large: as long as anyone could ask.
			var numErr *strconv.NumError
			if errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange) {
				return MaxRetryAfter, true
			}
			return 0, false
		}
		if n > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		return 0, true
	}
	if d > MaxRetryAfter {
		d = MaxRetryAfter
	}
	return d, true
}

// ParseSchedule parses a comma-separated list of Go durations ("5s,5m,1h").
// Spaces around entries are ignored. The empty string is an empty schedule
// (no retries). Every delay must be positive and at most MaxDelay, and the
// schedule at most MaxScheduleLen long.
func ParseSchedule(s string) ([]time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return []time.Duration{}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxScheduleLen {
		return nil, fmt.Errorf("retry schedule: %d entries, at most %d allowed", len(parts), MaxScheduleLen)
	}
	out := make([]time.Duration, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		d, err := time.ParseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("retry schedule entry %d: %w", i+1, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("retry schedule entry %d: %q is not positive (every delay must be positive)", i+1, p)
		}
		if d > MaxDelay {
			return nil, fmt.Errorf("retry schedule entry %d: %q exceeds %s", i+1, p, MaxDelay)
		}
		out = append(out, d)
	}
	return out, nil
}

// FormatSchedule is the inverse of ParseSchedule.
func FormatSchedule(schedule []time.Duration) string {
	var b strings.Builder
	for i, d := range schedule {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(d.String())
	}
	return b.String()
}
