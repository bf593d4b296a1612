package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

func testEventInsertGet(t *testing.T, s store.Store) {
	a := NewEvent("acme", "order.created", Base)
	b := NewEvent("acme", "order.paid", Base.Add(time.Second))
	b.Labels = nil
	b.Payload = []byte(`{"bin":"\u0000\u00ff"}`)
	must(t, s.InsertEvents(ctx(t), []store.Event{a, b}), "InsertEvents")
	for _, want := range []store.Event{a, b} {
		got, err := s.GetEvent(ctx(t), "acme", want.ID)
		must(t, err, "GetEvent")
		wantEqual(t, &want, got, "event")
	}
	_, err := s.GetEvent(ctx(t), "globex", a.ID)
	wantErr(t, err, store.ErrNotFound, "GetEvent(other tenant)")
	_, err = s.GetEvent(ctx(t), "", "evt_missing")
	wantErr(t, err, store.ErrNotFound, "GetEvent(missing)")
	must(t, s.InsertEvents(ctx(t), nil), "InsertEvents(empty)")
}

func testEventInsertIdempotent(t *testing.T, s store.Store) {
	a := NewEvent("acme", "order.created", Base)
	must(t, s.InsertEvents(ctx(t), []store.Event{a}), "InsertEvents")
	changed := a
	changed.Payload = []byte(`{"changed":true}`)
	changed.Type = "order.changed"
	fresh := NewEvent("acme", "order.created", Base.Add(time.Minute))
	must(t, s.InsertEvents(ctx(t), []store.Event{changed, fresh, a}), "InsertEvents(repeat)")
	got, err := s.GetEvent(ctx(t), "", a.ID)
	must(t, err, "GetEvent")
	wantEqual(t, &a, got, "event after repeated insert")
	got, err = s.GetEvent(ctx(t), "", fresh.ID)
	must(t, err, "GetEvent(fresh)")
	wantEqual(t, &fresh, got, "event inserted alongside a duplicate")
}

func testIdempotencyKey(t *testing.T, s store.Store) {
	_, found, err := s.LookupIdempotencyKey(ctx(t), "acme", "k1")
	must(t, err, "LookupIdempotencyKey")
	if found {
		t.Fatal("found a key never put")
	}
	id, err := s.PutIdempotencyKey(ctx(t), "acme", "k1", "evt_first", Base)
	must(t, err, "PutIdempotencyKey")
	if id != "evt_first" {
		t.Fatalf("PutIdempotencyKey returned %q, want evt_first", id)
	}
	id, err = s.PutIdempotencyKey(ctx(t), "acme", "k1", "evt_second", Base.Add(time.Second))
	must(t, err, "PutIdempotencyKey(again)")
	if id != "evt_first" {
		t.Fatalf("second PutIdempotencyKey returned %q, want evt_first (first writer wins)", id)
	}
	id, found, err = s.LookupIdempotencyKey(ctx(t), "acme", "k1")
	must(t, err, "LookupIdempotencyKey")
	if !found || id != "evt_first" {
		t.Fatalf("LookupIdempotencyKey = %q, %v; want evt_first, true", id, found)
	}
	// Keys are per tenant.
	id, err = s.PutIdempotencyKey(ctx(t), "globex", "k1", "evt_globex", Base)
	must(t, err, "PutIdempotencyKey(other tenant)")
	if id != "evt_globex" {
		t.Fatalf("other tenant's key returned %q", id)
	}
}

func testIdempotencyKeyConcurrent(t *testing.T, s store.Store) {
	const n = 16
	results := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.PutIdempotencyKey(ctx(t), "acme", "race", fmt.Sprintf("evt_%02d", i), Base)
		})
	}
	wg.Wait()
	for i := range n {
		must(t, errs[i], "PutIdempotencyKey")
		if results[i] != results[0] {
			t.Fatalf("racing PutIdempotencyKey returned %q and %q", results[0], results[i])
		}
	}
	id, found, err := s.LookupIdempotencyKey(ctx(t), "acme", "race")
	must(t, err, "LookupIdempotencyKey")
	if !found || id != results[0] {
		t.Fatalf("LookupIdempotencyKey = %q, %v; want %q", id, found, results[0])
	}
}
