package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

func testDeliveryCreateGet(t *testing.T, s store.Store) {
	f := Seed(t, s, "acme", Base)
	got, err := s.GetDelivery(ctx(t), store.TenantScope("acme"), f.Delivery.ID)
	must(t, err, "GetDelivery")
	wantEqual(t, &f.Delivery, got, "delivery")

	// Every field round-trips, including a scheduled next attempt.
	sub := f.Sub
	ev := NewEvent("acme", "order.paid", Base.Add(time.Minute))
	must(t, s.InsertFanout(ctx(t), []store.Event{ev}, nil), "InsertFanout(events)")
	full := NewDelivery(ev, sub, Base.Add(time.Minute))
	full.Status = store.DeliveryRetrying
	full.Attempts = 2
	full.NextAttemptAt = Base.Add(time.Hour)
	full.LastStatusCode = 503
	full.LastError = "unavailable"
	full.UpdatedAt = Base.Add(2 * time.Minute)
	must(t, s.InsertFanout(ctx(t), nil, []store.Delivery{full}), "InsertFanout(deliveries)")
	wantEqual(t, full, getDelivery(t, s, full.ID), "full delivery")

	_, err = s.GetDelivery(ctx(t), store.TenantScope("globex"), f.Delivery.ID)
	wantErr(t, err, store.ErrNotFound, "GetDelivery(other tenant)")
	_, err = s.GetDelivery(ctx(t), store.AllTenants(), "dlv_missing")
	wantErr(t, err, store.ErrNotFound, "GetDelivery(missing)")
	must(t, s.InsertFanout(ctx(t), nil, nil), "InsertFanout(nothing)")
}

func testDeliveryCreateIdempotent(t *testing.T, s store.Store) {
	f := Seed(t, s, "acme", Base)
	a := NewAttempt(f.Delivery, 1, Base.Add(time.Second))
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(a, store.DeliveryRetrying)}), "RecordAttempts")
	before := getDelivery(t, s, f.Delivery.ID)

	ev2 := NewEvent("acme", "order.created", Base)
	must(t, s.InsertFanout(ctx(t), []store.Event{ev2}, nil), "InsertFanout(events)")
	d2 := NewDelivery(ev2, f.Sub, Base)
	// The repeated fan-out (pending, no attempts) must not reset the delivery.
	must(t, s.InsertFanout(ctx(t), nil, []store.Delivery{f.Delivery, d2}), "InsertFanout(deliveries again)")
	wantEqual(t, before, getDelivery(t, s, f.Delivery.ID), "delivery after repeated create")
	wantEqual(t, d2, getDelivery(t, s, d2.ID), "delivery created alongside a duplicate")
}

// deliveryWorld stores deliveries over two tenants, three subscriptions,
// several statuses and many identical creation times.
func deliveryWorld(t *testing.T, s store.Store) []store.Delivery {
	subs := []*store.Subscription{NewSubscription("acme"), NewSubscription("acme"), NewSubscription("globex")}
	statuses := []store.DeliveryStatus{store.DeliveryPending, store.DeliverySucceeded, store.DeliveryRetrying, store.DeliveryDead, store.DeliveryParked}
	var evs []store.Event
	var ds []store.Delivery
	for i := range 30 {
		sub := subs[i%len(subs)]
		at := Base.Add(time.Duration(i/4) * time.Second) // four deliveries per instant
		ev := NewEvent(sub.Tenant, "order.created", at)
		d := NewDelivery(ev, sub, at)
		d.Status = statuses[i%len(statuses)]
		evs = append(evs, ev)
		ds = append(ds, d)
		if i%7 == 0 { // an event with two deliveries
			other := subs[(i+1)%len(subs)]
			if other.Tenant == sub.Tenant {
				ds = append(ds, NewDelivery(ev, other, at))
			}
		}
	}
	for _, sub := range subs {
		must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	}
	must(t, s.InsertFanout(ctx(t), evs, ds), "InsertFanout")
	return ds
}

// newestFirst orders deliveries by CreatedAt descending, then ID descending.
func newestFirst(a, b store.Delivery) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return cmpStr(b.ID, a.ID)
}

func testDeliveryListPaging(t *testing.T, s store.Store) {
	ds := deliveryWorld(t, s)
	want := slices.Clone(ds)
	slices.SortFunc(want, newestFirst)
	for _, limit := range []int{1, 3, 4, 7, 0} {
		got := collectPages(t, func(tok string) ([]store.Delivery, string, error) {
			return s.ListDeliveries(ctx(t), store.DeliveryFilter{Scope: store.AllTenants(), Limit: limit, PageToken: tok})
		}, limit)
		wantEqual(t, want, got, "ListDeliveries pages")
	}
	// A page boundary in the middle of a group of equal CreatedAt, with
	// rows inserted after the first page was read, loses and repeats nothing
	// among the rows that existed.
	first, tok, err := s.ListDeliveries(ctx(t), store.DeliveryFilter{Scope: store.AllTenants(), Limit: 6})
	must(t, err, "ListDeliveries")
	late := Seed(t, s, "acme", Base.Add(time.Hour)) // newer than everything: lands before the cursor
	rest := collectPages(t, func(tk string) ([]store.Delivery, string, error) {
		if tk == "" {
			tk = tok
		}
		return s.ListDeliveries(ctx(t), store.DeliveryFilter{Scope: store.AllTenants(), Limit: 6, PageToken: tk})
	}, 6)
	for _, d := range rest {
		if d.ID == late.Delivery.ID {
			t.Fatal("a delivery newer than the first page showed up on a later page")
		}
	}
	wantEqual(t, want, append(first, rest...), "ListDeliveries across a concurrent insert")

	_, _, err = s.ListDeliveries(ctx(t), store.DeliveryFilter{Scope: store.AllTenants(), PageToken: "!!garbage!!"})
	if !errors.Is(err, store.ErrInvalidPageToken) {
		t.Fatalf("ListDeliveries with a garbage token: err = %v, want ErrInvalidPageToken", err)
	}
}

func testDeliveryListFilters(t *testing.T, s store.Store) {
	ds := deliveryWorld(t, s)
	sample := ds[5]
	all, acme, globex := store.AllTenants(), store.TenantScope("acme"), store.TenantScope("globex")
	filters := []store.DeliveryFilter{
		{Scope: acme},
		{Scope: globex},
		{Scope: all, SubscriptionID: sample.SubscriptionID},
		{Scope: all, EventID: ds[0].EventID},
		{Scope: all, Status: store.DeliveryRetrying},
		{Scope: all, CreatedAfter: Base.Add(2 * time.Second)},
		{Scope: all, CreatedBefore: Base.Add(3 * time.Second)},
		{Scope: all, CreatedAfter: Base.Add(2 * time.Second), CreatedBefore: Base.Add(5 * time.Second)},
		{Scope: acme, Status: store.DeliveryPending, CreatedAfter: Base.Add(time.Second)},
		{Scope: globex, SubscriptionID: sample.SubscriptionID}, // may be empty: AND, not OR
		{Scope: acme, SubscriptionID: sample.SubscriptionID, Status: sample.Status, CreatedBefore: Base.Add(6 * time.Second)},
	}
	for _, f := range filters {
		var want []store.Delivery
		for _, d := range ds {
			if f.Scope.Includes(d.Tenant) &&
				(f.SubscriptionID == "" || d.SubscriptionID == f.SubscriptionID) &&
				(f.EventID == "" || d.EventID == f.EventID) &&
				(f.Status == "" || d.Status == f.Status) &&
				(f.CreatedAfter.IsZero() || !d.CreatedAt.Before(f.CreatedAfter)) &&
				(f.CreatedBefore.IsZero() || d.CreatedAt.Before(f.CreatedBefore)) {
				want = append(want, d)
			}
		}
		slices.SortFunc(want, newestFirst)
		f.Limit = 4
		got := collectPages(t, func(tok string) ([]store.Delivery, string, error) {
			f.PageToken = tok
			return s.ListDeliveries(ctx(t), f)
		}, 4)
		wantEqual(t, want, got, "ListDeliveries filtered")
	}
}

// testInsertFanout: events and their deliveries are stored together;
// rows that exist are left as they are, new ones beside them are stored;
// an invalid delivery stores nothing, not even the events.
func testInsertFanout(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	a := NewEvent("acme", "order.created", Base)
	b := NewEvent("acme", "order.paid", Base.Add(time.Second))
	da, db := NewDelivery(a, sub, Base), NewDelivery(b, sub, Base.Add(time.Second))
	must(t, s.InsertFanout(ctx(t), []store.Event{a, b}, []store.Delivery{da, db}), "InsertFanout")
	for _, want := range []store.Event{a, b} {
		got, err := s.GetEvent(ctx(t), store.TenantScope("acme"), want.ID)
		must(t, err, "GetEvent")
		wantEqual(t, &want, got, "event")
	}
	wantEqual(t, da, getDelivery(t, s, da.ID), "delivery")
	wantEqual(t, db, getDelivery(t, s, db.ID), "delivery")

	// Repeated (a fan-out done again): existing rows are kept as they are.
	at := NewAttempt(da, 1, Base.Add(time.Second))
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{{Attempt: at, Status: store.DeliverySucceeded}}), "RecordAttempts")
	before := getDelivery(t, s, da.ID)
	changed := a
	changed.Payload = []byte(`{"changed":true}`)
	c := NewEvent("acme", "order.shipped", Base.Add(2*time.Second))
	dc := NewDelivery(c, sub, Base.Add(2*time.Second))
	must(t, s.InsertFanout(ctx(t), []store.Event{changed, c}, []store.Delivery{da, dc}), "InsertFanout(repeat)")
	got, err := s.GetEvent(ctx(t), store.AllTenants(), a.ID)
	must(t, err, "GetEvent")
	wantEqual(t, &a, got, "event after a repeated fan-out")
	wantEqual(t, before, getDelivery(t, s, da.ID), "delivery after a repeated fan-out")
	wantEqual(t, dc, getDelivery(t, s, dc.ID), "delivery stored beside a duplicate")

	// Events without deliveries (nothing matched), and nothing at all.
	lone := NewEvent("acme", "order.lone", Base.Add(3*time.Second))
	must(t, s.InsertFanout(ctx(t), []store.Event{lone}, nil), "InsertFanout(no deliveries)")
	_, err = s.GetEvent(ctx(t), store.AllTenants(), lone.ID)
	must(t, err, "GetEvent(event without deliveries)")
	must(t, s.InsertFanout(ctx(t), nil, nil), "InsertFanout(empty)")

	// All or nothing.
	orphan := NewEvent("acme", "order.orphan", Base.Add(4*time.Second))
	bad := NewDelivery(orphan, sub, Base.Add(4*time.Second))
	bad.ID = ""
	if err := s.InsertFanout(ctx(t), []store.Event{orphan}, []store.Delivery{bad}); err == nil {
		t.Fatal("InsertFanout with a delivery without an id succeeded")
	}
	_, err = s.GetEvent(ctx(t), store.AllTenants(), orphan.ID)
	wantErr(t, err, store.ErrNotFound, "GetEvent(event of a failed InsertFanout)")
}
