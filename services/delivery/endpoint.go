package delivery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/hookline/hookline/pkg/signature"
	"github.com/hookline/hookline/pkg/store"
)

// errNoSecret means a subscription has no unexpired signing secret.
var errNoSecret = errors.New("subscription has no unexpired signing secret")

// endpoint is this replica's per-subscription state: the in-flight count
// that isolates a slow endpoint, its rate limiter and its signer.
type endpoint struct {
	// inflight and idleSince are guarded by Service.epMu.
	inflight  int
	idleSince time.Time

	mu sync.Mutex
	// avgDur is a moving average of the endpoint's attempt durations; zero
	// until one completes.
	avgDur time.Duration
	// tail is when this replica expects the last delivery it postponed to
	// get its turn (see queueSpot).
	tail      time.Time
	limiter   *rate.Limiter
	rateLimit int
	signer    *signature.Signer
	keys      []string // secret values signer was built from, in order

	// healthBusy lets one worker at a time update the endpoint's health
	// (FailingSince, disabling) so a failing burst does not hammer the store.
	healthBusy atomic.Bool
}

// acquire returns the endpoint state of subscription id and takes one of
// its in-flight slots, or reports false (taking none) when the endpoint is
// at its cap.
func (s *Service) acquire(id string) (*endpoint, bool) {
	s.epMu.Lock()
	defer s.epMu.Unlock()
	ep := s.eps[id]
	if ep == nil {
		ep = &endpoint{}
		s.eps[id] = ep
	}
	if ep.inflight >= s.cfg.MaxInFlightPerEndpoint {
		return ep, false
	}
	ep.inflight++
	return ep, true
}

// release returns a slot taken by acquire.
func (s *Service) release(ep *endpoint, now time.Time) {
	s.epMu.Lock()
	ep.inflight--
	if ep.inflight == 0 {
		ep.idleSince = now
	}
	s.epMu.Unlock()
}

// sweep forgets endpoints idle since before cutoff.
func (s *Service) sweep(cutoff time.Time) int {
	s.epMu.Lock()
	defer s.epMu.Unlock()
	n := 0
	for id, ep := range s.eps {
		if ep.inflight == 0 && ep.idleSince.Before(cutoff) {
			delete(s.eps, id)
			n++
		}
	}
	return n
}

// observe folds the duration of a finished attempt into the endpoint's
// moving average (weight 1/8).
func (ep *endpoint) observe(d time.Duration) {
	d = max(d, time.Microsecond)
	ep.mu.Lock()
	if ep.avgDur == 0 {
		ep.avgDur = d
	} else {
		ep.avgDur += (d - ep.avgDur) / 8
	}
	ep.mu.Unlock()
}

// queuePolicy is what queueSpot needs of the configuration.
type queuePolicy struct {
	inFlight  int           // MaxInFlightPerEndpoint
	rateLimit int           // the subscription's deliveries per second; 0: none
	minWait   time.Duration // OverCapDelay
	maxWait   time.Duration // OverCapMaxDelay
}

// queueSpot puts one more delivery in the endpoint's virtual queue and
// returns how long it should wait for its turn and how many deliveries
// this replica has queued ahead of it. The endpoint serves one delivery
// per interval: its average attempt duration divided by its in-flight
// cap (minWait per slot while no attempt has finished), and no less than
// the rate limit allows. Each postponed delivery takes the next interval
// after the queue's tail, so a slow endpoint's backlog is spread over the
// time the endpoint needs to serve it instead of coming back all at once;
// the tail is never put further than maxWait ahead. A small random jitter
// (up to one interval) keeps replicas and redeliveries from lining up.
func (ep *endpoint) queueSpot(now time.Time, p queuePolicy) (wait time.Duration, ahead int) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	per := ep.avgDur
	if per == 0 {
		per = p.minWait
	}
	interval := max(per/time.Duration(max(p.inFlight, 1)), time.Microsecond)
	if p.rateLimit > 0 {
		interval = max(interval, time.Second/time.Duration(p.rateLimit))
	}
	if ep.tail.Before(now) {
		ep.tail = now
	}
	ep.tail = ep.tail.Add(interval)
	if limit := now.Add(p.maxWait); ep.tail.After(limit) {
		ep.tail = limit
	}
	wait = ep.tail.Sub(now)
	ahead = int(wait/interval) - 1
	wait += time.Duration(rand.Int64N(int64(interval) + 1))
	return min(max(wait, p.minWait), p.maxWait), ahead
}

// reserve takes a token of the subscription's rate limit (limit per
// second, 0 = none) and returns 0, or returns how long to wait before
// trying again, with the token left untaken.
func (ep *endpoint) reserve(limit int, now time.Time) time.Duration {
	if limit <= 0 {
		return 0
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	switch {
	case ep.limiter == nil:
		ep.limiter = rate.NewLimiter(rate.Limit(limit), limit)
	case ep.rateLimit != limit:
		ep.limiter.SetLimitAt(now, rate.Limit(limit))
		ep.limiter.SetBurstAt(now, limit)
	}
	ep.rateLimit = limit
	r := ep.limiter.ReserveN(now, 1)
	if !r.OK() {
		return time.Second
	}
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now)
		// Spread the deliveries that come back, so they do not all
		// compete for the same next token.
		d += time.Duration(rand.Int64N(int64(d) + 1))
	}
	return d
}

// signerFor returns a Signer over the subscription's unexpired secrets at
// now, reusing the previous one while the set is unchanged.
func (ep *endpoint) signerFor(sub *store.Subscription, now time.Time) (*signature.Signer, error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.signer != nil {
		i, same := 0, true
		for _, sec := range sub.Secrets {
			if !sec.ActiveAt(now) {
				continue
			}
			if i >= len(ep.keys) || ep.keys[i] != sec.Value {
				same = false
				break
			}
			i++
		}
		if same && i == len(ep.keys) {
			return ep.signer, nil
		}
	}
	keys := make([]string, 0, len(sub.Secrets))
	for _, sec := range sub.Secrets {
		if sec.ActiveAt(now) {
			keys = append(keys, sec.Value)
		}
	}
	if len(keys) == 0 {
		return nil, errNoSecret
	}
	signer, err := signature.NewSigner(keys...)
	if err != nil {
		return nil, fmt.Errorf("signing secrets of %s: %w", sub.ID, err)
	}
	ep.signer, ep.keys = signer, keys
	return signer, nil
}
