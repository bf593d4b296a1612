package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
)

// TestIdempotencyKeysBeforeFingerprints: keys recorded at schema version 3,
// before fingerprints were kept, read back after migration 4 with their
// event IDs and no fingerprint, through Lookup and through a later Put of
// the same key with a fingerprint (which changes nothing).
func TestIdempotencyKeysBeforeFingerprints(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "legacy.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrateTo(t.Context(), db, nil, testLogger(t), 3); err != nil {
		t.Fatalf("migrate to version 3: %v", err)
	}
	if _, err := db.ExecContext(t.Context(), `INSERT INTO idempotency_keys (tenant, idempotency_key, event_id, created_at)
VALUES ('acme', 'old', 'evt_old', ?)`, storetest.Base.UnixNano()); err != nil {
		t.Fatalf("insert a key of version 3: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openPath(t, path, testKeyring)
	key := store.IdempotencyKey{Tenant: "acme", Key: "old"}
	found, err := s.LookupIdempotencyKeys(t.Context(), []store.IdempotencyKey{key})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := found[key]; !ok || got.EventID != "evt_old" || got.Fingerprint != nil {
		t.Fatalf("LookupIdempotencyKeys = %+v, %v; want evt_old without a fingerprint", got, ok)
	}
	kept, err := s.PutIdempotencyKeys(t.Context(), []store.IdempotencyRecord{{IdempotencyKey: key, EventID: "evt_new", Fingerprint: []byte("fp")}}, storetest.Base)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0].EventID != "evt_old" || kept[0].Fingerprint != nil {
		t.Fatalf("PutIdempotencyKeys = %+v; want evt_old without a fingerprint", kept)
	}
	var null bool
	if err := s.write.QueryRowContext(t.Context(), `SELECT fingerprint IS NULL FROM idempotency_keys WHERE tenant = 'acme' AND idempotency_key = 'old'`).Scan(&null); err != nil || !null {
		t.Fatalf("the old key's stored fingerprint: NULL %v, err %v; want it left NULL", null, err)
	}
}
