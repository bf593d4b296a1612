package fanout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
)

// TestRedeliveredEventSkipsDeliveriesActedOn: a redelivered event (its
// earlier fan-out may have been handled and its delivery messages gone
// from the broker) publishes again only the deliveries nothing has acted
// on; a delivery with an attempt recorded or put off through the store is
// not published again, while a fresh event's deliveries all are.
func TestRedeliveredEventSkipsDeliveriesActedOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := servicetest.Transport(t)
	st := servicetest.Store(t)
	var subs []*store.Subscription
	for range 3 {
		sub := storetest.NewSubscription("acme")
		if err := st.CreateSubscription(ctx, sub, 0); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	svc, err := New(DefaultConfig(), deps.Deps[Store]{Store: st, Transport: tr, Logger: servicetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ev := store.Event{ID: "evt_redelivered", Tenant: "acme", Type: "order.created", Payload: []byte(`{}`), OccurredAt: now, ReceivedAt: now}
	fresh := ev
	fresh.ID = "evt_fresh"
	// The first fan-out of ev happened: its deliveries exist; the first
	// was attempted, the second put off, the third not acted on.
	var ds []store.Delivery
	for _, sub := range subs {
		ds = append(ds, storetest.NewDelivery(ev, sub, now))
	}
	if err := st.InsertFanout(ctx, []store.Event{ev}, ds); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordAttempts(ctx, []store.AttemptResult{{Attempt: storetest.NewAttempt(ds[0], 1, now), Status: store.DeliverySucceeded}}); err != nil {
		t.Fatal(err)
	}
	if err := st.ScheduleRetries(ctx, []store.ScheduledRetry{{DeliveryID: ds[1].ID, Attempt: 1, DueAt: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}

	errs := make([]error, 2)
	svc.flush(ctx, []arrival{{ev: ev, redelivered: true}, {ev: fresh}}, errs)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
	got := publishedDeliveries(t, tr)
	want := map[string]bool{ids.Delivery(ev.ID, subs[2].ID): true}
	for _, sub := range subs {
		want[ids.Delivery(fresh.ID, sub.ID)] = true
	}
	for id := range want {
		if !got[id] {
			t.Errorf("delivery %s was not published", id)
		}
	}
	for id := range got {
		if !want[id] {
			t.Errorf("delivery %s was published again although it was acted on", id)
		}
	}
}

// publishedDeliveries returns the ids of the deliveries published on
// DELIVERIES so far: it reads the stream up to a marker it publishes.
func publishedDeliveries(t *testing.T, tr transport.Transport) map[string]bool {
	t.Helper()
	const marker = "marker"
	if _, err := tr.Publish(context.Background(), transport.Deliveries, transport.Message{ID: marker, Subject: "marker", Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	seen := make(chan string, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "probe"}, func(_ context.Context, m transport.Received) {
			_ = m.Ack(context.Background())
			seen <- m.Message().ID
		})
	}()
	defer func() { cancel(); <-done }()
	for {
		select {
		case id := <-seen:
			if id == marker {
				return got
			}
			got[strings.TrimSuffix(id, ".a1")] = true
		case <-time.After(20 * time.Second):
			t.Fatal("the marker never arrived")
		}
	}
}
