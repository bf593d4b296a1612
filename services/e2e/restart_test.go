package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// TestRestartLosesNothing stops the pipeline while deliveries are in
// flight and retries are scheduled, starts it again on the same data
// directory, and counts: every event is delivered.
func TestRestartLosesNothing(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
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
		p := startPipeline(t, dir, tr.use)
		subscribe(t, p, r, []string{"*"}, 2*time.Second, 2*time.Second, 2*time.Second)

		const total = 300
		published := map[string]bool{}
		for i := range total {
			res := publish(t, p, "order.created", i, "")
			published[res.GetEventId()] = true
		}
		// Stop once some deliveries arrived and some retries are pending, but
		// before everything is done.
		poll.Until(t, "deliveries under way and retries scheduled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(fails) > 0 && r.Count() > 10
		})
		p.stop()
		mu.Lock()
		deliveredBefore, retriesPending := ok, len(fails)
		mu.Unlock()

		p = startPipeline(t, dir, tr.use)
		deadline := time.After(60 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for len(uniqueEvents(t, p, r)) < total {
			select {
			case <-tick.C:
				continue
			case <-deadline:
				counts := map[hooklinev1.DeliveryStatus]int{}
				for _, d := range deliveriesOf(t, p, &hooklinev1.ListDeliveriesRequest{Tenant: tenant}) {
					counts[d.GetStatus()]++
					if d.GetStatus() != hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
						t.Logf("undelivered: %s status %v attempts %d next %v error %q", d.GetId(), d.GetStatus(), d.GetAttempts(), d.GetNextAttemptTime().AsTime(), d.GetLastError())
					}
				}
				t.Fatalf("after 60s, %d of %d events delivered; deliveries by status: %v", len(uniqueEvents(t, p, r)), total, counts)
			}
		}
		got := uniqueEvents(t, p, r)
		for id := range published {
			if !got[id] {
				t.Errorf("event %s was never delivered", id)
			}
		}
		t.Logf("published %d events; %d delivered before the stop with %d retries pending; all %d delivered after the restart; %d requests in all",
			total, deliveredBefore, retriesPending, len(got), r.Count())
		if deliveredBefore >= total {
			t.Fatalf("the pipeline finished before it was stopped; the test proved nothing")
		}
	})
}
