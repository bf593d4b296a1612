package crdb

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
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

// checkNoPlaintext reads every column of every subscriptions row as the
// server sends it and fails t if one holds any of marks, holds plaintext
// in the secrets column, or is not sealed with keyID.
func checkNoPlaintext(t *testing.T, conn *pgx.Conn, keyID string, marks [][]byte) {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT * FROM subscriptions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		row := map[string][]byte{}
		for i, fd := range rows.FieldDescriptions() {
			row[fd.Name] = bytes.Clone(rows.RawValues()[i])
		}
		if row["secrets"] != nil {
			t.Fatalf("row %s holds secrets in the clear: %q", row["id"], row["secrets"])
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
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no subscriptions stored")
	}
}

// TestNoPlaintextSecretsStored: created and updated subscriptions' rows
// hold their secrets only sealed, with the keyring's current key.
func TestNoPlaintextSecretsStored(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	s := openStore(t, url, Options{})
	a, b := storetest.NewSubscription("acme"), storetest.NewSubscription("globex")
	for _, sub := range []*store.Subscription{a, b} {
		if err := s.CreateSubscription(ctx, sub, 0); err != nil {
			t.Fatal(err)
		}
	}
	upd := *a
	upd.Secrets = append(upd.Secrets, storetest.NewSecret())
	if err := s.UpdateSubscription(ctx, &upd); err != nil {
		t.Fatal(err)
	}
	conn := connectTest(t, url)
	checkNoPlaintext(t, conn, testKeyring.Current(), plaintextMarks(t, a, b, &upd))

	// The sealed value is bound to its row: moved to another row, it does
	// not open.
	if _, err := conn.Exec(ctx, `UPDATE subscriptions SET secrets_sealed =
    (SELECT secrets_sealed FROM subscriptions WHERE id = $1) WHERE id = $2`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSubscription(ctx, store.AllTenants(), b.ID); err == nil {
		t.Fatal("a sealed value moved to another row opened")
	}
}

// legacyColumns are the subscription columns before migration 4, the
// secrets in the clear.
const legacyColumns = `id, tenant, url, description, event_types, secrets, headers, timeout_ms,
    retry_schedule, rate_limit, state, disabled_reason, failing_since, created_at, updated_at`

// migrateUpTo applies the migrations up to version (and no Go step) to the
// database at url.
func migrateUpTo(t *testing.T, url string, version int) {
	t.Helper()
	pool, d, err := connect(t.Context(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ms, err := Migrations(d)
	if err != nil {
		t.Fatal(err)
	}
	m := newMigrator(pool, d, testLogger(t))
	if err := m.bootstrap(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.apply(t.Context(), ms[:version]); err != nil {
		t.Fatalf("migrate to version %d: %v", version, err)
	}
}

// insertLegacy inserts subs as the previous release did: secrets in the
// clear, no sealed columns.
func insertLegacy(t *testing.T, conn *pgx.Conn, subs ...*store.Subscription) {
	t.Helper()
	for _, sub := range subs {
		row, err := rowcodec.EncodeSubscription(sub, testKeyring)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), `INSERT INTO subscriptions (`+legacyColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			row.ID, row.Tenant, row.URL, row.Description, row.EventTypes, row.Secrets, row.Headers, row.TimeoutMS,
			row.RetrySchedule, row.RateLimit, row.State, row.DisabledReason, row.FailingSince, row.CreatedAt, row.UpdatedAt); err != nil {
			t.Fatalf("insert a legacy row: %v", err)
		}
	}
}

// TestMigrateSealsLegacySecrets starts from schema version 3 with
// subscriptions whose secrets are in the clear. A store without Migrate
// refuses it (schema behind, then plaintext left once the schema is
// current); migrating without a keyring applies the schema but refuses to
// leave the plaintext; migrating with one seals every row, after which each
// secret opens to its original value and no row holds plaintext.
func TestMigrateSealsLegacySecrets(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	migrateUpTo(t, url, 3)
	conn := connectTest(t, url)
	var subs []*store.Subscription
	for i := range sealBatch + 5 { // more than one batch
		sub := storetest.NewSubscription([]string{"acme", "globex"}[i%2])
		if i%7 == 0 {
			sub.Secrets = nil
		}
		subs = append(subs, sub)
	}
	insertLegacy(t, conn, subs...)
	opts := Options{Keyring: testKeyring}

	var behind *SchemaBehindError
	if _, err := Open(ctx, url, opts, testLogger(t)); !errors.As(err, &behind) || behind.Current != 3 {
		t.Fatalf("Open(version 3, Migrate=false): %v; want a SchemaBehindError at version 3", err)
	}

	// The schema migrated to the latest version without migration 4's Go
	// step (as by an interrupted run): the plaintext is refused until
	// `hookline migrate` runs.
	all, err := Migrations(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	migrateUpTo(t, url, len(all))
	_, err = Open(ctx, url, opts, testLogger(t))
	if !errors.Is(err, ErrPlaintextSecrets) || !strings.Contains(err.Error(), "run `hookline migrate`") ||
		!strings.Contains(err.Error(), fmt.Sprint(len(subs))) {
		t.Fatalf("Open(plaintext left, Migrate=false): %v; want ErrPlaintextSecrets counting %d rows", err, len(subs))
	}
	if _, err := Migrate(ctx, url, testLogger(t)); !errors.Is(err, ErrPlaintextSecrets) {
		t.Fatalf("Migrate without a keyring over plaintext secrets: %v; want ErrPlaintextSecrets", err)
	}

	if applied, err := MigrateWith(ctx, url, opts, testLogger(t)); err != nil || len(applied) != 0 {
		t.Fatalf("MigrateWith(keyring): applied %v, err %v; want nothing more applied and no error", applied, err)
	}
	checkNoPlaintext(t, conn, testKeyring.Current(), plaintextMarks(t, subs...))
	s, err := Open(ctx, url, opts, testLogger(t))
	if err != nil {
		t.Fatalf("Open(migrated, Migrate=false): %v", err)
	}
	defer s.Close()
	for _, sub := range subs {
		got, err := s.GetSubscription(ctx, store.AllTenants(), sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Secrets) != fmt.Sprint(sub.Secrets) || got.URL != sub.URL {
			t.Fatalf("migrated subscription %s: secrets %v, want %v", sub.ID, got.Secrets, sub.Secrets)
		}
	}
	// Running it again finds nothing to do.
	if applied, err := MigrateWith(ctx, url, opts, testLogger(t)); err != nil || len(applied) != 0 {
		t.Fatalf("MigrateWith again: applied %v, err %v", applied, err)
	}
	if _, err := Migrate(ctx, url, testLogger(t)); err != nil {
		t.Fatalf("Migrate without a keyring, nothing in the clear: %v", err)
	}
}

// TestOpenMigrateSealsLegacySecrets: Open with Migrate from version 3
// applies the schema and seals, concurrently from several stores.
func TestOpenMigrateSealsLegacySecrets(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	migrateUpTo(t, url, 3)
	conn := connectTest(t, url)
	var subs []*store.Subscription
	for range 2*sealBatch + 1 {
		subs = append(subs, storetest.NewSubscription("acme"))
	}
	insertLegacy(t, conn, subs...)
	const openers = 4
	errs := make(chan error, openers)
	for range openers {
		go func() {
			s, err := Open(ctx, url, Options{Keyring: testKeyring, Migrate: true, MaxConns: 3}, testLogger(t))
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range openers {
		if err := <-errs; err != nil {
			t.Fatalf("Open(Migrate): %v", err)
		}
	}
	checkNoPlaintext(t, conn, testKeyring.Current(), plaintextMarks(t, subs...))
	s := openStore(t, url, Options{})
	got := collectSubscriptions(t, s)
	if len(got) != len(subs) {
		t.Fatalf("%d subscriptions after the migration, want %d", len(got), len(subs))
	}
	for _, sub := range subs {
		if fmt.Sprint(got[sub.ID].Secrets) != fmt.Sprint(sub.Secrets) {
			t.Fatalf("migrated subscription %s: secrets %v, want %v", sub.ID, got[sub.ID].Secrets, sub.Secrets)
		}
	}
}

// collectSubscriptions lists every subscription, by id.
func collectSubscriptions(t *testing.T, s store.Store) map[string]store.Subscription {
	t.Helper()
	out := map[string]store.Subscription{}
	tok := ""
	for {
		page, next, err := s.ListSubscriptions(context.Background(), store.SubscriptionFilter{Scope: store.AllTenants(), PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range page {
			out[sub.ID] = sub
		}
		if next == "" {
			return out
		}
		tok = next
	}
}
