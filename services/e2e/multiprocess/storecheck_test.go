package multiprocess

import (
	"context"
	"fmt"
	"testing"
	"time"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// Statuses, shortened.
const (
	succeeded = hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	retrying  = hooklinev1.DeliveryStatus_DELIVERY_STATUS_RETRYING
)

// Deliveries stuck in retrying, although the receiver accepted them, were
// the symptom of two bugs this test found when a failed attempt's retry
// still travelled through a RETRIES stream, both ending with a repeated
// attempt whose success the store ignored because that attempt number was
// recorded already. Failed attempts are now recorded with their next due
// time in one transaction, and a redelivered message whose attempt is
// recorded is acknowledged without making it again; stuck deliveries are
// still looked for, and reported with their attempts and what the
// receiver answered them.

// stuckAfter is how long a retrying delivery must have stood still, its
// next attempt (if any) that long overdue, to count as stuck.
const stuckAfter = 15 * time.Second

// stuckRetrying reports whether d is retrying, has not changed for
// stuckAfter, and has no next attempt coming: none scheduled, or one
// overdue by stuckAfter.
func stuckRetrying(d *hooklinev1.Delivery, now time.Time) bool {
	if d.GetStatus() != retrying || now.Sub(d.GetUpdateTime().AsTime()) < stuckAfter {
		return false
	}
	return d.GetNextAttemptTime() == nil || now.Sub(d.GetNextAttemptTime().AsTime()) >= stuckAfter
}

// checkStoreSucceeded waits until the admin API lists every delivery as
// succeeded (its attempt is recorded after the receiver answers). On
// timeout it reports the deliveries that are not, with their attempts and
// what the receiver answered them.
func checkStoreSucceeded(t *testing.T, a apiClients, rcv *receiver, subIDs []string) {
	t.Helper()
	const total = numEvents * numSubs
	deadline := time.Now().Add(storeTimeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		counts, stuck := deliveryStatuses(t, a)
		if counts[succeeded] == total {
			return
		}
		if counts[succeeded]+len(stuck) == total && time.Now().After(deadline) {
			reportStuck(t, a, rcv, subIDs, stuck)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v the store does not list all %d deliveries succeeded although the receiver accepted every one; by status: %v",
				storeTimeout, total, counts)
			reportUnsucceeded(t, a, rcv, subIDs, counts)
			return
		}
		<-tick.C
	}
}

// deliveryStatuses counts the tenant's deliveries by status and returns
// the stuck ones.
func deliveryStatuses(t *testing.T, a apiClients) (map[hooklinev1.DeliveryStatus]int, []*hooklinev1.Delivery) {
	t.Helper()
	counts := map[hooklinev1.DeliveryStatus]int{}
	var stuck []*hooklinev1.Delivery
	now := time.Now()
	token := ""
	for {
		req := &hooklinev1.ListDeliveriesRequest{Tenant: tenant, PageSize: 1000, PageToken: token}
		res, err := withTimeout(30*time.Second, func(ctx context.Context) (*hooklinev1.ListDeliveriesResponse, error) {
			return a.admin.ListDeliveries(ctx, req)
		})
		if err != nil {
			t.Fatalf("listing deliveries: %v", err)
		}
		for _, d := range res.GetDeliveries() {
			counts[d.GetStatus()]++
			if stuckRetrying(d, now) {
				stuck = append(stuck, d)
			}
		}
		if token = res.GetNextPageToken(); token == "" {
			return counts, stuck
		}
	}
}

// reportStuck fails the test with the deliveries stuck in retrying.
func reportStuck(t *testing.T, a apiClients, rcv *receiver, subIDs []string, stuck []*hooklinev1.Delivery) {
	t.Helper()
	msg := fmt.Sprintf("%d deliveries accepted by the receiver are stuck in retrying with no attempt coming", len(stuck))
	t.Errorf("%s; up to 3 of them:", msg)
	pairOf := pairIndex(subIDs)
	for _, d := range stuck[:min(3, len(stuck))] {
		logDelivery(t, a, rcv, pairOf(d), d)
	}
}

// reportUnsucceeded logs up to 10 deliveries of each status but
// succeeded.
func reportUnsucceeded(t *testing.T, a apiClients, rcv *receiver, subIDs []string, counts map[hooklinev1.DeliveryStatus]int) {
	t.Helper()
	pairOf := pairIndex(subIDs)
	for st := range counts {
		if st == succeeded {
			continue
		}
		req := &hooklinev1.ListDeliveriesRequest{Tenant: tenant, Status: st, PageSize: 10}
		res, err := withTimeout(30*time.Second, func(ctx context.Context) (*hooklinev1.ListDeliveriesResponse, error) {
			return a.admin.ListDeliveries(ctx, req)
		})
		if err != nil {
			t.Errorf("listing %v deliveries: %v", st, err)
			continue
		}
		for _, d := range res.GetDeliveries() {
			logDelivery(t, a, rcv, pairOf(d), d)
		}
	}
}

// logDelivery logs a delivery, its recorded attempts and the receiver's
// answers to its pair.
func logDelivery(t *testing.T, a apiClients, rcv *receiver, p pair, d *hooklinev1.Delivery) {
	t.Helper()
	next := "none"
	if d.GetNextAttemptTime() != nil {
		next = d.GetNextAttemptTime().AsTime().Format(time.RFC3339Nano)
	}
	t.Logf("  %v delivery %s %v: %d attempts, last status code %d, last error %q, next attempt %s, updated %s",
		d.GetStatus(), d.GetId(), p, d.GetAttempts(), d.GetLastStatusCode(), d.GetLastError(),
		next, d.GetUpdateTime().AsTime().Format(time.RFC3339Nano))
	for _, at := range deliveryAttempts(t, a, d.GetId()) {
		t.Logf("    recorded attempt %d: started %s, status code %d, error %q",
			at.GetNumber(), at.GetStartTime().AsTime().Format("15:04:05.000"), at.GetStatusCode(), at.GetError())
	}
	t.Logf("    receiver answered: %v", rcv.answersTo(p))
}

// pairIndex returns a function giving the pair of a delivery.
func pairIndex(subIDs []string) func(*hooklinev1.Delivery) pair {
	seqOf := make(map[string]int, numEvents)
	for seq := range numEvents {
		seqOf[eventID(seq)] = seq
	}
	subOf := make(map[string]int, len(subIDs))
	for i, id := range subIDs {
		subOf[id] = i
	}
	return func(d *hooklinev1.Delivery) pair {
		return pair{event: seqOf[d.GetEventId()], sub: subOf[d.GetSubscriptionId()]}
	}
}

// deliveryAttempts lists the attempts recorded for a delivery.
func deliveryAttempts(t *testing.T, a apiClients, deliveryID string) []*hooklinev1.Attempt {
	t.Helper()
	req := &hooklinev1.ListAttemptsRequest{DeliveryId: deliveryID, PageSize: 100}
	res, err := withTimeout(30*time.Second, func(ctx context.Context) (*hooklinev1.ListAttemptsResponse, error) {
		return a.admin.ListAttempts(ctx, req)
	})
	if err != nil {
		t.Errorf("listing the attempts of %s: %v", deliveryID, err)
	}
	return res.GetAttempts()
}
