package delivery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hookline/hookline/pkg/retry"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/settle"
	"github.com/hookline/hookline/services/internal/wire"
)

// decision is what the delivery service does with a message.
type decision = settle.Decision[record]

// admitted is a message whose attempt is to be made now.
type admitted struct {
	env     wire.Delivery
	sub     *store.Subscription
	ep      *endpoint
	payload []byte
	// slot says whether the message holds one of ep's in-flight slots.
	slot bool
	// stopBeat stops the in-progress heartbeat, if one runs.
	stopBeat func()
}

// admit decides whether msg's attempt is to be made now. It returns the
// admitted message, holding a slot of its endpoint, or nil and what to do
// with msg instead: drop or dead-letter a malformed message, park a
// disabled subscription's delivery, settle a redelivered message (see
// redelivered), postpone one its endpoint cannot take now (over the
// in-flight cap or the rate limit), or hand back unsent one whose record
// would fail (the store is not recording attempts). Only a message's first
// delivery is ever sent.
func (s *Service) admit(msg transport.Received) (*admitted, decision) {
	m := msg.Message()
	env, err := wire.ParseDelivery(m)
	if err != nil {
		if env.DeliveryID == "" {
			s.log.Error("dropping delivery message without a delivery id", "msg_id", m.ID, "err", err)
			return nil, settle.Ack[record]()
		}
		s.log.Warn("dead-lettering malformed delivery message", "delivery_id", env.DeliveryID, "err", err)
		return nil, deadLetter(env.DeliveryID, wire.ReasonMalformed+err.Error())
	}
	sub, d, ok := s.subscriptionOf(&env)
	if sub != nil && msg.NumDelivered() > 1 {
		return nil, s.redelivered(&env, sub)
	}
	if !ok {
		return nil, d
	}
	now := s.now()
	if !s.breaker.allow(now, s.cfg.ErrorBackoff) {
		return nil, settle.Nak[record](s.cfg.ErrorBackoff) // unsent: its record would fail
	}
	ep, ok := s.acquire(sub.ID)
	if !ok {
		return nil, s.postpone(ep, sub, &env, now, 0)
	}
	a := &admitted{env: env, sub: sub, ep: ep, payload: m.Data, slot: true}
	if wait := ep.reserve(sub.RateLimit, now); wait > 0 {
		s.finish(a)
		return nil, s.postpone(ep, sub, &env, now, wait)
	}
	return a, decision{}
}

// subscriptionOf returns the subscription env is for and whether its
// attempt may go ahead; when it may not, what to do with its message:
// dead-letter it when the subscription is gone or not the tenant's (no
// subscription returned), park it when the subscription is disabled (the
// subscription returned), hand it back unsent when the subscription cannot
// be read.
func (s *Service) subscriptionOf(env *wire.Delivery) (*store.Subscription, decision, bool) {
	sub, err := s.cache.Get(s.bg, env.SubscriptionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, deadLetter(env.DeliveryID, wire.ReasonSubscriptionDeleted), false
	case err != nil:
		s.log.Warn("loading subscription failed", "subscription_id", env.SubscriptionID, "err", err)
		return nil, settle.Nak[record](s.cfg.ErrorBackoff), false
	case sub.Tenant != env.Tenant:
		return nil, deadLetter(env.DeliveryID, wire.ReasonTenantMismatch), false
	case sub.State == store.SubscriptionDisabled:
		return sub, settle.Commit(record{kind: recPark, deliveryID: env.DeliveryID}), false
	}
	return sub, decision{}, true
}

// deadLetter decides to dead-letter a delivery without an attempt.
func deadLetter(deliveryID, reason string) decision {
	return settle.Commit(record{kind: recDead, deliveryID: deliveryID, reason: reason})
}

// OutcomeUnknown begins the Error of an attempt whose outcome is not
// known: the request may or may not have reached the endpoint. Such an
// attempt counts as failed (its retry is due at once), so the history
// holds every request an endpoint saw, and may hold an unknown attempt
// that no request matches; never the other way round.
const OutcomeUnknown = "outcome unknown"

// Why an attempt's outcome is unknown.
const (
	unknownRedelivered = OutcomeUnknown + ": the replica holding this attempt stopped (or lost its broker connection) before recording it; the endpoint may or may not have received the request"
	unknownAbandoned   = OutcomeUnknown + ": the attempt was cut short when the delivery service stopped; the endpoint may or may not have received the request"
)

// redelivered decides what to do with a message the broker delivers again.
// A replica hands a message back unsent only in ways that never lead here
// (it holds the message, or puts it off through the store, which releases
// a new message), so the message's first delivery may have made the
// request. When its attempt is recorded (the replica died between
// recording and acknowledging), nothing is owed and the message is
// acknowledged. Otherwise the attempt is recorded as one whose outcome is
// unknown, with its retry due at once (the scheduler releases it as a new
// message), and the message acknowledged: the request it may have made is
// in the history, and the next request is a new attempt. Only redelivered
// messages pay for the store read.
func (s *Service) redelivered(env *wire.Delivery, sub *store.Subscription) decision {
	d, err := s.store.GetDelivery(s.bg, store.TenantScope(env.Tenant), env.DeliveryID)
	switch {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		s.log.Warn("reading redelivered delivery failed", "delivery_id", env.DeliveryID, "err", err)
		return settle.Nak[record](s.cfg.ErrorBackoff)
	case err == nil && d.Attempts >= env.Attempt:
		s.log.Debug("attempt already recorded; not made again", "delivery_id", env.DeliveryID, "attempt", env.Attempt)
		return settle.Ack[record]()
	}
	s.log.Info("redelivered attempt was never recorded: recorded with its outcome unknown, and retried at once",
		"delivery_id", env.DeliveryID, "attempt", env.Attempt)
	return settle.Commit(record{kind: recAttempt, result: s.unknownResult(env, sub, s.now(), 0, unknownRedelivered)})
}

// unknownResult is the result of attempt env.Attempt, begun at start and
// lasting dur, whose outcome is unknown (why says why): the delivery is
// retried at once, or dead-lettered when its retry schedule is exhausted.
func (s *Service) unknownResult(env *wire.Delivery, sub *store.Subscription, start time.Time, dur time.Duration, why string) store.AttemptResult {
	res := store.AttemptResult{
		Status: store.DeliveryRetrying,
		Attempt: store.Attempt{
			DeliveryID:     env.DeliveryID,
			Number:         env.Attempt,
			EventID:        env.EventID,
			SubscriptionID: env.SubscriptionID,
			Tenant:         env.Tenant,
			StartedAt:      start,
			Duration:       dur,
			Error:          why,
		},
	}
	s.planRetry(&res, sub, 0)
	if res.Status == store.DeliveryRetrying {
		res.NextAttemptAt = s.now()
	}
	return res
}

// postpone decides what to do with a message its endpoint cannot take now
// (over the in-flight cap, or over the rate limit for at least atLeast): it
// takes the next place in the endpoint's queue (see endpoint.queueSpot).
// While few deliveries of the endpoint are queued (MaxHeldPerEndpoint), the
// replica holds the message for the wait (a nak, which act turns into a
// hold, see holds); beyond that
// the delivery is put off through the store (its attempt scheduled like a
// retry, the attempt number unchanged) and the message acknowledged, so an
// endpoint's backlog lives in the store and never fills the consumer's
// MaxAckPending, which every other endpoint needs.
func (s *Service) postpone(ep *endpoint, sub *store.Subscription, env *wire.Delivery, now time.Time, atLeast time.Duration) decision {
	wait, ahead := ep.queueSpot(now, queuePolicy{
		inFlight:  s.cfg.MaxInFlightPerEndpoint,
		rateLimit: sub.RateLimit,
		minWait:   s.cfg.OverCapDelay,
		maxWait:   s.cfg.OverCapMaxDelay,
	})
	wait = max(wait, atLeast)
	if ahead < s.cfg.MaxHeldPerEndpoint {
		return settle.Nak[record](wait)
	}
	return settle.Commit(record{kind: recDefer, deferral: store.ScheduledRetry{
		DeliveryID: env.DeliveryID,
		Attempt:    env.Attempt,
		DueAt:      now.Add(wait),
	}})
}

// attempt makes a's attempt, keeping its message from being redelivered
// meanwhile, and gives the endpoint's slot back as soon as the request is
// over: a slow store must not make a fast endpoint look busy.
func (s *Service) attempt(msg transport.Received, a *admitted) outcome {
	timeout := s.attemptTimeout(a.sub)
	a.stopBeat = s.heartbeat(msg, timeout)
	out := s.send(a.sub, a.ep, &a.env, a.payload, timeout)
	if a.slot {
		a.slot = false
		s.release(a.ep, s.now())
	}
	if !out.abandoned {
		a.ep.observe(out.dur)
	}
	return out
}

// finish releases what an admitted message still holds: its endpoint slot
// and its heartbeat.
func (s *Service) finish(a *admitted) {
	if a.slot {
		a.slot = false
		s.release(a.ep, s.now())
	}
	if a.stopBeat != nil {
		a.stopBeat()
		a.stopBeat = nil
	}
}

// conclude decides what an attempt leads to: an attempt abandoned before
// its request began (the service is stopping) is handed back unsent; one
// abandoned after is recorded with its outcome unknown; any other is
// recorded together with the delivery's new status and, when it failed,
// its next due time or its dead-lettering (see planRetry).
func (s *Service) conclude(a *admitted, out outcome) decision {
	switch {
	case out.unsent:
		return settle.Nak[record](0)
	case out.abandoned:
		return settle.Commit(record{kind: recAttempt, result: s.unknownResult(&a.env, a.sub, out.start, out.dur, unknownAbandoned)})
	}
	res := store.AttemptResult{
		Status: out.status,
		Attempt: store.Attempt{
			DeliveryID:     a.env.DeliveryID,
			Number:         a.env.Attempt,
			EventID:        a.env.EventID,
			SubscriptionID: a.env.SubscriptionID,
			Tenant:         a.env.Tenant,
			StartedAt:      out.start,
			Duration:       out.dur,
			StatusCode:     out.code,
			ResponseBody:   out.body,
			Error:          out.errText,
		},
	}
	if out.status == store.DeliveryRetrying {
		s.planRetry(&res, a.sub, out.retryAfter)
	}
	return settle.Commit(record{kind: recAttempt, result: res})
}

// planRetry completes the result of a failed attempt: the next attempt is
// due after the subscription's retry schedule (or the default one), with
// jitter, or after the receiver's Retry-After when that is longer; past
// the end of the schedule the delivery is dead-lettered instead.
func (s *Service) planRetry(res *store.AttemptResult, sub *store.Subscription, retryAfter time.Duration) {
	schedule := sub.RetrySchedule
	if schedule == nil {
		schedule = s.cfg.RetrySchedule
	}
	n := res.Attempt.Number
	if delay, ok := retry.Delay(schedule, n, retryAfter, s.cfg.RetryJitter, rand.Float64); ok {
		res.NextAttemptAt = s.now().Add(delay)
		return
	}
	res.Status = store.DeliveryDead
	res.DeliveryError = fmt.Sprintf("retry schedule exhausted after %d attempts; last: %s", n, res.Attempt.Error)
}

// afterAttempt updates the endpoint's health once an attempt is recorded:
// a 410 Gone disables the subscription, and a run of failures longer than
// DisableAfter does too. Failures here are logged, not retried: the
// attempt is recorded, and the next attempt's outcome updates the health
// again (a 410 delivery is parked, and redriven at once if the
// subscription is still enabled).
func (s *Service) afterAttempt(a *admitted, out outcome) {
	if out.status == store.DeliveryParked {
		_ = s.disable(a.sub, wire.ReasonGone)
		return
	}
	s.updateHealth(a.sub, a.ep, out)
}

// heartbeat keeps msg from being redelivered while an attempt that may
// run close to AckWait is in progress, and while its result is recorded.
// It returns nil when no heartbeat is needed, else a function that stops
// it.
func (s *Service) heartbeat(msg transport.Received, timeout time.Duration) func() {
	const flushBound = 30 * time.Second
	every := s.cfg.AckWait / 2
	if timeout+flushBound < every {
		return nil
	}
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	beat := func() {
		if err := msg.InProgress(s.bg); err != nil {
			s.log.Debug("in-progress ack failed", "msg_id", msg.Message().ID, "err", err)
		}
		mu.Lock()
		if !stopped {
			t.Reset(every)
		}
		mu.Unlock()
	}
	mu.Lock()
	t = time.AfterFunc(every, beat)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// disable disables sub with reason, in the store and in the cache, and
// says so in the log.
func (s *Service) disable(sub *store.Subscription, reason string) error {
	now := s.now()
	if err := s.store.SetSubscriptionState(s.bg, store.TenantScope(sub.Tenant), sub.ID, store.SubscriptionDisabled, reason, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.cache.Remove(sub.ID)
			return nil
		}
		s.log.Warn("disabling subscription failed", "subscription_id", sub.ID, "err", err)
		return fmt.Errorf("disable subscription %s: %w", sub.ID, err)
	}
	cp := *sub
	cp.State, cp.DisabledReason, cp.UpdatedAt = store.SubscriptionDisabled, reason, now
	s.cache.Put(&cp)
	s.log.Warn("subscription disabled; its deliveries are parked until it is enabled",
		"event", "subscription_disabled", "subscription_id", sub.ID, "tenant", sub.Tenant, "reason", reason)
	return nil
}

// updateHealth maintains the subscription's FailingSince after an attempt
// and disables it once it has failed continuously for DisableAfter.
// Failures here are logged: the attempt itself is already recorded.
func (s *Service) updateHealth(sub *store.Subscription, ep *endpoint, out outcome) {
	failed := out.status == store.DeliveryRetrying
	if !failed && (out.status != store.DeliverySucceeded || sub.FailingSince.IsZero()) {
		return
	}
	if !ep.healthBusy.CompareAndSwap(false, true) {
		return
	}
	defer ep.healthBusy.Store(false)
	switch {
	case !failed, sub.FailingSince.IsZero():
		since := out.start // failed: the run of failures starts now
		if !failed {
			since = time.Time{}
		}
		if err := s.store.SetSubscriptionFailing(s.bg, sub.ID, since); err != nil {
			s.log.Warn("updating subscription failing-since failed", "subscription_id", sub.ID, "err", err)
			return
		}
		cp := *sub
		cp.FailingSince = since
		s.cache.Put(&cp)
	case s.cfg.DisableAfter > 0 && sub.State == store.SubscriptionEnabled && out.start.Sub(sub.FailingSince) > s.cfg.DisableAfter:
		reason := fmt.Sprintf("endpoint failing continuously since %s (longer than %s)",
			sub.FailingSince.UTC().Format(time.RFC3339), s.cfg.DisableAfter)
		_ = s.disable(sub, reason)
	}
}
