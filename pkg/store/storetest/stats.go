package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// statsOf calls Stats at now, failing t on error.
func statsOf(t *testing.T, s store.Store, now time.Time) store.Stats {
	t.Helper()
	st, err := s.Stats(ctx(t), now)
	must(t, err, "Stats")
	return st
}

// testStats: Stats counts deliveries by status, subscriptions by health
// and scheduled retries by due bucket, across every tenant (the fixture
// spreads each count over two), whatever wrote them; a claimed retry
// still counts until it is completed; the buckets move with now, each
// holding its upper bound.
func testStats(t *testing.T, s store.Store) {
	// Nothing stored: every key, counting zero.
	wantEqual(t, store.NewStats(), statsOf(t, s, Base), "stats of an empty store")

	now := Base.Add(time.Hour)
	const acme, globex = "acme", "globex"

	// Subscriptions: two of each health, one of each tenant.
	healthy := map[string]*store.Subscription{}
	var disabledIDs []string
	for _, tenant := range []string{acme, globex} {
		h := NewSubscription(tenant)
		failing := NewSubscription(tenant)
		disabled := NewSubscription(tenant)
		for _, sub := range []*store.Subscription{h, failing, disabled} {
			must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
		}
		must(t, s.SetSubscriptionFailing(ctx(t), failing.ID, Base), "SetSubscriptionFailing")
		if tenant == acme { // disabled wins over failing
			must(t, s.SetSubscriptionFailing(ctx(t), disabled.ID, Base), "SetSubscriptionFailing")
		}
		must(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), disabled.ID, store.SubscriptionDisabled, "operator", Base), "disable")
		healthy[tenant] = h
		disabledIDs = append(disabledIDs, disabled.ID)
	}

	// Deliveries, each brought to its status by the write that does so in
	// the pipeline; a retry's due time is given relative to now.
	type row struct {
		tenant string
		status store.DeliveryStatus
		how    string        // the write
		due    time.Duration // of its scheduled retry, after now; with has
		has    bool
	}
	rows := []row{
		{acme, store.DeliveryPending, "fanout", 0, false},
		{acme, store.DeliveryPending, "put off", 30 * time.Second, true},
		{acme, store.DeliveryRetrying, "attempt", -time.Hour, true},
		{acme, store.DeliveryRetrying, "attempt", 0, true}, // due now: overdue
		{acme, store.DeliverySucceeded, "attempt", 0, false},
		{acme, store.DeliveryDead, "mark dead", 0, false},
		{acme, store.DeliveryParked, "park", 0, false},
		{globex, store.DeliveryRetrying, "schedule", time.Minute, true}, // the end of 0-1m
		{globex, store.DeliveryRetrying, "attempt", 5 * time.Minute, true},
		{globex, store.DeliveryRetrying, "attempt", 30 * time.Minute, true},
		{globex, store.DeliveryRetrying, "attempt", 2 * time.Hour, true},
		{globex, store.DeliveryRetrying, "schedule", 24 * time.Hour, true}, // the end of 1h-1d
		{globex, store.DeliveryRetrying, "attempt", 48 * time.Hour, true},
		{globex, store.DeliveryDead, "attempt", 0, false},
		{globex, store.DeliveryParked, "park", 0, false},
		{globex, store.DeliveryPending, "fanout", 0, false},
	}
	var dues []time.Time
	for i, r := range rows {
		f := SeedFor(t, s, healthy[r.tenant], Base.Add(time.Duration(i)*time.Millisecond))
		id := f.Delivery.ID
		due := now.Add(r.due)
		a := NewAttempt(f.Delivery, 1, Base.Add(time.Minute))
		var err error
		switch r.how {
		case "fanout":
		case "put off":
			err = s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: id, Attempt: 1, DueAt: due}})
		case "schedule":
			err = s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: id, Attempt: 2, DueAt: due, TraceParent: TraceParent(i)}})
		case "attempt":
			res := store.AttemptResult{Attempt: a, Status: r.status}
			if r.status == store.DeliveryRetrying {
				res.NextAttemptAt = due
			}
			err = s.RecordAttempts(ctx(t), []store.AttemptResult{res})
		case "mark dead":
			err = s.MarkDead(ctx(t), []string{id}, "gone", Base)
		case "park":
			err = s.ParkDeliveries(ctx(t), []string{id}, Base)
		default:
			t.Fatalf("row %d: unknown write %q", i, r.how)
		}
		must(t, err, fmt.Sprintf("row %d: %s", i, r.how))
		if got := getDelivery(t, s, id).Status; got != r.status {
			t.Fatalf("row %d: delivery %s after %s, want %s", i, got, r.how, r.status)
		}
		if r.has {
			dues = append(dues, due)
		}
	}

	want := store.Stats{
		Deliveries: map[store.DeliveryStatus]int64{
			store.DeliveryPending: 3, store.DeliveryRetrying: 8, store.DeliveryParked: 2, store.DeliveryDead: 2,
		},
		Subscriptions: map[store.SubscriptionHealth]int64{
			store.HealthHealthy: 2, store.HealthFailing: 2, store.HealthDisabled: 2,
		},
		ScheduledRetries: map[store.RetryDueBucket]int64{
			store.DueOverdue: 2, store.DueIn1m: 2, store.DueIn10m: 1, store.DueIn1h: 1, store.DueIn1d: 2, store.DueLater: 1,
		},
	}
	wantEqual(t, want, statsOf(t, s, now), "stats")

	// A retry being released (claimed, not completed) still counts.
	if due := claim(t, s, now, 10, time.Minute); len(due) != 2 {
		t.Fatalf("claimed %d overdue retries, want 2", len(due))
	}
	wantEqual(t, want, statsOf(t, s, now), "stats with the overdue retries claimed")

	// The buckets move with now; only the retries do.
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"a nanosecond earlier: every bound crossed", now.Add(-time.Nanosecond)},
		{"a nanosecond later", now.Add(time.Nanosecond)},
		{"three days later: all overdue", now.Add(72 * time.Hour)},
		{"three days earlier: all later than a day", now.Add(-72 * time.Hour)},
	} {
		buckets := store.NewStats().ScheduledRetries
		for _, due := range dues {
			buckets[store.RetryDueBucketOf(due, tc.at)]++
		}
		got := statsOf(t, s, tc.at)
		wantEqual(t, want.Deliveries, got.Deliveries, "deliveries at "+tc.name)
		wantEqual(t, want.Subscriptions, got.Subscriptions, "subscriptions at "+tc.name)
		wantEqual(t, buckets, got.ScheduledRetries, "scheduled retries at "+tc.name)
	}
	earlier := statsOf(t, s, now.Add(-time.Nanosecond)).ScheduledRetries
	wantEqual(t, map[store.RetryDueBucket]int64{
		store.DueOverdue: 1, store.DueIn1m: 2, store.DueIn10m: 2, store.DueIn1h: 1, store.DueIn1d: 1, store.DueLater: 2,
	}, earlier, "scheduled retries a nanosecond earlier")

	// Writes move the counts: a retry completed, a delivery succeeding, a
	// subscription enabled (clearing FailingSince) and one deleted.
	claimed := claim(t, s, now.Add(2*time.Minute), 10, time.Minute) // the overdue leases have expired
	must(t, s.CompleteRetries(ctx(t), []store.ScheduledRetry{claimed[0].ScheduledRetry}), "CompleteRetries")
	ok := NewAttempt(claimed[1].Delivery, claimed[1].Attempt, now)
	ok.StatusCode = 200
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(ok, store.DeliverySucceeded)}), "RecordAttempts(succeeded)")
	must(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), disabledIDs[0], store.SubscriptionEnabled, "", now), "enable")
	must(t, s.DeleteSubscription(ctx(t), store.AllTenants(), disabledIDs[1]), "DeleteSubscription")
	got := statsOf(t, s, now)
	wantEqual(t, map[store.DeliveryStatus]int64{
		store.DeliveryPending: 3, store.DeliveryRetrying: 7, store.DeliveryParked: 2, store.DeliveryDead: 2,
	}, got.Deliveries, "deliveries after the writes")
	wantEqual(t, map[store.SubscriptionHealth]int64{
		store.HealthHealthy: 3, store.HealthFailing: 2, store.HealthDisabled: 0,
	}, got.Subscriptions, "subscriptions after the writes")
	wantEqual(t, map[store.RetryDueBucket]int64{
		store.DueOverdue: 0, store.DueIn1m: 2, store.DueIn10m: 1, store.DueIn1h: 1, store.DueIn1d: 2, store.DueLater: 1,
	}, got.ScheduledRetries, "scheduled retries after the writes")
}
