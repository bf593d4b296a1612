package delivery_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/services/internal/servicetest"
)

// TestEndpointBacklogLeavesTheBroker: a stalled endpoint's backlog, many
// times the consumer's MaxAckPending, must not stop other endpoints'
// deliveries. Beyond MaxHeldPerEndpoint the backlog is put off through
// the store (pending, with a due time, no attempt recorded) and
// acknowledged; once the endpoint answers again, what the broker held
// succeeds with exactly one attempt. (Releasing what the store holds is
// the scheduler's: e2e's TestStalledEndpointBacklogDrains runs both.)
func TestEndpointBacklogLeavesTheBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	slow := servicetest.StalledEndpoint(t)
	fast, fastReqs := recorder(t, status(200))

	cfg := testConfig()
	cfg.Concurrency = 8
	cfg.MaxInFlightPerEndpoint = 2
	cfg.MaxHeldPerEndpoint = 3
	cfg.MaxAckPending = 10
	cfg.OverCapDelay = 20 * time.Millisecond
	cfg.OverCapMaxDelay = 200 * time.Millisecond
	e.run(cfg)

	slowSub := e.subscription(slow.URL)
	fastSub := e.subscription(fast.URL)
	const backlog = 60 // six times MaxAckPending
	var slowDs []store.Delivery
	for range backlog {
		slowDs = append(slowDs, e.send(slowSub))
	}
	poll.Until(t, "slow endpoint saturated", func() bool { return slow.InFlight() == 2 })
	poll.Until(t, "slow endpoint's backlog put off through the store", func() bool {
		ds, _, err := e.st.ListDeliveries(context.Background(), store.DeliveryFilter{Scope: store.AllTenants(), SubscriptionID: slowSub.ID, Status: store.DeliveryPending, Limit: backlog})
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		put := 0
		for _, d := range ds {
			if !d.NextAttemptAt.IsZero() {
				put++
			}
		}
		return put >= backlog-cfg.MaxAckPending
	})

	var fastDs []store.Delivery
	for range 20 {
		fastDs = append(fastDs, e.send(fastSub))
	}
	for range fastDs {
		next(t, fastReqs)
	}
	for _, d := range fastDs {
		e.waitStatus(d.ID, store.DeliverySucceeded)
	}
	if n := slow.InFlight(); n != 2 {
		t.Fatalf("slow endpoint has %d requests in flight while stalled; want its cap, 2", n)
	}

	slow.Unblock()
	poll.UntilReason(t, "every slow delivery succeeded once or put off", func() (bool, string) {
		succeeded, putOff := 0, 0
		for _, d := range slowDs {
			got, err := e.st.GetDelivery(context.Background(), store.AllTenants(), d.ID)
			if err != nil {
				t.Fatalf("GetDelivery: %v", err)
			}
			switch {
			case got.Status == store.DeliverySucceeded && got.Attempts == 1:
				succeeded++
			case got.Status == store.DeliveryPending && got.Attempts == 0 && !got.NextAttemptAt.IsZero():
				putOff++
			default:
				return false, fmt.Sprintf("delivery %s: %s after %d attempts", got.ID, got.Status, got.Attempts)
			}
		}
		return succeeded+putOff == backlog && succeeded > 0, fmt.Sprintf("%d succeeded, %d put off", succeeded, putOff)
	})
}

// gatedStore holds every RecordAttempts call until its gate opens.
type gatedStore struct {
	store.Store
	gate chan struct{}
}

func (g *gatedStore) RecordAttempts(ctx context.Context, rs []store.AttemptResult) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.RecordAttempts(ctx, rs)
}

// TestSlotFreedBeforeTheAttemptIsRecorded: the per-endpoint cap counts
// requests in flight, not attempts waiting for the store, so a slow store
// does not hold a fast endpoint at its cap. With a cap of 1 and the store
// stalled, the endpoint still receives every delivery.
func TestSlotFreedBeforeTheAttemptIsRecorded(t *testing.T) {
	t.Parallel()
	gated := &gatedStore{Store: servicetest.Store(t), gate: make(chan struct{})}
	e := newEnvOn(t, gated)
	var opened sync.Once
	open := func() { opened.Do(func() { close(gated.gate) }) }
	t.Cleanup(open) // before the service stops, even when the test fails
	srv, reqs := recorder(t, status(200))
	cfg := testConfig()
	cfg.MaxInFlightPerEndpoint = 1
	e.run(cfg)
	sub := e.subscription(srv.URL)
	var ds []store.Delivery
	for range 3 {
		ds = append(ds, e.send(sub))
	}
	for range ds {
		next(t, reqs) // arrives although no attempt could be recorded yet
	}
	open()
	for _, d := range ds {
		e.waitStatus(d.ID, store.DeliverySucceeded)
	}
}
