package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestRestartLosesNothing stops the pipeline while deliveries are in
// flight and retries are scheduled, starts it again on the same data
// directory, and counts: every event is delivered.
func TestRestartLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Every third delivery fails its first attempt, so retries are
	// scheduled when the pipeline stops; the rest succeed.
	var mu sync.Mutex
	fails := map[string]bool{}
	n, ok := 0, 0
	r := newReceiver(t, func(id string, attempt int) int {
		mu.Lock()
		defer mu.Unlock()
		if attempt == 1 {
			n++
			if n%3 == 0 {
				fails[id] = true
				return http.StatusServiceUnavailable
			}
		}
		ok++
		return http.StatusOK
	})
	p := startPipeline(t, dir)
	subscribe(t, p, r, []string{"*"}, 2*time.Second, 2*time.Second, 2*time.Second)

	const total = 300
	published := map[string]bool{}
	for i := range total {
		res := publish(t, p, "order.created", i, "")
		published[res.GetEventId()] = true
	}
	// Stop once some deliveries arrived and some retries are pending, but
	// before everything is done.
	eventually(t, 30*time.Second, "deliveries under way and retries scheduled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fails) > 0 && len(r.deliveries()) > 10
	})
	p.stop()
	mu.Lock()
	deliveredBefore, retriesPending := ok, len(fails)
	mu.Unlock()

	p = startPipeline(t, dir)
	eventually(t, 60*time.Second, "every event delivered after restart", func() bool {
		return len(uniqueEvents(t, p, r)) == total
	})
	got := uniqueEvents(t, p, r)
	for id := range published {
		if !got[id] {
			t.Errorf("event %s was never delivered", id)
		}
	}
	t.Logf("published %d events; %d delivered before the stop with %d retries pending; all %d delivered after the restart; %d requests in all",
		total, deliveredBefore, retriesPending, len(got), len(r.deliveries()))
	if deliveredBefore >= total {
		t.Fatalf("the pipeline finished before it was stopped; the test proved nothing")
	}
}
