package crdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
	"github.com/hookline/hookline/pkg/store/storetest"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testKeyring is the keyring of the package's tests.
var testKeyring = storetest.Keyring("k1")

// openStore opens a migrated Store on url, closed when tb ends; without
// a keyring in opts, with testKeyring.
func openStore(tb testing.TB, url string, opts Options) *Store {
	tb.Helper()
	opts.Migrate = true
	if opts.Keyring == nil {
		opts.Keyring = testKeyring
	}
	s, err := Open(context.Background(), url, opts, testLogger(tb))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// newOpener is a storetest.Opener on a fresh database for t, opening stores
// with opts (and the keyring it is given): the first migrates the
// database, the later ones (reopening it) check it is migrated.
func newOpener(t *testing.T, opts Options) storetest.Opener {
	url := crdbtest.NewDatabase(t)
	opened := false
	return func(t *testing.T, kr *keyring.Keyring) (store.Store, error) {
		o := opts
		o.Keyring, o.Migrate = kr, !opened
		s, err := Open(t.Context(), url, o, testLogger(t))
		if err != nil {
			return nil, err
		}
		opened = true
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s, nil
	}
}

// TestConformance runs the store suite with a fresh database per subtest.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Opener { return newOpener(t, Options{}) })
}

func TestDialect(t *testing.T) {
	t.Parallel()
	for d, want := range map[Dialect]string{DialectPostgres: "postgres", DialectCockroach: "cockroach", 0: "Dialect(0)"} {
		if got := d.String(); got != want {
			t.Errorf("Dialect(%d).String() = %q, want %q", int(d), got, want)
		}
	}
	s := openStore(t, crdbtest.NewDatabase(t), Options{})
	if s.Dialect() != DialectPostgres {
		t.Fatalf("Dialect() = %v against PostgreSQL", s.Dialect())
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, url := range []string{
		"",
		"mysql://root@127.0.0.1/x",
		"postgres://127.0.0.1:5432/x?sslmode=bogus",
		"postgres://hookline:s3cr3t@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", // nothing listens on port 1
	} {
		s, err := Open(ctx, url, Options{Keyring: testKeyring}, testLogger(t))
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", url)
		}
		if !strings.HasPrefix(err.Error(), "crdb: open: ") || strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("Open(%q): error %q: want a \"crdb: open: \" prefix and no password", url, err)
		}
	}
	if _, err := Open(ctx, crdbtest.ServerURL(), Options{MaxConns: -1, Keyring: testKeyring}, testLogger(t)); err == nil {
		t.Fatal("Open with MaxConns -1 succeeded")
	}
	if _, err := Open(ctx, crdbtest.ServerURL(), Options{}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "keyring") {
		t.Fatalf("Open without a keyring: %v; want an error saying the keyring is missing", err)
	}
}

// TestOpenRequiresMigration: without Migrate, Open refuses a database whose
// schema is behind, with an error telling what to run, and accepts it once
// migrated.
func TestOpenRequiresMigration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	ms, err := Migrations(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	latest := ms[len(ms)-1].Version

	_, err = Open(ctx, url, Options{Keyring: testKeyring}, testLogger(t))
	var behind *SchemaBehindError
	if !errors.As(err, &behind) || behind.Current != 0 || behind.Required != latest {
		t.Fatalf("Open(unmigrated, Migrate=false): err %v, want a SchemaBehindError{0, %d}", err, latest)
	}
	want := fmt.Sprintf("schema at version 0, binary needs %d: run `hookline migrate`", latest)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("Open(unmigrated, Migrate=false): %q does not say %q", err, want)
	}
	// The failed Open created nothing.
	if _, err := Open(ctx, url, Options{Keyring: testKeyring}, testLogger(t)); !errors.As(err, &behind) {
		t.Fatalf("second Open(unmigrated): %v", err)
	}

	applied, err := Migrate(ctx, url, testLogger(t))
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Equal(applied, versions(ms)) {
		t.Fatalf("Migrate applied %v, want %v", applied, versions(ms))
	}
	s, err := Open(ctx, url, Options{Keyring: testKeyring}, testLogger(t))
	if err != nil {
		t.Fatalf("Open(migrated, Migrate=false): %v", err)
	}
	defer s.Close()
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if applied, err := Migrate(ctx, url, testLogger(t)); err != nil || len(applied) != 0 {
		t.Fatalf("Migrate on an up-to-date database applied %v, err %v", applied, err)
	}
}

func versions(ms []Migration) []int {
	var out []int
	for _, m := range ms {
		out = append(out, m.Version)
	}
	return out
}

// TestMigrateConcurrently runs Migrate from several goroutines (each its
// own pool, as separate replicas would) on one fresh database: all
// succeed, and every migration is applied exactly once.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	const migrators = 6
	results := make([][]int, migrators)
	errs := make([]error, migrators)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range migrators {
		wg.Go(func() {
			<-start
			results[i], errs[i] = MigrateWith(ctx, url, Options{MaxConns: 2}, testLogger(t))
		})
	}
	close(start)
	wg.Wait()
	var union []int
	for i := range migrators {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		union = append(union, results[i]...)
	}
	slices.Sort(union)
	ms, err := Migrations(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(union, versions(ms)) {
		t.Fatalf("the migrators applied %v in all, want each of %v exactly once", union, versions(ms))
	}

	conn := connectTest(t, url)
	rows, err := conn.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var recorded []int
	for rows.Next() {
		var v, at int64
		var name string
		if err := rows.Scan(&v, &name, &at); err != nil {
			t.Fatal(err)
		}
		if name != ms[v-1].Name || at <= 0 {
			t.Fatalf("schema_migrations row %d: name %q applied_at %d", v, name, at)
		}
		recorded = append(recorded, int(v))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recorded, versions(ms)) {
		t.Fatalf("schema_migrations holds %v, want %v", recorded, versions(ms))
	}
	var leases int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM migration_lease`).Scan(&leases); err != nil {
		t.Fatal(err)
	}
	if leases != 0 {
		t.Fatalf("%d migration leases left behind", leases)
	}
}

// connectTest opens a plain connection (no store) to url for inspection.
func connectTest(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestMigrationLease covers the lease itself: a live lease held by another
// process makes Migrate wait, until its context ends; an expired one is
// taken over; a held lease is renewed while migrating and its loss is
// noticed.
func TestMigrationLease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	conn := connectTest(t, url)
	for _, st := range bootstrapStatements {
		if _, err := conn.Exec(ctx, st); err != nil {
			t.Fatal(err)
		}
	}

	// A live lease of another process blocks.
	if _, err := conn.Exec(ctx, `INSERT INTO migration_lease (id, holder, expires_at) VALUES (1, 'other', $1)`,
		time.Now().Add(time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	waiting := make(chan struct{})
	go func() {
		<-waiting // Migrate is waiting for the lease: give up
		cancel()
	}()
	logger := slog.New(&signalHandler{Handler: testLogger(t).Handler(), msg: "waiting for the migration lease", sig: &signal{ch: waiting}})
	_, err := Migrate(wctx, url, logger)
	cancel()
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `migration lease held by "other"`) {
		t.Fatalf("Migrate under another's live lease: %v; want a cancellation error naming the holder", err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("blocked Migrate recorded %d migrations (err %v)", n, err)
	}

	// An expired lease (its holder died) is taken over.
	if _, err := conn.Exec(ctx, `UPDATE migration_lease SET expires_at = $1`, time.Now().Add(-time.Second).UnixNano()); err != nil {
		t.Fatal(err)
	}
	applied, err := Migrate(ctx, url, testLogger(t))
	if err != nil || len(applied) == 0 {
		t.Fatalf("Migrate after the lease expired: applied %v, err %v", applied, err)
	}

	// Renewal and loss, on a migrator with a short lease.
	pool, d, err := connect(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m := newMigrator(pool, d, testLogger(t))
	m.ttl = 300 * time.Millisecond
	ms, err := Migrations(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, ms[len(ms)-1].Version); err != nil {
		t.Fatal(err) // something is pending again, so acquire does not return early
	}
	l, err := m.acquire(ctx, ms)
	if err != nil || l == nil {
		t.Fatalf("acquire: %v, %v", l, err)
	}
	expiry := func() int64 {
		var e int64
		if err := conn.QueryRow(ctx, `SELECT expires_at FROM migration_lease WHERE holder = $1`, m.holder).Scan(&e); err != nil {
			return 0
		}
		return e
	}
	first := expiry()
	poll.Until(t, "the lease to be renewed", func() bool { return expiry() > first })
	if l.ctx.Err() != nil {
		t.Fatalf("lease lost while renewed: %v", context.Cause(l.ctx))
	}
	if _, err := conn.Exec(ctx, `UPDATE migration_lease SET holder = 'thief'`); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the lease loss to be noticed", func() bool { return l.ctx.Err() != nil })
	if cause := context.Cause(l.ctx); cause == nil || !strings.Contains(cause.Error(), "lost") {
		t.Fatalf("lease context ended with cause %v", cause)
	}
	l.release() // must not delete the thief's lease
	var holder string
	if err := conn.QueryRow(ctx, `SELECT holder FROM migration_lease`).Scan(&holder); err != nil || holder != "thief" {
		t.Fatalf("after releasing a lost lease the lease row is %q (err %v), want the thief's", holder, err)
	}
}

// signalHandler is a slog.Handler that closes a channel the first time a
// record with message msg is handled, whatever its level.
type signalHandler struct {
	slog.Handler
	msg string
	sig *signal
}

type signal struct {
	once sync.Once
	ch   chan struct{}
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.sig.once.Do(func() { close(h.sig.ch) })
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &signalHandler{Handler: h.Handler.WithAttrs(as), msg: h.msg, sig: h.sig}
}

func (h *signalHandler) WithGroup(name string) slog.Handler {
	return &signalHandler{Handler: h.Handler.WithGroup(name), msg: h.msg, sig: h.sig}
}

func TestMigrationFiles(t *testing.T) {
	t.Parallel()
	pg, err := Migrations(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := Migrations(DialectCockroach)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Migrations(0); err == nil {
		t.Fatal("Migrations(0) succeeded")
	}
	if len(pg) == 0 || len(pg) != len(cr) {
		t.Fatalf("%d postgres and %d cockroach migrations", len(pg), len(cr))
	}
	for i := range pg {
		p, c := pg[i], cr[i]
		if p.Version != i+1 || c.Version != i+1 || p.Name != c.Name {
			t.Fatalf("migration %d: postgres %d_%s, cockroach %d_%s", i+1, p.Version, p.Name, c.Version, c.Name)
		}
		if len(p.Statements) != len(c.Statements) {
			t.Fatalf("migration %d: %d postgres statements, %d cockroach", p.Version, len(p.Statements), len(c.Statements))
		}
		hashed := 0
		for j := range p.Statements {
			ps, cs := p.Statements[j], c.Statements[j]
			for _, st := range []string{ps, cs} {
				if strings.Contains(st, ";") || strings.Contains(st, "--") || strings.TrimSpace(st) != st || st == "" {
					t.Fatalf("migration %d statement %d is not one clean statement: %q", p.Version, j+1, st)
				}
				if strings.HasPrefix(st, "CREATE") && !strings.Contains(st, "IF NOT EXISTS") {
					t.Fatalf("migration %d statement %d cannot be re-run: %q", p.Version, j+1, st)
				}
			}
			// The dialect forms differ only in hash sharding.
			if strings.Contains(ps, "USING HASH") {
				t.Fatalf("postgres statement uses hash sharding: %q", ps)
			}
			if strings.Contains(cs, " USING HASH") {
				hashed++
			}
			if strings.ReplaceAll(cs, " USING HASH", "") != ps {
				t.Fatalf("migration %d statement %d differs beyond USING HASH:\npostgres:  %s\ncockroach: %s", p.Version, j+1, ps, cs)
			}
		}
		if i == 0 && hashed == 0 {
			t.Fatal("the cockroach form of the initial schema hash-shards nothing")
		}
	}
	// Callers get copies.
	pg[0].Statements[0] = "mutated"
	again, _ := Migrations(DialectPostgres)
	if again[0].Statements[0] == "mutated" {
		t.Fatal("Migrations returns shared statement slices")
	}
}

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	got, err := splitStatements(`-- leading comment; with a semicolon
CREATE TABLE a (x TEXT DEFAULT 'it''s; fine', "we;ird" INT8); /* block; comment */
  CREATE INDEX b ON a (x);   -- trailing comment
;;
SELECT 1`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`CREATE TABLE a (x TEXT DEFAULT 'it''s; fine', "we;ird" INT8)`,
		`CREATE INDEX b ON a (x)`,
		`SELECT 1`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("splitStatements:\n got %q\nwant %q", got, want)
	}
	for _, bad := range []string{`SELECT 'open`, `SELECT "open`, `/* open`, `SELECT $1`, `DO $$ BEGIN END $$`} {
		if _, err := splitStatements(bad); err == nil {
			t.Errorf("splitStatements(%q) succeeded", bad)
		}
	}
}

// recordingTracer records the SQL of every statement a pool sends: a
// query as its SQL, a pgx batch (one round trip) as batchPrefix followed
// by its queries' SQL joined by batchSep.
type recordingTracer struct {
	mu   sync.Mutex
	sqls []string
}

const (
	batchPrefix = "batch: "
	batchSep    = "\n;\n"
)

var _ pgx.BatchTracer = (*recordingTracer)(nil)

func (r *recordingTracer) add(sql string) {
	r.mu.Lock()
	r.sqls = append(r.sqls, sql)
	r.mu.Unlock()
}

func (r *recordingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.add(data.SQL)
	return ctx
}

func (r *recordingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recordingTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	var sqls []string
	for _, q := range data.Batch.QueuedQueries {
		sqls = append(sqls, q.SQL)
	}
	r.add(batchPrefix + strings.Join(sqls, batchSep))
	return ctx
}

func (r *recordingTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *recordingTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// batchOf is how recordingTracer records a pgx batch of sqls.
func batchOf(sqls ...string) string { return batchPrefix + strings.Join(sqls, batchSep) }

// take returns the statements recorded since the last take.
func (r *recordingTracer) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sqls
	r.sqls = nil
	return out
}

// TestTracerSeesEveryStatement: the tracer given in Options sees the
// migration, the lease, transaction control and the store's statements.
func TestTracerSeesEveryStatement(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ms, err := Migrations(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	wantAll := func(what string, got []string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Fatalf("%s: the tracer did not see %q", what, w)
			}
		}
	}
	var migration []string
	for _, m := range ms {
		migration = append(migration, m.Statements...)
	}
	migration = append(migration, bootstrapStatements...)
	migration = append(migration, sqlAcquireLease, sqlRecordMig, sqlReleaseLease)

	tr := &recordingTracer{}
	if _, err := MigrateWith(ctx, crdbtest.NewDatabase(t), Options{Tracer: tr}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	wantAll("MigrateWith", tr.take(), append(migration, `SELECT version()`)...)

	s := openStore(t, crdbtest.NewDatabase(t), Options{Tracer: tr})
	wantAll("Open", tr.take(), migration...)

	f := storetest.Seed(t, s, "acme", storetest.Base)
	tr.take()
	if _, err := s.Purge(ctx, storetest.Base, 10); err != nil {
		t.Fatal(err)
	}
	wantAll("Purge", tr.take(), "begin", "SAVEPOINT cockroach_restart", "RELEASE SAVEPOINT cockroach_restart", "commit", purgeSteps[0].sql)

	// A batch of attempts is one round trip: one statement, or two in one
	// pgx batch when it both schedules and settles retries.
	others := make([]storetest.Fixture, 3)
	for i := range others {
		others[i] = storetest.Seed(t, s, "acme", storetest.Base)
	}
	tr.take()
	outcome := func(f storetest.Fixture, n int, st store.DeliveryStatus) store.AttemptResult {
		r := store.AttemptResult{Attempt: storetest.NewAttempt(f.Delivery, n, storetest.Base), Status: st}
		if st == store.DeliveryRetrying {
			r.NextAttemptAt = storetest.Base.Add(time.Hour)
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		f     storetest.Fixture
		final func(n int) bool // whether attempt n of the batch succeeds; the others are retrying
		want  string
	}{
		{"succeeded", f, func(int) bool { return true }, sqlRecordAttempts},
		{"retrying", others[0], func(int) bool { return false }, sqlRecordAttemptsScheduling},
		{"mixed", others[1], func(n int) bool { return n%10 != 0 }, batchOf(sqlRecordAttemptsScheduling, sqlDropSettledRetries)},
		{"mixed, the last retrying", others[2], func(n int) bool { return n != 100 }, batchOf(sqlRecordAttemptsScheduling, sqlDropSettledRetries)},
	} {
		var batch []store.AttemptResult
		for n := 1; n <= 100; n++ {
			st := store.DeliveryRetrying
			if tc.final(n) {
				st = store.DeliverySucceeded
			}
			batch = append(batch, outcome(tc.f, n, st))
		}
		if err := s.RecordAttempts(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if got := tr.take(); !slices.Equal(got, []string{tc.want}) {
			t.Fatalf("RecordAttempts of 100 %s results sent %q, want one round trip: %q", tc.name, got, tc.want)
		}
	}
	// The statements of InsertFanout: one batch (one round trip), whose
	// deliveries' statement schedules first attempts only when a delivery
	// has a due time.
	ev := storetest.NewEvent("acme", "hookline.test", storetest.Base)
	d := storetest.NewDelivery(ev, f.Sub, storetest.Base)
	if err := s.InsertFanout(ctx, []store.Event{ev}, []store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	if got, want := tr.take(), batchOf(sqlInsertEvents, sqlInsertDeliveries); !slices.Equal(got, []string{want}) {
		t.Fatalf("InsertFanout sent %q, want %q", got, want)
	}
	ev = storetest.NewEvent("acme", "hookline.test", storetest.Base)
	d = storetest.NewDelivery(ev, f.Sub, storetest.Base)
	d.NextAttemptAt = storetest.Base
	if err := s.InsertFanout(ctx, []store.Event{ev}, []store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	if got, want := tr.take(), batchOf(sqlInsertEvents, sqlInsertDeliveriesScheduling); !slices.Equal(got, []string{want}) {
		t.Fatalf("InsertFanout with a due time sent %q, want %q", got, want)
	}
}

// TestCommitErrorReported: on PostgreSQL the COMMIT after RELEASE SAVEPOINT
// cockroach_restart is the real commit, and its failure (here a deferred
// unique constraint) must reach the caller although crdb.ExecuteInTx
// ignores it.
func TestCommitErrorReported(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	s := openStore(t, url, Options{})
	conn := connectTest(t, url)
	if _, err := conn.Exec(ctx, `CREATE TABLE deferred_check (x INT8 UNIQUE DEFERRABLE INITIALLY DEFERRED)`); err != nil {
		t.Fatal(err)
	}
	err := s.inTx(ctx, "test", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO deferred_check (x) VALUES (1), (1)`)
		return err
	})
	if sqlState(err) != codeUniqueViolation || !strings.HasPrefix(err.Error(), "crdb: test: ") {
		t.Fatalf("inTx with a failing COMMIT returned %v, want the unique violation", err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM deferred_check`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows committed (err %v)", n, err)
	}
}

// TestClaimAcrossReplicas: several Stores (separate pools, as separate
// scheduler replicas) claim from one database at once; no retry is
// claimed twice while its lease lives, and every retry is claimed.
func TestClaimAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := crdbtest.NewDatabase(t)
	const replicas, workersEach, n = 4, 2, 240
	stores := make([]*Store, replicas)
	for i := range stores {
		stores[i] = openStore(t, url, Options{MaxConns: 3})
	}
	sub := storetest.NewSubscription("acme")
	if err := stores[0].CreateSubscription(ctx, sub, 0); err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	var ds []store.Delivery
	var rs []store.ScheduledRetry
	for i := range n {
		ev := storetest.NewEvent("acme", "order.created", storetest.Base.Add(time.Duration(i)*time.Millisecond))
		d := storetest.NewDelivery(ev, sub, ev.ReceivedAt)
		evs, ds = append(evs, ev), append(ds, d)
		rs = append(rs, store.ScheduledRetry{DeliveryID: d.ID, Attempt: 2, DueAt: storetest.Base.Add(-time.Duration(i%17) * time.Second)})
	}
	if err := stores[1].InsertFanout(ctx, evs, nil); err != nil {
		t.Fatal(err)
	}
	if err := stores[2].InsertFanout(ctx, nil, ds); err != nil {
		t.Fatal(err)
	}
	if err := stores[3].ScheduleRetries(ctx, rs); err != nil {
		t.Fatal(err)
	}

	now := storetest.Base.Add(time.Second)
	var mu sync.Mutex
	claims := map[string]int{}
	errs := make(chan error, replicas*workersEach)
	var wg sync.WaitGroup
	for r := range replicas {
		for range workersEach {
			wg.Go(func() {
				for {
					due, err := stores[r].ClaimDueRetries(ctx, now, 7, time.Hour)
					if err != nil {
						errs <- fmt.Errorf("replica %d: %w", r, err)
						return
					}
					if len(due) == 0 {
						return
					}
					mu.Lock()
					for _, d := range due {
						claims[d.DeliveryID]++
					}
					total := len(claims)
					mu.Unlock()
					if total > n {
						errs <- fmt.Errorf("%d distinct claims of %d retries", total, n)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, c := range claims {
		if c != 1 {
			t.Fatalf("retry %s claimed %d times by the replicas", id, c)
		}
	}
	if len(claims) != n {
		t.Fatalf("the replicas claimed %d distinct retries, want %d", len(claims), n)
	}
	// Every lease is live: nothing is claimable until they end, and then
	// everything is, once.
	for _, s := range stores {
		if due, err := s.ClaimDueRetries(ctx, now.Add(time.Hour), 1000, time.Hour); err != nil || len(due) != 0 {
			t.Fatalf("claim inside the leases: %d claimed, err %v", len(due), err)
		}
	}
	due, err := stores[0].ClaimDueRetries(ctx, now.Add(time.Hour+time.Nanosecond), 1000, time.Hour)
	if err != nil || len(due) != n {
		t.Fatalf("claim after the leases: %d claimed, err %v; want %d", len(due), err, n)
	}
}

// benchStore opens a store on a fresh database for b, with one
// subscription of tenant acme.
func benchStore(b *testing.B) (*Store, *store.Subscription) {
	b.Helper()
	s := openStore(b, crdbtest.NewDatabase(b), Options{})
	sub := storetest.NewSubscription("acme")
	if err := s.CreateSubscription(b.Context(), sub, 0); err != nil {
		b.Fatal(err)
	}
	return s, sub
}

// BenchmarkRecordAttempts measures the hot path: batches of attempt
// results, each advancing its delivery, on a fresh database. Most attempts
// succeed (outcome=succeeded: one statement per batch); outcome=retrying
// also schedules each delivery's next attempt, and outcome=mixed (one
// result in ten retrying) adds the removal of the others' retries, a second
// statement in the same round trip. Compare with the SQLite store's
// benchmark of the same name.
func BenchmarkRecordAttempts(b *testing.B) {
	storetest.BenchRecordAttempts(b, func(b *testing.B) (store.Store, *store.Subscription) { return benchStore(b) })
}

// BenchmarkFanoutWrite compares fanout's write of a batch (10 events, a
// delivery each) as two calls, the events' then the deliveries' (two round
// trips), with one InsertFanout call of both (one round trip), on a fresh
// database.
func BenchmarkFanoutWrite(b *testing.B) {
	for _, mode := range []string{"two-calls", "insert-fanout"} {
		b.Run(mode, func(b *testing.B) {
			s, sub := benchStore(b)
			ctx := b.Context()
			const batch = 10
			evs := make([]store.Event, batch)
			ds := make([]store.Delivery, batch)
			rows := 0
			for b.Loop() {
				for i := range evs {
					evs[i] = storetest.NewEvent("acme", "order.created", storetest.Base)
					ds[i] = storetest.NewDelivery(evs[i], sub, storetest.Base)
				}
				if mode == "two-calls" {
					if err := s.InsertFanout(ctx, evs, nil); err != nil {
						b.Fatal(err)
					}
					if err := s.InsertFanout(ctx, nil, ds); err != nil {
						b.Fatal(err)
					}
				} else if err := s.InsertFanout(ctx, evs, ds); err != nil {
					b.Fatal(err)
				}
				rows += batch
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
