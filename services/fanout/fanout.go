// Package fanout turns each accepted event into one delivery per matching
// subscription.
//
// For every message of the EVENTS stream it stores the event and one
// delivery per subscription whose patterns select the event type (disabled
// subscriptions included: their deliveries are parked, not dropped), then
// publishes one DELIVERIES message per delivery, and only then
// acknowledges the event. Delivery ids are derived from (event id,
// subscription id), so an event fanned out twice — after a crash between
// publish and ack — collapses into the same deliveries.
package fanout

import (
	"context"
	"encoding/json"
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
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/settle"
	"github.com/hookline/hookline/services/internal/subcache"
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
func (c Config) Validate() error {
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

// Deps are the service's collaborators (see deps.Deps); Store and
// Transport are required.
type Deps = deps.Deps

// Service fans events out to subscriptions.
type Service struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	subs    *subcache.Cache
	ownSubs bool
	writes  *groupcommit.Batcher[store.Event]
}

// New validates cfg and builds the service.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fanout config: %w", err)
	}
	if err := d.Check("fanout"); err != nil {
		return nil, err
	}
	d.WarnIfOutlastsDedup("fanout-ack-wait", cfg.AckWait)
	s := &Service{cfg: cfg, deps: d, logger: d.Logger}
	s.subs, s.ownSubs = d.Cache(cfg.SubscriptionRefresh)
	return s, nil
}

// Run consumes the EVENTS stream until ctx is cancelled, then waits for
// in-flight events (which are acknowledged only if fully fanned out).
func (s *Service) Run(ctx context.Context) error {
	// Two flushers: one can write to the store while the other waits for
	// the broker to acknowledge its batch's deliveries.
	s.writes = groupcommit.New(groupcommit.Config{MaxItems: s.cfg.StoreBatch, Linger: time.Millisecond, Flushers: 2, Timeout: s.cfg.AckWait}, s.flush)
	defer s.writes.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.ownSubs {
		subCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.subs.Run(subCtx) }()
	}
	s.logger.Info("fanout consuming", "concurrency", s.cfg.Concurrency)
	err := s.deps.Transport.Consume(ctx, transport.Events, transport.ConsumerConfig{
		Group: "fanout", Concurrency: s.cfg.Concurrency, AckWait: s.cfg.AckWait,
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

// handle fans out one event. An event already being handled when the
// service stops is finished (within the ack wait) rather than abandoned.
func (s *Service) handle(ctx context.Context, msg transport.Received) {
	if !s.subs.Loaded() {
		// Matching against a cache that never loaded would fan the event
		// out to nobody and lose it: wait for the first load.
		settle.Nak(s.logger, msg, s.cfg.RetryDelay)
		return
	}
	ev, err := ParseEventMessage(msg.Message())
	if err != nil {
		// Ingest validated the event; a message that does not parse can
		// never succeed, so it is logged and dropped rather than retried.
		s.logger.Error("dropping malformed event message", "msg_id", msg.Message().ID, "err", err)
		settle.Ack(s.logger, msg)
		return
	}
	// The batcher bounds the flush by the ack wait and finishes it even
	// when the service is stopping.
	if err := s.writes.Do(context.WithoutCancel(ctx), ev); err != nil {
		s.logger.Warn("fan-out failed; will retry", "event_id", ev.ID, "err", err)
		settle.Nak(s.logger, msg, s.cfg.RetryDelay)
		return
	}
	settle.Ack(s.logger, msg)
}

// flush fans out a batch of events: it brings the subscription cache up
// to date (one revision check for the whole batch: every event in it was
// accepted before the flush began), stores the events and one delivery per
// matching subscription in one store write, then publishes every delivery
// of the batch in one call. The write and the publish are idempotent
// (delivery ids and message ids derive from event and subscription), so a
// batch that fails part-way is simply done again.
func (s *Service) flush(ctx context.Context, events []store.Event, errs []error) {
	fail := func(err error) {
		for i := range errs {
			errs[i] = err
		}
	}
	if err := s.subs.Sync(ctx); err != nil {
		fail(fmt.Errorf("subscription cache out of date: %w", err))
		return
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
	if len(ds) == 0 {
		return
	}
	msgs := make([]transport.Message, len(ds))
	for i := range ds {
		msgs[i] = delivery.NewMessage(&ds[i], &events[owner[i]], 1)
	}
	if _, err := s.deps.Transport.Publish(ctx, transport.Deliveries, msgs...); err != nil {
		fail(fmt.Errorf("publish %d deliveries: %w", len(msgs), err))
	}
}

// NewEventMessage encodes an accepted event for the EVENTS stream: ID and
// Subject "<tenant>.<type>" for the broker, the metadata in hookline-*
// headers, and the payload untouched as the body (shared, not copied).
// ParseEventMessage is its inverse.
func NewEventMessage(ev *store.Event) transport.Message {
	h := make(map[string]string, 6)
	h[transport.HeaderEventID] = ev.ID
	h[transport.HeaderTenant] = ev.Tenant
	h[transport.HeaderEventType] = ev.Type
	h[transport.HeaderOccurredAt] = ev.OccurredAt.UTC().Format(time.RFC3339Nano)
	h[transport.HeaderReceivedAt] = ev.ReceivedAt.UTC().Format(time.RFC3339Nano)
	if len(ev.Labels) > 0 {
		b, _ := json.Marshal(ev.Labels) // a map of strings always marshals
		h[transport.HeaderLabels] = string(b)
	}
	return transport.Message{ID: ev.ID, Subject: ev.Tenant + "." + ev.Type, Headers: h, Data: ev.Payload}
}

// ParseEventMessage decodes an EVENTS message written by NewEventMessage.
func ParseEventMessage(m *transport.Message) (store.Event, error) {
	h := m.Headers
	ev := store.Event{ID: h[transport.HeaderEventID], Tenant: h[transport.HeaderTenant], Type: h[transport.HeaderEventType], Payload: m.Data}
	if ev.ID == "" || ev.Tenant == "" || ev.Type == "" {
		return ev, fmt.Errorf("missing %s, %s or %s header", transport.HeaderEventID, transport.HeaderTenant, transport.HeaderEventType)
	}
	var err error
	if ev.OccurredAt, err = time.Parse(time.RFC3339Nano, h[transport.HeaderOccurredAt]); err != nil {
		return ev, fmt.Errorf("header %s: %w", transport.HeaderOccurredAt, err)
	}
	if ev.ReceivedAt, err = time.Parse(time.RFC3339Nano, h[transport.HeaderReceivedAt]); err != nil {
		return ev, fmt.Errorf("header %s: %w", transport.HeaderReceivedAt, err)
	}
	if l := h[transport.HeaderLabels]; l != "" {
		if err := json.Unmarshal([]byte(l), &ev.Labels); err != nil {
			return ev, fmt.Errorf("header %s: %w", transport.HeaderLabels, err)
		}
	}
	return ev, nil
}
