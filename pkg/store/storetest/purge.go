package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

func testPurge(t *testing.T, s store.Store) {
	old, cutoff, fresh := Base, Base.Add(24*time.Hour), Base.Add(48*time.Hour)
	sub := NewSubscription("acme")

	// Old deliveries in every status, each with an attempt.
	byStatus := map[store.DeliveryStatus]Fixture{}
	for _, st := range []store.DeliveryStatus{store.DeliverySucceeded, store.DeliveryDead, store.DeliveryPending, store.DeliveryRetrying, store.DeliveryParked} {
		f := SeedFor(t, s, sub, old)
		if st != store.DeliveryPending {
			must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(NewAttempt(f.Delivery, 1, old), st)}), "RecordAttempts")
		}
		byStatus[st] = f
	}
	// An old delivery parked before any attempt: it stays.
	parkedEarly := SeedFor(t, s, sub, old)
	must(t, s.ParkDeliveries(ctx(t), []string{parkedEarly.Delivery.ID}, old), "ParkDeliveries")
	// An old event shared by a dead and a retrying delivery: it stays.
	other := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), other, 0), "CreateSubscription")
	shared := byStatus[store.DeliveryRetrying].Event
	sharedDead := NewDelivery(shared, other, old)
	must(t, s.InsertFanout(ctx(t), nil, []store.Delivery{sharedDead}), "InsertFanout(deliveries)")
	must(t, s.MarkDead(ctx(t), []string{sharedDead.ID}, "gone", old), "MarkDead")
	// A fresh succeeded delivery, an old event with no deliveries, keys.
	freshF := SeedFor(t, s, sub, fresh)
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(NewAttempt(freshF.Delivery, 1, fresh), store.DeliverySucceeded)}), "RecordAttempts")
	lonely := NewEvent("acme", "order.created", old)
	must(t, s.InsertFanout(ctx(t), []store.Event{lonely}, nil), "InsertFanout(events)")
	_, err := putKey(t, s, "acme", "old", lonely.ID, old)
	must(t, err, "PutIdempotencyKey")
	_, err = putKey(t, s, "acme", "fresh", freshF.Event.ID, fresh)
	must(t, err, "PutIdempotencyKey")

	total := 0
	for i := 0; ; i++ {
		if i > 50 {
			t.Fatal("Purge does not finish")
		}
		n, err := s.Purge(ctx(t), cutoff, 2)
		must(t, err, "Purge")
		if n < 0 || n > 2 {
			t.Fatalf("Purge(limit 2) removed %d", n)
		}
		if n == 0 {
			break
		}
		total += n
	}
	// Gone: succeeded + dead deliveries (3) and their attempts (2), their
	// two unshared events, the lonely event, the old key.
	if want := 3 + 2 + 2 + 1 + 1; total != want {
		t.Fatalf("Purge removed %d rows in total, want %d", total, want)
	}
	for _, f := range []Fixture{byStatus[store.DeliverySucceeded], byStatus[store.DeliveryDead]} {
		_, err := s.GetDelivery(ctx(t), store.AllTenants(), f.Delivery.ID)
		wantErr(t, err, store.ErrNotFound, "GetDelivery(purged)")
		_, err = s.GetEvent(ctx(t), store.AllTenants(), f.Event.ID)
		wantErr(t, err, store.ErrNotFound, "GetEvent(purged)")
		if as := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: f.Delivery.ID}); len(as) != 0 {
			t.Fatalf("attempts of a purged delivery remain: %d", len(as))
		}
	}
	_, err = s.GetDelivery(ctx(t), store.AllTenants(), sharedDead.ID)
	wantErr(t, err, store.ErrNotFound, "GetDelivery(purged shared)")
	_, err = s.GetEvent(ctx(t), store.AllTenants(), lonely.ID)
	wantErr(t, err, store.ErrNotFound, "GetEvent(lonely)")
	// Kept: live deliveries with their events and attempts, fresh rows.
	for _, st := range []store.DeliveryStatus{store.DeliveryPending, store.DeliveryRetrying, store.DeliveryParked} {
		f := byStatus[st]
		getDelivery(t, s, f.Delivery.ID)
		_, err := s.GetEvent(ctx(t), store.AllTenants(), f.Event.ID)
		must(t, err, "GetEvent(kept, "+string(st)+")")
	}
	if as := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: byStatus[store.DeliveryRetrying].Delivery.ID}); len(as) != 1 {
		t.Fatalf("attempts of a retrying delivery: %d, want 1", len(as))
	}
	if got := getDelivery(t, s, parkedEarly.Delivery.ID); got.Status != store.DeliveryParked {
		t.Fatalf("parked delivery became %q", got.Status)
	}
	_, err = s.GetEvent(ctx(t), store.AllTenants(), parkedEarly.Event.ID)
	must(t, err, "GetEvent(parked early)")
	getDelivery(t, s, freshF.Delivery.ID)
	if as := listAllAttempts(t, s, store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: freshF.Delivery.ID}); len(as) != 1 {
		t.Fatalf("attempts of a fresh delivery: %d, want 1", len(as))
	}
	if _, found, err := lookupKey(t, s, "acme", "old"); err != nil || found {
		t.Fatalf("old key: found %v, err %v", found, err)
	}
	if _, found, err := lookupKey(t, s, "acme", "fresh"); err != nil || !found {
		t.Fatalf("fresh key: found %v, err %v", found, err)
	}
}

func testPurgeLimit(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	for range 7 {
		f := SeedFor(t, s, sub, Base)
		must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(NewAttempt(f.Delivery, 1, Base), store.DeliverySucceeded)}), "RecordAttempts")
	}
	n, err := s.Purge(ctx(t), Base.Add(time.Hour), 5)
	must(t, err, "Purge")
	if n != 5 {
		t.Fatalf("Purge(limit 5) removed %d, want 5", n)
	}
	n, err = s.Purge(ctx(t), Base.Add(time.Hour), 0)
	must(t, err, "Purge(limit 0)")
	if n != 0 {
		t.Fatalf("Purge(limit 0) removed %d", n)
	}
	// Nothing is older than Base: a cutoff at Base removes nothing.
	n, err = s.Purge(ctx(t), Base, 100)
	must(t, err, "Purge")
	if n != 0 {
		t.Fatalf("Purge before every row removed %d", n)
	}
	n, err = s.Purge(ctx(t), Base.Add(time.Hour), 1000)
	must(t, err, "Purge")
	if n != 7*3-5 {
		t.Fatalf("Purge removed %d, want %d", n, 7*3-5)
	}
}

func testReady(t *testing.T, s store.Store) {
	must(t, s.Ready(ctx(t)), "Ready")
}

func testCloseIdempotent(t *testing.T, s store.Store) {
	must(t, s.Close(), "Close")
	must(t, s.Close(), "Close(again)")
	if err := s.Ready(ctx(t)); err == nil {
		t.Fatal("Ready succeeded after Close")
	}
	_, err := s.GetSubscription(ctx(t), store.AllTenants(), "sub_x")
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSubscription after Close: %v, want a non-NotFound error", err)
	}
}
