package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// result is attempt a with outcome st. A retrying outcome needs a due
// time: its next attempt is due an hour after a started (retryingAt sets
// another).
func result(a store.Attempt, st store.DeliveryStatus) store.AttemptResult {
	r := store.AttemptResult{Attempt: a, Status: st}
	if st == store.DeliveryRetrying {
		r.NextAttemptAt = a.StartedAt.Add(time.Hour)
	}
	return r
}

// retryingAt is attempt a failed, its next attempt due at due.
func retryingAt(a store.Attempt, due time.Time) store.AttemptResult {
	return store.AttemptResult{Attempt: a, Status: store.DeliveryRetrying, NextAttemptAt: due}
}

// scheduledAttempt is the attempt number of the delivery's scheduled retry
// (0: none), found by claiming, for a nanosecond, every retry due within a
// year of Base.
func scheduledAttempt(t *testing.T, s store.Store, deliveryID string) int {
	t.Helper()
	for _, d := range claim(t, s, Base.Add(365*24*time.Hour), 1000, time.Nanosecond) {
		if d.DeliveryID == deliveryID {
			return d.Attempt
		}
	}
	return 0
}

func listAllAttempts(t *testing.T, s store.Store, f store.AttemptFilter) []store.Attempt {
	t.Helper()
	return collectPages(t, func(tok string) ([]store.Attempt, string, error) {
		f.PageToken = tok
		return s.ListAttempts(ctx(t), f)
	}, f.Limit)
}

func testAttemptsForwardOnly(t *testing.T, s store.Store) {
	f := Seed(t, s, "acme", Base)
	d := f.Delivery

	a1 := NewAttempt(d, 1, Base.Add(time.Second))
	a1.StatusCode, a1.Error = 0, "dial tcp: connection refused"
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(a1, store.DeliveryRetrying)}), "RecordAttempts(1)")
	got := getDelivery(t, s, d.ID)
	if got.Status != store.DeliveryRetrying || got.Attempts != 1 || got.LastStatusCode != 0 || got.LastError != a1.Error {
		t.Fatalf("after attempt 1: %+v", got)
	}
	if end := a1.StartedAt.Add(a1.Duration); !got.UpdatedAt.Equal(end) {
		t.Fatalf("UpdatedAt %v, want end of attempt 1 %v", got.UpdatedAt, end)
	}

	a3 := NewAttempt(d, 3, Base.Add(time.Hour))
	a3.StatusCode, a3.ResponseBody = 200, []byte("ok")
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(a3, store.DeliverySucceeded)}), "RecordAttempts(3)")
	after3 := getDelivery(t, s, d.ID)
	if after3.Status != store.DeliverySucceeded || after3.Attempts != 3 || after3.LastStatusCode != 200 || after3.LastError != "" {
		t.Fatalf("after attempt 3: %+v", after3)
	}

	// Attempt 2 arrives late: it is recorded but moves nothing.
	a2 := NewAttempt(d, 2, Base.Add(30*time.Minute))
	a2.StatusCode = 502
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(a2, store.DeliveryRetrying)}), "RecordAttempts(2)")
	wantEqual(t, after3, getDelivery(t, s, d.ID), "delivery after a late lower attempt")

	got3 := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: d.ID})
	wantEqual(t, []store.Attempt{a3, a2, a1}, got3, "attempts of the delivery")
}

// testAttemptsRepeatRecorded: an attempt under a number already recorded
// is the same attempt written again when its start time is the same
// (ignored), and another request otherwise, recorded as a repeat under the
// delivery's next number: a repeat that succeeded makes the delivery
// succeeded, any other keeps its status and moves its scheduled retry past
// the new number.
func testAttemptsRepeatRecorded(t *testing.T, s store.Store) {
	tests := []struct {
		name       string
		first      store.DeliveryStatus // attempt 1's outcome
		repeat     store.DeliveryStatus // the repeat's outcome
		wantStatus store.DeliveryStatus
		wantRetry  int // attempt number of the scheduled retry; 0: none
	}{
		{"failed, then a repeat succeeded", store.DeliveryRetrying, store.DeliverySucceeded, store.DeliverySucceeded, 0},
		{"failed, then a repeat failed", store.DeliveryRetrying, store.DeliveryRetrying, store.DeliveryRetrying, 3},
		{"succeeded, then a repeat failed", store.DeliverySucceeded, store.DeliveryRetrying, store.DeliverySucceeded, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Seed(t, s, fmt.Sprintf("repeat%d", i), Base)
			a := NewAttempt(f.Delivery, 1, Base.Add(time.Second))
			if tt.first == store.DeliverySucceeded {
				a.StatusCode = 200
			}
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(a, tt.first)}), "RecordAttempts")
			due := getDelivery(t, s, f.Delivery.ID).NextAttemptAt

			// The same attempt written again changes nothing.
			again := a
			again.StatusCode = 201
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(again, store.DeliverySucceeded)}), "RecordAttempts(same attempt)")
			if got := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: f.Delivery.ID}); len(got) != 1 {
				t.Fatalf("%d attempts after the same attempt was written again; want 1", len(got))
			}

			rep := a
			rep.StartedAt = Base.Add(time.Minute)
			rep.StatusCode = 500
			if tt.repeat == store.DeliverySucceeded {
				rep.StatusCode = 200
			}
			for range 2 { // the second time, the same repeat written again
				must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(rep, tt.repeat)}), "RecordAttempts(repeat)")
			}
			got := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: f.Delivery.ID})
			want2 := rep
			want2.Number = 2
			wantEqual(t, []store.Attempt{want2, a}, got, "attempts after the repeat")
			d := getDelivery(t, s, f.Delivery.ID)
			if d.Status != tt.wantStatus || d.Attempts != 2 {
				t.Fatalf("delivery %s after %d attempts; want %s after 2", d.Status, d.Attempts, tt.wantStatus)
			}
			rs := scheduledAttempt(t, s, f.Delivery.ID)
			switch {
			case tt.wantRetry == 0 && rs != 0:
				t.Fatalf("attempt %d still scheduled; want none", rs)
			case tt.wantRetry != 0 && (rs != tt.wantRetry || !d.NextAttemptAt.Equal(due)):
				t.Fatalf("attempt %d scheduled, delivery due %v; want attempt %d due %v as before", rs, d.NextAttemptAt, tt.wantRetry, due)
			}
		})
	}
}

// testAttemptsRepeatAfterRelease: when a repeat comes after the
// delivery's scheduled retry was released (claimed and completed: its
// message is on its way or was handled already), the repeat's own
// consequence holds, so that a retrying delivery always has a next
// attempt coming: a failed repeat schedules the next attempt at its due
// time, a dead one ends the delivery, a succeeded one succeeds it. (The
// chaos test found deliveries retrying forever: a redelivered attempt
// recorded as unknown, its retry released, then the original request's
// failure recorded late as a repeat, with nothing scheduled after it.)
func testAttemptsRepeatAfterRelease(t *testing.T, s store.Store) {
	tests := []struct {
		name       string
		repeat     store.DeliveryStatus
		wantStatus store.DeliveryStatus
		wantRetry  int
	}{
		{"a failed repeat schedules the next attempt", store.DeliveryRetrying, store.DeliveryRetrying, 3},
		{"a dead repeat ends the delivery", store.DeliveryDead, store.DeliveryDead, 0},
		{"a succeeded repeat succeeds", store.DeliverySucceeded, store.DeliverySucceeded, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Seed(t, s, fmt.Sprintf("released%d", i), Base)
			first := NewAttempt(f.Delivery, 1, Base.Add(time.Second))
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(first, Base.Add(2*time.Second))}), "RecordAttempts(attempt 1)")
			// The scheduler releases attempt 2.
			var released []store.ScheduledRetry
			for _, d := range claim(t, s, Base.Add(2*time.Second), 1000, time.Minute) {
				if d.DeliveryID == f.Delivery.ID {
					released = append(released, d.ScheduledRetry)
				}
			}
			if len(released) != 1 || released[0].Attempt != 2 {
				t.Fatalf("claimed %+v; want attempt 2 of %s", released, f.Delivery.ID)
			}
			must(t, s.CompleteRetries(ctx(t), released), "CompleteRetries")
			// Attempt 1 made by another request too, recorded late: a
			// repeat, under number 2.
			other := first
			other.StartedAt = Base.Add(1500 * time.Millisecond)
			due := Base.Add(time.Hour)
			rep := store.AttemptResult{Attempt: other, Status: tt.repeat}
			switch tt.repeat {
			case store.DeliveryRetrying:
				rep.NextAttemptAt = due
			case store.DeliveryDead:
				rep.DeliveryError = "retry schedule exhausted"
			case store.DeliverySucceeded:
				rep.Attempt.StatusCode = 200
			}
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{rep}), "RecordAttempts(repeat)")
			d := getDelivery(t, s, f.Delivery.ID)
			if d.Status != tt.wantStatus || d.Attempts != 2 {
				t.Fatalf("delivery %s after %d attempts; want %s after 2", d.Status, d.Attempts, tt.wantStatus)
			}
			if got := scheduledAttempt(t, s, f.Delivery.ID); got != tt.wantRetry {
				t.Fatalf("attempt %d scheduled; want %d", got, tt.wantRetry)
			}
			if tt.wantRetry != 0 && !d.NextAttemptAt.Equal(due) {
				t.Fatalf("next attempt due %v; want %v", d.NextAttemptAt, due)
			}
			if tt.wantStatus == store.DeliveryDead && d.LastError != "retry schedule exhausted" {
				t.Fatalf("last error %q; want the dead-lettering reason", d.LastError)
			}
		})
	}
}

func testAttemptsBatch(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	var fs []Fixture
	for i := range 20 {
		fs = append(fs, SeedFor(t, s, sub, Base.Add(time.Duration(i)*time.Millisecond)))
	}
	// One batch: several attempts per delivery, highest number first for
	// some, plus a repeat of an attempt within the same batch.
	var batch []store.AttemptResult
	want := map[string]store.DeliveryStatus{}
	for i, f := range fs {
		n := 1 + i%3
		for k := n; k >= 1; k-- {
			a := NewAttempt(f.Delivery, k, Base.Add(time.Duration(k)*time.Minute))
			st := store.DeliveryRetrying
			if k == n && i%2 == 0 {
				st = store.DeliverySucceeded
				a.StatusCode = 204
			}
			batch = append(batch, result(a, st))
			if k == n {
				want[f.Delivery.ID] = st
			}
		}
		if i%2 == 1 { // attempt 1 written twice in one batch (same start) counts once
			batch = append(batch, result(NewAttempt(f.Delivery, 1, Base.Add(time.Minute)), store.DeliveryDead))
		}
	}
	must(t, s.RecordAttempts(ctx(t), batch), "RecordAttempts(batch)")
	for i, f := range fs {
		got := getDelivery(t, s, f.Delivery.ID)
		n := 1 + i%3
		if got.Status != want[f.Delivery.ID] || got.Attempts != n {
			t.Fatalf("delivery %d: status %q attempts %d, want %q %d", i, got.Status, got.Attempts, want[f.Delivery.ID], n)
		}
		if as := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: f.Delivery.ID}); len(as) != n {
			t.Fatalf("delivery %d: %d attempts recorded, want %d", i, len(as), n)
		}
	}
}

func testAttemptsFinalClearsNext(t *testing.T, s store.Store) {
	for _, st := range []store.DeliveryStatus{store.DeliverySucceeded, store.DeliveryDead, store.DeliveryParked} {
		f := Seed(t, s, "acme", Base)
		must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: f.Delivery.ID, Attempt: 1, DueAt: Base}}), "ScheduleRetries")
		if got := getDelivery(t, s, f.Delivery.ID); !got.NextAttemptAt.Equal(Base) {
			t.Fatalf("NextAttemptAt %v after scheduling, want %v", got.NextAttemptAt, Base)
		}
		a := NewAttempt(f.Delivery, 1, Base.Add(time.Second))
		must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(a, st)}), "RecordAttempts")
		got := getDelivery(t, s, f.Delivery.ID)
		if got.Status != st || !got.NextAttemptAt.IsZero() {
			t.Fatalf("after a %s attempt: status %q NextAttemptAt %v", st, got.Status, got.NextAttemptAt)
		}
		// The retry for the attempt just made is not claimed again.
		due, err := s.ClaimDueRetries(ctx(t), Base.Add(time.Hour), 10, time.Minute)
		must(t, err, "ClaimDueRetries")
		if len(due) != 0 {
			t.Fatalf("after a %s attempt, claimed %+v", st, due)
		}
	}
	// A retrying outcome replaces the scheduled time with its own.
	f := Seed(t, s, "acme", Base)
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: f.Delivery.ID, Attempt: 2, DueAt: Base.Add(time.Hour)}}), "ScheduleRetries")
	due := Base.Add(2 * time.Hour)
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(NewAttempt(f.Delivery, 1, Base), due)}), "RecordAttempts")
	if got := getDelivery(t, s, f.Delivery.ID); !got.NextAttemptAt.Equal(due) {
		t.Fatalf("after a retrying attempt NextAttemptAt is %v, want %v", got.NextAttemptAt, due)
	}
	want := map[string]store.ScheduledRetry{f.Delivery.ID: {DeliveryID: f.Delivery.ID, Attempt: 2, DueAt: due}}
	wantEqual(t, want, retriesDue(t, s, due, f.Delivery.ID), "retry after a retrying attempt")
}

// newestAttemptFirst: StartedAt descending, then DeliveryID descending,
// then Number descending.
func newestAttemptFirst(a, b store.Attempt) int {
	if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
		return c
	}
	if c := cmpStr(b.DeliveryID, a.DeliveryID); c != 0 {
		return c
	}
	return b.Number - a.Number
}

func testAttemptsList(t *testing.T, s store.Store) {
	subs := []*store.Subscription{NewSubscription("acme"), NewSubscription("acme"), NewSubscription("globex")}
	var all []store.Attempt
	var batch []store.AttemptResult
	var fs []Fixture
	for i := range 12 {
		f := SeedFor(t, s, subs[i%3], Base.Add(time.Duration(i)*time.Second))
		fs = append(fs, f)
		for n := 1; n <= 1+i%3; n++ {
			// Many equal StartedAt values, across and within deliveries
			// (attempts 2 and 3 of a delivery start at the same instant).
			a := NewAttempt(f.Delivery, n, Base.Add(time.Duration((i+n/2)%4)*time.Minute))
			a.Duration = time.Duration(i*n) * time.Millisecond
			a.ResponseBody = []byte(fmt.Sprintf("body %d/%d", i, n))
			a.Error = fmt.Sprintf("error %d/%d", i, n)
			all = append(all, a)
			batch = append(batch, result(a, store.DeliveryRetrying))
		}
	}
	must(t, s.RecordAttempts(ctx(t), batch), "RecordAttempts")
	every, acme, globex := store.AllTenants(), store.TenantScope("acme"), store.TenantScope("globex")
	filters := []store.AttemptFilter{
		{Scope: every},
		{Scope: acme},
		{Scope: globex},
		{Scope: every, DeliveryID: fs[5].Delivery.ID},
		{Scope: every, SubscriptionID: subs[1].ID},
		{Scope: every, EventID: fs[8].Event.ID},
		{Scope: acme, SubscriptionID: subs[0].ID},
		{Scope: globex, SubscriptionID: subs[0].ID},
	}
	for _, f := range filters {
		var want []store.Attempt
		for _, a := range all {
			if f.Scope.Includes(a.Tenant) &&
				(f.DeliveryID == "" || a.DeliveryID == f.DeliveryID) &&
				(f.SubscriptionID == "" || a.SubscriptionID == f.SubscriptionID) &&
				(f.EventID == "" || a.EventID == f.EventID) {
				want = append(want, a)
			}
		}
		slices.SortFunc(want, newestAttemptFirst)
		for _, limit := range []int{2, 5, 0} {
			f.Limit = limit
			wantEqual(t, want, listAllAttempts(t, s, f), fmt.Sprintf("ListAttempts(%+v)", f))
		}
	}
	_, _, err := s.ListAttempts(ctx(t), store.AttemptFilter{Scope: store.AllTenants(), PageToken: "@@@"})
	if !errors.Is(err, store.ErrInvalidPageToken) {
		t.Fatalf("ListAttempts with a garbage token: err = %v, want ErrInvalidPageToken", err)
	}
}
