package delivery_test

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/internal/wire"
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

	// now, when set before run, is the service's clock.
	now func() time.Time
	// resolver, when set before run, resolves the receivers' names.
	resolver *net.Resolver

	stop    context.CancelFunc
	stopped chan error
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
	return &env{t: t, st: &countingStore{Store: st}, tr: servicetest.Transport(t)}
}

// run starts a delivery service with cfg; it is stopped (and must return
// nil) when the test ends, or by stopService.
func (e *env) run(cfg delivery.Config) *delivery.Service {
	e.t.Helper()
	svc, err := delivery.New(cfg, deps.Deps[delivery.Store]{Store: e.st, Transport: e.tr, Logger: testLogger(), Now: e.now, Resolver: e.resolver})
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
	if err := e.st.CreateSubscription(context.Background(), sub, 0); err != nil {
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
	e.publish(wire.DeliveryMessage(&d, &ev, 1))
	return d
}

// waitDelivery polls the store until d satisfies ok.
func (e *env) waitDelivery(id string, what string, ok func(*store.Delivery) bool) *store.Delivery {
	e.t.Helper()
	var last *store.Delivery
	poll.Until(e.t, what, func() bool {
		d, err := e.st.GetDelivery(context.Background(), store.AllTenants(), id)
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
	as, _, err := e.st.ListAttempts(context.Background(), store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: deliveryID})
	if err != nil {
		e.t.Fatalf("ListAttempts: %v", err)
	}
	return as
}

func (e *env) subscriptionNow(id string) *store.Subscription {
	e.t.Helper()
	s, err := e.st.GetSubscription(context.Background(), store.AllTenants(), id)
	if err != nil {
		e.t.Fatalf("GetSubscription: %v", err)
	}
	return s
}

// dueSignals listens for due signals (wire.TopicDue) until the test ends
// and returns the channel the due times arrive on.
func (e *env) dueSignals() chan time.Time {
	e.t.Helper()
	c := make(chan time.Time, 64)
	stop, err := e.tr.Listen(context.Background(), wire.TopicDue, func(data []byte) {
		due, err := wire.ParseWake(data)
		if err != nil {
			e.t.Errorf("malformed due signal %x: %v", data, err)
			return
		}
		select {
		case c <- due:
		default:
		}
	})
	if err != nil {
		e.t.Fatalf("Listen: %v", err)
	}
	e.t.Cleanup(stop)
	return c
}
