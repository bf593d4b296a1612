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
	must(t, s.InsertFanout(ctx(t), []store.Event{a, b}, nil), "InsertFanout(events)")
	for _, want := range []store.Event{a, b} {
		got, err := s.GetEvent(ctx(t), store.TenantScope("acme"), want.ID)
		must(t, err, "GetEvent")
		wantEqual(t, &want, got, "event")
	}
	_, err := s.GetEvent(ctx(t), store.TenantScope("globex"), a.ID)
	wantErr(t, err, store.ErrNotFound, "GetEvent(other tenant)")
	_, err = s.GetEvent(ctx(t), store.AllTenants(), "evt_missing")
	wantErr(t, err, store.ErrNotFound, "GetEvent(missing)")
	must(t, s.InsertFanout(ctx(t), nil, nil), "InsertFanout(nothing)")
}

func testEventInsertIdempotent(t *testing.T, s store.Store) {
	a := NewEvent("acme", "order.created", Base)
	must(t, s.InsertFanout(ctx(t), []store.Event{a}, nil), "InsertFanout(events)")
	changed := a
	changed.Payload = []byte(`{"changed":true}`)
	changed.Type = "order.changed"
	fresh := NewEvent("acme", "order.created", Base.Add(time.Minute))
	must(t, s.InsertFanout(ctx(t), []store.Event{changed, fresh, a}, nil), "InsertFanout(events again)")
	got, err := s.GetEvent(ctx(t), store.AllTenants(), a.ID)
	must(t, err, "GetEvent")
	wantEqual(t, &a, got, "event after repeated insert")
	got, err = s.GetEvent(ctx(t), store.AllTenants(), fresh.ID)
	must(t, err, "GetEvent(fresh)")
	wantEqual(t, &fresh, got, "event inserted alongside a duplicate")
}

func testIdempotencyKey(t *testing.T, s store.Store) {
	_, found, err := lookupKey(t, s, "acme", "k1")
	must(t, err, "LookupIdempotencyKey")
	if found {
		t.Fatal("found a key never put")
	}
	id, err := putKey(t, s, "acme", "k1", "evt_first", Base)
	must(t, err, "PutIdempotencyKey")
	if id != "evt_first" {
		t.Fatalf("PutIdempotencyKey returned %q, want evt_first", id)
	}
	id, err = putKey(t, s, "acme", "k1", "evt_second", Base.Add(time.Second))
	must(t, err, "PutIdempotencyKey(again)")
	if id != "evt_first" {
		t.Fatalf("second PutIdempotencyKey returned %q, want evt_first (first writer wins)", id)
	}
	id, found, err = lookupKey(t, s, "acme", "k1")
	must(t, err, "LookupIdempotencyKey")
	if !found || id != "evt_first" {
		t.Fatalf("LookupIdempotencyKey = %q, %v; want evt_first, true", id, found)
	}
	// Keys are per tenant.
	id, err = putKey(t, s, "globex", "k1", "evt_globex", Base)
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
			results[i], errs[i] = putKey(t, s, "acme", "race", fmt.Sprintf("evt_%02d", i), Base)
		})
	}
	wg.Wait()
	for i := range n {
		must(t, errs[i], "PutIdempotencyKey")
		if results[i] != results[0] {
			t.Fatalf("racing PutIdempotencyKey returned %q and %q", results[0], results[i])
		}
	}
	id, found, err := lookupKey(t, s, "acme", "race")
	must(t, err, "LookupIdempotencyKey")
	if !found || id != results[0] {
		t.Fatalf("LookupIdempotencyKey = %q, %v; want %q", id, found, results[0])
	}
}

// lookupKey looks up one key through LookupIdempotencyKeys.
func lookupKey(t *testing.T, s store.Store, tenant, key string) (string, bool, error) {
	k := store.IdempotencyKey{Tenant: tenant, Key: key}
	got, err := s.LookupIdempotencyKeys(ctx(t), []store.IdempotencyKey{k})
	id, found := got[k]
	return id, found, err
}

// putKey records one key through PutIdempotencyKeys.
func putKey(t *testing.T, s store.Store, tenant, key, eventID string, now time.Time) (string, error) {
	ids, err := s.PutIdempotencyKeys(ctx(t), []store.IdempotencyRecord{{IdempotencyKey: store.IdempotencyKey{Tenant: tenant, Key: key}, EventID: eventID}}, now)
	if err != nil {
		return "", err
	}
	if len(ids) != 1 {
		t.Fatalf("PutIdempotencyKeys returned %d ids for 1 record", len(ids))
	}
	return ids[0], nil
}

func testIdempotencyKeysBatch(t *testing.T, s store.Store) {
	key := func(tenant, k string) store.IdempotencyKey { return store.IdempotencyKey{Tenant: tenant, Key: k} }
	if _, err := putKey(t, s, "acme", "old", "evt_old", Base); err != nil {
		t.Fatal(err)
	}
	recs := []store.IdempotencyRecord{
		{IdempotencyKey: key("acme", "new1"), EventID: "evt_new1"},
		{IdempotencyKey: key("acme", "old"), EventID: "evt_other"},     // recorded before: keeps evt_old
		{IdempotencyKey: key("acme", "new1"), EventID: "evt_dup"},      // earlier in this batch wins
		{IdempotencyKey: key("globex", "new1"), EventID: "evt_globex"}, // another tenant's key
	}
	got, err := s.PutIdempotencyKeys(ctx(t), recs, Base)
	must(t, err, "PutIdempotencyKeys")
	want := []string{"evt_new1", "evt_old", "evt_new1", "evt_globex"}
	wantEqual(t, want, got, "PutIdempotencyKeys results")

	var keys []store.IdempotencyKey
	for i := range 600 { // more than one lookup query's worth
		keys = append(keys, key("acme", fmt.Sprintf("missing-%d", i)))
	}
	keys = append(keys, key("acme", "old"), key("acme", "new1"), key("globex", "new1"), key("globex", "old"))
	found, err := s.LookupIdempotencyKeys(ctx(t), keys)
	must(t, err, "LookupIdempotencyKeys")
	wantEqual(t, map[store.IdempotencyKey]string{
		key("acme", "old"): "evt_old", key("acme", "new1"): "evt_new1", key("globex", "new1"): "evt_globex",
	}, found, "LookupIdempotencyKeys")
	empty, err := s.LookupIdempotencyKeys(ctx(t), nil)
	must(t, err, "LookupIdempotencyKeys(nil)")
	if len(empty) != 0 {
		t.Fatalf("LookupIdempotencyKeys(nil) = %v", empty)
	}
}
