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
	settler settle.Settler[record]
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
// (abandoned ones are not acknowledged, so the broker redelivers them),
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
	s.settler = settle.Settler[record]{Log: s.log, Batch: s.batch, Backoff: s.cfg.ErrorBackoff}

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
// and the settler acts on each decision. A message is acknowledged only
// once what it led to is durable, and a worker never waits on an endpoint
// that cannot take another request.
func (s *Service) handle(_ context.Context, msg transport.Received) {
	a, d := s.admit(msg)
	if a == nil {
		s.settler.Act(msg, d)
		return
	}
	defer s.finish(a)
	out := s.attempt(msg, a)
	if s.settler.Act(msg, s.conclude(a, out)) && !out.abandoned {
		s.afterAttempt(a, out)
	}
}
