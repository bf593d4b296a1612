package delivery_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
)

// TestReplicasShareDeliveries: two delivery replicas on one broker and one
// store split the DELIVERIES work between them, and every delivery is
// attempted exactly once, on every store backend.
func TestReplicasShareDeliveries(t *testing.T) {
	t.Parallel()
	for _, b := range servicetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testReplicasShareDeliveries(t, newEnvOn(t, b.Open(t)))
		})
	}
}

func testReplicasShareDeliveries(t *testing.T, e *env) {
	var mu sync.Mutex
	seen := map[string]int{} // webhook-id -> requests
	srv, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("webhook-id")]++
		mu.Unlock()
	})
	sub := e.subscription(srv.URL)

	cfg := testConfig()
	cfg.Concurrency = 2 // small pulls, so neither replica can take everything
	replicas := []*servicetest.Replica{{Transport: e.tr, Stream: transport.Deliveries}, {Transport: e.tr, Stream: transport.Deliveries}}
	for _, r := range replicas {
		svc, err := delivery.New(cfg, deps.Deps[delivery.Store]{Store: e.st, Transport: r, Logger: testLogger()})
		if err != nil {
			t.Fatalf("delivery.New: %v", err)
		}
		servicetest.Run(t, svc.Run)
	}

	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.send(sub).ID
	}
	poll.Until(t, "every delivery succeeded", func() bool {
		ds, _, err := e.st.ListDeliveries(context.Background(), store.DeliveryFilter{Scope: store.AllTenants(), Status: store.DeliverySucceeded, Limit: n + 1})
		if err != nil {
			t.Fatal(err)
		}
		return len(ds) == n
	})
	a, b := replicas[0].Handled(), replicas[1].Handled()
	t.Logf("replica 1 handled %d deliveries, replica 2 handled %d", a, b)
	if a == 0 || b == 0 {
		t.Fatalf("one replica did all the work: %d and %d", a, b)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("delivery %s: %d requests; want exactly 1", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("receiver saw %d distinct webhook-ids; want %d", len(seen), n)
	}
}
