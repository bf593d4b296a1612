package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// The consequences RecordAttempts writes with an attempt (the delivery's
// status, its next due time or its end, its last error) and the first
// attempt InsertFanout schedules.

// claimOf claims every retry due at at for lease and returns those of the
// deliveries ids, in claim order.
func claimOf(t *testing.T, s store.Store, at time.Time, lease time.Duration, ids ...string) []store.DueRetry {
	t.Helper()
	var out []store.DueRetry
	for _, d := range claim(t, s, at, 1000, lease) {
		if slices.Contains(ids, d.DeliveryID) {
			out = append(out, d)
		}
	}
	return out
}

// retriesDue claims every retry due at at, with a lease of a nanosecond
// (so that a look at least two nanoseconds later sees a retry still stored
// again), and returns those of the deliveries ids, by delivery id.
func retriesDue(t *testing.T, s store.Store, at time.Time, ids ...string) map[string]store.ScheduledRetry {
	t.Helper()
	out := map[string]store.ScheduledRetry{}
	for _, d := range claimOf(t, s, at, time.Nanosecond, ids...) {
		out[d.DeliveryID] = d.ScheduledRetry
	}
	return out
}

// claimDue fails t if a retry of ids is due before first, then claims the
// retries of ids due at at and returns them by delivery id.
func claimDue(t *testing.T, s store.Store, first, at time.Time, ids ...string) map[string]store.DueRetry {
	t.Helper()
	if early := retriesDue(t, s, first.Add(-time.Nanosecond), ids...); len(early) != 0 {
		t.Fatalf("retries due before %v: %+v", first, early)
	}
	out := map[string]store.DueRetry{}
	for _, d := range claimOf(t, s, at, time.Minute, ids...) {
		out[d.DeliveryID] = d
	}
	return out
}

// scheduledOf are the scheduled retries of claimed, by delivery id.
func scheduledOf(claimed map[string]store.DueRetry) map[string]store.ScheduledRetry {
	out := make(map[string]store.ScheduledRetry, len(claimed))
	for id, d := range claimed {
		out[id] = d.ScheduledRetry
	}
	return out
}

// completeAll completes every claimed retry.
func completeAll(t *testing.T, s store.Store, claimed map[string]store.DueRetry) {
	t.Helper()
	var done []store.ScheduledRetry
	for _, d := range claimed {
		done = append(done, d.ScheduledRetry)
	}
	must(t, s.CompleteRetries(ctx(t), done), "CompleteRetries")
}

// failed is attempt n of d, started n minutes after Base, which got no
// response.
func failed(d store.Delivery, n int) store.Attempt {
	a := NewAttempt(d, n, Base.Add(time.Duration(n)*time.Minute))
	a.StatusCode, a.ResponseBody = 0, nil
	a.Error = fmt.Sprintf("attempt %d: dial tcp: connection refused", n)
	return a
}

// delivered is attempt n of d, started n minutes after Base, which got a
// 200.
func delivered(d store.Delivery, n int) store.Attempt {
	a := NewAttempt(d, n, Base.Add(time.Duration(n)*time.Minute))
	a.StatusCode, a.ResponseBody = 200, []byte("ok")
	return a
}

// deliveryIDs returns the delivery ids of fs.
func deliveryIDs(fs ...Fixture) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Delivery.ID
	}
	return out
}

// testAttemptsRetryingSchedulesNext: a retrying result schedules attempt
// Number+1 at its NextAttemptAt, which the delivery shows and which is
// claimable from then on, not before; of several results recorded the
// highest-numbered one's schedule counts, whatever their order.
func testAttemptsRetryingSchedulesNext(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	dueOf := func(n int) time.Time { return Base.Add(time.Duration(n) * time.Hour) }
	for _, tc := range []struct {
		name  string
		calls [][]int // attempts failed, per RecordAttempts call; attempt n's next is due dueOf(n)
		last  int     // the attempt whose schedule counts
	}{
		{"first attempt", [][]int{{1}}, 1},
		{"second attempt", [][]int{{1}, {2}}, 2},
		{"two attempts in one batch", [][]int{{1, 2}}, 2},
		{"two attempts in one batch, highest first", [][]int{{2, 1}}, 2},
		{"lower attempt after a higher one", [][]int{{2}, {1}}, 2},
		{"attempts skipped", [][]int{{3}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := SeedFor(t, s, sub, Base)
			id := f.Delivery.ID
			for _, call := range tc.calls {
				var batch []store.AttemptResult
				for _, n := range call {
					batch = append(batch, retryingAt(failed(f.Delivery, n), dueOf(n)))
				}
				must(t, s.RecordAttempts(ctx(t), batch), fmt.Sprintf("RecordAttempts(%v)", call))
			}
			due := dueOf(tc.last)
			got := getDelivery(t, s, id)
			if got.Status != store.DeliveryRetrying || got.Attempts != tc.last || !got.NextAttemptAt.Equal(due) ||
				got.LastError != failed(f.Delivery, tc.last).Error {
				t.Fatalf("delivery %+v; want retrying after attempt %d, next at %v", got, tc.last, due)
			}
			if early := retriesDue(t, s, due.Add(-time.Nanosecond), id); len(early) != 0 {
				t.Fatalf("claimed %+v before it is due", early)
			}
			claimed := claimOf(t, s, due, time.Minute, id)
			if len(claimed) != 1 {
				t.Fatalf("claimed %d retries at their due time, want 1", len(claimed))
			}
			wantEqual(t, store.ScheduledRetry{DeliveryID: id, Attempt: tc.last + 1, DueAt: due}, claimed[0].ScheduledRetry, "claimed retry")
			wantEqual(t, got, claimed[0].Delivery, "claimed retry's delivery")
			wantEqual(t, f.Event, claimed[0].Event, "claimed retry's event")
		})
	}
}

// testAttemptsRecordAgainChangesNothing: recording results again (the
// same batch, in another order, or with other outcomes for the same
// attempts) changes no delivery, attempt or schedule, and does not bring
// back a retry that was released and completed since.
func testAttemptsRecordAgainChangesNothing(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	var fs []Fixture
	for i := range 5 {
		fs = append(fs, SeedFor(t, s, sub, Base.Add(time.Duration(i)*time.Millisecond)))
	}
	ids := deliveryIDs(fs...)
	due, due2 := Base.Add(time.Hour), Base.Add(2*time.Hour)
	dead := result(failed(fs[2].Delivery, 1), store.DeliveryDead)
	dead.DeliveryError = "retry schedule exhausted after 1 attempts: connection refused"
	batch := []store.AttemptResult{
		retryingAt(failed(fs[0].Delivery, 1), due), // schedules attempt 2
		result(delivered(fs[1].Delivery, 1), store.DeliverySucceeded),
		dead,
		retryingAt(failed(fs[3].Delivery, 1), due), // settled in the same batch
		result(delivered(fs[3].Delivery, 2), store.DeliverySucceeded),
		retryingAt(failed(fs[4].Delivery, 1), due), // the later attempt's schedule counts
		retryingAt(failed(fs[4].Delivery, 2), due2),
	}
	must(t, s.RecordAttempts(ctx(t), batch), "RecordAttempts")
	snapshot := func() ([]store.Delivery, []store.Attempt) {
		var ds []store.Delivery
		for _, id := range ids {
			ds = append(ds, getDelivery(t, s, id))
		}
		return ds, listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), SubscriptionID: sub.ID})
	}
	wantDeliveries, wantAttempts := snapshot()

	reversed := slices.Clone(batch)
	slices.Reverse(reversed)
	// The same attempts (same start times: written again, not made again),
	// other outcomes.
	var others []store.AttemptResult
	for _, r := range batch {
		o := r
		o.Attempt.StatusCode++
		switch r.Status {
		case store.DeliveryRetrying:
			o.Status, o.NextAttemptAt = store.DeliveryDead, time.Time{}
			o.DeliveryError = "gave up"
		default:
			// A due time earlier than any scheduled would show in the
			// claims below.
			o.Status, o.NextAttemptAt = store.DeliveryRetrying, Base.Add(time.Minute)
		}
		others = append(others, o)
	}
	for _, again := range []struct {
		name  string
		batch []store.AttemptResult
	}{
		{"same batch", batch},
		{"reversed", reversed},
		{"other outcomes", others},
		{"one by one", nil},
	} {
		t.Run(again.name, func(t *testing.T) {
			if again.batch == nil {
				for _, r := range batch {
					must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{r}), "RecordAttempts(one)")
				}
			} else {
				must(t, s.RecordAttempts(ctx(t), again.batch), "RecordAttempts(again)")
			}
			gotDeliveries, gotAttempts := snapshot()
			wantEqual(t, wantDeliveries, gotDeliveries, "deliveries")
			wantEqual(t, wantAttempts, gotAttempts, "attempts")
		})
	}
	claimed := claimDue(t, s, due, due2, ids...)
	wantEqual(t, map[string]store.ScheduledRetry{
		fs[0].Delivery.ID: {DeliveryID: fs[0].Delivery.ID, Attempt: 2, DueAt: due},
		fs[4].Delivery.ID: {DeliveryID: fs[4].Delivery.ID, Attempt: 3, DueAt: due2},
	}, scheduledOf(claimed), "scheduled retries")

	// Released and completed, the retries stay gone when the batch is
	// recorded again.
	completeAll(t, s, claimed)
	must(t, s.RecordAttempts(ctx(t), batch), "RecordAttempts(after completion)")
	if left := retriesDue(t, s, due2.Add(time.Hour), ids...); len(left) != 0 {
		t.Fatalf("recording the batch again brought back completed retries: %+v", left)
	}
	gotDeliveries, _ := snapshot()
	wantEqual(t, wantDeliveries, gotDeliveries, "deliveries after the retries were completed")
}

// testAttemptsStaleResultKeepsSchedule: a result for an attempt below the
// delivery's recorded count (it arrives late) is recorded, and changes
// neither the delivery nor its scheduled retry, whatever its outcome.
func testAttemptsStaleResultKeepsSchedule(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	due := Base.Add(time.Hour)
	for _, st := range []store.DeliveryStatus{store.DeliveryRetrying, store.DeliverySucceeded, store.DeliveryDead, store.DeliveryParked, store.DeliveryPending} {
		t.Run(string(st), func(t *testing.T) {
			f := SeedFor(t, s, sub, Base)
			id := f.Delivery.ID
			a3 := failed(f.Delivery, 3)
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(a3, due)}), "RecordAttempts(3)")
			before := getDelivery(t, s, id)

			late := store.AttemptResult{Attempt: delivered(f.Delivery, 2), Status: st, DeliveryError: "stale"}
			if st == store.DeliveryRetrying {
				late.Attempt = failed(f.Delivery, 2)
				late.NextAttemptAt = Base.Add(time.Minute) // earlier than the schedule
			}
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{late}), "RecordAttempts(2)")
			wantEqual(t, before, getDelivery(t, s, id), "delivery after a stale result")
			wantEqual(t, []store.Attempt{a3, late.Attempt}, listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: id}), "attempts")
			if early := retriesDue(t, s, due.Add(-time.Nanosecond), id); len(early) != 0 {
				t.Fatalf("a stale result moved the schedule: %+v", early)
			}
			wantEqual(t, map[string]store.ScheduledRetry{id: {DeliveryID: id, Attempt: 4, DueAt: due}},
				retriesDue(t, s, due, id), "scheduled retry after a stale result")
		})
	}
}

// testAttemptsRetryingWithoutDueWritesNothing: a retrying result without
// NextAttemptAt is an error, and nothing of its batch is written: no
// attempt, no delivery change, no schedule change, wherever it sits in the
// batch and even if its attempt is recorded already.
func testAttemptsRetryingWithoutDueWritesNothing(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	due := Base.Add(time.Hour)
	for _, tc := range []struct {
		name    string
		invalid int  // index of the invalid result in the batch
		alone   bool // the batch is the invalid result only
		repeat  bool // the invalid result repeats a recorded attempt
	}{
		{name: "alone", alone: true},
		{name: "first", invalid: 0},
		{name: "last", invalid: 2},
		{name: "repeat of a recorded attempt", invalid: 1, repeat: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// scheduled has failed once, its attempt 2 is due; fresh has
			// no attempt yet.
			scheduled := SeedFor(t, s, sub, Base)
			fresh, other := SeedFor(t, s, sub, Base), SeedFor(t, s, sub, Base)
			ids := deliveryIDs(scheduled, fresh, other)
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(failed(scheduled.Delivery, 1), due)}), "RecordAttempts")
			var before []store.Delivery
			for _, id := range ids {
				before = append(before, getDelivery(t, s, id))
			}
			attemptsBefore := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), SubscriptionID: sub.ID})

			invalid := store.AttemptResult{Attempt: failed(fresh.Delivery, 1), Status: store.DeliveryRetrying}
			if tc.repeat {
				invalid.Attempt = failed(scheduled.Delivery, 1)
			}
			batch := []store.AttemptResult{invalid}
			if !tc.alone {
				batch = []store.AttemptResult{
					result(delivered(scheduled.Delivery, 2), store.DeliverySucceeded), // would drop the retry
					retryingAt(failed(other.Delivery, 1), Base.Add(time.Minute)),      // would schedule one
				}
				batch = slices.Insert(batch, tc.invalid, invalid)
			}
			if err := s.RecordAttempts(ctx(t), batch); err == nil {
				t.Fatal("RecordAttempts with a retrying result without NextAttemptAt succeeded")
			}
			for i, id := range ids {
				wantEqual(t, before[i], getDelivery(t, s, id), "delivery after a rejected batch")
			}
			wantEqual(t, attemptsBefore, listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), SubscriptionID: sub.ID}), "attempts after a rejected batch")
			if early := retriesDue(t, s, due.Add(-time.Nanosecond), ids...); len(early) != 0 {
				t.Fatalf("a rejected batch scheduled %+v", early)
			}
			wantEqual(t, map[string]store.ScheduledRetry{scheduled.Delivery.ID: {DeliveryID: scheduled.Delivery.ID, Attempt: 2, DueAt: due}},
				retriesDue(t, s, due, ids...), "retries after a rejected batch")
		})
	}
}

// testAttemptsRetryingReplacesClaimedRetry: the scheduler released a
// retry (claimed under a lease) and its attempt failed: the result's
// schedule replaces the released retry and drops the lease, so the next
// attempt is claimable at its due time although the lease would still
// run, and completing the released retry leaves it in place.
func testAttemptsRetryingReplacesClaimedRetry(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	for _, tc := range []struct {
		name    string
		attempt int // the attempt released
	}{
		{"first attempt put off", 1},
		{"retry", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := SeedFor(t, s, sub, Base)
			id := f.Delivery.ID
			if tc.attempt == 1 {
				must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: id, Attempt: 1, DueAt: Base}}), "ScheduleRetries")
			} else {
				a := NewAttempt(f.Delivery, tc.attempt-1, Base.Add(-time.Hour))
				must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(a, Base)}), "RecordAttempts(previous)")
			}
			released := claimOf(t, s, Base, time.Hour, id)
			if len(released) != 1 || released[0].Attempt != tc.attempt {
				t.Fatalf("released %+v, want attempt %d", released, tc.attempt)
			}

			next := Base.Add(time.Minute)
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(failed(f.Delivery, tc.attempt), next)}), "RecordAttempts")
			must(t, s.CompleteRetries(ctx(t), []store.ScheduledRetry{released[0].ScheduledRetry}), "CompleteRetries(released)")
			got := getDelivery(t, s, id)
			if got.Status != store.DeliveryRetrying || got.Attempts != tc.attempt || !got.NextAttemptAt.Equal(next) {
				t.Fatalf("delivery %+v; want retrying after attempt %d, next at %v", got, tc.attempt, next)
			}
			if early := retriesDue(t, s, next.Add(-time.Nanosecond), id); len(early) != 0 {
				t.Fatalf("claimed %+v before it is due", early)
			}
			wantEqual(t, map[string]store.ScheduledRetry{id: {DeliveryID: id, Attempt: tc.attempt + 1, DueAt: next}},
				retriesDue(t, s, next, id), "retry inside the released retry's lease")
		})
	}
}

// testAttemptsFinalRemovesSchedule: a final result clears the delivery's
// NextAttemptAt and removes its scheduled retry, whether that retry was
// stored by an earlier call, by an earlier result of the same batch, or
// released already; a retrying result after a final one in the same batch
// schedules again.
func testAttemptsFinalRemovesSchedule(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	due := Base.Add(time.Hour)
	for _, st := range []store.DeliveryStatus{store.DeliverySucceeded, store.DeliveryDead, store.DeliveryParked} {
		t.Run(string(st), func(t *testing.T) {
			earlier, sameBatch, released, reopened := SeedFor(t, s, sub, Base), SeedFor(t, s, sub, Base), SeedFor(t, s, sub, Base), SeedFor(t, s, sub, Base)
			ids := deliveryIDs(earlier, sameBatch, released, reopened)
			final := func(f Fixture, n int) store.AttemptResult { return result(delivered(f.Delivery, n), st) }

			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{
				retryingAt(failed(earlier.Delivery, 1), due),
				retryingAt(failed(released.Delivery, 1), Base),
			}), "RecordAttempts(first attempts)")
			claimed := claimOf(t, s, Base, time.Hour, released.Delivery.ID)
			if len(claimed) != 1 {
				t.Fatalf("released %d retries, want 1", len(claimed))
			}
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{final(earlier, 2)}), "RecordAttempts(earlier)")
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(failed(sameBatch.Delivery, 1), due), final(sameBatch, 2)}), "RecordAttempts(same batch)")
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{final(released, 2)}), "RecordAttempts(released)")
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{final(reopened, 1), retryingAt(failed(reopened.Delivery, 2), due)}), "RecordAttempts(reopened)")

			for _, f := range []Fixture{earlier, sameBatch, released} {
				got := getDelivery(t, s, f.Delivery.ID)
				if got.Status != st || got.Attempts != 2 || !got.NextAttemptAt.IsZero() || got.LastError != "" {
					t.Fatalf("delivery %+v; want %s after attempt 2, nothing scheduled, no error", got, st)
				}
			}
			if got := getDelivery(t, s, reopened.Delivery.ID); got.Status != store.DeliveryRetrying || !got.NextAttemptAt.Equal(due) {
				t.Fatalf("delivery %+v; want retrying, next at %v", got, due)
			}
			wantEqual(t, map[string]store.ScheduledRetry{reopened.Delivery.ID: {DeliveryID: reopened.Delivery.ID, Attempt: 3, DueAt: due}},
				retriesDue(t, s, Base.Add(2*time.Hour), ids...), "retries left")
		})
	}
}

// testAttemptsMixedBatch: one batch with retrying and final results of
// different deliveries (the delivery service's usual flush) schedules the
// former and settles the latter, in any order.
func testAttemptsMixedBatch(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	for _, reverse := range []bool{false, true} {
		t.Run(map[bool]string{false: "sorted", true: "reversed"}[reverse], func(t *testing.T) {
			var fs []Fixture
			for i := range 6 {
				fs = append(fs, SeedFor(t, s, sub, Base.Add(time.Duration(i)*time.Millisecond)))
			}
			ids := deliveryIDs(fs...)
			// fs[0..2] failed once, their attempt 2 is due in an hour.
			due, later := Base.Add(time.Hour), Base.Add(3*time.Hour)
			var first []store.AttemptResult
			for _, f := range fs[:3] {
				first = append(first, retryingAt(failed(f.Delivery, 1), due))
			}
			must(t, s.RecordAttempts(ctx(t), first), "RecordAttempts(first attempts)")
			dead := result(failed(fs[1].Delivery, 2), store.DeliveryDead)
			dead.DeliveryError = "retry schedule exhausted after 2 attempts: connection refused"
			batch := []store.AttemptResult{
				result(delivered(fs[0].Delivery, 2), store.DeliverySucceeded),
				dead,
				retryingAt(failed(fs[2].Delivery, 2), later),
				result(delivered(fs[3].Delivery, 1), store.DeliverySucceeded),
				retryingAt(failed(fs[4].Delivery, 1), later),
				result(delivered(fs[5].Delivery, 1), store.DeliveryParked),
			}
			if reverse {
				slices.Reverse(batch)
			}
			must(t, s.RecordAttempts(ctx(t), batch), "RecordAttempts(mixed)")
			for _, r := range batch {
				got := getDelivery(t, s, r.Attempt.DeliveryID)
				next := rNext(r)
				lastErr := r.Attempt.Error
				if r.DeliveryError != "" {
					lastErr = r.DeliveryError
				}
				if got.Status != r.Status || got.Attempts != r.Attempt.Number || !got.NextAttemptAt.Equal(next) || got.LastError != lastErr {
					t.Fatalf("delivery %+v; want %s after attempt %d, next at %v, last error %q", got, r.Status, r.Attempt.Number, next, lastErr)
				}
			}
			wantEqual(t, map[string]store.ScheduledRetry{
				fs[2].Delivery.ID: {DeliveryID: fs[2].Delivery.ID, Attempt: 3, DueAt: later},
				fs[4].Delivery.ID: {DeliveryID: fs[4].Delivery.ID, Attempt: 2, DueAt: later},
			}, retriesDue(t, s, later, ids...), "retries after a mixed batch")
		})
	}
}

// rNext is the NextAttemptAt a delivery shows after r: r's when retrying,
// none otherwise.
func rNext(r store.AttemptResult) time.Time {
	if r.Status == store.DeliveryRetrying {
		return r.NextAttemptAt
	}
	return time.Time{}
}

// testAttemptsDeliveryError: a result's DeliveryError becomes the
// delivery's LastError, replacing an earlier one, while its attempt keeps
// its own Error; without one, the attempt's Error does.
func testAttemptsDeliveryError(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	for _, tc := range []struct {
		name          string
		status        store.DeliveryStatus
		attemptError  string
		deliveryError string
		want          string
	}{
		{"dead-lettered", store.DeliveryDead, "context deadline exceeded",
			"retry schedule exhausted after 2 attempts: context deadline exceeded", "retry schedule exhausted after 2 attempts: context deadline exceeded"},
		{"parked", store.DeliveryParked, "", "subscription disabled: endpoint returned 410 Gone", "subscription disabled: endpoint returned 410 Gone"},
		{"retrying with a delivery error", store.DeliveryRetrying, "connection reset", "endpoint failing since 10:00", "endpoint failing since 10:00"},
		{"retrying without", store.DeliveryRetrying, "connection reset", "", "connection reset"},
		{"succeeded", store.DeliverySucceeded, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := SeedFor(t, s, sub, Base)
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(failed(f.Delivery, 1), store.DeliveryRetrying)}), "RecordAttempts(1)")
			a := delivered(f.Delivery, 2)
			if tc.attemptError != "" {
				a = failed(f.Delivery, 2)
				a.Error = tc.attemptError
			}
			r := result(a, tc.status)
			r.DeliveryError = tc.deliveryError
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{r}), "RecordAttempts(2)")
			if got := getDelivery(t, s, f.Delivery.ID); got.LastError != tc.want || got.Status != tc.status {
				t.Fatalf("delivery %s with LastError %q, want %s with %q", got.Status, got.LastError, tc.status, tc.want)
			}
			as := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: f.Delivery.ID})
			if len(as) != 2 || as[0].Number != 2 || as[0].Error != tc.attemptError {
				t.Fatalf("attempts %+v; want attempt 2 first, with its own error %q", as, tc.attemptError)
			}
		})
	}
}

// testInsertFanoutSchedules: a delivery InsertFanout inserts with a due
// time gets a scheduled retry of its next attempt (attempt 1 for a new
// one) then and keeps its status; one that existed, one without a due
// time, the second of two rows with one id, a repeat of the call after the
// retries were completed and a call that fails schedule nothing.
func testInsertFanoutSchedules(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	due := Base.Add(time.Minute)
	// A delivery sent and delivered before: fanning it out again with a
	// due time schedules nothing.
	old := SeedFor(t, s, sub, Base)
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(delivered(old.Delivery, 1), store.DeliverySucceeded)}), "RecordAttempts")
	oldBefore := getDelivery(t, s, old.Delivery.ID)
	oldAgain := old.Delivery
	oldAgain.NextAttemptAt = due

	ev := NewEvent("acme", "hookline.test", Base.Add(time.Second))
	test := NewDelivery(ev, sub, ev.ReceivedAt)
	test.NextAttemptAt = due
	plainEv := NewEvent("acme", "order.created", Base.Add(time.Second))
	plain := NewDelivery(plainEv, sub, plainEv.ReceivedAt)
	// Of two rows with one id the first counts: the second's due time is
	// not stored, and nothing is scheduled.
	dupEv := NewEvent("acme", "order.created", Base.Add(time.Second))
	dup := NewDelivery(dupEv, sub, dupEv.ReceivedAt)
	dupDue := dup
	dupDue.NextAttemptAt = due
	// A delivery inserted with attempts made (copied from elsewhere) is
	// scheduled its next attempt.
	resumedEv := NewEvent("acme", "order.created", Base.Add(time.Second))
	resumed := NewDelivery(resumedEv, sub, resumedEv.ReceivedAt)
	resumed.Status, resumed.Attempts, resumed.NextAttemptAt = store.DeliveryRetrying, 2, due
	events := []store.Event{ev, plainEv, dupEv, resumedEv}
	ds := []store.Delivery{test, plain, oldAgain, dup, dupDue, resumed}
	ids := []string{test.ID, plain.ID, old.Delivery.ID, dup.ID, resumed.ID}
	must(t, s.InsertFanout(ctx(t), events, ds), "InsertFanout")
	wantEqual(t, test, getDelivery(t, s, test.ID), "delivery inserted with a due time")
	wantEqual(t, resumed, getDelivery(t, s, resumed.ID), "delivery inserted with attempts and a due time")
	wantEqual(t, plain, getDelivery(t, s, plain.ID), "delivery inserted without one")
	wantEqual(t, dup, getDelivery(t, s, dup.ID), "delivery inserted twice in one call")
	wantEqual(t, oldBefore, getDelivery(t, s, old.Delivery.ID), "delivery that existed")

	claimed := claimDue(t, s, due, due, ids...)
	wantEqual(t, map[string]store.ScheduledRetry{
		test.ID:    {DeliveryID: test.ID, Attempt: 1, DueAt: due},
		resumed.ID: {DeliveryID: resumed.ID, Attempt: 3, DueAt: due},
	}, scheduledOf(claimed), "scheduled retries")
	wantEqual(t, ev, claimed[test.ID].Event, "scheduled first attempt's event")
	completeAll(t, s, claimed)

	// The call repeated (the admin API's request retried): the completed
	// retry does not come back.
	must(t, s.InsertFanout(ctx(t), events, ds), "InsertFanout(repeat)")
	if left := retriesDue(t, s, due.Add(time.Hour), ids...); len(left) != 0 {
		t.Fatalf("a repeated InsertFanout scheduled %+v", left)
	}
	wantEqual(t, test, getDelivery(t, s, test.ID), "delivery after a repeated InsertFanout")

	// A failing call schedules nothing.
	failEv := NewEvent("acme", "hookline.test", Base.Add(2*time.Second))
	failD := NewDelivery(failEv, sub, failEv.ReceivedAt)
	failD.NextAttemptAt = due
	bad := NewDelivery(NewEvent("acme", "hookline.test", Base.Add(2*time.Second)), sub, Base)
	bad.ID = ""
	if err := s.InsertFanout(ctx(t), []store.Event{failEv}, []store.Delivery{failD, bad}); err == nil {
		t.Fatal("InsertFanout with a delivery without an id succeeded")
	}
	_, err := s.GetDelivery(ctx(t), store.AllTenants(), failD.ID)
	wantErr(t, err, store.ErrNotFound, "GetDelivery(delivery of a failed InsertFanout)")
	if left := retriesDue(t, s, due.Add(2*time.Hour), failD.ID); len(left) != 0 {
		t.Fatalf("a failed InsertFanout scheduled %+v", left)
	}
}
