package fanout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/internal/wire"
)

// TestReplicasShareEvents: two fanout replicas on one broker and one store
// split the EVENTS work between them, and every event becomes exactly one
// delivery per matching subscription, on every store backend.
func TestReplicasShareEvents(t *testing.T) {
	t.Parallel()
	for _, b := range servicetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testReplicasShareEvents(t, b.Open(t))
		})
	}
}

func testReplicasShareEvents(t *testing.T, st store.Store) {
	ctx := context.Background()
	tr := servicetest.Transport(t)
	subs := []*store.Subscription{storetest.NewSubscription("acme"), storetest.NewSubscription("acme")}
	for _, s := range subs {
		if err := st.CreateSubscription(ctx, s, 0); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.Concurrency = 2 // small pulls, so neither replica can take everything
	replicas := []*servicetest.Replica{{Transport: tr, Stream: transport.Events}, {Transport: tr, Stream: transport.Events}}
	for _, r := range replicas {
		svc, err := New(cfg, deps.Deps[Store]{Store: st, Transport: r, Logger: servicetest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		servicetest.Run(t, svc.Run)
	}

	const n = 300
	msgs := make([]transport.Message, n)
	for i := range msgs {
		ev := storetest.NewEvent("acme", "order.created", time.Now())
		msgs[i] = wire.EventMessage(&ev)
	}
	if _, err := tr.Publish(ctx, transport.Events, msgs...); err != nil {
		t.Fatal(err)
	}
	want := n * len(subs)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got := countDeliveries(t, st)
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries stored; want %d", got, want)
		}
		<-tick.C
	}
	a, b := replicas[0].Handled(), replicas[1].Handled()
	t.Logf("replica 1 handled %d events, replica 2 handled %d", a, b)
	if a == 0 || b == 0 {
		t.Fatalf("one replica did all the work: %d and %d", a, b)
	}
	if a+b < n {
		t.Fatalf("replicas handled %d events in all; want at least %d", a+b, n)
	}
	// Each delivery was published to DELIVERIES exactly once (a repeat
	// would carry the same message ID and be dropped by the broker, so
	// the stream holding exactly want messages shows none was lost).
	got := countStream(t, tr, transport.Deliveries, want)
	if got != want {
		t.Fatalf("DELIVERIES holds %d messages; want %d", got, want)
	}
}

func countDeliveries(t *testing.T, st store.Store) int {
	t.Helper()
	total, token := 0, ""
	for {
		page, next, err := st.ListDeliveries(context.Background(), store.DeliveryFilter{Scope: store.AllTenants(), Limit: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		total += len(page)
		if next == "" {
			return total
		}
		token = next
	}
}

// countStream consumes stream until want distinct message IDs arrived or
// 20 s passed, and returns how many distinct IDs it saw.
func countStream(t *testing.T, tr transport.Transport, s transport.Stream, want int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ids := make(chan string, want)
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, s, transport.ConsumerConfig{Group: fmt.Sprintf("count-%s", s)}, func(_ context.Context, m transport.Received) {
			select {
			case ids <- m.Message().ID:
			default:
			}
			_ = m.Ack(context.Background())
		})
	}()
	seen := map[string]bool{}
	for len(seen) < want {
		select {
		case id := <-ids:
			seen[id] = true
		case <-ctx.Done():
			cancel()
			<-done
			return len(seen)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Consume: %v", err)
	}
	return len(seen)
}
