package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookline/hookline/pkg/groupcommit"
	"github.com/hookline/hookline/pkg/ssrf"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/settle"
	"github.com/hookline/hookline/services/internal/subcache"
)

// Group is the consumer group of the delivery service on DELIVERIES.
const Group = "delivery"

// Reasons recorded on deliveries and subscriptions.
const (
	ReasonSubscriptionDeleted = "subscription deleted"
	ReasonGone                = "endpoint returned 410 Gone"
)

// endpointIdleTTL is how long per-endpoint state outlives its last use.
const endpointIdleTTL = 5 * time.Minute

// Deps are the service's collaborators (see deps.Deps); Store and
// Transport are required.
type Deps = deps.Deps

// Service delivers webhooks; create it with New and start it with Run.
type Service struct {
	cfg      Config
	deps     Deps
	store    store.Store
	tr       transport.Transport
	log      *slog.Logger
	cache    *subcache.Cache
	ownCache bool
	httpTr   *http.Transport
	client   *http.Client
	bufs     sync.Pool // *[]byte of MaxResponseBody

	epMu sync.Mutex
	eps  map[string]*endpoint

	started atomic.Bool
	// Set by Run before consuming starts.
	bg      context.Context // never cancelled: acks, naks, store writes
	workCtx context.Context // cancelled when in-flight requests are abandoned
	batch   *groupcommit.Batcher[record]
}

// New validates cfg and builds the service. It starts no goroutines.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("delivery: invalid config: %w", err)
	}
	if err := d.Check("delivery"); err != nil {
		return nil, err
	}
	allow, err := ssrf.ParsePrefixes(cfg.AllowCIDRs)
	if err != nil {
		return nil, fmt.Errorf("delivery: --delivery-allow-cidrs: %w", err)
	}
	s := &Service{
		cfg:    cfg,
		deps:   d,
		store:  d.Store,
		tr:     d.Transport,
		log:    d.Logger,
		httpTr: newHTTPTransport(cfg, ssrf.NewGuard(allow...)),
		eps:    make(map[string]*endpoint),
	}
	s.cache, s.ownCache = d.Cache(cfg.SubscriptionRefresh)
	s.client = &http.Client{
		Transport: s.httpTr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	s.bufs.New = func() any {
		b := make([]byte, cfg.MaxResponseBody)
		return &b
	}
	return s, nil
}

// Ready reports whether the store and the broker answer.
func (s *Service) Ready(ctx context.Context) error { return s.deps.Ready(ctx) }

// Run consumes DELIVERIES until ctx is cancelled. It then stops taking
// new messages, lets in-flight attempts finish for up to ShutdownGrace
// (abandoned ones are not acknowledged, so the broker redelivers them),
// writes every pending attempt result, and returns nil. A message is
// acknowledged only after its attempt is durably recorded and, when it
// failed, its RETRIES message is published. Run may be called once.
func (s *Service) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("delivery: Run called more than once")
	}
	bg := context.WithoutCancel(ctx)
	work, abandon := context.WithCancel(bg)
	defer abandon()
	s.bg, s.workCtx = bg, work
	s.batch = groupcommit.New(groupcommit.Config{
		MaxItems: s.cfg.BatchSize,
		Linger:   s.cfg.BatchLinger,
		Flushers: s.cfg.BatchFlushers,
		Timeout:  30 * time.Second,
	}, s.flush)

	aux, stopAux := context.WithCancel(bg)
	var wg sync.WaitGroup
	if s.ownCache {
		wg.Go(func() { _ = s.cache.Run(aux) })
	}
	wg.Go(func() { s.sweepLoop(aux) })
	wg.Go(func() {
		select {
		case <-aux.Done():
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(s.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			s.log.Warn("shutdown grace elapsed; abandoning in-flight attempts", "grace", s.cfg.ShutdownGrace)
			abandon()
		case <-aux.Done():
		}
	})

	s.log.Info("delivery service consuming", "concurrency", s.cfg.Concurrency)
	err := s.tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{
		Group:         Group,
		Concurrency:   s.cfg.Concurrency,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: s.cfg.MaxAckPending,
	}, s.handle)
	// Every handler has returned: nothing more can be queued.
	s.batch.Close()
	stopAux()
	wg.Wait()
	s.httpTr.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("delivery: consume %s: %w", transport.Deliveries, err)
	}
	s.log.Info("delivery service stopped")
	return nil
}

func (s *Service) sweepLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sweep(now.Add(-endpointIdleTTL))
		}
	}
}

// recordKind says what a record writes.
type recordKind uint8

const (
	recAttempt recordKind = iota // an attempt result (and maybe a retry)
	recPark                      // park a delivery without an attempt
	recDead                      // dead-letter a delivery without an attempt
	recDefer                     // put off an attempt through the store
)

// record is one write queued on the group-commit batcher.
type record struct {
	kind       recordKind
	result     store.AttemptResult
	deliveryID string               // recPark, recDead
	reason     string               // recDead
	deferral   store.ScheduledRetry // recDefer
	hasRetry   bool
	retry      transport.Message
}

// flush writes a batch of records: attempts in one RecordAttempts call,
// parks in one ParkDeliveries call, put-off attempts in one
// ScheduleRetries call, dead letters in one MarkDead call per
// reason, then the RETRIES messages of the failed attempts in one Publish
// call (only once their attempts are durable).
func (s *Service) flush(ctx context.Context, recs []record, errs []error) {
	now := time.Now()
	var (
		results []store.AttemptResult
		parks   []string
		defers  []store.ScheduledRetry
		dead    map[string][]string
	)
	for i := range recs {
		switch r := &recs[i]; r.kind {
		case recAttempt:
			results = append(results, r.result)
		case recPark:
			parks = append(parks, r.deliveryID)
		case recDefer:
			defers = append(defers, r.deferral)
		case recDead:
			if dead == nil {
				dead = make(map[string][]string)
			}
			dead[r.reason] = append(dead[r.reason], r.deliveryID)
		}
	}
	fail := func(kind recordKind, reason string, err error) {
		for i := range recs {
			if recs[i].kind == kind && (kind != recDead || recs[i].reason == reason) {
				errs[i] = err
			}
		}
	}
	if len(results) > 0 {
		if err := s.store.RecordAttempts(ctx, results); err != nil {
			s.log.Warn("recording attempts failed; deliveries will be retried", "count", len(results), "err", err)
			fail(recAttempt, "", fmt.Errorf("record attempts: %w", err))
		}
	}
	if len(parks) > 0 {
		if err := s.store.ParkDeliveries(ctx, parks, now); err != nil {
			s.log.Warn("parking deliveries failed", "count", len(parks), "err", err)
			fail(recPark, "", fmt.Errorf("park deliveries: %w", err))
		}
	}
	if len(defers) > 0 {
		if err := s.store.ScheduleRetries(ctx, defers); err != nil {
			s.log.Warn("putting off deliveries failed", "count", len(defers), "err", err)
			fail(recDefer, "", fmt.Errorf("put off deliveries: %w", err))
		}
	}
	for reason, ids := range dead {
		if err := s.store.MarkDead(ctx, ids, reason, now); err != nil {
			s.log.Warn("dead-lettering deliveries failed", "count", len(ids), "err", err)
			fail(recDead, reason, fmt.Errorf("mark dead: %w", err))
		}
	}
	var msgs []transport.Message
	for i := range recs {
		if recs[i].hasRetry && errs[i] == nil {
			msgs = append(msgs, recs[i].retry)
		}
	}
	if len(msgs) == 0 {
		return
	}
	if _, err := s.tr.Publish(ctx, transport.Retries, msgs...); err != nil {
		s.log.Warn("publishing retries failed; deliveries will be retried", "count", len(msgs), "err", err)
		err = fmt.Errorf("publish retries: %w", err)
		for i := range recs {
			if recs[i].hasRetry && errs[i] == nil {
				errs[i] = err
			}
		}
	}
}

// handle processes one DELIVERIES message. It acknowledges only work that
// is durably done and never blocks on a slow endpoint it cannot serve.
func (s *Service) handle(_ context.Context, msg transport.Received) {
	m := msg.Message()
	env, err := ParseMessage(m)
	if err != nil {
		if env.DeliveryID == "" {
			s.log.Error("dropping delivery message without a delivery id", "msg_id", m.ID, "err", err)
			settle.Ack(s.log, msg)
			return
		}
		s.log.Warn("dead-lettering malformed delivery message", "delivery_id", env.DeliveryID, "err", err)
		settle.Commit(s.log, s.batch, msg, record{kind: recDead, deliveryID: env.DeliveryID, reason: "malformed delivery message: " + err.Error()}, s.cfg.ErrorBackoff)
		return
	}
	sub, err := s.cache.Get(s.bg, env.SubscriptionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		settle.Commit(s.log, s.batch, msg, record{kind: recDead, deliveryID: env.DeliveryID, reason: ReasonSubscriptionDeleted}, s.cfg.ErrorBackoff)
		return
	case err != nil:
		s.log.Warn("loading subscription failed", "subscription_id", env.SubscriptionID, "err", err)
		settle.Nak(s.log, msg, s.cfg.ErrorBackoff)
		return
	case sub.Tenant != env.Tenant:
		settle.Commit(s.log, s.batch, msg, record{kind: recDead, deliveryID: env.DeliveryID, reason: "malformed delivery message: tenant does not own the subscription"}, s.cfg.ErrorBackoff)
		return
	case sub.State == store.SubscriptionDisabled:
		settle.Commit(s.log, s.batch, msg, record{kind: recPark, deliveryID: env.DeliveryID}, s.cfg.ErrorBackoff)
		return
	}

	now := time.Now()
	ep, ok := s.acquire(sub.ID)
	if !ok {
		// Over the endpoint's cap: free this worker for other endpoints.
		s.postpone(msg, ep, sub, &env, now, 0)
		return
	}
	// The slot caps requests to the endpoint, so it is given back as soon
	// as the request is over, not after the attempt is recorded: a slow
	// store must not make a fast endpoint look busy.
	held := true
	releaseSlot := func() {
		if held {
			held = false
			s.release(ep, time.Now())
		}
	}
	defer releaseSlot()
	if d := ep.reserve(sub.RateLimit, now); d > 0 {
		releaseSlot()
		s.postpone(msg, ep, sub, &env, now, d)
		return
	}

	if msg.NumDelivered() > 1 && s.alreadyMade(msg, &env) {
		return
	}
	timeout := s.attemptTimeout(sub)
	if stop := s.heartbeat(msg, timeout); stop != nil {
		defer stop()
	}
	out := s.send(sub, ep, &env, m.Data, timeout)
	if out.abandoned {
		settle.Nak(s.log, msg, 0)
		return
	}
	releaseSlot()
	ep.observe(out.dur)
	rec := record{kind: recAttempt, result: store.AttemptResult{
		Status: out.status,
		Attempt: store.Attempt{
			DeliveryID:     env.DeliveryID,
			Number:         env.Attempt,
			EventID:        env.EventID,
			SubscriptionID: env.SubscriptionID,
			Tenant:         env.Tenant,
			StartedAt:      out.start,
			Duration:       out.dur,
			StatusCode:     out.code,
			ResponseBody:   out.body,
			Error:          out.errText,
		},
	}}
	switch out.status {
	case store.DeliveryParked: // 410 Gone
		if err := s.disable(sub, ReasonGone); err != nil {
			settle.Nak(s.log, msg, s.cfg.ErrorBackoff)
			return
		}
	case store.DeliveryRetrying:
		rec.hasRetry = true
		rec.retry = NewRetryMessage(RetryRequest{
			DeliveryID:     env.DeliveryID,
			SubscriptionID: env.SubscriptionID,
			EventID:        env.EventID,
			Tenant:         env.Tenant,
			FailedAttempt:  env.Attempt,
			RetryAfter:     out.retryAfter,
		})
		CopyTrace(&rec.retry, m.Headers)
	}
	if !settle.Commit(s.log, s.batch, msg, rec, s.cfg.ErrorBackoff) {
		return
	}
	s.updateHealth(sub, ep, out)
}

// postpone hands back a message its endpoint cannot take now (over the
// in-flight cap, or over the rate limit for at least atLeast), placing it
// in the endpoint's queue (see endpoint.queueSpot). While few deliveries
// of the endpoint are queued (MaxHeldPerEndpoint), the broker keeps the
// message and redelivers it after the wait; beyond that the delivery is
// put off through the store (its attempt scheduled like a retry, the
// attempt number unchanged) and the message acknowledged, so an
// endpoint's backlog lives in the store and never fills the consumer's
// MaxAckPending, which every other endpoint needs.
func (s *Service) postpone(msg transport.Received, ep *endpoint, sub *store.Subscription, env *Envelope, now time.Time, atLeast time.Duration) {
	wait, ahead := ep.queueSpot(now, queuePolicy{
		inFlight:  s.cfg.MaxInFlightPerEndpoint,
		rateLimit: sub.RateLimit,
		minWait:   s.cfg.OverCapDelay,
		maxWait:   s.cfg.OverCapMaxDelay,
	})
	wait = max(wait, atLeast)
	if ahead < s.cfg.MaxHeldPerEndpoint {
		settle.Nak(s.log, msg, wait)
		return
	}
	settle.Commit(s.log, s.batch, msg, record{kind: recDefer, deferral: store.ScheduledRetry{
		DeliveryID: env.DeliveryID,
		Attempt:    env.Attempt,
		DueAt:      now.Add(wait),
	}}, s.cfg.ErrorBackoff)
}

// alreadyMade settles a redelivered message whose attempt is recorded
// already, and reports whether it did. A replica can die, or fail to
// publish the retry request, after recording a failed attempt and before
// acknowledging its message; making the attempt again would be ignored by
// the store (the attempt number is taken), so a success would be lost and
// the delivery left retrying with nothing scheduled. Instead the retry
// request of the recorded attempt is published again (the broker drops it
// as a duplicate if the first one got through, and the scheduler ignores a
// stale one) and the message is acknowledged. Only redelivered messages
// pay for the store read.
func (s *Service) alreadyMade(msg transport.Received, env *Envelope) bool {
	d, err := s.store.GetDelivery(s.bg, "", env.DeliveryID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false
	case err != nil:
		s.log.Warn("reading redelivered delivery failed", "delivery_id", env.DeliveryID, "err", err)
		settle.Nak(s.log, msg, s.cfg.ErrorBackoff)
		return true
	case d.Attempts < env.Attempt:
		return false
	}
	if d.Attempts == env.Attempt && d.Status == store.DeliveryRetrying {
		retry := NewRetryMessage(RetryRequest{
			DeliveryID:     env.DeliveryID,
			SubscriptionID: env.SubscriptionID,
			EventID:        env.EventID,
			Tenant:         env.Tenant,
			FailedAttempt:  env.Attempt,
		})
		CopyTrace(&retry, msg.Message().Headers)
		if _, err := s.tr.Publish(s.bg, transport.Retries, retry); err != nil {
			s.log.Warn("publishing retry request again failed", "delivery_id", env.DeliveryID, "err", err)
			settle.Nak(s.log, msg, s.cfg.ErrorBackoff)
			return true
		}
	}
	s.log.Debug("attempt already recorded; not made again", "delivery_id", env.DeliveryID, "attempt", env.Attempt)
	settle.Ack(s.log, msg)
	return true
}

// heartbeat keeps msg from being redelivered while an attempt that may
// run close to AckWait is in progress. It returns nil when no heartbeat
// is needed, else a function that stops it.
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
	var beat func()
	beat = func() {
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
	now := time.Now()
	if err := s.store.SetSubscriptionState(s.bg, sub.ID, store.SubscriptionDisabled, reason, now); err != nil {
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
	switch out.status {
	case store.DeliverySucceeded:
		if sub.FailingSince.IsZero() || !ep.healthBusy.CompareAndSwap(false, true) {
			return
		}
		defer ep.healthBusy.Store(false)
		if err := s.store.SetSubscriptionFailing(s.bg, sub.ID, time.Time{}); err != nil {
			s.log.Warn("clearing subscription failing-since failed", "subscription_id", sub.ID, "err", err)
			return
		}
		cp := *sub
		cp.FailingSince = time.Time{}
		s.cache.Put(&cp)
	case store.DeliveryRetrying:
		if !ep.healthBusy.CompareAndSwap(false, true) {
			return
		}
		defer ep.healthBusy.Store(false)
		if sub.FailingSince.IsZero() {
			if err := s.store.SetSubscriptionFailing(s.bg, sub.ID, out.start); err != nil {
				s.log.Warn("setting subscription failing-since failed", "subscription_id", sub.ID, "err", err)
				return
			}
			cp := *sub
			cp.FailingSince = out.start
			s.cache.Put(&cp)
			return
		}
		if s.cfg.DisableAfter > 0 && sub.State == store.SubscriptionEnabled && out.start.Sub(sub.FailingSince) > s.cfg.DisableAfter {
			reason := fmt.Sprintf("endpoint failing continuously since %s (longer than %s)",
				sub.FailingSince.UTC().Format(time.RFC3339), s.cfg.DisableAfter)
			_ = s.disable(sub, reason)
		}
	}
}
