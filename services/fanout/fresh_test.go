package fanout

import (
	"context"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/internal/wire"
)

// TestEventReachesSubscriptionCreatedBeforeIt: a subscription written to
// the store by someone else (another replica's ingest) just before an
// event was published receives that event, though the cache's refresh
// interval is an hour.
func TestEventReachesSubscriptionCreatedBeforeIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := servicetest.Transport(t)
	st := servicetest.Store(t)
	first := storetest.NewSubscription("acme")
	if err := st.CreateSubscription(ctx, first, 0); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.SubscriptionRefresh = time.Hour
	svc, err := New(cfg, deps.Deps[Store]{Store: st, Transport: tr, Logger: servicetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Run(t, svc.Run)

	publish := func() string {
		t.Helper()
		ev := storetest.NewEvent("acme", "order.created", time.Now())
		if _, err := tr.Publish(ctx, transport.Events, wire.EventMessage(&ev)); err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	if got := waitDeliveries(t, st, publish()); len(got) != 1 {
		t.Fatalf("first event: %d deliveries; want 1", len(got))
	}
	second := storetest.NewSubscription("acme")
	if err := st.CreateSubscription(ctx, second, 0); err != nil {
		t.Fatal(err)
	}
	got := waitDeliveries(t, st, publish())
	subs := map[string]bool{}
	for _, d := range got {
		subs[d.SubscriptionID] = true
	}
	if !subs[first.ID] || !subs[second.ID] || len(got) != 2 {
		t.Fatalf("second event's deliveries %v; want one to each of %s and %s", subs, first.ID, second.ID)
	}
}

// waitDeliveries waits until the event's deliveries are stored (they are
// written together) and returns them.
func waitDeliveries(t *testing.T, st store.Store, eventID string) []store.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		got, _, err := st.ListDeliveries(context.Background(), store.DeliveryFilter{Scope: store.AllTenants(), EventID: eventID})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no deliveries of %s", eventID)
		}
		<-tick.C
	}
}
