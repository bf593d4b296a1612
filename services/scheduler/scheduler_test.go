package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/internal/wire"
	"github.com/hookline/hookline/services/scheduler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger() *slog.Logger { return servicetest.Logger() }

// countingStore is the real store, counting RedriveParked calls.
type countingStore struct {
	store.Store
	redrives atomic.Int64
}

func (c *countingStore) RedriveParked(ctx context.Context, now time.Time, limit int) (int, error) {
	n, err := c.Store.RedriveParked(ctx, now, limit)
	c.redrives.Add(1)
	return n, err
}

// countingTransport is the real transport, counting messages published
// to DELIVERIES.
type countingTransport struct {
	transport.Transport
	published atomic.Int64
}

func (c *countingTransport) Publish(ctx context.Context, s transport.Stream, msgs ...transport.Message) ([]transport.PublishResult, error) {
	res, err := c.Transport.Publish(ctx, s, msgs...)
	if err == nil && s == transport.Deliveries {
		c.published.Add(int64(len(msgs)))
	}
	return res, err
}

type env struct {
	t  *testing.T
	st *countingStore
	tr *countingTransport

	mu         sync.Mutex
	deliveries map[string][]transport.Message
	got        chan string // delivery ids of DELIVERIES messages, as they arrive
	consumeMu  sync.Once
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, servicetest.Store(t))
}

// newEnvOn is newEnv on the given store.
func newEnvOn(t *testing.T, st store.Store) *env {
	t.Helper()
	return &env{t: t, st: &countingStore{Store: st}, tr: &countingTransport{Transport: servicetest.Transport(t)},
		deliveries: map[string][]transport.Message{}, got: make(chan string, 1024)}
}

func testConfig() scheduler.Config {
	cfg := scheduler.DefaultConfig()
	cfg.PollInterval = 20 * time.Millisecond
	return cfg
}

// run starts a scheduler replica, stopped when the returned function is
// called or the test ends; Run must return nil.
func (e *env) run(cfg scheduler.Config) (stop func()) {
	e.t.Helper()
	svc, err := scheduler.New(cfg, deps.Deps[scheduler.Store]{Store: e.st, Transport: e.tr, Logger: testLogger()})
	if err != nil {
		e.t.Fatalf("scheduler.New: %v", err)
	}
	return servicetest.Run(e.t, svc.Run)
}

// consume records DELIVERIES messages in the background.
func (e *env) consume() {
	e.consumeMu.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			err := e.tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "test"}, func(_ context.Context, r transport.Received) {
				m := *r.Message()
				id := m.Headers[wire.HeaderDeliveryID]
				e.mu.Lock()
				e.deliveries[id] = append(e.deliveries[id], m)
				e.mu.Unlock()
				e.got <- id
				_ = r.Ack(context.Background())
			})
			if err != nil {
				e.t.Errorf("Consume: %v", err)
			}
		}()
		e.t.Cleanup(func() { cancel(); <-done })
	})
}

// waitFor waits until DELIVERIES messages for every id have arrived.
func (e *env) waitFor(ids ...string) {
	e.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.After(20 * time.Second)
	for len(want) > 0 {
		select {
		case id := <-e.got:
			delete(want, id)
		case <-deadline:
			e.t.Fatalf("no DELIVERIES message for %d deliveries", len(want))
		}
	}
}

func (e *env) messages(id string) []transport.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]transport.Message(nil), e.deliveries[id]...)
}

func (e *env) seed(mutate ...func(*store.Subscription)) storetest.Fixture {
	e.t.Helper()
	sub := storetest.NewSubscription("acme")
	for _, m := range mutate {
		m(sub)
	}
	return storetest.SeedFor(e.t, e.st, sub, time.Now())
}

// failed records attempt n of f's delivery as failed with the next attempt
// due in dueIn, as the delivery service does, and, with announce, tells
// the schedulers with a due signal as the delivery service does.
func (e *env) failed(f storetest.Fixture, n int, dueIn time.Duration, announce bool) {
	e.t.Helper()
	ctx := context.Background()
	a := storetest.NewAttempt(f.Delivery, n, time.Now())
	due := time.Now().Add(dueIn)
	r := store.AttemptResult{Attempt: a, Status: store.DeliveryRetrying, NextAttemptAt: due}
	if err := e.st.RecordAttempts(ctx, []store.AttemptResult{r}); err != nil {
		e.t.Fatal(err)
	}
	if announce {
		if err := e.tr.Notify(ctx, wire.TopicDue, wire.WakeSignal(due)); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) getDelivery(id string) *store.Delivery {
	e.t.Helper()
	d, err := e.st.GetDelivery(context.Background(), store.AllTenants(), id)
	if err != nil {
		e.t.Fatalf("GetDelivery: %v", err)
	}
	return d
}

// TestAnnouncedDueTimesReleasedOnTime: a replica releases retries whose
// due times were announced (wire.TopicDue) when they fall due, not at its
// next poll: with an hour between polls, and the first poll over before
// the retries are recorded, retries due in 20 ms, 100 ms and 20 ms
// (announced in that order) are all released, and only through the
// signals; one due time announced twice is released once.
func TestAnnouncedDueTimesReleasedOnTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.PollInterval = time.Hour
	e.run(cfg)
	e.consume()
	poll.Until(t, "the first poll", func() bool { return e.st.redrives.Load() >= 1 })
	var ids []string
	for _, dueIn := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 20 * time.Millisecond} {
		f := e.seed()
		e.failed(f, 1, dueIn, true)
		ids = append(ids, f.Delivery.ID)
	}
	e.waitFor(ids...)
	if n := e.st.redrives.Load(); n != 1 {
		t.Fatalf("%d polls; the releases must have come from the signals alone", n)
	}
	for _, id := range ids {
		if n := len(e.messages(id)); n != 1 {
			t.Fatalf("delivery %s released %d times", id, n)
		}
	}
}

// TestDueRetriesReleasedExactlyOnce: two scheduler replicas on one store
// release every due retry exactly once, on every store backend.
func TestDueRetriesReleasedExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, b := range servicetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testDueRetriesReleasedExactlyOnce(t, newEnvOn(t, b.Open(t)))
		})
	}
}

func testDueRetriesReleasedExactlyOnce(t *testing.T, e *env) {
	e.consume()
	cfg := testConfig()
	cfg.ClaimLimit = 7 // several batches per poll
	stop1, stop2 := e.run(cfg), e.run(cfg)
	const n = 40
	var fs []storetest.Fixture
	var ids []string
	for range n {
		f := e.seed()
		fs = append(fs, f)
		ids = append(ids, f.Delivery.ID)
		e.failed(f, 1, 0, false)
	}
	e.waitFor(ids...)
	poll.Until(t, "retries completed", func() bool {
		for _, id := range ids {
			if !e.getDelivery(id).NextAttemptAt.IsZero() && len(e.messages(id)) == 0 {
				return false
			}
		}
		due, err := e.st.ClaimDueRetries(context.Background(), time.Now().Add(time.Hour), 1000, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return len(due) == 0
	})
	stop1()
	stop2()
	if got := e.tr.published.Load(); got != n {
		t.Fatalf("published %d DELIVERIES messages for %d due retries", got, n)
	}
	for _, f := range fs {
		ms := e.messages(f.Delivery.ID)
		if len(ms) != 1 {
			t.Fatalf("delivery %s released %d times", f.Delivery.ID, len(ms))
		}
		m := ms[0]
		got, err := wire.ParseDelivery(&m)
		if err != nil || got.Attempt != 2 || got.EventID != f.Event.ID || got.Tenant != "acme" ||
			string(m.Data) != string(f.Event.Payload) || !strings.HasPrefix(m.ID, wire.AttemptID(f.Delivery.ID, 2)+".r") || m.Key != f.Sub.ID {
			t.Fatalf("released message %+v parses to %+v, %v", m, got, err)
		}
	}
}

func TestParkedRedrivenAfterEnable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.consume()
	ctx := context.Background()
	f := e.seed(func(s *store.Subscription) { s.State, s.DisabledReason = store.SubscriptionDisabled, "operator" })
	if err := e.st.ParkDeliveries(ctx, []string{f.Delivery.ID}, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.run(testConfig())
	poll.Until(t, "a few redrive polls", func() bool { return e.st.redrives.Load() >= 3 })
	if n := e.tr.published.Load(); n != 0 {
		t.Fatalf("published %d messages while the subscription was disabled", n)
	}
	if err := e.st.SetSubscriptionState(ctx, store.AllTenants(), f.Sub.ID, store.SubscriptionEnabled, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitFor(f.Delivery.ID)
	m := e.messages(f.Delivery.ID)[0]
	if m.Headers[wire.HeaderAttempt] != "1" {
		t.Fatalf("redriven attempt = %q; want 1", m.Headers[wire.HeaderAttempt])
	}
	// The redriven attempt is a new message even though attempt 1 was
	// published before (by fanout) with the plain attempt id.
	if m.ID == wire.DeliveryMessage(&f.Delivery, &f.Event, 1).ID {
		t.Fatal("redriven message reuses the fan-out message id; the broker would drop it as a duplicate")
	}
}

// TestRetentionPurge: the background job purges old finished deliveries,
// their events and attempts, in bounded batches, and keeps fresh and
// unfinished ones, on every store backend.
func TestRetentionPurge(t *testing.T) {
	t.Parallel()
	for _, b := range servicetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testRetentionPurge(t, newEnvOn(t, b.Open(t)))
		})
	}
}

func testRetentionPurge(t *testing.T, e *env) {
	ctx := context.Background()
	old := storetest.SeedFor(t, e.st, storetest.NewSubscription("acme"), time.Now().Add(-3*time.Hour))
	a := storetest.NewAttempt(old.Delivery, 1, time.Now().Add(-3*time.Hour))
	if err := e.st.RecordAttempts(ctx, []store.AttemptResult{{Attempt: a, Status: store.DeliverySucceeded}}); err != nil {
		t.Fatal(err)
	}
	oldPending := storetest.SeedFor(t, e.st, storetest.NewSubscription("acme"), time.Now().Add(-3*time.Hour))
	fresh := e.seed()
	cfg := testConfig()
	cfg.Retention = time.Hour
	cfg.RetentionInterval = 20 * time.Millisecond
	cfg.PurgeBatch = 1 // several purge calls per run
	e.run(cfg)
	poll.Until(t, "old event purged", func() bool {
		_, err := e.st.GetEvent(ctx, store.AllTenants(), old.Event.ID)
		return errors.Is(err, store.ErrNotFound)
	})
	if _, err := e.st.GetDelivery(ctx, store.AllTenants(), old.Delivery.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old succeeded delivery: %v; want purged", err)
	}
	for _, id := range []string{fresh.Delivery.ID, oldPending.Delivery.ID} {
		if _, err := e.st.GetDelivery(ctx, store.AllTenants(), id); err != nil {
			t.Fatalf("delivery %s purged: %v", id, err)
		}
	}
	if _, err := e.st.GetEvent(ctx, store.AllTenants(), fresh.Event.ID); err != nil {
		t.Fatalf("fresh event purged: %v", err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	var cfg scheduler.Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if cfg != scheduler.DefaultConfig() || cfg.PollInterval != time.Second || cfg.Retention != 720*time.Hour || cfg.RetentionInterval != 10*time.Minute {
		t.Fatalf("defaults = %+v", cfg)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !strings.HasPrefix(f.Name, "scheduler-") || f.Usage == "" {
			t.Errorf("flag %q: want a scheduler- prefix and help text", f.Name)
		}
	})
	if err := fs.Parse([]string{"--scheduler-poll-interval=250ms", "--scheduler-retention=0"}); err != nil {
		t.Fatal(err)
	}
	if cfg.PollInterval != 250*time.Millisecond || cfg.Retention != 0 {
		t.Fatalf("parsed = %+v", cfg)
	}

	tests := []struct {
		name   string
		mutate func(*scheduler.Config)
		flags  []string
	}{
		{"yield", func(c *scheduler.Config) { c.YieldBacklog, c.MaxYield = 1, 0 }, []string{"--scheduler-max-yield"}},
		{"several", func(c *scheduler.Config) { c.PollInterval, c.ClaimLimit, c.Retention = 0, 0, -1 },
			[]string{"--scheduler-poll-interval", "--scheduler-claim-limit", "--scheduler-retention"}},
	}
	for _, tt := range tests {
		c := scheduler.DefaultConfig()
		tt.mutate(&c)
		err := c.Validate()
		for _, f := range tt.flags {
			if err == nil || !strings.Contains(err.Error(), f) {
				t.Errorf("%s: Validate() = %v; want an error naming %s", tt.name, err, f)
			}
		}
	}
}

// overlapStore is the real store whose first CompleteRetries waits (up
// to a deadline) for a second ClaimDueRetries call to begin, and records
// whether it had to give up waiting.
type overlapStore struct {
	store.Store
	claims    atomic.Int64
	completes atomic.Int64
	waitedOut atomic.Bool
}

func (o *overlapStore) ClaimDueRetries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.DueRetry, error) {
	o.claims.Add(1)
	return o.Store.ClaimDueRetries(ctx, now, limit, lease)
}

func (o *overlapStore) CompleteRetries(ctx context.Context, rs []store.ScheduledRetry) error {
	if o.completes.Add(1) == 1 {
		deadline := time.Now().Add(3 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for o.claims.Load() < 2 {
			if time.Now().After(deadline) {
				o.waitedOut.Store(true)
				break
			}
			<-tick.C
		}
	}
	return o.Store.CompleteRetries(ctx, rs)
}

// TestReleaseClaimsWhileCompleting: the next batch of due retries is
// claimed while the first one is still being completed, instead of claim,
// publish and complete running one after the other; every retry is
// released once all the same.
func TestReleaseClaimsWhileCompleting(t *testing.T) {
	t.Parallel()
	st := &overlapStore{Store: servicetest.Store(t)}
	e := newEnvOn(t, st)
	e.consume()
	ctx := context.Background()
	var ids []string
	for range 9 {
		f := e.seed()
		ids = append(ids, f.Delivery.ID)
		a := storetest.NewAttempt(f.Delivery, 1, time.Now())
		r := store.AttemptResult{Attempt: a, Status: store.DeliveryRetrying, NextAttemptAt: time.Now()}
		if err := st.RecordAttempts(ctx, []store.AttemptResult{r}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig()
	cfg.ClaimLimit = 3
	cfg.PollInterval = time.Hour // one round: the poll at start
	e.run(cfg)
	e.waitFor(ids...)
	poll.Until(t, "releases completed", func() bool { return st.completes.Load() == 3 })
	if st.waitedOut.Load() {
		t.Fatal("the first batch was completed with no second claim begun: claim, publish and complete ran in series")
	}
	for _, id := range ids {
		if n := len(e.messages(id)); n != 1 {
			t.Fatalf("delivery %s released %d times", id, n)
		}
	}
}

// backlogCounting is the real transport, counting Backlog calls.
type backlogCounting struct {
	*countingTransport
	calls atomic.Int64
}

func (b *backlogCounting) Backlog(ctx context.Context, s transport.Stream, group string) (int64, error) {
	b.calls.Add(1)
	return b.countingTransport.Backlog(ctx, s, group)
}

// TestRetriesYieldToFirstAttempts: while more DELIVERIES messages than
// YieldBacklog wait for the delivery service, a due retry is not released
// (until it is overdue by MaxYield); once the queue shortens, it is.
func TestRetriesYieldToFirstAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		maxYield          time.Duration
		releasedWhileBusy bool
	}{
		{"held back while the queue is long", time.Hour, false},
		{"released once overdue by MaxYield", 50 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tr := &backlogCounting{countingTransport: e.tr}

			// The delivery service's group, stuck on its first message.
			unblock := make(chan struct{})
			var taken atomic.Int64
			servicetest.Run(t, func(ctx context.Context) error {
				return tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: wire.GroupDelivery, Concurrency: 1, MaxAckPending: 1},
					func(hctx context.Context, r transport.Received) {
						taken.Add(1)
						select {
						case <-unblock:
						case <-hctx.Done():
						}
						_ = r.Ack(context.Background())
					})
			})
			first := make([]transport.Message, 5)
			for i := range first {
				first[i] = transport.Message{ID: "first-" + strconv.Itoa(i), Key: "k", Data: []byte("{}")}
			}
			if _, err := tr.Publish(context.Background(), transport.Deliveries, first...); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, "the first message taken", func() bool { return taken.Load() == 1 })
			e.tr.published.Store(0)

			cfg := testConfig()
			cfg.YieldBacklog = 2 // 4 messages wait
			cfg.MaxYield = tt.maxYield
			svc, err := scheduler.New(cfg, deps.Deps[scheduler.Store]{Store: e.st, Transport: tr, Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			servicetest.Run(t, svc.Run)

			f := e.seed()
			e.failed(f, 1, time.Millisecond, false)
			poll.Until(t, "the retry scheduled", func() bool {
				d := e.getDelivery(f.Delivery.ID)
				return !d.NextAttemptAt.IsZero() && d.NextAttemptAt.Before(time.Now())
			})
			if tt.releasedWhileBusy {
				poll.Until(t, "the overdue retry released", func() bool { return e.tr.published.Load() == 1 })
			} else {
				// The release loop looks at the queue again and again, due
				// retry and all, without releasing it.
				c0 := tr.calls.Load()
				poll.Until(t, "three more looks at the delivery backlog", func() bool { return tr.calls.Load() >= c0+3 })
				if n := e.tr.published.Load(); n != 0 {
					t.Fatalf("%d retries released while the delivery queue was longer than YieldBacklog", n)
				}
			}
			close(unblock)
			poll.Until(t, "the retry released", func() bool { return e.tr.published.Load() == 1 })
			poll.Until(t, "every message taken", func() bool { return taken.Load() == 6 })
		})
	}
}

// BenchmarkReleaseLateness measures how late a retry due in 50 ms is
// released, with the due time announced by a signal and without one (the
// poll, every second, finds it): the reason the delivery service sends
// due signals. It reports the mean lateness in milliseconds.
func BenchmarkReleaseLateness(b *testing.B) {
	for _, announce := range []bool{true, false} {
		b.Run(fmt.Sprintf("announced=%v", announce), func(b *testing.B) {
			st, tr := servicetest.Store(b), servicetest.Transport(b)
			cfg := testConfig()
			cfg.PollInterval = time.Second
			svc, err := scheduler.New(cfg, deps.Deps[scheduler.Store]{Store: st, Transport: tr, Logger: testLogger()})
			if err != nil {
				b.Fatal(err)
			}
			servicetest.Run(b, svc.Run)
			released := make(chan time.Time, 1)
			servicetest.Run(b, func(ctx context.Context) error {
				return tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: wire.GroupDelivery}, func(_ context.Context, r transport.Received) {
					released <- time.Now()
					_ = r.Ack(context.Background())
				})
			})
			var late time.Duration
			for b.Loop() {
				f := storetest.SeedFor(b, st, storetest.NewSubscription("acme"), time.Now())
				due := time.Now().Add(50 * time.Millisecond)
				a := storetest.NewAttempt(f.Delivery, 1, time.Now())
				if err := st.RecordAttempts(context.Background(), []store.AttemptResult{{Attempt: a, Status: store.DeliveryRetrying, NextAttemptAt: due}}); err != nil {
					b.Fatal(err)
				}
				if announce {
					if err := tr.Notify(context.Background(), wire.TopicDue, wire.WakeSignal(due)); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case at := <-released:
					late += at.Sub(due)
				case <-time.After(10 * time.Second):
					b.Fatal("not released")
				}
			}
			b.ReportMetric(float64(late.Milliseconds())/float64(b.N), "ms-late/op")
		})
	}
}
