package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

func claim(t *testing.T, s store.Store, now time.Time, limit int, lease time.Duration) []store.DueRetry {
	t.Helper()
	due, err := s.ClaimDueRetries(ctx(t), now, limit, lease)
	must(t, err, "ClaimDueRetries")
	return due
}

func claimedIDs(due []store.DueRetry) []string {
	var out []string
	for _, d := range due {
		out = append(out, d.DeliveryID)
	}
	return out
}

func testRetriesSchedule(t *testing.T, s store.Store) {
	f := Seed(t, s, "acme", Base)
	r := store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: 2, DueAt: Base.Add(5 * time.Second)}
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{r}), "ScheduleRetries")
	got := getDelivery(t, s, f.Delivery.ID)
	if got.Status != store.DeliveryRetrying || !got.NextAttemptAt.Equal(r.DueAt) {
		t.Fatalf("after ScheduleRetries: status %q NextAttemptAt %v", got.Status, got.NextAttemptAt)
	}
	// Rescheduling replaces the earlier due time: one retry per delivery.
	r2 := store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: 3, DueAt: Base.Add(time.Minute)}
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{r2}), "ScheduleRetries(replace)")
	if got := getDelivery(t, s, f.Delivery.ID); !got.NextAttemptAt.Equal(r2.DueAt) {
		t.Fatalf("NextAttemptAt %v after rescheduling, want %v", got.NextAttemptAt, r2.DueAt)
	}
	if due := claim(t, s, Base.Add(30*time.Second), 10, time.Minute); len(due) != 0 {
		t.Fatalf("replaced retry still claimable: %+v", due)
	}
	due := claim(t, s, Base.Add(time.Hour), 10, time.Minute)
	if len(due) != 1 {
		t.Fatalf("claimed %d retries, want 1", len(due))
	}
	wantEqual(t, r2, due[0].ScheduledRetry, "claimed retry")
	must(t, s.ScheduleRetries(ctx(t), nil), "ScheduleRetries(empty)")
}

// testRetriesScheduleStale: a retry for an attempt the delivery has
// recorded already (a stale put-off or redeliver) changes nothing.
func testRetriesScheduleStale(t *testing.T, s store.Store) {
	f := Seed(t, s, "acme", Base)
	for n, status := range []store.DeliveryStatus{store.DeliveryRetrying, store.DeliverySucceeded} {
		a := NewAttempt(f.Delivery, n+1, Base.Add(time.Duration(n)*time.Minute))
		must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(a, status)}), "RecordAttempts")
	}
	before := getDelivery(t, s, f.Delivery.ID)
	for _, attempt := range []int{1, 2} {
		r := store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: attempt, DueAt: Base.Add(time.Hour)}
		must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{r}), "ScheduleRetries(stale)")
	}
	wantEqual(t, before, getDelivery(t, s, f.Delivery.ID), "delivery after stale retries")
	if due := claim(t, s, Base.Add(2*time.Hour), 10, time.Minute); len(due) != 0 {
		t.Fatalf("stale retries were stored: %v", claimedIDs(due))
	}
	// The next attempt is still schedulable (a redelivery).
	r := store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: 3, DueAt: Base.Add(time.Hour)}
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{r}), "ScheduleRetries(next)")
	if got := getDelivery(t, s, f.Delivery.ID); got.Status != store.DeliveryRetrying || !got.NextAttemptAt.Equal(r.DueAt) {
		t.Fatalf("after scheduling attempt 3: status %q NextAttemptAt %v", got.Status, got.NextAttemptAt)
	}
}

// testRetriesScheduleFirst: a first attempt put off (a retry of attempt
// 1) leaves the delivery pending, with its due time; a retry of attempt 2
// makes it retrying.
func testRetriesScheduleFirst(t *testing.T, s store.Store) {
	f := Seed(t, s, "acme", Base)
	r := store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: 1, DueAt: Base.Add(time.Minute)}
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{r}), "ScheduleRetries(first)")
	if got := getDelivery(t, s, f.Delivery.ID); got.Status != store.DeliveryPending || !got.NextAttemptAt.Equal(r.DueAt) || got.Attempts != 0 {
		t.Fatalf("after putting off attempt 1: status %q attempts %d NextAttemptAt %v; want pending 0 %v",
			got.Status, got.Attempts, got.NextAttemptAt, r.DueAt)
	}
	due := claim(t, s, Base.Add(time.Hour), 10, time.Minute)
	if len(due) != 1 {
		t.Fatalf("claimed %d retries, want 1", len(due))
	}
	wantEqual(t, r, due[0].ScheduledRetry, "claimed retry")
	must(t, s.CompleteRetries(ctx(t), []store.ScheduledRetry{due[0].ScheduledRetry}), "CompleteRetries")
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(NewAttempt(f.Delivery, 1, Base.Add(time.Minute)), store.DeliveryRetrying)}), "RecordAttempts")
	r2 := store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: 2, DueAt: Base.Add(2 * time.Minute)}
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{r2}), "ScheduleRetries(second)")
	if got := getDelivery(t, s, f.Delivery.ID); got.Status != store.DeliveryRetrying || !got.NextAttemptAt.Equal(r2.DueAt) {
		t.Fatalf("after scheduling attempt 2: status %q NextAttemptAt %v", got.Status, got.NextAttemptAt)
	}
}

func testRetriesClaimDueOnly(t *testing.T, s store.Store) {
	var fs []Fixture
	var rs []store.ScheduledRetry
	for i, off := range []time.Duration{time.Minute, -time.Minute, 0} {
		f := Seed(t, s, "acme", Base.Add(time.Duration(i)*time.Second))
		fs = append(fs, f)
		rs = append(rs, store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: 2, DueAt: Base.Add(off)})
	}
	must(t, s.ScheduleRetries(ctx(t), rs), "ScheduleRetries")

	due := claim(t, s, Base, 10, 5*time.Minute)
	if got, want := claimedIDs(due), []string{fs[1].Delivery.ID, fs[2].Delivery.ID}; !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want %v (due at or before now, earliest first)", got, want)
	}
	// Claimed retries come with their delivery and event.
	for _, dr := range due {
		var f Fixture
		for _, c := range fs {
			if c.Delivery.ID == dr.DeliveryID {
				f = c
			}
		}
		wantDelivery := getDelivery(t, s, f.Delivery.ID)
		wantEqual(t, wantDelivery, dr.Delivery, "claimed delivery")
		wantEqual(t, f.Event, dr.Event, "claimed event")
		if dr.Attempt != 2 {
			t.Fatalf("claimed attempt %d, want 2", dr.Attempt)
		}
	}
	// Leased retries are not claimed again while the lease lives.
	if due := claim(t, s, Base, 10, 5*time.Minute); len(due) != 0 {
		t.Fatalf("claimed leased retries %v", claimedIDs(due))
	}
	due = claim(t, s, Base.Add(time.Minute), 10, 5*time.Minute)
	if got := claimedIDs(due); !slices.Equal(got, []string{fs[0].Delivery.ID}) {
		t.Fatalf("claimed %v, want only the newly due retry", got)
	}
	if due := claim(t, s, Base, 0, time.Minute); len(due) != 0 {
		t.Fatalf("limit 0 claimed %d", len(due))
	}
}

func testRetriesLeaseExpiry(t *testing.T, s store.Store) {
	f := Seed(t, s, "acme", Base)
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: f.Delivery.ID, Attempt: 2, DueAt: Base}}), "ScheduleRetries")
	if due := claim(t, s, Base, 10, 30*time.Second); len(due) != 1 {
		t.Fatalf("first claim got %d", len(due))
	}
	// The claimer died without completing: the retry is held for the lease...
	if due := claim(t, s, Base.Add(29*time.Second), 10, 30*time.Second); len(due) != 0 {
		t.Fatal("retry claimed again inside its lease")
	}
	// A lease is live up to and including its end...
	if due := claim(t, s, Base.Add(30*time.Second), 10, 30*time.Second); len(due) != 0 {
		t.Fatal("retry claimed again at the instant its lease ends")
	}
	// ...and claimable again once the lease has expired.
	due := claim(t, s, Base.Add(31*time.Second), 10, 30*time.Second)
	if len(due) != 1 || due[0].DeliveryID != f.Delivery.ID || due[0].Attempt != 2 {
		t.Fatalf("after lease expiry claimed %+v", claimedIDs(due))
	}
}

func testRetriesClaimLimit(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	var rs []store.ScheduledRetry
	for i := range 10 {
		f := SeedFor(t, s, sub, Base.Add(time.Duration(i)*time.Millisecond))
		rs = append(rs, store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: 2, DueAt: Base.Add(-time.Duration(i) * time.Second)})
	}
	must(t, s.ScheduleRetries(ctx(t), rs), "ScheduleRetries")
	seen := map[string]bool{}
	for round := 0; ; round++ {
		due := claim(t, s, Base, 3, time.Hour)
		if len(due) > 3 {
			t.Fatalf("claimed %d with limit 3", len(due))
		}
		if len(due) == 0 {
			break
		}
		for _, d := range due {
			if seen[d.DeliveryID] {
				t.Fatalf("retry %s claimed twice", d.DeliveryID)
			}
			seen[d.DeliveryID] = true
		}
		if round > 10 {
			t.Fatal("claiming does not drain")
		}
	}
	if len(seen) != len(rs) {
		t.Fatalf("claimed %d distinct retries, want %d", len(seen), len(rs))
	}
}

func testRetriesConcurrentClaimers(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	const n = 80
	var evs []store.Event
	var ds []store.Delivery
	var rs []store.ScheduledRetry
	for i := range n {
		ev := NewEvent("acme", "order.created", Base.Add(time.Duration(i)*time.Millisecond))
		d := NewDelivery(ev, sub, ev.ReceivedAt)
		evs, ds = append(evs, ev), append(ds, d)
		rs = append(rs, store.ScheduledRetry{DeliveryID: d.ID, Attempt: 2, DueAt: Base})
	}
	must(t, s.InsertFanout(ctx(t), evs, ds), "InsertFanout")
	must(t, s.ScheduleRetries(ctx(t), rs), "ScheduleRetries")

	const workers = 8
	claimed := make([][]string, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				due, err := s.ClaimDueRetries(ctx(t), Base.Add(time.Second), 7, time.Hour)
				if err != nil {
					errs[w] = err
					return
				}
				if len(due) == 0 {
					return
				}
				claimed[w] = append(claimed[w], claimedIDs(due)...)
				if len(claimed[w]) > n { // more than exist: leases are broken
					errs[w] = fmt.Errorf("worker claimed %d retries of %d", len(claimed[w]), n)
					return
				}
			}
		})
	}
	wg.Wait()
	count := map[string]int{}
	for w := range workers {
		must(t, errs[w], fmt.Sprintf("worker %d", w))
		for _, id := range claimed[w] {
			count[id]++
		}
	}
	for id, c := range count {
		if c != 1 {
			t.Fatalf("retry %s claimed %d times", id, c)
		}
	}
	if len(count) != n {
		t.Fatalf("claimed %d distinct retries, want %d", len(count), n)
	}
}

func testRetriesComplete(t *testing.T, s store.Store) {
	a := Seed(t, s, "acme", Base)
	b := Seed(t, s, "acme", Base.Add(time.Second))
	c := Seed(t, s, "acme", Base.Add(2*time.Second))
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{
		{DeliveryID: a.Delivery.ID, Attempt: 2, DueAt: Base},
		{DeliveryID: b.Delivery.ID, Attempt: 2, DueAt: Base},
		{DeliveryID: c.Delivery.ID, Attempt: 2, DueAt: Base},
	}), "ScheduleRetries")
	due := claim(t, s, Base, 10, time.Minute)
	if len(due) != 3 {
		t.Fatalf("claimed %d, want 3", len(due))
	}
	// Before the claimer completes attempt 2, b is rescheduled (attempt 3)
	// and c's attempt 2 is put off again (same attempt, later due time).
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{
		{DeliveryID: b.Delivery.ID, Attempt: 3, DueAt: Base.Add(time.Hour)},
		{DeliveryID: c.Delivery.ID, Attempt: 2, DueAt: Base.Add(time.Hour)},
	}), "ScheduleRetries(b, c)")
	var done []store.ScheduledRetry
	for _, d := range due {
		done = append(done, d.ScheduledRetry)
	}
	must(t, s.CompleteRetries(ctx(t), done), "CompleteRetries")
	must(t, s.CompleteRetries(ctx(t), done), "CompleteRetries(repeat)")
	must(t, s.CompleteRetries(ctx(t), nil), "CompleteRetries(empty)")

	// a is gone for good, even after its lease; b's and c's newer
	// retries survive.
	due = claim(t, s, Base.Add(2*time.Hour), 10, time.Minute)
	got := map[string]store.ScheduledRetry{}
	for _, d := range due {
		got[d.DeliveryID] = d.ScheduledRetry
	}
	want := map[string]store.ScheduledRetry{
		b.Delivery.ID: {DeliveryID: b.Delivery.ID, Attempt: 3, DueAt: Base.Add(time.Hour)},
		c.Delivery.ID: {DeliveryID: c.Delivery.ID, Attempt: 2, DueAt: Base.Add(time.Hour)},
	}
	wantEqual(t, want, got, "retries left after CompleteRetries")
}

func testMarkDead(t *testing.T, s store.Store) {
	a := Seed(t, s, "acme", Base)
	b := Seed(t, s, "acme", Base)
	keep := Seed(t, s, "acme", Base)
	var rs []store.ScheduledRetry
	for _, f := range []Fixture{a, b, keep} {
		rs = append(rs, store.ScheduledRetry{DeliveryID: f.Delivery.ID, Attempt: 2, DueAt: Base.Add(time.Minute)})
	}
	must(t, s.ScheduleRetries(ctx(t), rs), "ScheduleRetries")
	now := Base.Add(10 * time.Second)
	must(t, s.MarkDead(ctx(t), []string{a.Delivery.ID, b.Delivery.ID, "dlv_missing"}, "subscription deleted", now), "MarkDead")
	for _, f := range []Fixture{a, b} {
		got := getDelivery(t, s, f.Delivery.ID)
		if got.Status != store.DeliveryDead || got.LastError != "subscription deleted" || !got.NextAttemptAt.IsZero() || !got.UpdatedAt.Equal(now) {
			t.Fatalf("after MarkDead: %+v", got)
		}
	}
	if got := getDelivery(t, s, keep.Delivery.ID); got.Status != store.DeliveryRetrying {
		t.Fatalf("MarkDead touched another delivery: %+v", got)
	}
	// Dead deliveries are not retried.
	if ids := claimedIDs(claim(t, s, Base.Add(time.Hour), 10, time.Minute)); !slices.Equal(ids, []string{keep.Delivery.ID}) {
		t.Fatalf("claimed %v, want only the live delivery", ids)
	}
	must(t, s.MarkDead(ctx(t), nil, "x", now), "MarkDead(empty)")
}

func testParkAndRedrive(t *testing.T, s store.Store) {
	enabled := NewSubscription("acme")
	disabled := NewSubscription("acme")
	e1 := SeedFor(t, s, enabled, Base)
	e2 := SeedFor(t, s, enabled, Base.Add(time.Second))
	d1 := SeedFor(t, s, disabled, Base)
	live := SeedFor(t, s, enabled, Base.Add(2*time.Second))
	// e2 already had two attempts.
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{
		result(NewAttempt(e2.Delivery, 1, Base), store.DeliveryRetrying),
		result(NewAttempt(e2.Delivery, 2, Base.Add(time.Second)), store.DeliveryRetrying),
	}), "RecordAttempts")
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: e2.Delivery.ID, Attempt: 3, DueAt: Base.Add(time.Minute)}}), "ScheduleRetries")
	must(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), disabled.ID, store.SubscriptionDisabled, "operator", Base), "disable")

	parkedAt := Base.Add(5 * time.Second)
	must(t, s.ParkDeliveries(ctx(t), []string{e1.Delivery.ID, e2.Delivery.ID, d1.Delivery.ID}, parkedAt), "ParkDeliveries")
	for _, f := range []Fixture{e1, e2, d1} {
		got := getDelivery(t, s, f.Delivery.ID)
		if got.Status != store.DeliveryParked || !got.NextAttemptAt.IsZero() || !got.UpdatedAt.Equal(parkedAt) {
			t.Fatalf("after ParkDeliveries: %+v", got)
		}
	}
	// Parked deliveries are not retried.
	if due := claim(t, s, Base.Add(time.Hour), 10, time.Minute); len(due) != 0 {
		t.Fatalf("claimed parked deliveries %v", claimedIDs(due))
	}

	// Only deliveries of enabled subscriptions are redriven.
	now := Base.Add(time.Minute)
	n, err := s.RedriveParked(ctx(t), now, 100)
	must(t, err, "RedriveParked")
	if n != 2 {
		t.Fatalf("RedriveParked moved %d, want 2", n)
	}
	for _, f := range []Fixture{e1, e2} {
		got := getDelivery(t, s, f.Delivery.ID)
		if got.Status != store.DeliveryRetrying || !got.NextAttemptAt.Equal(now) {
			t.Fatalf("after redrive: %+v", got)
		}
	}
	if got := getDelivery(t, s, d1.Delivery.ID); got.Status != store.DeliveryParked {
		t.Fatalf("delivery of a disabled subscription redriven: %+v", got)
	}
	if got := getDelivery(t, s, live.Delivery.ID); got.Status != store.DeliveryPending {
		t.Fatalf("redrive touched a pending delivery: %+v", got)
	}
	due := claim(t, s, now, 10, time.Minute)
	attempts := map[string]int{}
	for _, d := range due {
		attempts[d.DeliveryID] = d.Attempt
		if !d.DueAt.Equal(now) {
			t.Fatalf("redriven retry due %v, want %v", d.DueAt, now)
		}
	}
	if len(due) != 2 || attempts[e1.Delivery.ID] != 1 || attempts[e2.Delivery.ID] != 3 {
		t.Fatalf("redriven retries %v, want e1 attempt 1 and e2 attempt 3", attempts)
	}

	// Enabling the other subscription lets the next redrive move its delivery.
	must(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), disabled.ID, store.SubscriptionEnabled, "", now), "enable")
	n, err = s.RedriveParked(ctx(t), now, 100)
	must(t, err, "RedriveParked")
	if n != 1 {
		t.Fatalf("RedriveParked moved %d after enabling, want 1", n)
	}
	n, err = s.RedriveParked(ctx(t), now, 100)
	must(t, err, "RedriveParked")
	if n != 0 {
		t.Fatalf("RedriveParked moved %d with nothing parked", n)
	}
	must(t, s.ParkDeliveries(ctx(t), nil, now), "ParkDeliveries(empty)")
}

func testRedriveLimit(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	var ids []string
	for i := range 5 {
		ids = append(ids, SeedFor(t, s, sub, Base.Add(time.Duration(i)*time.Second)).Delivery.ID)
	}
	must(t, s.ParkDeliveries(ctx(t), ids, Base), "ParkDeliveries")
	var moved []int
	for range 4 {
		n, err := s.RedriveParked(ctx(t), Base.Add(time.Minute), 2)
		must(t, err, "RedriveParked")
		moved = append(moved, n)
	}
	if !slices.Equal(moved, []int{2, 2, 1, 0}) {
		t.Fatalf("RedriveParked with limit 2 moved %v, want [2 2 1 0]", moved)
	}
	for _, id := range ids {
		if got := getDelivery(t, s, id); got.Status != store.DeliveryRetrying {
			t.Fatalf("delivery %s is %q after redrive", id, got.Status)
		}
	}
}

// testConcurrentRecordAndClaim runs attempt writers, retry schedulers,
// claimers and readers at once; every write must succeed (no "database is
// busy") and the end state must be exact.
func testConcurrentRecordAndClaim(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	const writers, perWriter = 4, 12
	fs := make([][]store.Delivery, writers)
	for w := range writers {
		var evs []store.Event
		for i := range perWriter {
			ev := NewEvent("acme", "order.created", Base.Add(time.Duration(w*perWriter+i)*time.Millisecond))
			evs = append(evs, ev)
			fs[w] = append(fs[w], NewDelivery(ev, sub, ev.ReceivedAt))
		}
		must(t, s.InsertFanout(ctx(t), evs, fs[w]), "InsertFanout")
	}

	var wg sync.WaitGroup
	errc := make(chan error, 1)
	stop := make(chan struct{})
	kick := make(chan struct{}, 1)
	var mu sync.Mutex
	claimed := map[string]bool{}
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	} // room for bugs: never blocks
	// Writers: attempt 1 fails and its result schedules attempt 2, due at
	// once for half the deliveries; the other half's is due later and put
	// off to now by ScheduleRetries (a retry no claimer can have claimed
	// yet). Claimers make attempt 2, which succeeds.
	for w := range writers {
		wg.Go(func() {
			for i, d := range fs[w] {
				a := NewAttempt(d, 1, Base.Add(time.Duration(i)*time.Second))
				due := Base
				if i%2 == 1 {
					due = Base.Add(time.Hour)
				}
				if err := s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(a, due)}); err != nil {
					fail(fmt.Errorf("record attempt 1: %w", err))
					return
				}
				if !due.Equal(Base) {
					if err := s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: d.ID, Attempt: 2, DueAt: Base}}); err != nil {
						fail(fmt.Errorf("schedule: %w", err))
						return
					}
				}
				select { // wake a claimer without blocking
				case kick <- struct{}{}:
				default:
				}
			}
		})
	}
	// Claimers publish and complete, recording attempt 2.
	var claimers sync.WaitGroup
	for range 3 {
		claimers.Go(func() {
			for {
				stopped := closed(stop) // read before claiming: an empty claim after stop means drained
				due, err := s.ClaimDueRetries(ctx(t), Base.Add(time.Second), 5, time.Hour)
				if err != nil {
					fail(fmt.Errorf("claim: %w", err))
					return
				}
				var results []store.AttemptResult
				var done []store.ScheduledRetry
				for _, dr := range due {
					a := NewAttempt(dr.Delivery, dr.Attempt, Base.Add(time.Hour))
					a.StatusCode = 200
					results = append(results, result(a, store.DeliverySucceeded))
					done = append(done, dr.ScheduledRetry)
					mu.Lock()
					dup := claimed[dr.DeliveryID]
					claimed[dr.DeliveryID] = true
					mu.Unlock()
					if dup {
						fail(fmt.Errorf("retry of %s claimed twice", dr.DeliveryID))
						return
					}
				}
				if err := s.RecordAttempts(ctx(t), results); err != nil {
					fail(fmt.Errorf("record attempt 2: %w", err))
					return
				}
				if err := s.CompleteRetries(ctx(t), done); err != nil {
					fail(fmt.Errorf("complete: %w", err))
					return
				}
				if len(due) == 0 {
					if stopped {
						return
					}
					select { // idle until a retry is scheduled or the writers are done
					case <-kick:
					case <-stop:
					}
				}
			}
		})
	}
	// A reader lists while all this happens.
	claimers.Go(func() {
		for range 10 {
			if _, _, err := s.ListDeliveries(ctx(t), store.DeliveryFilter{Scope: store.AllTenants(), Limit: 50}); err != nil {
				fail(fmt.Errorf("list: %w", err))
				return
			}
		}
	})
	wg.Wait()
	close(stop) // writers are done: claimers drain what is left and stop
	claimers.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for w := range writers {
		for _, d := range fs[w] {
			got := getDelivery(t, s, d.ID)
			if got.Status != store.DeliverySucceeded || got.Attempts != 2 {
				t.Fatalf("delivery %s ended %q after %d attempts", d.ID, got.Status, got.Attempts)
			}
		}
	}
	if len(claimed) != writers*perWriter {
		t.Fatalf("claimed %d retries, want %d", len(claimed), writers*perWriter)
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
