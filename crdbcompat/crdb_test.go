package crdbcompat

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/crdb"
	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
	"github.com/hookline/hookline/pkg/store/storetest"
)

var dialects = []struct {
	name    string
	dialect crdb.Dialect
}{
	{"postgres", crdb.DialectPostgres},
	{"cockroach", crdb.DialectCockroach},
}

// TestMigrationsParse parses every statement of every migration, in both
// dialects' forms, with CockroachDB's parser, and checks that the
// CockroachDB form really is CockroachDB's: it hash-shards at least one
// index, and the PostgreSQL form (which PostgreSQL runs) does not.
func TestMigrationsParse(t *testing.T) {
	t.Parallel()
	type key struct {
		version int
		name    string
	}
	versions := map[string][]key{}
	sharded := map[string]int{}
	for _, d := range dialects {
		ms, err := crdb.Migrations(d.dialect)
		if err != nil {
			t.Fatalf("Migrations(%s): %v", d.name, err)
		}
		if len(ms) == 0 {
			t.Fatalf("Migrations(%s): no migrations", d.name)
		}
		for i, m := range ms {
			versions[d.name] = append(versions[d.name], key{m.Version, m.Name})
			if i > 0 && m.Version <= ms[i-1].Version {
				t.Errorf("%s migrations out of order: %d after %d", d.name, m.Version, ms[i-1].Version)
			}
			if len(m.Statements) == 0 {
				t.Errorf("%s migration %d %s has no statements", d.name, m.Version, m.Name)
			}
			for j, sql := range m.Statements {
				stmt, err := ParseOne(sql)
				if err != nil {
					t.Errorf("%s migration %d %s, statement %d, does not parse with CockroachDB's parser:\n%s\nerror: %v",
						d.name, m.Version, m.Name, j+1, sql, err)
					continue
				}
				if HashSharded(stmt) {
					sharded[d.name]++
				}
			}
		}
	}
	if !slices.Equal(versions["postgres"], versions["cockroach"]) {
		t.Errorf("the dialects' migrations differ in versions or names:\npostgres:  %v\ncockroach: %v",
			versions["postgres"], versions["cockroach"])
	}
	if sharded["cockroach"] == 0 {
		t.Errorf("the CockroachDB migrations have no hash-sharded (USING HASH) index or primary key")
	}
	if sharded["postgres"] != 0 {
		t.Errorf("the PostgreSQL migrations have %d hash-sharded (USING HASH) statements, which PostgreSQL rejects", sharded["postgres"])
	}
	t.Logf("hash-sharded statements: cockroach %d, postgres %d", sharded["cockroach"], sharded["postgres"])
}

// TestStoreStatementsParse runs the store conformance suite against
// PostgreSQL while recording every statement the store sends (migrations,
// transaction control, batches, copies), then parses each distinct one
// with CockroachDB's parser and checks that none modifies a table twice
// (ModifiesTableTwice).
func TestStoreStatementsParse(t *testing.T) {
	t.Parallel()
	rec := &recorder{seen: map[string]struct{}{}}
	var dialect atomic.Int64 // of the server crdbtest uses: PostgreSQL unless told otherwise
	t.Run("conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storetest.Opener {
			url := crdbtest.NewDatabase(t)
			opened := false
			return func(t *testing.T, kr *keyring.Keyring) (store.Store, error) {
				// The first store migrates; the others reopen the database
				// and check that it is migrated.
				s, err := crdb.Open(t.Context(), url, crdb.Options{Tracer: rec, Migrate: !opened, Keyring: kr}, testLogger(t))
				if err != nil {
					return nil, err
				}
				opened = true
				t.Cleanup(func() { s.Close() })
				dialect.Store(int64(s.Dialect()))
				return s, nil
			}
		})
	})
	// Migrating a database of the previous schema seals its plaintext
	// secrets: statements no fresh database sends.
	t.Run("legacy secrets", func(t *testing.T) { migrateLegacySecrets(t, rec) })

	stmts := rec.statements()
	const minStatements = 20
	if len(stmts) < minStatements {
		t.Fatalf("recorded %d distinct statements, want at least %d: is the tracer wired?\n%s",
			len(stmts), minStatements, strings.Join(stmts, "\n"))
	}
	failed, twice := 0, 0
	for _, sql := range stmts {
		parsed, err := ParseAll(sql)
		if err != nil {
			failed++
			t.Errorf("statement does not parse with CockroachDB's parser:\n%s\nerror: %v", sql, err)
			continue
		}
		for _, stmt := range parsed {
			if table := ModifiesTableTwice(stmt); table != "" {
				twice++
				t.Errorf("statement modifies table %s more than once, which CockroachDB refuses "+
					"(sql.multiple_modifications_of_table.enabled is off by default):\n%s", table, sql)
			}
		}
	}
	t.Logf("checked %d distinct statements (of %d sent); %d do not parse, %d modify a table twice", len(stmts), rec.total(), failed, twice)

	// The signing secrets' statements that only some runs send: the
	// sealing of plaintext left by the previous schema, and re-sealing
	// after a key rotation.
	for _, want := range []string{
		"UPDATE subscriptions AS s SET secrets_sealed = t.sealed, secrets_key_id = $1, secrets = NULL",
		"UPDATE subscriptions AS s SET secrets_sealed = t.sealed, secrets_key_id = $1\n",
		"FOR UPDATE",
		"UPDATE api_keys AS k SET last_used_at",
		// The operator's counts (Store.Stats): sent by its tests only.
		"(SELECT count(*) FROM scheduled_retries WHERE due_at > $5::INT8)",
	} {
		if !rec.sawPart(want) {
			t.Errorf("no statement recorded containing %q: is its test still run?", want)
		}
	}

	// Options.Tracer must see the migrations too, or the check above
	// would silently skip the DDL.
	d := crdb.Dialect(dialect.Load())
	ms, err := crdb.Migrations(d)
	if err != nil {
		t.Fatalf("Migrations: %v", err)
	}
	for _, m := range ms {
		for _, sql := range m.Statements {
			if !rec.saw(sql) {
				t.Errorf("the tracer never saw %v migration %d %s statement:\n%s", d, m.Version, m.Name, sql)
			}
		}
	}
}

// migrateLegacySecrets builds a database at schema version 3, as the
// previous release left it, with subscriptions whose secrets are in the
// clear, and migrates it by opening a store with Migrate, traced by rec.
func migrateLegacySecrets(t *testing.T, rec *recorder) {
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var version string
	if err := conn.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	d := crdb.DialectPostgres
	if strings.Contains(version, "CockroachDB") {
		d = crdb.DialectCockroach
	}
	ms, err := crdb.Migrations(d)
	if err != nil {
		t.Fatal(err)
	}
	// The migrator's own table, as it creates it.
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INT8 NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INT8 NOT NULL
)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:3] {
		for _, st := range m.Statements {
			if _, err := conn.Exec(ctx, st); err != nil {
				t.Fatalf("migration %d: %v", m.Version, err)
			}
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, 1)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		sub := storetest.NewSubscription("acme")
		if _, err := conn.Exec(ctx, `INSERT INTO subscriptions (id, tenant, url, event_types, secrets, headers, state, created_at, updated_at)
VALUES ($1, $2, $3, '[]', $4, '{}', 'enabled', 1, 1)`, sub.ID, sub.Tenant, sub.URL,
			`[{"value":"`+sub.Secrets[0].Value+`","created_at":1}]`); err != nil {
			t.Fatalf("insert a legacy row: %v", err)
		}
	}
	s, err := crdb.Open(ctx, url, crdb.Options{Tracer: rec, Migrate: true, Keyring: storetest.Keyring("k1")}, testLogger(t))
	if err != nil {
		t.Fatalf("crdb.Open(Migrate) of a version 3 database: %v", err)
	}
	defer s.Close()
	var plain int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE secrets IS NOT NULL`).Scan(&plain); err != nil || plain != 0 {
		t.Fatalf("%d subscriptions still hold plaintext secrets after migrating (err %v)", plain, err)
	}
}

// recorder is a pgx tracer that records the SQL of every query, batch
// query, prepare and copy the store sends, as a set.
type recorder struct {
	mu    sync.Mutex
	seen  map[string]struct{}
	calls int
}

var (
	_ pgx.QueryTracer    = (*recorder)(nil)
	_ pgx.BatchTracer    = (*recorder)(nil)
	_ pgx.PrepareTracer  = (*recorder)(nil)
	_ pgx.CopyFromTracer = (*recorder)(nil)
)

func (r *recorder) record(sql string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[sql] = struct{}{}
	r.calls++
}

// statements returns the distinct statements recorded, sorted.
func (r *recorder) statements() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.seen))
	for sql := range r.seen {
		out = append(out, sql)
	}
	slices.Sort(out)
	return out
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// sawPart reports whether a statement containing part was sent.
func (r *recorder) sawPart(part string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.seen {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}

// saw reports whether sql was sent, alone or within a multi-statement
// query.
func (r *recorder) saw(sql string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[sql]; ok {
		return true
	}
	want := strings.TrimSuffix(strings.TrimSpace(sql), ";")
	for s := range r.seen {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.record(data.SQL)
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if data.Batch != nil {
		for _, q := range data.Batch.QueuedQueries {
			r.record(q.SQL)
		}
	}
	return ctx
}

func (r *recorder) TraceBatchQuery(_ context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	r.record(data.SQL)
}

func (r *recorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (r *recorder) TracePrepareStart(ctx context.Context, _ *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	r.record(data.SQL)
	return ctx
}

func (r *recorder) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// TraceCopyFromStart records the statement pgx's CopyFrom sends.
func (r *recorder) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	cols := make([]string, len(data.ColumnNames))
	for i, c := range data.ColumnNames {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	r.record(fmt.Sprintf("copy %s ( %s ) from stdin binary;", data.TableName.Sanitize(), strings.Join(cols, ", ")))
	return ctx
}

func (r *recorder) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
