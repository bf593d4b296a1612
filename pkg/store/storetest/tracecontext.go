package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// Trace context: a subscription's SendTraceContext, an attempt's
// TraceParent and the TraceParent a scheduled retry keeps of the attempt
// that scheduled it.

// TraceParent returns a well-formed W3C traceparent (version 00, sampled)
// whose trace id and span id are derived from n, distinct for distinct n.
func TraceParent(n int) string {
	return fmt.Sprintf("00-4bf92f3577b34da6%016x-%016x-01", 0xa3ce929d0e0e4736+uint64(n), 0x00f067aa0ba902b7+uint64(n))
}

// testSubscriptionSendTraceContext: SendTraceContext round-trips through
// create, get, list and update, and is part of a create's identity.
func testSubscriptionSendTraceContext(t *testing.T, s store.Store) {
	on := NewSubscription("acme")
	on.SendTraceContext = true
	off := NewSubscription("acme")
	for _, sub := range []*store.Subscription{on, off} {
		must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	}
	subs, _, err := s.ListSubscriptions(ctx(t), store.SubscriptionFilter{Scope: store.TenantScope("acme")})
	must(t, err, "ListSubscriptions")
	listed := map[string]store.Subscription{}
	for _, sub := range subs {
		listed[sub.ID] = sub
	}
	for _, want := range []*store.Subscription{on, off} {
		wantEqual(t, want, ptr(getSubscription(t, s, want.ID)), fmt.Sprintf("got subscription (SendTraceContext %v)", want.SendTraceContext))
		got, ok := listed[want.ID]
		if !ok {
			t.Fatalf("subscription %s not listed", want.ID)
		}
		wantEqual(t, want, &got, fmt.Sprintf("listed subscription (SendTraceContext %v)", want.SendTraceContext))
	}

	// Repeating the create is idempotent; the same id with the other
	// setting is another create.
	same := *on
	must(t, s.CreateSubscription(ctx(t), &same, 0), "repeated CreateSubscription")
	flipped := *on
	flipped.SendTraceContext = false
	wantErr(t, s.CreateSubscription(ctx(t), &flipped, 0), store.ErrConflict, "CreateSubscription(same id, SendTraceContext flipped)")

	// Updates set and clear it, and keep it when they change something else.
	steps := []struct {
		name   string
		change func(*store.Subscription)
		want   bool
	}{
		{"turned off", func(s *store.Subscription) { s.SendTraceContext = false }, false},
		{"kept off by another change", func(s *store.Subscription) { s.Description = "still off" }, false},
		{"turned on", func(s *store.Subscription) { s.SendTraceContext = true }, true},
		{"kept on by another change", func(s *store.Subscription) { s.RateLimit = 3 }, true},
	}
	for i, step := range steps {
		upd := getSubscription(t, s, on.ID)
		step.change(&upd)
		upd.UpdatedAt = Base.Add(time.Duration(i+1) * time.Minute)
		must(t, s.UpdateSubscription(ctx(t), &upd), "UpdateSubscription ("+step.name+")")
		got := getSubscription(t, s, on.ID)
		if got.SendTraceContext != step.want {
			t.Fatalf("%s: SendTraceContext %v, want %v", step.name, got.SendTraceContext, step.want)
		}
		wantEqual(t, &upd, &got, "subscription "+step.name)
	}
	// Other writes leave it alone.
	must(t, s.SetSubscriptionFailing(ctx(t), on.ID, Base), "SetSubscriptionFailing")
	must(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), on.ID, store.SubscriptionDisabled, "maintenance", Base.Add(time.Hour)), "disable")
	must(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), on.ID, store.SubscriptionEnabled, "", Base.Add(2*time.Hour)), "enable")
	if got := getSubscription(t, s, on.ID); !got.SendTraceContext {
		t.Fatal("SendTraceContext cleared by a failing or state change")
	}
	if got := getSubscription(t, s, off.ID); got.SendTraceContext {
		t.Fatal("SendTraceContext of the other subscription set")
	}
}

// testAttemptsTraceParent: an attempt's TraceParent round-trips through
// RecordAttempts and ListAttempts, "" staying "", a repeat keeping its
// own.
func testAttemptsTraceParent(t *testing.T, s store.Store) {
	f := Seed(t, s, "acme", Base)
	g := Seed(t, s, "acme", Base.Add(time.Second))
	traced := NewAttempt(f.Delivery, 1, Base.Add(time.Minute))
	traced.TraceParent = TraceParent(1)
	untraced := NewAttempt(g.Delivery, 1, Base.Add(2*time.Minute))
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(traced, store.DeliveryRetrying), result(untraced, store.DeliveryRetrying)}), "RecordAttempts")
	second := NewAttempt(f.Delivery, 2, Base.Add(3*time.Minute))
	second.TraceParent = TraceParent(2)
	second.StatusCode = 200
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(second, store.DeliverySucceeded)}), "RecordAttempts(attempt 2)")
	// Attempt 1 made again by another request (a repeat, recorded as
	// attempt 3) keeps its own trace.
	rep := traced
	rep.StartedAt = Base.Add(4 * time.Minute)
	rep.TraceParent = TraceParent(3)
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(rep, store.DeliveryRetrying)}), "RecordAttempts(repeat)")
	wantRep := rep
	wantRep.Number = 3

	tests := []struct {
		name string
		f    store.AttemptFilter
		want []store.Attempt
	}{
		{"by delivery", store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: f.Delivery.ID}, []store.Attempt{wantRep, second, traced}},
		{"untraced", store.AttemptFilter{Scope: store.TenantScope("acme"), DeliveryID: g.Delivery.ID}, []store.Attempt{untraced}},
		{"paged", store.AttemptFilter{Scope: store.TenantScope("acme"), Limit: 1}, []store.Attempt{wantRep, second, untraced, traced}},
	}
	for _, tt := range tests {
		got := listAllAttempts(t, s, tt.f)
		wantEqual(t, tt.want, got, "attempts "+tt.name)
	}
}

// testRetriesTraceParentFromAttempt: a retrying result's retry keeps the
// attempt's TraceParent, and ClaimDueRetries returns it; a later retrying
// attempt replaces it; a retry that no attempt scheduled has none.
func testRetriesTraceParentFromAttempt(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	seed := func(i int) Fixture { return SeedFor(t, s, sub, Base.Add(time.Duration(i)*time.Millisecond)) }
	traced, untraced, settled, later, repeated := seed(1), seed(2), seed(3), seed(4), seed(5)
	due := Base.Add(time.Hour)

	withTrace := func(a store.Attempt, tp string) store.Attempt { a.TraceParent = tp; return a }
	// One batch with retrying and final results (on CockroachDB the
	// two-statement form of RecordAttempts).
	settledOK := withTrace(delivered(settled.Delivery, 1), TraceParent(3))
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{
		retryingAt(withTrace(failed(traced.Delivery, 1), TraceParent(1)), due),
		retryingAt(failed(untraced.Delivery, 1), due),
		result(settledOK, store.DeliverySucceeded),
		retryingAt(withTrace(failed(later.Delivery, 1), TraceParent(41)), due),
		retryingAt(withTrace(failed(repeated.Delivery, 1), TraceParent(51)), Base.Add(2*time.Minute)),
	}), "RecordAttempts(batch)")
	// A later attempt's schedule replaces the earlier one, trace included.
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{
		retryingAt(withTrace(failed(later.Delivery, 2), TraceParent(42)), due),
	}), "RecordAttempts(later attempt)")
	// The retry of repeated is released, then attempt 1 made again is
	// recorded late (a repeat): it schedules the next attempt with its own
	// trace.
	released := claimDue(t, s, Base.Add(2*time.Minute), Base.Add(2*time.Minute), repeated.Delivery.ID)
	completeAll(t, s, released)
	rep := withTrace(failed(repeated.Delivery, 1), TraceParent(52))
	rep.StartedAt = rep.StartedAt.Add(time.Second)
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{retryingAt(rep, due)}), "RecordAttempts(repeat)")

	ids := deliveryIDs(traced, untraced, settled, later, repeated)
	got := scheduledOf(claimDue(t, s, due, due, ids...))
	want := map[string]store.ScheduledRetry{
		traced.Delivery.ID:   {DeliveryID: traced.Delivery.ID, Attempt: 2, DueAt: due, TraceParent: TraceParent(1)},
		untraced.Delivery.ID: {DeliveryID: untraced.Delivery.ID, Attempt: 2, DueAt: due},
		later.Delivery.ID:    {DeliveryID: later.Delivery.ID, Attempt: 3, DueAt: due, TraceParent: TraceParent(42)},
		repeated.Delivery.ID: {DeliveryID: repeated.Delivery.ID, Attempt: 3, DueAt: due, TraceParent: TraceParent(52)},
	}
	wantEqual(t, want, got, "claimed retries")

	// Recording the same batch again (an ambiguous commit retried)
	// changes nothing, traces included.
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{
		retryingAt(withTrace(failed(traced.Delivery, 1), TraceParent(1)), due),
	}), "RecordAttempts(again)")
	wantEqual(t, want[traced.Delivery.ID], retriesDue(t, s, due.Add(2*time.Minute), traced.Delivery.ID)[traced.Delivery.ID], "retry after the batch was written again")
}

// testRetriesScheduleTraceParent: ScheduleRetries stores each retry's
// TraceParent (replacing it with the rest of the retry) and
// ClaimDueRetries returns it; CompleteRetries ignores it; a redriven
// delivery's retry has none.
func testRetriesScheduleTraceParent(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	seed := func(i int) Fixture { return SeedFor(t, s, sub, Base.Add(time.Duration(i)*time.Millisecond)) }
	a, b, c := seed(1), seed(2), seed(3)
	due := Base.Add(time.Minute)
	// Scheduled, then rescheduled: the trace is replaced with the rest of
	// the retry, set or not.
	steps := [][]store.ScheduledRetry{
		{
			{DeliveryID: a.Delivery.ID, Attempt: 2, DueAt: due, TraceParent: TraceParent(1)},
			{DeliveryID: b.Delivery.ID, Attempt: 1, DueAt: due}, // a first attempt put off
			{DeliveryID: c.Delivery.ID, Attempt: 2, DueAt: due, TraceParent: TraceParent(3)},
		},
		{
			{DeliveryID: a.Delivery.ID, Attempt: 2, DueAt: due.Add(time.Minute), TraceParent: TraceParent(11)},
			{DeliveryID: b.Delivery.ID, Attempt: 1, DueAt: due.Add(time.Minute), TraceParent: TraceParent(12)},
			{DeliveryID: c.Delivery.ID, Attempt: 2, DueAt: due.Add(time.Minute)},
		},
	}
	for i, rs := range steps {
		must(t, s.ScheduleRetries(ctx(t), rs), fmt.Sprintf("ScheduleRetries (step %d)", i+1))
	}
	last := steps[len(steps)-1]
	want := map[string]store.ScheduledRetry{}
	for _, r := range last {
		want[r.DeliveryID] = r
	}
	claimed := claimDue(t, s, due.Add(time.Minute), due.Add(time.Minute), deliveryIDs(a, b, c)...)
	wantEqual(t, want, scheduledOf(claimed), "claimed retries")

	// Completing ignores the trace: a retry is identified by its delivery,
	// attempt and due time.
	var done []store.ScheduledRetry
	for _, r := range last {
		r.TraceParent = "ignored"
		done = append(done, r)
	}
	must(t, s.CompleteRetries(ctx(t), done), "CompleteRetries")
	if left := retriesDue(t, s, due.Add(time.Hour), deliveryIDs(a, b, c)...); len(left) != 0 {
		t.Fatalf("retries left after CompleteRetries: %+v", left)
	}

	// A parked delivery redriven gets a retry no attempt scheduled.
	must(t, s.ScheduleRetries(ctx(t), []store.ScheduledRetry{{DeliveryID: a.Delivery.ID, Attempt: 2, DueAt: due, TraceParent: TraceParent(21)}}), "ScheduleRetries")
	must(t, s.ParkDeliveries(ctx(t), []string{a.Delivery.ID}, Base.Add(time.Hour)), "ParkDeliveries")
	if _, err := s.RedriveParked(ctx(t), Base.Add(2*time.Hour), 10); err != nil {
		t.Fatalf("RedriveParked: %v", err)
	}
	redriven := retriesDue(t, s, Base.Add(2*time.Hour), a.Delivery.ID)
	wantEqual(t, map[string]store.ScheduledRetry{a.Delivery.ID: {DeliveryID: a.Delivery.ID, Attempt: 1, DueAt: Base.Add(2 * time.Hour)}},
		redriven, "redriven retry")
}
