// Package tenantlimit holds the per-tenant limits of the ingest API: a
// publish rate and burst per tenant, and the most subscriptions a tenant
// may have. Both are configured globally (flags) with per-tenant
// overrides (a YAML file read at start-up); the result is immutable.
//
// # Publish rate: per replica
//
// The publish rate is a token bucket per tenant held in the memory of each
// ingest replica. Every replica has its own buckets, so with N replicas
// behind a load balancer a tenant can publish up to N × the configured
// rate (and N × the burst at once). That is deliberate: a shared limit
// would put shared state on the publish hot path, costing a round trip to
// a store or coordinator per publish (or a lease protocol to hand out
// shares of the rate) and making publishing depend on that component's
// availability. Set the rate as the per-replica share of what a tenant
// may publish: the tenant's total divided by the replica count. A load
// balancer that spreads one tenant's requests evenly makes the total
// close to N × rate; one that pins a tenant to a replica gives it 1 × rate.
//
// Buckets of idle tenants are dropped, lazily, when new tenants' buckets
// are made: a bucket that has refilled to its burst is equivalent to a new
// one, so dropping it changes no decision. Buckets of tenants still
// publishing are kept, so as not to make them again and again. The number
// of buckets is bounded (about 65,536 per replica, some 13 MB); only when
// more tenants than that are publishing faster than their buckets refill
// is a partly drained bucket dropped, the fullest first, giving its tenant
// back at most one burst. No goroutine is involved.
//
// # Subscriptions: shared and exact
//
// The subscription limit is not counted here: MaxSubscriptions only says
// what it is, and the store enforces it when creating a subscription,
// counting and inserting in one transaction. It is therefore shared by
// every replica and exact.
package tenantlimit

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Bounds on the memory of the publish buckets.
const (
	// defaultMaxBuckets bounds the buckets of one Limiter (about 200 bytes
	// each: some 13 MB at most).
	defaultMaxBuckets = 1 << 16
	// defaultShards is the number of independently locked parts the
	// buckets are split into, so concurrent publishes of different tenants
	// rarely wait for each other.
	defaultShards = 64
	// minSweep is the fewest buckets a shard holds before it sweeps.
	minSweep = 16
)

// Limiter enforces the publish limits of every tenant and tells the
// subscription limit of each. Its limits are fixed at construction. It is
// safe for concurrent use and starts no goroutine.
type Limiter struct {
	now       func() time.Time
	global    limits
	overrides map[string]limits // never modified after New
	seed      maphash.Seed
	shardCap  int // most buckets of one shard
	shards    []shard
}

// shard is a part of the buckets, with its own lock.
type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	// sweepAt is the bucket count at which the next new bucket first
	// sweeps the shard.
	sweepAt int
	// dropped counts buckets dropped full (losing nothing); evicted counts
	// buckets dropped before they had refilled, to stay within shardCap.
	dropped, evicted uint64
	_                [64]byte // keeps neighbouring shards' locks off one cache line
}

// bucket is one tenant's token bucket.
type bucket struct {
	lim *rate.Limiter
	// used says the bucket was used again, after the call that made it,
	// since the shard's last sweep, which keeps it: dropping the full
	// buckets of tenants publishing steadily below their rate would only
	// have them made again at once. A new bucket starts unused, so that
	// tenants publishing once are dropped at the next sweep.
	used bool
}

// New returns a Limiter with the limits of cfg, reading cfg's limits file.
// It fails with the errors of cfg.Validate. now is the clock the buckets
// refill by; nil means time.Now.
func New(cfg Config, now func() time.Time) (*Limiter, error) {
	return newLimiter(cfg, now, defaultShards, defaultMaxBuckets)
}

func newLimiter(cfg Config, now func() time.Time, shards, maxBuckets int) (*Limiter, error) {
	global, overrides, err := cfg.load()
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	l := &Limiter{
		now:       now,
		global:    global,
		overrides: overrides,
		seed:      maphash.MakeSeed(),
		shardCap:  max(1, maxBuckets/shards),
		shards:    make([]shard, shards),
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
		l.shards[i].sweepAt = min(l.shardCap, minSweep)
	}
	return l, nil
}

func (l *Limiter) limitsOf(tenant string) limits {
	if o, ok := l.overrides[tenant]; ok {
		return o
	}
	return l.global
}

// PublishLimit returns tenant's publish rate in events per second (0:
// unlimited, the burst then meaning nothing) and burst in events, as
// enforced on this replica: the tenant's override, else the global value.
func (l *Limiter) PublishLimit(tenant string) (rate float64, burst int) {
	t := l.limitsOf(tenant)
	return t.rate, t.burst
}

// MaxSubscriptions returns the most subscriptions tenant may have (0:
// unlimited): the tenant's override, else the global value. It is for
// the store to enforce when creating a subscription (its maxPerTenant).
func (l *Limiter) MaxSubscriptions(tenant string) int {
	return l.limitsOf(tenant).maxSubs
}

// AllowPublish takes n events from tenant's bucket and returns nil, or
// takes nothing and returns why not:
//
//   - *RateLimitError when the bucket holds fewer than n events now; its
//     RetryAfter is how long until it will hold n, so the same request
//     succeeds then if nothing else is taken from the bucket meanwhile.
//   - *BatchTooLargeError when n exceeds tenant's burst: the bucket never
//     holds n events, so the request can never succeed as it is.
//
// A batch of n events counts n. n ≤ 0 takes nothing and returns nil, as
// does every n for a tenant without a publish rate limit (which keeps no
// bucket). Allowing a publish allocates nothing unless it makes the
// tenant's bucket (its first publish, or the first after the bucket was
// dropped); refusing one allocates the error.
func (l *Limiter) AllowPublish(tenant string, n int) error {
	lim := l.limitsOf(tenant)
	if lim.rate == 0 || n <= 0 {
		return nil
	}
	if n > lim.burst {
		return &BatchTooLargeError{Tenant: tenant, Events: n, Burst: lim.burst}
	}
	s := &l.shards[maphash.String(l.seed, tenant)%uint64(len(l.shards))]
	s.mu.Lock()
	now := l.now() // under the lock: one bucket sees its times in order
	b := s.buckets[tenant]
	if b == nil {
		b = s.add(tenant, lim, now, l.shardCap)
	} else {
		b.used = true
	}
	if b.lim.AllowN(now, n) {
		s.mu.Unlock()
		return nil
	}
	wait := retryAfter(b.lim, now, n, lim.rate)
	s.mu.Unlock()
	return &RateLimitError{Tenant: tenant, Events: n, Rate: lim.rate, Burst: lim.burst, RetryAfter: wait}
}

// add puts a new, full bucket for tenant into s, sweeping s first when it
// has grown to sweepAt buckets. s.mu is held.
func (s *shard) add(tenant string, lim limits, now time.Time, shardCap int) *bucket {
	if len(s.buckets) >= s.sweepAt {
		s.sweep(now, shardCap)
	}
	b := &bucket{lim: rate.NewLimiter(rate.Limit(lim.rate), lim.burst)}
	s.buckets[strings.Clone(tenant)] = b // not the caller's string: it may pin a request buffer
	return b
}

// sweep drops the buckets unused since the last sweep (see bucket.used)
// that have refilled, being then equivalent to new ones; then, if s still
// has shardCap buckets or more, the ones closest to full until it has
// room for a new bucket and some more. It sets the next sweep at twice the
// buckets left, so sweeping costs O(1) per new bucket, amortized.
func (s *shard) sweep(now time.Time, shardCap int) {
	for k, b := range s.buckets {
		switch {
		case b.used:
			b.used = false
		case b.full(now):
			delete(s.buckets, k)
			s.dropped++
		}
	}
	if len(s.buckets) >= shardCap {
		type entry struct {
			tenant  string
			missing float64 // events the bucket lacks to be full: what dropping it gives away
		}
		entries := make([]entry, 0, len(s.buckets))
		for k, b := range s.buckets {
			entries = append(entries, entry{k, float64(b.lim.Burst()) - b.lim.TokensAt(now)})
		}
		slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.missing, b.missing) })
		keep := shardCap - max(1, shardCap/8)
		for _, e := range entries[:len(entries)-keep] {
			delete(s.buckets, e.tenant)
			if e.missing > 0 {
				s.evicted++
			} else {
				s.dropped++
			}
		}
	}
	s.sweepAt = min(shardCap, max(minSweep, 2*len(s.buckets)))
}

// full reports whether b has refilled to its burst at now.
func (b *bucket) full(now time.Time) bool {
	return b.lim.TokensAt(now) >= float64(b.lim.Burst())
}

// maxRetryAfter caps RetryAfter (about 146 years), so that adding it to a
// time cannot overflow.
const maxRetryAfter = time.Duration(math.MaxInt64 / 2)

// retryAfter is the shortest wait after which b holds n events, b holding
// fewer at now. (b.AllowN may allow n events a nanosecond or two sooner:
// it lets pass a shortfall worth less than a nanosecond of refill.) The
// estimate from the rate can be a few nanoseconds off either way through
// float rounding in b's refill, so it is corrected against b itself:
// usually with one check each side of it.
func retryAfter(b *rate.Limiter, now time.Time, n int, r float64) time.Duration {
	enough := func(d time.Duration) bool { return b.TokensAt(now.Add(d)) >= float64(n) }
	est := math.Ceil((float64(n) - b.TokensAt(now)) / r * float64(time.Second))
	if est >= float64(maxRetryAfter) {
		return maxRetryAfter
	}
	d := max(1, time.Duration(est))
	// Bracket the answer: lo is too early, hi is late enough.
	var lo, hi time.Duration
	if enough(d) {
		hi = d
		for step := time.Duration(1); ; step *= 2 {
			lo = hi - step
			if lo <= 0 {
				lo = 0 // now itself is too early
				break
			}
			if !enough(lo) {
				break
			}
			hi = lo
		}
	} else {
		lo = d
		for step := time.Duration(1); ; step *= 2 {
			hi = lo + step
			if hi >= maxRetryAfter {
				return maxRetryAfter
			}
			if enough(hi) {
				break
			}
			lo = hi
		}
	}
	for hi-lo > 1 {
		if mid := lo + (hi-lo)/2; enough(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// RateLimitError says a publish was refused because the tenant's bucket
// holds too few events now. Its message is fit for the client.
type RateLimitError struct {
	Tenant string
	// Events is the number of events the refused request would publish.
	Events int
	// Rate and Burst are the tenant's limits on this replica.
	Rate  float64
	Burst int
	// RetryAfter is how long until the bucket holds Events events: the
	// same request succeeds after that wait if nothing else is taken from
	// the bucket meanwhile. It is the shortest such wait, to the
	// nanosecond (1s at 1 event per second, not 999999999ns), though the
	// bucket may let the request pass a nanosecond or two sooner (it
	// forgives a shortfall worth under 1ns of refill, in float
	// arithmetic). It is above zero and at most about 146 years.
	RetryAfter time.Duration
}

// Error says the tenant, its limits and when to retry (rounded up to the
// millisecond).
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("tenant %q is over its publish rate limit of %s events per second (burst %d); retry the %d event(s) after %v",
		e.Tenant, strconv.FormatFloat(e.Rate, 'g', -1, 64), e.Burst, e.Events, roundUpMillis(e.RetryAfter))
}

// BatchTooLargeError says a publish was refused because it has more events
// than the tenant's burst: it can never succeed as it is, and has to be
// split into batches of at most Burst events. Its message is fit for the
// client.
type BatchTooLargeError struct {
	Tenant string
	// Events is the number of events of the refused request.
	Events int
	// Burst is the tenant's burst on this replica, the largest batch it
	// can publish.
	Burst int
}

// Error says the batch size, the burst and to split the batch.
func (e *BatchTooLargeError) Error() string {
	return fmt.Sprintf("batch of %d events exceeds the publish burst of %d events of tenant %q; split it into batches of at most %d events",
		e.Events, e.Burst, e.Tenant, e.Burst)
}

// roundUpMillis rounds d up to the millisecond, for messages.
func roundUpMillis(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r != 0 && d < math.MaxInt64-time.Millisecond {
		return d - r + time.Millisecond
	}
	return d
}
