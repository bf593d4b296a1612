package delivery

import (
	"sync/atomic"
	"time"
)

// recordBreaker stops attempts while the store cannot record them. An
// attempt whose record fails is made again when its message comes back —
// the receiver gets it twice — so while RecordAttempts fails, the service
// makes no attempt but one probe per ErrorBackoff, and hands every other
// message back to the broker unsent. The first recorded attempt closes
// the breaker. Under a store outage a receiver then sees at most the
// attempts in flight when it began, and the probes, twice, rather than
// every attempt of the outage.
type recordBreaker struct {
	open      atomic.Bool
	nextProbe atomic.Int64 // unix nanoseconds before which no probe is made
}

// allow reports whether an attempt may be made at now: always while the
// breaker is closed, and once per interval while it is open.
func (b *recordBreaker) allow(now time.Time, interval time.Duration) bool {
	if !b.open.Load() {
		return true
	}
	next := b.nextProbe.Load()
	if now.UnixNano() < next {
		return false
	}
	return b.nextProbe.CompareAndSwap(next, now.Add(interval).UnixNano())
}

// failed opens the breaker after a failed record at now; it reports
// whether it was closed before.
func (b *recordBreaker) failed(now time.Time, interval time.Duration) bool {
	b.nextProbe.Store(now.Add(interval).UnixNano())
	return !b.open.Swap(true)
}

// recorded closes the breaker after a record succeeded; it reports whether
// it was open before.
func (b *recordBreaker) recorded() bool {
	return b.open.Swap(false)
}
