package crdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	crdbgo "github.com/cockroachdb/cockroach-go/v2/crdb"
	crdbpgx "github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store"
)

var _ store.Store = (*Store)(nil)

// Dialect is the SQL server the store talks to; detected at Open.
type Dialect int

// Dialects.
const (
	// DialectPostgres is PostgreSQL (the tests' stand-in for CockroachDB).
	DialectPostgres Dialect = iota + 1
	// DialectCockroach is CockroachDB, the production server.
	DialectCockroach
)

// String returns "postgres" or "cockroach": the dialect's name in the
// migration file names.
func (d Dialect) String() string {
	switch d {
	case DialectPostgres:
		return "postgres"
	case DialectCockroach:
		return "cockroach"
	default:
		return "Dialect(" + strconv.Itoa(int(d)) + ")"
	}
}

// Options tune Open.
type Options struct {
	// MaxConns caps the connection pool; 0 means pgxpool's default
	// (the larger of 4 and the number of CPUs). Migrating takes two
	// connections at once (one runs the statements, one renews the
	// migration lease), so the pool should allow at least two. Negative
	// values are refused.
	MaxConns int32
	// Migrate applies pending migrations at Open (under the migration
	// lease), then seals any signing secrets still held in the clear (see
	// MigrateWith). When false, Open fails with a *SchemaBehindError if
	// the schema is behind, and with an error wrapping ErrPlaintextSecrets
	// if some subscription's secrets are still unsealed.
	Migrate bool
	// Keyring seals the subscriptions' signing secrets; Open requires it.
	// Its current key seals every secret written; its other keys open
	// secrets sealed before a rotation (see Store.ReencryptSecrets). Open
	// fails, wrapping store.ErrMissingSecretKey, when some secrets are
	// sealed with a key it lacks. MigrateWith uses it to seal the
	// plaintext secrets of databases migrated from before version 4.
	Keyring *keyring.Keyring
	// Tracer, if set, is installed on every connection of the pool, so it
	// sees every statement the store sends: queries, transaction control
	// (BEGIN, SAVEPOINT cockroach_restart, RELEASE, COMMIT), migrations and
	// the migration lease statements.
	Tracer pgx.QueryTracer
}

// Store is a store.Store on CockroachDB or PostgreSQL. It is safe for
// concurrent use by many goroutines, and any number of Stores (in any
// number of processes) may share one database.
type Store struct {
	pool    *pgxpool.Pool
	dialect Dialect
	logger  *slog.Logger
	kr      *keyring.Keyring

	closeOnce sync.Once
}

// SchemaBehindError is returned by Open with Options.Migrate false when the
// database lacks migrations this binary needs.
type SchemaBehindError struct {
	// Current is the highest migration version applied (0 for none).
	Current int
	// Required is the highest migration version this binary embeds.
	Required int
}

// Error says which versions the schema and the binary are at, and what
// to run.
func (e *SchemaBehindError) Error() string {
	return fmt.Sprintf("schema at version %d, binary needs %d: run `hookline migrate`", e.Current, e.Required)
}

// Open connects to url (postgres:// or postgresql://), detects the dialect
// (`SELECT version()` mentions CockroachDB or not) and returns a ready
// Store. opts.Keyring is required. With opts.Migrate it first applies
// pending migrations under the migration lease and seals secrets left in
// the clear; without, it fails with a *SchemaBehindError when the schema
// lacks a migration this binary embeds, and with an error wrapping
// ErrPlaintextSecrets when some subscription's secrets are not sealed yet
// (both say to run `hookline migrate`). It then fails, wrapping
// store.ErrMissingSecretKey and naming the key ids, if some secrets are
// sealed with a key the keyring lacks. A schema ahead of the binary
// (holding versions it does not know) is accepted, so that replicas of the
// previous release keep running through a rolling upgrade. A nil logger
// means slog.Default(). The url's password never appears in errors or
// logs.
func Open(ctx context.Context, url string, opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With(slog.String("component", "store.crdb"))
	if opts.Keyring == nil {
		return nil, errors.New("crdb: open: no keyring to seal signing secrets with (Options.Keyring)")
	}
	pool, dialect, err := connect(ctx, url, opts)
	if err != nil {
		return nil, fmt.Errorf("crdb: open: %w", err)
	}
	s := &Store{pool: pool, dialect: dialect, logger: logger, kr: opts.Keyring}
	if opts.Migrate {
		if _, err := newMigrator(pool, dialect, logger).run(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("crdb: open: %w", err)
		}
		if err := sealLegacySecrets(ctx, pool, opts.Keyring, logger); err != nil {
			pool.Close()
			return nil, fmt.Errorf("crdb: open: %w", err)
		}
	} else {
		if err := checkSchema(ctx, pool, dialect); err != nil {
			pool.Close()
			return nil, fmt.Errorf("crdb: open: %w", err)
		}
		if err := checkNoPlaintextSecrets(ctx, pool); err != nil {
			pool.Close()
			return nil, fmt.Errorf("crdb: open: %w", err)
		}
	}
	if err := checkSecretKeys(ctx, pool, opts.Keyring); err != nil {
		pool.Close()
		return nil, fmt.Errorf("crdb: open: %w", err)
	}
	logger.DebugContext(ctx, "crdb store open", slog.String("dialect", dialect.String()), slog.String("url", redact(url)))
	return s, nil
}

// connect builds the pool for url with opts and detects the dialect.
func connect(ctx context.Context, rawURL string, opts Options) (*pgxpool.Pool, Dialect, error) {
	if !strings.HasPrefix(rawURL, "postgres://") && !strings.HasPrefix(rawURL, "postgresql://") {
		return nil, 0, fmt.Errorf("url %q: want postgres:// or postgresql://", redact(rawURL))
	}
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, 0, fmt.Errorf("parse url %q: %w", redact(rawURL), err)
	}
	if opts.MaxConns < 0 {
		return nil, 0, fmt.Errorf("max conns %d: must not be negative", opts.MaxConns)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "hookline"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("connect to %s: %w", redact(rawURL), err)
	}
	var version string
	if err := pool.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		pool.Close()
		return nil, 0, fmt.Errorf("connect to %s: %w", redact(rawURL), err)
	}
	d := DialectPostgres
	if strings.Contains(version, "CockroachDB") {
		d = DialectCockroach
	}
	return pool, d, nil
}

// redact hides the password of a connection URL for logs and errors.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// Dialect reports the server dialect detected at Open.
func (s *Store) Dialect() Dialect { return s.dialect }

// Ready reports whether the database answers a query; its error names
// the server and why it does not.
func (s *Store) Ready(ctx context.Context) error {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one)
	if err != nil && ctx.Err() == nil {
		// A pooled connection the server dropped fails once ("unexpected
		// EOF") and is discarded; a second try dials, and its error names
		// the cause (connection refused, authentication...).
		err = s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one)
	}
	if err != nil {
		cc := s.pool.Config().ConnConfig
		return fmt.Errorf("crdb: ready: the database server %s:%d does not answer: %w", cc.Host, cc.Port, err)
	}
	return nil
}

// Close closes every connection of the pool, waiting for connections in
// use to be released. It is safe to call more than once; every call
// returns nil. Operations after Close fail.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// SQLSTATE codes the store reacts to.
const (
	codeSerializationFailure = "40001" // CockroachDB's "restart transaction"
	codeDeadlockDetected     = "40P01" // PostgreSQL only
	codeUndefinedTable       = "42P01"
	codeUniqueViolation      = "23505"
	codeDuplicateTable       = "42P07"
	codeDuplicateObject      = "42710"
)

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// maxRuns bounds how often one operation runs in all when it keeps failing
// with a retryable error that escaped the savepoint protocol.
const maxRuns = 10

// retryable reports whether an operation that failed with err may simply
// run again. Every store operation is idempotent, so running it again is
// always safe; these are the errors that say "nothing happened, try
// again": a serialization failure that CockroachDB could not retry by
// itself (an implicit transaction whose results were already streamed, or
// one that crdb.ExecuteTx gave up on is NOT retried again) and a
// PostgreSQL deadlock.
func retryable(err error) bool {
	var exhausted *crdbgo.MaxRetriesExceededError
	if errors.As(err, &exhausted) {
		return false
	}
	switch sqlState(err) {
	case codeSerializationFailure, codeDeadlockDetected:
		return true
	}
	return false
}

// run runs fn, and runs it again while it fails with a retryable error
// (see retryLoop), wrapping a final error with "crdb: op".
func (s *Store) run(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	if err := retryLoop(ctx, s.logger, op, retryable, fn); err != nil {
		return fmt.Errorf("crdb: %s: %w", op, err)
	}
	return nil
}

// retryLoop runs fn, and runs it again after a short, jittered, growing
// pause while it fails with an error for which isRetryable is true, at most
// maxRuns times in all and never after ctx ends. fn must start from
// scratch on every run.
func retryLoop(ctx context.Context, logger *slog.Logger, op string, isRetryable func(error) bool, fn func(ctx context.Context) error) error {
	for n := 1; ; n++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if !isRetryable(err) || n == maxRuns || ctx.Err() != nil {
			return err
		}
		pause := time.Duration(rand.Int64N(int64(n) * int64(4*time.Millisecond)))
		logger.DebugContext(ctx, "retrying", slog.String("op", op), slog.Int("run", n),
			slog.Duration("pause", pause), slog.Any("error", err))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retry abandoned: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// inTx runs fn in one transaction through crdbpgxv5.ExecuteTx, which wraps
// it in the SAVEPOINT cockroach_restart protocol: on CockroachDB a
// retryable error rolls back to the savepoint and runs fn again, and
// RELEASE SAVEPOINT commits. fn therefore runs one or more times and must
// start from scratch each time (reset anything it accumulates). The whole
// transaction is in turn run again by Store.run when a retryable error
// escapes ExecuteTx.
func (s *Store) inTx(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.run(ctx, op, func(ctx context.Context) error {
		var commitErr error
		err := crdbpgx.ExecuteTx(ctx, beginner{pool: s.pool, commitErr: &commitErr}, pgx.TxOptions{},
			func(tx pgx.Tx) error { return fn(ctx, tx) })
		if err == nil && s.dialect == DialectPostgres {
			// crdb.ExecuteInTx ignores the COMMIT that follows RELEASE
			// SAVEPOINT, which is right on CockroachDB (RELEASE commits) but
			// not on PostgreSQL, where COMMIT is the real commit.
			err = commitErr
		}
		return err
	})
}

// beginner hands crdbpgxv5.ExecuteTx transactions of the pool whose COMMIT
// error is kept (see inTx).
type beginner struct {
	pool      *pgxpool.Pool
	commitErr *error
}

func (b beginner) Begin(ctx context.Context) (pgx.Tx, error) {
	return b.BeginTx(ctx, pgx.TxOptions{})
}

func (b beginner) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	tx, err := b.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &commitCheckedTx{Tx: tx, commitErr: b.commitErr}, nil
}

// commitCheckedTx is a pgx.Tx that records the result of Commit.
type commitCheckedTx struct {
	pgx.Tx
	commitErr *error
}

func (t *commitCheckedTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	*t.commitErr = err
	return err
}
