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

	mu        sync.Mutex
	limiter   *rate.Limiter
	rateLimit int
	signer    *signature.Signer
	keys      []string // secret values signer was built from, in order

	// healthBusy lets one worker at a time update the endpoint's health
	// (FailingSince, disabling) so a failing burst does not hammer the store.
	healthBusy atomic.Bool
}

// acquire takes an in-flight slot of subscription id, or returns nil when
// the endpoint is at its cap.
func (s *Service) acquire(id string) *endpoint {
	s.epMu.Lock()
	defer s.epMu.Unlock()
	ep := s.eps[id]
	if ep == nil {
		ep = &endpoint{}
		s.eps[id] = ep
	}
	if ep.inflight >= s.cfg.MaxInFlightPerEndpoint {
		return nil
	}
	ep.inflight++
	return ep
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
