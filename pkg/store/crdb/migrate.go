package crdb

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// Migrations are embedded SQL files named NNNN_name.DIALECT.sql, where
// DIALECT is "postgres" or "cockroach" (Dialect.String): one file per
// version and dialect, both dialects having the same versions and names.
// A file holds one or more statements, each ended by a semicolon; comments
// (-- and /* */) are dropped. Statements use IF NOT EXISTS (or are
// otherwise idempotent) so that a migration interrupted half way can run
// again from its first statement, and use neither dollar quoting nor
// placeholders.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one forward-only schema step in one dialect's form.
type Migration struct {
	// Version orders the migrations; versions are contiguous from 1.
	Version int
	// Name is the file name's description: "init" for 0001_init.*.sql.
	Name string
	// Statements are the migration's SQL statements in order, one per
	// entry, without comments or a terminating semicolon, so each can be
	// parsed and executed on its own.
	Statements []string
}

// Migrations returns the embedded migrations in d's form, in version
// order. It fails if the embedded files are malformed, or if the two
// dialects' files do not have the same versions and names.
func Migrations(d Dialect) ([]Migration, error) {
	all, err := loadMigrations()
	if err != nil {
		return nil, fmt.Errorf("crdb: migrations: %w", err)
	}
	ms, ok := all[d]
	if !ok {
		return nil, fmt.Errorf("crdb: migrations: unknown dialect %v", d)
	}
	out := make([]Migration, len(ms))
	for i, m := range ms {
		m.Statements = slices.Clone(m.Statements)
		out[i] = m
	}
	return out, nil
}

// loadMigrations parses and checks the embedded files once.
var loadMigrations = sync.OnceValues(func() (map[Dialect][]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byDialect := map[Dialect][]Migration{DialectPostgres: nil, DialectCockroach: nil}
	for _, e := range entries {
		file := e.Name()
		if e.IsDir() || !strings.HasSuffix(file, ".sql") {
			continue
		}
		m, d, err := parseMigrationFile(file)
		if err != nil {
			return nil, err
		}
		byDialect[d] = append(byDialect[d], m)
	}
	for d, ms := range byDialect {
		slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
		for i, m := range ms {
			if m.Version != i+1 {
				return nil, fmt.Errorf("%s migrations: version %d (%s) where %d was expected: versions must be unique and contiguous from 1",
					d, m.Version, m.Name, i+1)
			}
		}
	}
	pg, cr := byDialect[DialectPostgres], byDialect[DialectCockroach]
	if len(pg) == 0 {
		return nil, errors.New("no embedded migrations")
	}
	for i := range max(len(pg), len(cr)) {
		if i >= len(pg) || i >= len(cr) || pg[i].Name != cr[i].Name {
			return nil, fmt.Errorf("migration %d: the postgres and cockroach files differ in presence or name", i+1)
		}
	}
	return byDialect, nil
})

// parseMigrationFile reads migrations/<file> (NNNN_name.DIALECT.sql).
func parseMigrationFile(file string) (Migration, Dialect, error) {
	stem := strings.TrimSuffix(file, ".sql")
	dot := strings.LastIndexByte(stem, '.')
	if dot < 0 {
		return Migration{}, 0, fmt.Errorf("migration %q: want NNNN_name.postgres.sql or NNNN_name.cockroach.sql", file)
	}
	var d Dialect
	switch stem[dot+1:] {
	case DialectPostgres.String():
		d = DialectPostgres
	case DialectCockroach.String():
		d = DialectCockroach
	default:
		return Migration{}, 0, fmt.Errorf("migration %q: unknown dialect %q", file, stem[dot+1:])
	}
	prefix, name, ok := strings.Cut(stem[:dot], "_")
	if !ok || name == "" {
		return Migration{}, 0, fmt.Errorf("migration %q: want NNNN_name.%s.sql", file, d)
	}
	v, err := strconv.Atoi(prefix)
	if err != nil || v <= 0 {
		return Migration{}, 0, fmt.Errorf("migration %q: bad version %q", file, prefix)
	}
	body, err := migrationFS.ReadFile(path.Join("migrations", file))
	if err != nil {
		return Migration{}, 0, fmt.Errorf("read migration %q: %w", file, err)
	}
	stmts, err := splitStatements(string(body))
	if err != nil {
		return Migration{}, 0, fmt.Errorf("migration %q: %w", file, err)
	}
	if len(stmts) == 0 {
		return Migration{}, 0, fmt.Errorf("migration %q: no statements", file)
	}
	return Migration{Version: v, Name: name, Statements: stmts}, d, nil
}

// splitStatements splits SQL text at the semicolons that end statements,
// dropping comments and blank lines. It understands '...' string literals
// and "..." identifiers (with doubled quotes inside), and refuses '$' so
// that dollar quoting, which it does not parse, cannot be misread.
func splitStatements(sql string) ([]string, error) {
	var out []string
	var cur strings.Builder
	flush := func() {
		var lines []string
		for l := range strings.Lines(cur.String()) {
			if l = strings.TrimRight(l, " \t\r\n"); strings.TrimSpace(l) != "" {
				lines = append(lines, l)
			}
		}
		if st := strings.TrimSpace(strings.Join(lines, "\n")); st != "" {
			out = append(out, st)
		}
		cur.Reset()
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				i = len(sql)
				continue
			}
			i += end - 1 // the newline itself is kept
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("unterminated /* comment")
			}
			cur.WriteByte(' ')
			i += 2 + end + 1
		case c == '\'' || c == '"':
			j := i + 1
			for {
				k := strings.IndexByte(sql[j:], c)
				if k < 0 {
					return nil, fmt.Errorf("unterminated %c quote", c)
				}
				j += k + 1
				if j < len(sql) && sql[j] == c { // a doubled quote: still inside
					j++
					continue
				}
				break
			}
			cur.WriteString(sql[i:j])
			i = j - 1
		case c == '$':
			return nil, errors.New("'$' outside a string literal: dollar quoting and placeholders are not supported in migrations")
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out, nil
}

// MigrateWith applies every pending migration to the database at url under
// the migration lease, through a connection pool built from opts (MaxConns,
// Tracer and Keyring are used; Migrate is ignored), so that a tracer sees
// the migration and lease statements too. Then, pending migrations or not,
// it seals with opts.Keyring the signing secrets of every subscription
// still holding them in the clear (written before migration 4, or left by
// an interrupted run), clearing the plaintext; without a keyring it fails,
// wrapping ErrPlaintextSecrets, if there are any. It returns the versions
// this call applied, in order: none when the schema is up to date or
// another process applied them meanwhile. On error it returns the versions
// applied before the failure. A nil logger means slog.Default().
func MigrateWith(ctx context.Context, url string, opts Options, logger *slog.Logger) ([]int, error) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With(slog.String("component", "store.crdb"))
	pool, dialect, err := connect(ctx, url, opts)
	if err != nil {
		return nil, fmt.Errorf("crdb: migrate: %w", err)
	}
	defer pool.Close()
	applied, err := newMigrator(pool, dialect, logger).run(ctx)
	if err != nil {
		return applied, fmt.Errorf("crdb: migrate: %w", err)
	}
	if err := sealLegacySecrets(ctx, pool, opts.Keyring, logger); err != nil {
		return applied, fmt.Errorf("crdb: migrate: %w", err)
	}
	return applied, nil
}

// Migrate applies every pending migration to the database at url, under
// the migration lease, and returns the versions it applied (see
// MigrateWith). It has no keyring, so it fails (after migrating the schema)
// if some subscriptions' signing secrets are still in the clear: use
// MigrateWith with Options.Keyring to seal them. Any number of processes
// may call it at once: each version is applied by exactly one of them.
func Migrate(ctx context.Context, url string, logger *slog.Logger) ([]int, error) {
	return MigrateWith(ctx, url, Options{}, logger)
}

// The migration lease. Advisory locks do not exist on CockroachDB, so
// migrators coordinate through one row of migration_lease: the holder
// inserts it, or takes it over once it has expired, with a single
// INSERT ... ON CONFLICT DO UPDATE ... WHERE expired statement; renews it
// every leaseTTL/3 while migrating; and deletes it when done. A holder that
// dies stops renewing, and its lease expires after leaseTTL. Lease times
// are the migrating process's clock, in unix nanoseconds.
const (
	// leaseTTL is how long a lease lives without renewal. It bounds how
	// long a crashed migrator blocks the others, and must far exceed the
	// clock skew between hosts (CockroachDB itself tolerates 500 ms).
	leaseTTL = 30 * time.Second
	// leasePoll is how often a waiting migrator tries again (with jitter).
	leasePoll = 200 * time.Millisecond
)

// bootstrapStatements create the tables the migrator itself needs; they
// are the same in both dialects and are not a migration.
var bootstrapStatements = []string{
	`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INT8 NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INT8 NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS migration_lease (
    id         INT8 NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INT8 NOT NULL
)`,
}

const (
	sqlAcquireLease = `INSERT INTO migration_lease (id, holder, expires_at) VALUES (1, $1, $2)
ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE migration_lease.expires_at < $3 OR migration_lease.holder = excluded.holder
RETURNING holder`
	sqlRenewLease   = `UPDATE migration_lease SET expires_at = $1 WHERE id = 1 AND holder = $2`
	sqlReleaseLease = `DELETE FROM migration_lease WHERE id = 1 AND holder = $1`
	sqlLeaseHolder  = `SELECT holder, expires_at FROM migration_lease WHERE id = 1`
	sqlRecordMig    = `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)
ON CONFLICT (version) DO NOTHING`
)

// migrator applies migrations through one pool.
type migrator struct {
	pool    *pgxpool.Pool
	dialect Dialect
	logger  *slog.Logger
	holder  string // this migrator's identity in migration_lease
	ttl     time.Duration
	poll    time.Duration
}

func newMigrator(pool *pgxpool.Pool, d Dialect, logger *slog.Logger) *migrator {
	host, _ := os.Hostname()
	return &migrator{
		pool: pool, dialect: d, logger: logger,
		holder: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), randomHex(6)),
		ttl:    leaseTTL, poll: leasePoll,
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// run applies the pending migrations under the lease and returns the
// versions it applied.
func (m *migrator) run(ctx context.Context) ([]int, error) {
	ms, err := Migrations(m.dialect)
	if err != nil {
		return nil, err
	}
	pending, err := m.pending(ctx, ms)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	if err := m.bootstrap(ctx); err != nil {
		return nil, err
	}
	l, err := m.acquire(ctx, ms)
	if err != nil || l == nil {
		return nil, err
	}
	defer l.release()
	applied, err := m.apply(l.ctx, ms)
	if err != nil && l.ctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w (%w)", err, context.Cause(l.ctx))
	}
	return applied, err
}

// appliedVersions returns the versions recorded in schema_migrations; none
// when the table does not exist yet.
func appliedVersions(ctx context.Context, pool *pgxpool.Pool) (map[int]bool, error) {
	rows, err := pool.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		if sqlState(err) == codeUndefinedTable {
			return map[int]bool{}, nil
		}
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	var v int64
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		if sqlState(err) == codeUndefinedTable {
			return map[int]bool{}, nil
		}
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

// checkSchema fails with a *SchemaBehindError unless every embedded
// migration is recorded as applied.
func checkSchema(ctx context.Context, pool *pgxpool.Pool, d Dialect) error {
	ms, err := Migrations(d)
	if err != nil {
		return err
	}
	applied, err := appliedVersions(ctx, pool)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if !applied[m.Version] {
			current := 0
			for v := range applied {
				current = max(current, v)
			}
			return &SchemaBehindError{Current: current, Required: ms[len(ms)-1].Version}
		}
	}
	return nil
}

func (m *migrator) pending(ctx context.Context, ms []Migration) ([]Migration, error) {
	applied, err := appliedVersions(ctx, m.pool)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, mig := range ms {
		if !applied[mig.Version] {
			out = append(out, mig)
		}
	}
	return out, nil
}

// bootstrap creates schema_migrations and migration_lease. Several
// processes may race here: PostgreSQL can then fail one CREATE TABLE IF
// NOT EXISTS with a unique violation in its catalog or with "relation" or
// "type already exists", and CockroachDB with a retryable error; the
// statement is then run again, and finds the table.
func (m *migrator) bootstrap(ctx context.Context) error {
	for _, st := range bootstrapStatements {
		err := retryLoop(ctx, m.logger, "bootstrap", func(err error) bool {
			switch sqlState(err) {
			case codeUniqueViolation, codeDuplicateTable, codeDuplicateObject, codeSerializationFailure:
				return true
			}
			return false
		}, func(ctx context.Context) error {
			_, err := m.pool.Exec(ctx, st)
			return err
		})
		if err != nil {
			return fmt.Errorf("create migration tables: %w", err)
		}
	}
	return nil
}

// lease is a held migration lease.
type lease struct {
	// ctx is cancelled, with the reason as its cause, when the lease is
	// lost or released.
	ctx     context.Context
	release func()
}

var errLeaseReleased = errors.New("migration lease released")

// acquire waits until it holds the lease and returns it, or returns nil
// when another migrator has applied every migration meanwhile. It gives up
// when ctx ends.
func (m *migrator) acquire(ctx context.Context, ms []Migration) (*lease, error) {
	logged := false
	for {
		expires := time.Now().Add(m.ttl)
		ok, err := m.tryAcquire(ctx, expires)
		if err != nil {
			return nil, err
		}
		if ok {
			m.logger.DebugContext(ctx, "migration lease acquired", slog.String("holder", m.holder))
			return m.hold(ctx, expires), nil
		}
		pending, err := m.pending(ctx, ms)
		if err != nil {
			return nil, err
		}
		if len(pending) == 0 {
			return nil, nil
		}
		var holder string
		var until int64
		err = m.pool.QueryRow(ctx, sqlLeaseHolder).Scan(&holder, &until)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("read migration lease: %w", err)
		}
		if !logged {
			m.logger.InfoContext(ctx, "waiting for the migration lease", slog.String("holder", holder),
				slog.Time("expires", rowcodec.FromNanos(until)))
			logged = true
		}
		pause := m.poll/2 + time.Duration(mathrand.Int64N(int64(m.poll)))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the migration lease held by %q until %s: %w",
				holder, rowcodec.FromNanos(until).Format(time.RFC3339Nano), ctx.Err())
		case <-t.C:
		}
	}
}

// tryAcquire takes the lease if it is free, expired or already ours.
func (m *migrator) tryAcquire(ctx context.Context, expires time.Time) (bool, error) {
	var ok bool
	err := retryLoop(ctx, m.logger, "acquire migration lease", retryable, func(ctx context.Context) error {
		rows, err := m.pool.Query(ctx, sqlAcquireLease, m.holder, expires.UnixNano(), time.Now().UnixNano())
		if err != nil {
			return err
		}
		ok = rows.Next()
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return false, fmt.Errorf("acquire migration lease: %w", err)
	}
	return ok, nil
}

// hold renews the acquired lease (which expires at expires) until it is
// released or lost.
func (m *migrator) hold(ctx context.Context, expires time.Time) *lease {
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(m.ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			next := time.Now().Add(m.ttl)
			tag, err := m.pool.Exec(lctx, sqlRenewLease, next.UnixNano(), m.holder)
			switch {
			case lctx.Err() != nil:
				return
			case err != nil:
				m.logger.WarnContext(ctx, "renewing the migration lease failed", slog.Any("error", err))
				if time.Now().After(expires) {
					cancel(fmt.Errorf("migration lease expired: renewing it failed: %w", err))
					return
				}
			case tag.RowsAffected() == 0:
				cancel(errors.New("migration lease lost: another process took it over after it expired"))
				return
			default:
				expires = next
			}
		}
	}()
	release := func() {
		cancel(errLeaseReleased)
		<-done
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer rcancel()
		if _, err := m.pool.Exec(rctx, sqlReleaseLease, m.holder); err != nil {
			m.logger.WarnContext(ctx, "releasing the migration lease failed; it expires by itself",
				slog.Any("error", err), slog.Duration("ttl", m.ttl))
		}
	}
	return &lease{ctx: lctx, release: release}
}

// apply runs, in version order, every migration not yet recorded: its
// statements one by one, then its schema_migrations row. It returns the
// versions whose row it inserted.
func (m *migrator) apply(ctx context.Context, ms []Migration) ([]int, error) {
	pending, err := m.pending(ctx, ms)
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, mig := range pending {
		start := time.Now()
		for i, st := range mig.Statements {
			err := retryLoop(ctx, m.logger, "migrate", retryable, func(ctx context.Context) error {
				_, err := m.pool.Exec(ctx, st)
				return err
			})
			if err != nil {
				return applied, fmt.Errorf("migration %04d_%s (%s), statement %d of %d: %w",
					mig.Version, mig.Name, m.dialect, i+1, len(mig.Statements), err)
			}
		}
		var inserted bool
		err := retryLoop(ctx, m.logger, "record migration", retryable, func(ctx context.Context) error {
			tag, err := m.pool.Exec(ctx, sqlRecordMig, mig.Version, mig.Name, time.Now().UTC().UnixNano())
			inserted = tag.RowsAffected() == 1
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migration %04d_%s: record: %w", mig.Version, mig.Name, err)
		}
		if !inserted {
			m.logger.WarnContext(ctx, "migration recorded by another process meanwhile",
				slog.Int("version", mig.Version), slog.String("name", mig.Name))
			continue
		}
		applied = append(applied, mig.Version)
		m.logger.InfoContext(ctx, "applied migration", slog.Int("version", mig.Version), slog.String("name", mig.Name),
			slog.String("dialect", m.dialect.String()), slog.Duration("took", time.Since(start)))
	}
	return applied, nil
}
