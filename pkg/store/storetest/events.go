package storetest

import (
	"fmt"
	"strings"
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
	rec, err := putKey(t, s, "acme", "k1", "evt_first", Base)
	must(t, err, "PutIdempotencyKey")
	if rec.EventID != "evt_first" {
		t.Fatalf("PutIdempotencyKey returned %q, want evt_first", rec.EventID)
	}
	rec, err = putKey(t, s, "acme", "k1", "evt_second", Base.Add(time.Second))
	must(t, err, "PutIdempotencyKey(again)")
	if rec.EventID != "evt_first" {
		t.Fatalf("second PutIdempotencyKey returned %q, want evt_first (first writer wins)", rec.EventID)
	}
	rec, found, err = lookupKey(t, s, "acme", "k1")
	must(t, err, "LookupIdempotencyKey")
	if !found || rec.EventID != "evt_first" {
		t.Fatalf("LookupIdempotencyKey = %q, %v; want evt_first, true", rec.EventID, found)
	}
	// Keys are per tenant.
	rec, err = putKey(t, s, "globex", "k1", "evt_globex", Base)
	must(t, err, "PutIdempotencyKey(other tenant)")
	if rec.EventID != "evt_globex" {
		t.Fatalf("other tenant's key returned %q", rec.EventID)
	}
}

func testIdempotencyKeyConcurrent(t *testing.T, s store.Store) {
	const n = 16
	results := make([]store.IdempotencyRecord, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = putFingerprint(t, s, idemRecord("acme", "race", fmt.Sprintf("evt_%02d", i), fmt.Sprintf("fp-%02d", i)), Base)
		})
	}
	wg.Wait()
	for i := range n {
		must(t, errs[i], "PutIdempotencyKey")
		wantEqual(t, results[0], results[i], "racing PutIdempotencyKeys results")
	}
	if want := "fp-" + strings.TrimPrefix(results[0].EventID, "evt_"); string(results[0].Fingerprint) != want {
		t.Fatalf("the kept record pairs event %s with fingerprint %q, want %q", results[0].EventID, results[0].Fingerprint, want)
	}
	rec, found, err := lookupKey(t, s, "acme", "race")
	must(t, err, "LookupIdempotencyKey")
	if !found {
		t.Fatal("LookupIdempotencyKey: the raced key is not found")
	}
	wantEqual(t, results[0], rec, "LookupIdempotencyKey after the race")
}

// idemKey is a tenant's idempotency key.
func idemKey(tenant, key string) store.IdempotencyKey {
	return store.IdempotencyKey{Tenant: tenant, Key: key}
}

// idemRecord is a record of a tenant's key with an event ID and a
// fingerprint ("" for none).
func idemRecord(tenant, key, eventID, fingerprint string) store.IdempotencyRecord {
	r := store.IdempotencyRecord{IdempotencyKey: idemKey(tenant, key), EventID: eventID}
	if fingerprint != "" {
		r.Fingerprint = []byte(fingerprint)
	}
	return r
}

// lookupKey looks up one key through LookupIdempotencyKeys.
func lookupKey(t *testing.T, s store.Store, tenant, key string) (store.IdempotencyRecord, bool, error) {
	k := idemKey(tenant, key)
	got, err := s.LookupIdempotencyKeys(ctx(t), []store.IdempotencyKey{k})
	rec, found := got[k]
	if found && rec.IdempotencyKey != k {
		t.Fatalf("LookupIdempotencyKeys returned the record of %v under %v", rec.IdempotencyKey, k)
	}
	return rec, found, err
}

// putKey records one key without a fingerprint through PutIdempotencyKeys
// and returns the record kept.
func putKey(t *testing.T, s store.Store, tenant, key, eventID string, now time.Time) (store.IdempotencyRecord, error) {
	return putFingerprint(t, s, idemRecord(tenant, key, eventID, ""), now)
}

// putFingerprint records rec through PutIdempotencyKeys and returns the
// record kept for its key.
func putFingerprint(t *testing.T, s store.Store, rec store.IdempotencyRecord, now time.Time) (store.IdempotencyRecord, error) {
	kept, err := s.PutIdempotencyKeys(ctx(t), []store.IdempotencyRecord{rec}, now)
	if err != nil {
		return store.IdempotencyRecord{}, err
	}
	if len(kept) != 1 {
		t.Fatalf("PutIdempotencyKeys returned %d records for 1", len(kept))
	}
	if kept[0].IdempotencyKey != rec.IdempotencyKey {
		t.Fatalf("PutIdempotencyKeys returned the record of %v for %v", kept[0].IdempotencyKey, rec.IdempotencyKey)
	}
	return kept[0], nil
}

func testIdempotencyKeysBatch(t *testing.T, s store.Store) {
	old := idemRecord("acme", "old", "evt_old", "fp-old")
	if _, err := putFingerprint(t, s, old, Base); err != nil {
		t.Fatal(err)
	}
	new1 := idemRecord("acme", "new1", "evt_new1", "fp-new1")
	globex := idemRecord("globex", "new1", "evt_globex", "")
	recs := []store.IdempotencyRecord{
		new1,
		idemRecord("acme", "old", "evt_other", "fp-other"), // recorded before: keeps evt_old
		idemRecord("acme", "new1", "evt_dup", "fp-dup"),    // earlier in this batch wins
		globex, // another tenant's key
	}
	got, err := s.PutIdempotencyKeys(ctx(t), recs, Base)
	must(t, err, "PutIdempotencyKeys")
	wantEqual(t, []store.IdempotencyRecord{new1, old, new1, globex}, got, "PutIdempotencyKeys results")

	var keys []store.IdempotencyKey
	for i := range 600 { // more than one lookup query's worth
		keys = append(keys, idemKey("acme", fmt.Sprintf("missing-%d", i)))
	}
	keys = append(keys, idemKey("acme", "old"), idemKey("acme", "new1"), idemKey("globex", "new1"), idemKey("globex", "old"))
	found, err := s.LookupIdempotencyKeys(ctx(t), keys)
	must(t, err, "LookupIdempotencyKeys")
	wantEqual(t, map[store.IdempotencyKey]store.IdempotencyRecord{
		old.IdempotencyKey: old, new1.IdempotencyKey: new1, globex.IdempotencyKey: globex,
	}, found, "LookupIdempotencyKeys")
	empty, err := s.LookupIdempotencyKeys(ctx(t), nil)
	must(t, err, "LookupIdempotencyKeys(nil)")
	if len(empty) != 0 {
		t.Fatalf("LookupIdempotencyKeys(nil) = %v", empty)
	}
	none, err := s.PutIdempotencyKeys(ctx(t), nil, Base)
	must(t, err, "PutIdempotencyKeys(nil)")
	if len(none) != 0 {
		t.Fatalf("PutIdempotencyKeys(nil) = %v", none)
	}
}

// testIdempotencyFingerprint: a key's fingerprint is stored with it and
// returned, byte for byte, by the Put that records it and by Lookup.
func testIdempotencyFingerprint(t *testing.T, s store.Store) {
	// A SHA-256-like fingerprint with every kind of byte, NUL included.
	fp := make([]byte, 32)
	for i := range fp {
		fp[i] = byte(i * 37)
	}
	rec := store.IdempotencyRecord{IdempotencyKey: idemKey("acme", "k1"), EventID: "evt_first", Fingerprint: fp}
	kept, err := putFingerprint(t, s, rec, Base)
	must(t, err, "PutIdempotencyKeys")
	wantEqual(t, rec, kept, "PutIdempotencyKeys result")
	if len(kept.Fingerprint) != len(fp) {
		t.Fatalf("PutIdempotencyKeys returned a fingerprint of %d bytes, want %d", len(kept.Fingerprint), len(fp))
	}
	got, found, err := lookupKey(t, s, "acme", "k1")
	must(t, err, "LookupIdempotencyKeys")
	if !found {
		t.Fatal("LookupIdempotencyKeys: the key just put is not found")
	}
	wantEqual(t, rec, got, "LookupIdempotencyKeys")
	// The store keeps its own copy: the caller's slice changing afterwards
	// changes nothing stored.
	fp[0] ^= 0xff
	got, _, err = lookupKey(t, s, "acme", "k1")
	must(t, err, "LookupIdempotencyKeys")
	if got.Fingerprint[0] == fp[0] {
		t.Fatal("the stored fingerprint changed with the caller's slice")
	}
}

// testIdempotencyFingerprintFirstWriterWins: a second Put of a key with
// another event ID and another fingerprint gets the first writer's record,
// event ID and fingerprint, and changes nothing stored (nor the key's age:
// a purge between the two times still removes it).
func testIdempotencyFingerprintFirstWriterWins(t *testing.T, s store.Store) {
	first := idemRecord("acme", "k1", "evt_first", "fp-first")
	kept, err := putFingerprint(t, s, first, Base)
	must(t, err, "PutIdempotencyKeys(first)")
	wantEqual(t, first, kept, "first PutIdempotencyKeys result")
	for _, again := range []store.IdempotencyRecord{
		idemRecord("acme", "k1", "evt_second", "fp-second"), // another request
		idemRecord("acme", "k1", "evt_third", ""),           // without a fingerprint
		first, // the same request, retried
	} {
		kept, err = putFingerprint(t, s, again, Base.Add(48*time.Hour))
		must(t, err, "PutIdempotencyKeys(again)")
		wantEqual(t, first, kept, fmt.Sprintf("PutIdempotencyKeys(%s, %q) result", again.EventID, again.Fingerprint))
	}
	got, found, err := lookupKey(t, s, "acme", "k1")
	must(t, err, "LookupIdempotencyKeys")
	if !found {
		t.Fatal("LookupIdempotencyKeys: the key is not found")
	}
	wantEqual(t, first, got, "LookupIdempotencyKeys after the second Put")
	// Another tenant's same key is its own.
	other := idemRecord("globex", "k1", "evt_globex", "fp-globex")
	kept, err = putFingerprint(t, s, other, Base)
	must(t, err, "PutIdempotencyKeys(other tenant)")
	wantEqual(t, other, kept, "PutIdempotencyKeys(other tenant) result")

	n, err := s.Purge(ctx(t), Base.Add(24*time.Hour), 100)
	must(t, err, "Purge")
	if n != 2 {
		t.Fatalf("Purge removed %d rows, want the 2 keys recorded at Base", n)
	}
	if _, found, err := lookupKey(t, s, "acme", "k1"); err != nil || found {
		t.Fatalf("key after Purge: found %v, err %v; a repeated Put must not renew it", found, err)
	}
}

// testIdempotencyFingerprintBatch: within one call, every record of a key
// gets the earliest record's event ID and fingerprint, and only it is
// stored.
func testIdempotencyFingerprintBatch(t *testing.T, s store.Store) {
	a1 := idemRecord("acme", "a", "evt_a1", "fp-a1")
	b1 := idemRecord("acme", "b", "evt_b1", "")
	recs := []store.IdempotencyRecord{
		idemRecord("acme", "z", "evt_z", "fp-z"), // unsorted: the store may sort, the results keep the call's order
		a1,
		b1,
		idemRecord("acme", "a", "evt_a2", "fp-a2"),
		idemRecord("acme", "b", "evt_b2", "fp-b2"), // the earliest had none: none is kept
		idemRecord("acme", "a", "evt_a3", ""),
	}
	got, err := s.PutIdempotencyKeys(ctx(t), recs, Base)
	must(t, err, "PutIdempotencyKeys")
	wantEqual(t, []store.IdempotencyRecord{recs[0], a1, b1, a1, b1, a1}, got, "PutIdempotencyKeys results")
	found, err := s.LookupIdempotencyKeys(ctx(t), []store.IdempotencyKey{idemKey("acme", "a"), idemKey("acme", "b"), idemKey("acme", "z")})
	must(t, err, "LookupIdempotencyKeys")
	wantEqual(t, map[store.IdempotencyKey]store.IdempotencyRecord{
		a1.IdempotencyKey: a1, b1.IdempotencyKey: b1, recs[0].IdempotencyKey: recs[0],
	}, found, "LookupIdempotencyKeys")
}

// testIdempotencyFingerprintEmpty: a record without a fingerprint (nil or
// empty) round-trips as empty, through Put and Lookup, and is kept as
// such against a later Put that has one.
func testIdempotencyFingerprintEmpty(t *testing.T, s store.Store) {
	for _, fp := range [][]byte{nil, {}} {
		key := fmt.Sprintf("empty-%t", fp == nil)
		rec := store.IdempotencyRecord{IdempotencyKey: idemKey("acme", key), EventID: "evt_" + key, Fingerprint: fp}
		kept, err := putFingerprint(t, s, rec, Base)
		must(t, err, "PutIdempotencyKeys")
		if kept.EventID != rec.EventID || len(kept.Fingerprint) != 0 {
			t.Fatalf("PutIdempotencyKeys(fingerprint %#v) returned %q, %#v; want %q and an empty fingerprint",
				fp, kept.EventID, kept.Fingerprint, rec.EventID)
		}
		got, found, err := lookupKey(t, s, "acme", key)
		must(t, err, "LookupIdempotencyKeys")
		if !found || got.EventID != rec.EventID || len(got.Fingerprint) != 0 {
			t.Fatalf("LookupIdempotencyKeys = %q, %#v, %v; want %q, an empty fingerprint, true",
				got.EventID, got.Fingerprint, found, rec.EventID)
		}
		kept, err = putFingerprint(t, s, idemRecord("acme", key, "evt_later", "fp-later"), Base)
		must(t, err, "PutIdempotencyKeys(again, with a fingerprint)")
		if kept.EventID != rec.EventID || len(kept.Fingerprint) != 0 {
			t.Fatalf("second PutIdempotencyKeys returned %q, %#v; want the first record, %q without a fingerprint",
				kept.EventID, kept.Fingerprint, rec.EventID)
		}
	}
}
