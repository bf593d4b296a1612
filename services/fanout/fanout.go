// Package fanout turns each accepted event into one delivery per matching
// subscription.
//
// For every message of the EVENTS stream (format in package wire) it
// stores the event and one delivery per subscription whose patterns select
// the event type (disabled subscriptions included: their deliveries are
// parked, not dropped), then publishes one DELIVERIES message per
// delivery, and only then acknowledges the event. Delivery ids are derived
// from (event id, subscription id), so an event fanned out twice — after a
// crash between publish and ack — collapses into the same deliveries.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/groupcommit"
	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/settle"
	"github.com/hookline/hookline/services/internal/subcache"
	"github.com/hookline/hookline/services/internal/wire"
)

// Config tunes the fanout service.
type Config struct {
	// Concurrency bounds the events processed at once.
	Concurrency int
	// AckWait is how long an event may stay unacknowledged before the
	// broker hands it to another replica.
	AckWait time.Duration
	// StoreBatch caps the events written to the store in one batch.
	StoreBatch int
	// SubscriptionRefresh is how often the subscription cache reloads.
	SubscriptionRefresh time.Duration
	// RetryDelay is how long a failed event waits before it is tried again.
	RetryDelay time.Duration
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{Concurrency: 128, AckWait: 20 * time.Second, StoreBatch: 256, SubscriptionRefresh: time.Second, RetryDelay: time.Second}
}

// RegisterFlags registers the fanout flags on fs.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.IntVar(&c.Concurrency, "fanout-concurrency", d.Concurrency, "events fanned out at once")
	fs.DurationVar(&c.AckWait, "fanout-ack-wait", d.AckWait, "time an event may stay unacknowledged before another replica gets it (keep it below the broker's 30 s duplicate window)")
	fs.IntVar(&c.StoreBatch, "fanout-store-batch", d.StoreBatch, "most events written to the store in one batch")
	fs.DurationVar(&c.SubscriptionRefresh, "fanout-subscription-refresh", d.SubscriptionRefresh, "how often the subscription cache reloads from the store")
	fs.DurationVar(&c.RetryDelay, "fanout-retry-delay", d.RetryDelay, "delay before an event whose fan-out failed (store or broker down) is tried again")
}

// Validate reports every problem with c, each naming its flag.
func (c *Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--fanout-concurrency %d: must be at least 1", c.Concurrency))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("--fanout-ack-wait %v: must be at least 1s", c.AckWait))
	}
	if c.StoreBatch < 1 {
		errs = append(errs, fmt.Errorf("--fanout-store-batch %d: must be at least 1", c.StoreBatch))
	}
	if c.SubscriptionRefresh <= 0 {
		errs = append(errs, fmt.Errorf("--fanout-subscription-refresh %v: must be positive", c.SubscriptionRefresh))
	}
	if c.RetryDelay < 0 {
		errs = append(errs, fmt.Errorf("--fanout-retry-delay %v: must not be negative", c.RetryDelay))
	}
	return errors.Join(errs...)
}

// Store is what fanout needs of the store: the subscriptions (through its
// cache) and the one write of a batch. Every store.Store is one.
type Store interface {
	subcache.Source
	InsertFanout(ctx context.Context, events []store.Event, ds []store.Delivery) error
	ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, string, error)
	Ready(ctx context.Context) error
}

// arrival is an event to fan out, and whether its message may have been
// handled before (see Service.actedOn).
type arrival struct {
	ev          store.Event
	redelivered bool
}

var _ Store = store.Store(nil)

// Service fans events out to subscriptions.
type Service struct {
	cfg     Config
	deps    deps.Deps[Store]
	logger  *slog.Logger
	subs    *subcache.Cache
	ownSubs bool
	writes  *groupcommit.Batcher[arrival]
	settler settle.Settler[arrival]
}

// New validates cfg and builds the service.
func New(cfg Config, d deps.Deps[Store]) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fanout config: %w", err)
	}
	if err := d.Check("fanout"); err != nil {
		return nil, err
	}
	d.WarnIfOutlastsDedup("fanout-ack-wait", cfg.AckWait)
	s := &Service{cfg: cfg, deps: d, logger: d.Logger}
	s.subs, s.ownSubs = d.Cache(d.Store, cfg.SubscriptionRefresh)
	return s, nil
}

// Run consumes the EVENTS stream until ctx is cancelled, then waits for
// in-flight events (which are acknowledged only if fully fanned out).
func (s *Service) Run(ctx context.Context) error {
	// Two flushers: one can write to the store while the other waits for
	// the broker to acknowledge its batch's deliveries. The batcher bounds
	// a flush by the ack wait and finishes it even when the service is
	// stopping.
	s.writes = groupcommit.New(groupcommit.Config{MaxItems: s.cfg.StoreBatch, Linger: time.Millisecond, Flushers: 2, Timeout: s.cfg.AckWait}, s.flush)
	defer s.writes.Close()
	s.settler = settle.Settler[arrival]{Log: s.logger, Batch: s.writes, Backoff: s.cfg.RetryDelay}
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.ownSubs {
		subCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		wg.Go(func() { _ = s.subs.Run(subCtx) })
	}
	s.logger.Info("fanout consuming", "concurrency", s.cfg.Concurrency)
	err := s.deps.Transport.Consume(ctx, transport.Events, transport.ConsumerConfig{
		Group: wire.GroupFanout, Concurrency: s.cfg.Concurrency, AckWait: s.cfg.AckWait,
	}, s.handle)
	if err != nil {
		return fmt.Errorf("fanout: consume events: %w", err)
	}
	return nil
}

// Ready reports whether the store and the broker answer.
func (s *Service) Ready(ctx context.Context) error {
	return s.deps.Ready(ctx)
}

// handle fans out one event: the settler acts on decide's decision.
func (s *Service) handle(_ context.Context, msg transport.Received) {
	s.settler.Act(msg, s.decide(msg))
}

// decide decides what to do with one EVENTS message: wait while the
// subscription cache has never loaded (matching against an empty cache
// would fan the event out to nobody and lose it), drop a message that can
// never be read, and otherwise commit the event, which the batcher's flush
// fans out; the message is acknowledged once that is durable.
func (s *Service) decide(msg transport.Received) settle.Decision[arrival] {
	if !s.subs.Loaded() {
		return settle.Nak[arrival](s.cfg.RetryDelay)
	}
	ev, err := wire.ParseEvent(msg.Message())
	if err != nil {
		// Ingest validated the event; a message that does not parse can
		// never succeed, so it is logged and dropped rather than retried.
		s.logger.Error("dropping malformed event message", "msg_id", msg.Message().ID, "err", err)
		return settle.Ack[arrival]()
	}
	return settle.Commit(arrival{ev: ev, redelivered: msg.NumDelivered() > 1})
}

// flush fans out a batch of events: it brings the subscription cache up
// to date (one revision check for the whole batch: every event in it was
// accepted before the flush began), stores the events and one delivery per
// matching subscription in one store write, then publishes every delivery
// of the batch in one call. The write and the publish are idempotent
// (delivery ids and message ids derive from event and subscription), so a
// batch that fails part-way is simply done again.
//
// A redelivered event may have been fanned out before, and its deliveries'
// messages acknowledged and gone from the broker, beyond the reach of its
// duplicate window: publishing them again would make a request twice under
// one attempt number. So the deliveries of redelivered events that were
// acted on already (see actedOn) are not published again.
func (s *Service) flush(ctx context.Context, batch []arrival, errs []error) {
	fail := func(err error) {
		// Once per batch: a store that is down fails every batch.
		s.logger.Warn("fan-out failed; the events will be redelivered", "count", len(batch), "first_event_id", batch[0].ev.ID, "err", err)
		for i := range errs {
			errs[i] = err
		}
	}
	if err := s.subs.Sync(ctx); err != nil {
		fail(fmt.Errorf("subscription cache out of date: %w", err))
		return
	}
	events := make([]store.Event, len(batch))
	redelivered := false
	for i := range batch {
		events[i] = batch[i].ev
		redelivered = redelivered || batch[i].redelivered
	}
	var ds []store.Delivery
	var owner []int // index in events of each delivery
	for i := range events {
		ev := &events[i]
		for _, sub := range s.subs.Matching(ev.Tenant, ev.Type) {
			ds = append(ds, store.Delivery{
				ID: ids.Delivery(ev.ID, sub.ID), EventID: ev.ID, SubscriptionID: sub.ID,
				Tenant: ev.Tenant, EventType: ev.Type, Status: store.DeliveryPending,
				CreatedAt: ev.ReceivedAt, UpdatedAt: ev.ReceivedAt,
			})
			owner = append(owner, i)
		}
	}
	if err := s.deps.Store.InsertFanout(ctx, events, ds); err != nil {
		fail(fmt.Errorf("store %d events and %d deliveries: %w", len(events), len(ds), err))
		return
	}
	var skip map[string]bool
	if redelivered {
		var err error
		if skip, err = s.actedOn(ctx, batch); err != nil {
			fail(err)
			return
		}
	}
	msgs := make([]transport.Message, 0, len(ds))
	for i := range ds {
		if !skip[ds[i].ID] {
			msgs = append(msgs, wire.DeliveryMessage(&ds[i], &events[owner[i]], 1))
		}
	}
	if len(msgs) == 0 {
		return
	}
	if _, err := s.deps.Transport.Publish(ctx, transport.Deliveries, msgs...); err != nil {
		fail(fmt.Errorf("publish %d deliveries: %w", len(msgs), err))
	}
}

// actedOn returns the ids of the deliveries of the batch's redelivered
// events that were acted on already: an attempt recorded, a status other
// than pending, or a due time (put off, or retried, through the store).
// Such a delivery's first message was handled, or the scheduler owns it.
func (s *Service) actedOn(ctx context.Context, batch []arrival) (map[string]bool, error) {
	out := map[string]bool{}
	for i := range batch {
		if !batch[i].redelivered {
			continue
		}
		ev := &batch[i].ev
		f := store.DeliveryFilter{Scope: store.TenantScope(ev.Tenant), EventID: ev.ID, Limit: 1000}
		for {
			ds, next, err := s.deps.Store.ListDeliveries(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("read the deliveries of redelivered event %s: %w", ev.ID, err)
			}
			for _, d := range ds {
				if d.Attempts > 0 || d.Status != store.DeliveryPending || !d.NextAttemptAt.IsZero() {
					out[d.ID] = true
				}
			}
			if next == "" {
				break
			}
			f.PageToken = next
		}
	}
	if len(out) > 0 {
		s.logger.Info("redelivered events fanned out again without the deliveries already acted on", "skipped", len(out))
	}
	return out, nil
}
