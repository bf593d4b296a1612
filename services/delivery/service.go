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
	"github.com/hookline/hookline/services/internal/wire"
)

// endpointIdleTTL is how long per-endpoint state outlives its last use.
const endpointIdleTTL = 5 * time.Minute

// Service delivers webhooks; create it with New and start it with Run.
type Service struct {
	cfg      Config
	deps     deps.Deps[Store]
	store    Store
	tr       transport.Transport
	log      *slog.Logger
	now      func() time.Time
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
	// consuming ends when Run's context does: the service then starts no
	// new attempt.
	consuming context.Context
	// holds keeps the messages handed back unsent (see holds).
	holds holds
	// breaker holds attempts back while their records fail.
	breaker recordBreaker
}

// New validates cfg and builds the service. It starts no goroutines.
func New(cfg Config, d deps.Deps[Store]) (*Service, error) {
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
		now:    d.Now,
		httpTr: newHTTPTransport(cfg, ssrf.NewGuard(allow...), d.Resolver),
		eps:    make(map[string]*endpoint),
	}
	s.cache, s.ownCache = d.Cache(d.Store, cfg.SubscriptionRefresh)
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
// (abandoned ones are recorded with their outcome unknown and retried),
// puts off through the store every message it took but did not send,
// writes every pending attempt result, and returns nil. A message is
// acknowledged only after its attempt and what follows from it (the next
// due time, or the dead-lettering) are durably recorded. Run may be called
// once.
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
	s.consuming = ctx

	aux, stopAux := context.WithCancel(bg)
	var wg sync.WaitGroup
	if s.ownCache {
		wg.Go(func() { _ = s.cache.Run(aux) })
	}
	wg.Go(func() { s.sweepLoop(aux) })
	wg.Go(func() { s.abandonAfterGrace(ctx, aux, abandon) })

	s.log.Info("delivery service consuming", "concurrency", s.cfg.Concurrency)
	err := s.tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{
		Group:         wire.GroupDelivery,
		Concurrency:   s.cfg.Concurrency,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: s.cfg.MaxAckPending,
	}, s.handle)
	// Every handler has returned; what is still held is put off.
	s.drainHolds()
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

// abandonAfterGrace cancels in-flight attempts (abandon) once ShutdownGrace
// has passed since ctx ended, unless aux ends first.
func (s *Service) abandonAfterGrace(ctx, aux context.Context, abandon func()) {
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
}

func (s *Service) sweepLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep(s.now().Add(-endpointIdleTTL))
		}
	}
}

// handle processes one DELIVERIES message: admit decides whether an attempt
// is to be made now, attempt makes it, conclude decides what it leads to,
// and act carries out each decision. A message is acknowledged only once
// what it led to is durable, and a worker never waits on an endpoint
// that cannot take another request. Once the service is stopping
// (consuming is done), no new attempt starts: the message is handed back
// unsent.
func (s *Service) handle(ctx context.Context, msg transport.Received) {
	for s.handleOnce(ctx, msg) {
	}
}

// handleOnce is one pass of handle; it reports whether msg is to be
// handled again at once (its worker waited out a hand-back, see handBack).
func (s *Service) handleOnce(ctx context.Context, msg transport.Received) (again bool) {
	if ctx.Err() != nil {
		return s.handBack(msg, 0)
	}
	a, d := s.admit(msg)
	if a == nil {
		_, again = s.act(msg, d, false)
		return again
	}
	defer s.finish(a)
	out := s.attempt(msg, a)
	acked, again := s.act(msg, s.conclude(a, out), true)
	if acked && !out.abandoned {
		s.afterAttempt(a, out)
	}
	return again
}

// act carries out d on msg and reports whether msg was acknowledged (for
// a commit: whether the write is durable), and whether it is to be handled
// again at once (see handBack); sent says whether msg's request was made.
// It is the one place where the delivery service settles a message:
//
//   - an ack acknowledges it;
//   - a nak (always of a message not sent) hands it back unsent, to be
//     handled again after the delay (see handBack);
//   - a commit writes through the group-commit batcher and acknowledges
//     the message once durable. When the write fails, an unsent message
//     is handed back unsent, and a sent one keeps its result and writes it
//     again until it is durable (see commitSent).
func (s *Service) act(msg transport.Received, d decision, sent bool) (acked, again bool) {
	switch d.Kind {
	case settle.KindNak:
		return false, s.handBack(msg, d.Delay)
	case settle.KindCommit:
		if sent {
			return s.commitSent(msg, d.Write), false
		}
		if err := s.batch.Do(s.bg, d.Write); err != nil {
			return false, s.handBack(msg, s.cfg.ErrorBackoff)
		}
	}
	s.ack(msg)
	return true, false
}

// maxHeldPerWorker bounds the messages a replica holds (see holds), per
// worker: beyond Concurrency × maxHeldPerWorker, a handed-back message is
// put off through the store, and only when that fails too (the store is
// down) does the calling worker wait out the delay itself, so a replica
// stops taking messages rather than holding every message the broker
// would give it.
const maxHeldPerWorker = 4

// handBack hands back a message that was not sent, to be handled again
// after delay, without it ever coming back from the broker as a
// redelivery (which redelivered reads as "may have been sent"): the
// replica holds it (see holds), or beyond its share of held messages puts
// it off through the store (see putOff); when that fails too, the calling
// worker waits out the delay and reports that the message is to be handled
// again at once. Once the service is stopping, the message is put off, or
// handed back to the broker when that fails.
func (s *Service) handBack(msg transport.Received, delay time.Duration) (again bool) {
	if s.consuming.Err() != nil {
		if !s.putOff(msg, delay) {
			s.nak(msg)
		}
		return false
	}
	if s.holds.count() < s.cfg.Concurrency*maxHeldPerWorker &&
		s.holds.hold(msg, delay, s.cfg.AckWait/2, s.now, s.again, s.progress) {
		return false
	}
	if s.putOff(msg, delay) {
		return false
	}
	if s.wait(msg, max(delay, s.cfg.ErrorBackoff)) {
		return true
	}
	if !s.putOff(msg, 0) {
		s.nak(msg)
	}
	return false
}

// again handles a held message once its wait is over.
func (s *Service) again(msg transport.Received) { s.handle(s.consuming, msg) }

// progress keeps a held message from the broker's ack wait.
func (s *Service) progress(msg transport.Received) {
	if err := msg.InProgress(s.bg); err != nil {
		s.log.Debug("in-progress ack failed", "msg_id", msg.Message().ID, "err", err)
	}
}

// wait waits for d while keeping msg from the broker's ack wait, and
// reports whether it waited it all (false: the service is stopping).
func (s *Service) wait(msg transport.Received, d time.Duration) bool {
	beat := s.cfg.AckWait / 2
	for d > 0 {
		step := min(d, beat)
		t := time.NewTimer(step)
		select {
		case <-t.C:
		case <-s.consuming.Done():
			t.Stop()
			return false
		}
		d -= step
		if d > 0 {
			s.progress(msg)
		}
	}
	return true
}

// putOff hands back a message that was not sent through the store: its
// attempt is scheduled due after delay (the scheduler releases it as a new
// message) and the message acknowledged. It reports false, doing nothing,
// for a redelivered message (whose first delivery may have made the
// request: the replica that gets it records that, see redelivered) and
// when the store write fails.
func (s *Service) putOff(msg transport.Received, delay time.Duration) bool {
	env, err := wire.ParseDelivery(msg.Message())
	if err != nil || msg.NumDelivered() > 1 {
		return false
	}
	rec := record{kind: recDefer, deferral: store.ScheduledRetry{DeliveryID: env.DeliveryID, Attempt: env.Attempt, DueAt: s.now().Add(delay)}}
	if err := s.batch.Do(s.bg, rec); err != nil {
		return false
	}
	s.ack(msg)
	return true
}

// drainHolds puts off every message still held, once no handler runs.
func (s *Service) drainHolds() {
	held := s.holds.close()
	if len(held) == 0 {
		return
	}
	s.log.Info("putting off held deliveries through the store", "count", len(held))
	var wg sync.WaitGroup
	for _, h := range held {
		wg.Go(func() {
			if !s.putOff(h.msg, max(0, h.due.Sub(s.now()))) {
				s.nak(h.msg)
			}
		})
	}
	wg.Wait()
}

// commitSent writes the record of a sent attempt and acknowledges its
// message once the record is durable. A failed write is tried again every
// ErrorBackoff, the message kept from the broker's ack wait meanwhile: an
// attempt handed back unrecorded would be recorded with its outcome
// unknown and made again. Only when the service stops with the store still
// failing is the message handed back, and the replica that gets it records
// the attempt that way (see redelivered).
func (s *Service) commitSent(msg transport.Received, w record) bool {
	lastBeat := s.now()
	for {
		err := s.batch.Do(s.bg, w)
		if err == nil {
			s.ack(msg)
			return true
		}
		if s.consuming.Err() != nil {
			s.log.Warn("stopping with an attempt unrecorded; the replica that gets it again records its outcome as unknown",
				"delivery_id", w.result.Attempt.DeliveryID, "err", err)
			s.nak(msg)
			return false
		}
		if !s.wait(msg, s.cfg.ErrorBackoff) {
			continue // one more try before handing it back
		}
		if now := s.now(); now.Sub(lastBeat) >= s.cfg.AckWait/4 {
			lastBeat = now
			s.progress(msg)
		}
	}
}

func (s *Service) ack(msg transport.Received) {
	if err := msg.Ack(s.bg); err != nil {
		s.log.Warn("ack failed; the message will be redelivered", "msg_id", msg.Message().ID, "err", err)
	}
}

// nak hands msg back to the broker at once.
func (s *Service) nak(msg transport.Received) {
	if err := msg.Nak(s.bg, 0); err != nil {
		s.log.Warn("nak failed; the message will be redelivered after the ack wait", "msg_id", msg.Message().ID, "err", err)
	}
}
