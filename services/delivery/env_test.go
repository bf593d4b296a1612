package delivery_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/servicetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger() *slog.Logger { return servicetest.Logger() }

// countingStore is the real store, counting RecordAttempts calls.
type countingStore struct {
	store.Store
	calls   atomic.Int64
	results atomic.Int64
}

func (c *countingStore) RecordAttempts(ctx context.Context, rs []store.AttemptResult) error {
	c.calls.Add(1)
	c.results.Add(int64(len(rs)))
	return c.Store.RecordAttempts(ctx, rs)
}

// env is a real broker and store with a delivery service running.
type env struct {
	t   *testing.T
	st  *countingStore
	tr  *natsjs.Transport
	svc *delivery.Service

	stop    context.CancelFunc
	stopped chan error

	retriesOnce sync.Once
	retriesMu   sync.Mutex
	retries     map[string]chan transport.Message // by delivery id
}

func testConfig() delivery.Config {
	cfg := delivery.DefaultConfig()
	cfg.AllowCIDRs = []string{"127.0.0.0/8"}
	cfg.Concurrency = 32
	cfg.ErrorBackoff = 50 * time.Millisecond
	cfg.OverCapDelay = 10 * time.Millisecond
	cfg.ShutdownGrace = 5 * time.Second
	return cfg
}

// newEnv starts NATS, opens SQLite and connects; it does not start the
// service (see run).
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, servicetest.Store(t))
}

// newEnvOn is newEnv on the given store.
func newEnvOn(t *testing.T, st store.Store) *env {
	t.Helper()
	return &env{t: t, st: &countingStore{Store: st}, tr: servicetest.Transport(t), retries: map[string]chan transport.Message{}}
}

// run starts a delivery service with cfg; it is stopped (and must return
// nil) when the test ends, or by stopService.
func (e *env) run(cfg delivery.Config) *delivery.Service {
	e.t.Helper()
	svc, err := delivery.New(cfg, delivery.Deps{Store: e.st, Transport: e.tr, Logger: testLogger()})
	if err != nil {
		e.t.Fatalf("delivery.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.svc, e.stop, e.stopped = svc, cancel, make(chan error, 1)
	stopped := e.stopped
	go func() { stopped <- svc.Run(ctx) }()
	e.t.Cleanup(func() { e.stopService() })
	return svc
}

// stopService cancels the running service and waits for Run to return.
func (e *env) stopService() {
	e.t.Helper()
	if e.stop == nil {
		return
	}
	e.stop()
	e.stop = nil
	select {
	case err := <-e.stopped:
		if err != nil {
			e.t.Errorf("Run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Fatal("Run did not return after cancellation")
	}
}

// subscription stores an enabled subscription of tenant "acme" to url with
// one live and one expired secret, and returns it.
func (e *env) subscription(url string, mutate ...func(*store.Subscription)) *store.Subscription {
	e.t.Helper()
	sub := storetest.NewSubscription("acme")
	sub.URL = url
	sub.RateLimit = 0
	sub.Timeout = 0
	sub.RetrySchedule = nil
	sub.Secrets[0].ExpiresAt = time.Now().Add(-time.Hour) // expired
	for _, m := range mutate {
		m(sub)
	}
	if err := e.st.CreateSubscription(context.Background(), sub); err != nil {
		e.t.Fatalf("CreateSubscription: %v", err)
	}
	return sub
}

// delivery stores an event and its delivery to sub and returns both.
func (e *env) delivery(sub *store.Subscription) (store.Event, store.Delivery) {
	e.t.Helper()
	now := time.Now()
	ev := storetest.NewEvent(sub.Tenant, "order.created", now)
	d := storetest.NewDelivery(ev, sub, now)
	ctx := context.Background()
	if err := e.st.InsertFanout(ctx, []store.Event{ev}, []store.Delivery{d}); err != nil {
		e.t.Fatalf("InsertFanout: %v", err)
	}
	return ev, d
}

func (e *env) publish(msgs ...transport.Message) {
	e.t.Helper()
	if _, err := e.tr.Publish(context.Background(), transport.Deliveries, msgs...); err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
}

// send stores a fresh delivery to sub and publishes its first attempt.
func (e *env) send(sub *store.Subscription) store.Delivery {
	e.t.Helper()
	ev, d := e.delivery(sub)
	e.publish(delivery.NewMessage(&d, &ev, 1))
	return d
}

// waitDelivery polls the store until d satisfies ok, failing after 20 s.
func (e *env) waitDelivery(id string, what string, ok func(*store.Delivery) bool) *store.Delivery {
	e.t.Helper()
	var last *store.Delivery
	eventually(e.t, what, func() bool {
		d, err := e.st.GetDelivery(context.Background(), "", id)
		if err != nil {
			e.t.Fatalf("GetDelivery: %v", err)
		}
		last = d
		return ok(d)
	})
	return last
}

func (e *env) waitStatus(id string, status store.DeliveryStatus) *store.Delivery {
	e.t.Helper()
	return e.waitDelivery(id, "delivery "+id+" "+string(status), func(d *store.Delivery) bool { return d.Status == status })
}

func (e *env) attempts(deliveryID string) []store.Attempt {
	e.t.Helper()
	as, _, err := e.st.ListAttempts(context.Background(), store.AttemptFilter{DeliveryID: deliveryID})
	if err != nil {
		e.t.Fatalf("ListAttempts: %v", err)
	}
	return as
}

func (e *env) subscriptionNow(id string) *store.Subscription {
	e.t.Helper()
	s, err := e.st.GetSubscription(context.Background(), "", id)
	if err != nil {
		e.t.Fatalf("GetSubscription: %v", err)
	}
	return s
}

// retryFor returns the next RETRIES message of delivery id, consuming
// RETRIES in the background on first use.
func (e *env) retryFor(id string) transport.Message {
	e.t.Helper()
	e.consumeRetries()
	select {
	case m := <-e.retryChan(id):
		return m
	case <-time.After(20 * time.Second):
		e.t.Fatalf("no RETRIES message for %s", id)
		return transport.Message{}
	}
}

// consumeRetries starts consuming RETRIES in the background, once.
func (e *env) consumeRetries() {
	e.retriesOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			err := e.tr.Consume(ctx, transport.Retries, transport.ConsumerConfig{Group: "test"}, func(_ context.Context, r transport.Received) {
				m := *r.Message()
				e.retryChan(m.Headers[transport.HeaderDeliveryID]) <- m
				_ = r.Ack(context.Background())
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				e.t.Errorf("Consume retries: %v", err)
			}
		}()
		e.t.Cleanup(func() { cancel(); <-done })
	})
}

func (e *env) retryChan(id string) chan transport.Message {
	e.retriesMu.Lock()
	defer e.retriesMu.Unlock()
	c := e.retries[id]
	if c == nil {
		c = make(chan transport.Message, 16)
		e.retries[id] = c
	}
	return c
}

// eventually polls cond until it holds, failing t after 20 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
