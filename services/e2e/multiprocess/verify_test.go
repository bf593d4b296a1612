package multiprocess

import (
	"context"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/ids"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// waitAllAccepted waits until every pair has been answered 2xx; on
// timeout it reports what is missing, with the store's view of a sample.
func waitAllAccepted(t *testing.T, rcv *receiver, a apiClients, subIDs []string) {
	t.Helper()
	const total = numEvents * numSubs
	deadline := time.Now().Add(deliveryTimeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	progress := time.NewTicker(15 * time.Second)
	defer progress.Stop()
	for rcv.acceptedPairs() < total {
		if time.Now().After(deadline) {
			reportMissing(t, rcv, a, subIDs)
			return
		}
		select {
		case <-tick.C:
		case <-progress.C:
			t.Logf("waiting: %d of %d pairs delivered", rcv.acceptedPairs(), total)
		}
	}
}

// reportMissing fails the test with the pairs never delivered.
func reportMissing(t *testing.T, rcv *receiver, a apiClients, subIDs []string) {
	t.Helper()
	sum := rcv.tally(numEvents, numSubs)
	perSub := make([]int, numSubs)
	for _, p := range sum.missing {
		perSub[p.sub]++
	}
	t.Errorf("after %v, %d of %d pairs never delivered (missing per subscription: %v); %d requests received",
		deliveryTimeout, len(sum.missing), numEvents*numSubs, perSub, sum.requests)
	for _, p := range sum.missing[:min(10, len(sum.missing))] {
		id := ids.Delivery(eventID(p.event), subIDs[p.sub])
		d, err := withTimeout(10*time.Second, func(ctx context.Context) (*hooklinev1.Delivery, error) {
			return a.admin.GetDelivery(ctx, &hooklinev1.GetDeliveryRequest{Id: id})
		})
		if err != nil {
			t.Errorf("  missing %v, delivery %s: %v", p, id, err)
			continue
		}
		t.Errorf("  missing %v, delivery %s: status %v, %d attempts, last error %q", p, id, d.GetStatus(), d.GetAttempts(), d.GetLastError())
		logDelivery(t, a, rcv, p, d)
	}
	t.FailNow()
}

// checkTally reports every rule the received requests broke.
func checkTally(t *testing.T, sum tally) {
	t.Helper()
	if len(sum.missing) > 0 {
		t.Errorf("%d pairs never delivered, e.g. %v", len(sum.missing), sum.missing[0])
	}
	for _, p := range sum.multiIDPairs {
		t.Errorf("%v was delivered under more than one webhook-id", p)
	}
	for _, p := range sum.unexpected {
		t.Errorf("received %v, which was never published", p)
	}
	for _, s := range sum.problems {
		t.Errorf("bad request: %s", s)
	}
	if sum.nProblems > len(sum.problems) {
		t.Errorf("... and %d more bad requests", sum.nProblems-len(sum.problems))
	}
}
