package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/devserver"
	"github.com/hookline/hookline/services/internal/servicetable"
	"github.com/hookline/hookline/services/internal/servicetest"
)

// TestStalledEndpointBacklogDrains: a stalled endpoint's backlog, six times
// the delivery group's MaxAckPending, is put off through the store
// (pending, with a due time, no attempt) instead of filling the broker's
// window; once the endpoint answers again, the scheduler releases what the
// store holds and every delivery succeeds with exactly one attempt:
// putting off is not an attempt.
func TestStalledEndpointBacklogDrains(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
		slow := servicetest.StalledEndpoint(t)

		const maxAckPending, backlog = 10, 60
		p := startPipeline(t, t.TempDir(), tr.use, func(c *devserver.Config) {
			d := servicetable.ConfigOf[delivery.Config](c.Services)
			d.Concurrency, d.MaxInFlightPerEndpoint, d.MaxHeldPerEndpoint, d.MaxAckPending = 8, 2, 3, maxAckPending
			d.OverCapDelay, d.OverCapMaxDelay = 20*time.Millisecond, 200*time.Millisecond
		})
		sub, err := p.admin.CreateSubscription(ctxT(t), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
			Tenant: tenant, Url: slow.URL, EventTypes: []string{"order.*"},
		}})
		if err != nil {
			t.Fatalf("CreateSubscription: %v", err)
		}
		for i := range backlog {
			publish(t, p, "order.created", i, "")
		}
		list := func() []*hooklinev1.Delivery {
			return deliveriesOf(t, p, &hooklinev1.ListDeliveriesRequest{Tenant: tenant, SubscriptionId: sub.GetId()})
		}
		poll.UntilReason(t, "the stalled endpoint's backlog put off through the store", func() (bool, string) {
			putOff := 0
			for _, d := range list() {
				if d.GetStatus() == hooklinev1.DeliveryStatus_DELIVERY_STATUS_PENDING && d.GetNextAttemptTime() != nil && d.GetAttempts() == 0 {
					putOff++
				}
			}
			return putOff >= backlog-maxAckPending, fmt.Sprintf("%d of %d put off", putOff, backlog)
		})
		slow.Unblock()
		poll.UntilReason(t, "every delivery succeeded with one attempt", func() (bool, string) {
			ok := 0
			for _, d := range list() {
				if d.GetStatus() == hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
					if d.GetAttempts() != 1 {
						t.Fatalf("delivery %s succeeded after %d attempts; putting off must not count as one", d.GetId(), d.GetAttempts())
					}
					ok++
				}
			}
			return ok == backlog, fmt.Sprintf("%d of %d succeeded", ok, backlog)
		})
	})
}
