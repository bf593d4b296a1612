package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
	"github.com/hookline/hookline/pkg/store/storetest"
)

// plaintextMarks are the byte strings whose presence in a stored row
// would leak secrets: the "whsec_" prefix, and each secret's value and its
// decoded random bytes.
func plaintextMarks(t *testing.T, subs ...*store.Subscription) [][]byte {
	t.Helper()
	marks := [][]byte{[]byte("whsec_")}
	for _, sub := range subs {
		for _, sec := range sub.Secrets {
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec.Value, "whsec_"))
			if err != nil {
				t.Fatalf("secret of %s: %v", sub.ID, err)
			}
			marks = append(marks, []byte(sec.Value), raw)
		}
	}
	return marks
}

// rawRows reads every column of every row of table as stored, each as its
// bytes (or the text of a number), by column name.
func rawRows(t *testing.T, db *sql.DB, table string) []map[string][]byte {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT * FROM `+table)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string][]byte
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string][]byte{}
		for i, v := range vals {
			switch v := v.(type) {
			case []byte:
				row[cols[i]] = v
			case string:
				row[cols[i]] = []byte(v)
			case nil:
				row[cols[i]] = nil
			default:
				row[cols[i]] = fmt.Append(nil, v)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkNoPlaintext fails t if any column of any subscriptions row holds
// one of marks, or if a row is not sealed with keyID.
func checkNoPlaintext(t *testing.T, db *sql.DB, keyID string, marks [][]byte) {
	t.Helper()
	rows := rawRows(t, db, "subscriptions")
	if len(rows) == 0 {
		t.Fatal("no subscriptions stored")
	}
	for _, row := range rows {
		if _, ok := row["secrets"]; ok {
			t.Fatalf("the plaintext secrets column still exists: %q", row["secrets"])
		}
		if got := string(row["secrets_key_id"]); got != keyID {
			t.Fatalf("row %s sealed with key %q, want %q", row["id"], got, keyID)
		}
		if len(row["secrets_sealed"]) == 0 {
			t.Fatalf("row %s has no sealed secrets", row["id"])
		}
		for col, v := range row {
			for _, m := range marks {
				if bytes.Contains(v, m) {
					t.Fatalf("row %s, column %s holds plaintext secret material %q", row["id"], col, m)
				}
			}
		}
	}
}

// TestNoPlaintextSecretsStored: created and updated subscriptions' rows
// hold their secrets only sealed, with the keyring's current key.
func TestNoPlaintextSecretsStored(t *testing.T) {
	t.Parallel()
	s := openFile(t)
	a, b := storetest.NewSubscription("acme"), storetest.NewSubscription("globex")
	for _, sub := range []*store.Subscription{a, b} {
		if err := s.CreateSubscription(t.Context(), sub, 0); err != nil {
			t.Fatal(err)
		}
	}
	upd := *a
	upd.Secrets = append(upd.Secrets, storetest.NewSecret())
	if err := s.UpdateSubscription(t.Context(), &upd); err != nil {
		t.Fatal(err)
	}
	checkNoPlaintext(t, s.write, testKeyring.Current(), plaintextMarks(t, a, b, &upd))

	// The sealed value is bound to its row: moved to another row, it does
	// not open.
	if _, err := s.write.ExecContext(t.Context(), `UPDATE subscriptions SET secrets_sealed =
    (SELECT secrets_sealed FROM subscriptions WHERE id = ?) WHERE id = ?`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSubscription(t.Context(), store.AllTenants(), b.ID); err == nil {
		t.Fatal("a sealed value moved to another row opened")
	}
}

// legacyColumns are the subscription columns of schema version 2, the
// secrets in the clear.
const legacyColumns = `id, tenant, url, description, event_types, secrets, headers, timeout_ms,
    retry_schedule, rate_limit, state, disabled_reason, failing_since, created_at, updated_at`

// legacyDatabase creates a database at schema version 2 at path holding
// subs with their secrets in the clear, as the previous release wrote
// them.
func legacyDatabase(t *testing.T, path string, subs ...*store.Subscription) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := migrateTo(t.Context(), db, nil, testLogger(t), 2); err != nil {
		t.Fatalf("migrate to version 2: %v", err)
	}
	for _, sub := range subs {
		row, err := rowcodec.EncodeSubscription(sub, testKeyring)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(t.Context(), `INSERT INTO subscriptions (`+legacyColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			row.ID, row.Tenant, row.URL, row.Description, row.EventTypes, row.Secrets, row.Headers, row.TimeoutMS,
			row.RetrySchedule, row.RateLimit, row.State, row.DisabledReason, row.FailingSince, row.CreatedAt, row.UpdatedAt); err != nil {
			t.Fatalf("insert a legacy row: %v", err)
		}
	}
}

// TestMigrateSealsLegacySecrets: a database of the previous schema, with
// secrets in the clear, is migrated at Open: every secret opens to its
// original value, and no row (nor the database file) holds plaintext.
func TestMigrateSealsLegacySecrets(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "legacy.db")
	a, b := storetest.NewSubscription("acme"), storetest.NewSubscription("globex")
	b.Secrets = nil
	legacyDatabase(t, path, a, b)

	s := openPath(t, path, testKeyring)
	for _, sub := range []*store.Subscription{a, b} {
		got, err := s.GetSubscription(t.Context(), store.AllTenants(), sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Secrets) != fmt.Sprint(sub.Secrets) || got.URL != sub.URL {
			t.Fatalf("migrated subscription %s: secrets %v, want %v", sub.ID, got.Secrets, sub.Secrets)
		}
	}
	marks := plaintextMarks(t, a)
	checkNoPlaintext(t, s.write, testKeyring.Current(), marks)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Nor is any left in the database file or its WAL.
	for _, f := range []string{path, path + "-wal"} {
		content, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range marks {
			if bytes.Contains(content, m) {
				t.Fatalf("%s holds plaintext secret material %q", filepath.Base(f), m)
			}
		}
	}
}

// TestMigrateSealsAllOrNothing: the sealing step is part of the
// migration's transaction: when it fails half way (a row whose secrets do
// not decode), nothing of the migration is left, and once the cause is
// gone the next Open applies it whole.
func TestMigrateSealsAllOrNothing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "legacy.db")
	good, bad := storetest.NewSubscription("acme"), storetest.NewSubscription("acme")
	good.ID, bad.ID = "sub_0"+good.ID[5:], "sub_1"+bad.ID[5:] // good is sealed first
	legacyDatabase(t, path, good, bad)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `UPDATE subscriptions SET secrets = 'not json' WHERE id = ?`, bad.ID); err != nil {
		t.Fatal(err)
	}

	if s, err := Open(t.Context(), path, testOptions(), testLogger(t)); err == nil {
		s.Close()
		t.Fatal("Open of a database whose secrets do not decode succeeded")
	} else if !strings.Contains(err.Error(), bad.ID) {
		t.Fatalf("Open: %q does not name the row %s", err, bad.ID)
	}
	var version int
	if err := db.QueryRowContext(t.Context(), `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != 2 {
		t.Fatalf("after the failed migration the schema is at version %d (err %v), want 2", version, err)
	}
	var plain string
	if err := db.QueryRowContext(t.Context(), `SELECT secrets FROM subscriptions WHERE id = ?`, good.ID).Scan(&plain); err != nil {
		t.Fatalf("the plaintext column after the failed migration: %v", err)
	}
	var sealedCols int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pragma_table_info('subscriptions') WHERE name = 'secrets_sealed'`).Scan(&sealedCols); err != nil || sealedCols != 0 {
		t.Fatalf("the failed migration left its column behind (%d, err %v)", sealedCols, err)
	}

	js, err := rowcodec.EncodeSecrets(bad.Secrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), `UPDATE subscriptions SET secrets = ? WHERE id = ?`, js, bad.ID); err != nil {
		t.Fatal(err)
	}
	s := openPath(t, path, testKeyring)
	for _, sub := range []*store.Subscription{good, bad} {
		got, err := s.GetSubscription(t.Context(), store.AllTenants(), sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Secrets) != fmt.Sprint(sub.Secrets) {
			t.Fatalf("subscription %s: secrets %v, want %v", sub.ID, got.Secrets, sub.Secrets)
		}
	}
	checkNoPlaintext(t, s.write, testKeyring.Current(), plaintextMarks(t, good, bad))
}

// TestOpenRefusesMissingKey: Open names the key ids it lacks.
func TestOpenRefusesMissingKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hookline.db")
	s := openPath(t, path, storetest.Keyring("old"))
	if err := s.CreateSubscription(t.Context(), storetest.NewSubscription("acme"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), path, Options{Keyring: storetest.Keyring("new")}, testLogger(t))
	if !errors.Is(err, store.ErrMissingSecretKey) || !strings.Contains(err.Error(), `"old"`) {
		t.Fatalf("Open with a keyring lacking the key: %v; want ErrMissingSecretKey naming \"old\"", err)
	}
}
