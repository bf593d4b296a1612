// Package sqlite implements store.Store on SQLite through the pure-Go
// driver modernc.org/sqlite. It is the embedded store of `hookline dev` and
// of quick tests; production binaries use the CockroachDB store instead.
//
// Durability: the database runs in WAL mode with synchronous=NORMAL. A
// committed transaction survives a crash of the process (the WAL is in the
// operating system's page cache and is replayed on the next open); only a
// power loss or kernel crash can lose the most recent commits. That is the
// guarantee `hookline dev` needs.
//
// Concurrency: every write goes through one writer connection, so writers
// queue in Go instead of failing with SQLITE_BUSY, and write transactions
// begin IMMEDIATE so they never have to upgrade a read lock. Reads use a
// separate pool of read-only connections, which WAL lets run alongside the
// writer. A ":memory:" database uses a single connection for both, because
// every connection to ":memory:" would open a different database.
//
// Signing secrets: each subscription's secrets are sealed with the
// keyring given at Open (see package keyring) into secrets_sealed, bound
// to the subscription's id, with the sealing key's id in secrets_key_id;
// no column holds them in the clear. Open refuses a database holding
// secrets sealed with a key the keyring lacks.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

var _ store.Store = (*Store)(nil)

// busyTimeoutMS bounds how long a connection waits for a lock held by
// another process (or a WAL checkpoint) before failing with SQLITE_BUSY.
const busyTimeoutMS = 10000

// Options configure Open.
type Options struct {
	// Keyring seals the subscriptions' signing secrets; required. Its
	// current key seals every secret written; its other keys open secrets
	// sealed before a rotation (see Store.ReencryptSecrets).
	Keyring *keyring.Keyring
}

// Store is a store.Store backed by one SQLite database. It is safe for
// concurrent use by many goroutines.
type Store struct {
	write  *sql.DB // exactly one connection; every write goes through it
	read   *sql.DB // read-only pool; the same *sql.DB as write for ":memory:"
	logger *slog.Logger
	kr     *keyring.Keyring

	stmts  writerStmts
	writer *writer
	// revision reads the subscription revision on the read pool. Fanout
	// reads it before matching each batch, so it is prepared once (a
	// statement prepared per query cost as much again as running it).
	revision *sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating it if needed) the SQLite database at path, applies
// any pending migrations and returns a ready Store. path is a file name or
// ":memory:" (a private in-memory database that lives until Close).
// opts.Keyring is required: migrating a database of an earlier version
// seals its plaintext secrets with it, and Open fails with an error
// wrapping store.ErrMissingSecretKey, naming the key ids, when some
// secrets are sealed with keys it lacks. A nil logger means
// slog.Default().
func Open(ctx context.Context, path string, opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With(slog.String("component", "store.sqlite"))
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	if opts.Keyring == nil {
		return nil, fmt.Errorf("sqlite: open %q: no keyring to seal signing secrets with (Options.Keyring)", path)
	}
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("sqlite: open %q: path must not carry query parameters", path)
	}
	memory := path == ":memory:"

	// temp_store(MEMORY): the writer's statement journals and the
	// sub-journals of write combining's savepoints stay in memory instead
	// of temporary files written with a system call per page.
	writeDSN := path + "?_txlock=immediate&_busy_timeout=" + fmt.Sprint(busyTimeoutMS) + "&_pragma=temp_store(MEMORY)"
	if !memory {
		writeDSN += "&_journal_mode=WAL&_synchronous=NORMAL&_pragma=cache_size(-8192)"
	}
	write, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer %q: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	s := &Store{write: write, read: write, logger: logger, kr: opts.Keyring}
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open writer %q: %w", path, err)
	}
	if _, err := migrate(ctx, write, opts.Keyring, logger); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	if err := checkSecretKeys(ctx, write, opts.Keyring); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}

	if !memory {
		readDSN := path + "?_busy_timeout=" + fmt.Sprint(busyTimeoutMS) + "&_query_only=1"
		read, err := sql.Open("sqlite", readDSN)
		if err != nil {
			write.Close()
			return nil, fmt.Errorf("sqlite: open readers %q: %w", path, err)
		}
		n := max(4, runtime.GOMAXPROCS(0))
		read.SetMaxOpenConns(n)
		read.SetMaxIdleConns(n)
		if err := read.PingContext(ctx); err != nil {
			read.Close()
			write.Close()
			return nil, fmt.Errorf("sqlite: open readers %q: %w", path, err)
		}
		s.read = read
	}

	s.writer = startWriter(write)
	if err := s.stmts.prepare(ctx, write); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	if s.revision, err = s.read.PrepareContext(ctx, sqlSubscriptionsRevision); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %q: prepare %q: %w", path, sqlSubscriptionsRevision, err)
	}
	logger.Debug("sqlite store open", slog.String("path", path))
	return s, nil
}

// checkSecretKeys fails, wrapping store.ErrMissingSecretKey, if any
// subscription's secrets are sealed with a key kr lacks: one query of the
// distinct key ids (an index holds them).
func checkSecretKeys(ctx context.Context, db *sql.DB, kr *keyring.Keyring) error {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT secrets_key_id FROM subscriptions`)
	if err != nil {
		return fmt.Errorf("read secret key ids: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("read secret key ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("read secret key ids: %w", err)
	}
	return rowcodec.MissingKeys(kr, ids)
}

// Ready reports whether both the writer and the readers answer a query,
// and whether the last write transaction could be written: after a write
// the file system refused (a full disk, an I/O error) the store is not
// ready, saying why, until a transaction commits again.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.writer.storageErr(); err != nil {
		return err
	}
	var one int
	if err := s.write.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ready (writer): %w", err)
	}
	if err := s.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ready (reader): %w", err)
	}
	return nil
}

// Close closes every connection. It is safe to call more than once; later
// calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.writer != nil {
			s.writer.close() // runs what is queued
		}
		errs = append(errs, s.stmts.close())
		if s.revision != nil {
			errs = append(errs, s.revision.Close())
		}
		if s.read != s.write {
			errs = append(errs, s.read.Close())
		}
		errs = append(errs, s.write.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// inWriteTx runs fn in an IMMEDIATE transaction on the writer connection
// and commits it if fn returns nil; fn's writes are undone if it returns
// an error. The transaction may also hold other callers' operations, each
// in its own savepoint (see writer): fn must do all its work through tx
// and may not commit or roll it back.
func (s *Store) inWriteTx(ctx context.Context, op string, fn writeFunc) error {
	if err := s.writer.do(ctx, op, fn); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return nil
}

// writerStmts are the hot-path statements, prepared once on the writer
// connection and bound to each transaction with tx.StmtContext: the
// delivery path (events, deliveries, attempts) and the retry path
// (scheduling, claiming and completing retries).
type writerStmts struct {
	insertAttempt   *sql.Stmt
	advanceDelivery *sql.Stmt
	dropRetries     *sql.Stmt
	insertEvent     *sql.Stmt
	insertDelivery  *sql.Stmt
	scheduleUpdate  *sql.Stmt
	scheduleInsert  *sql.Stmt
	claimRetry      *sql.Stmt
	completeRetry   *sql.Stmt
}

// all lists each statement's field with its SQL.
func (w *writerStmts) all() []struct {
	dst **sql.Stmt
	sql string
} {
	return []struct {
		dst **sql.Stmt
		sql string
	}{
		{&w.insertAttempt, sqlInsertAttempt},
		{&w.advanceDelivery, sqlAdvanceDelivery},
		{&w.dropRetries, sqlDropRetriesUpTo},
		{&w.insertEvent, sqlInsertEvent},
		{&w.insertDelivery, sqlInsertDelivery},
		{&w.scheduleUpdate, sqlScheduleUpdate},
		{&w.scheduleInsert, sqlScheduleInsert},
		{&w.claimRetry, sqlClaimRetry},
		{&w.completeRetry, sqlCompleteRetry},
	}
}

func (w *writerStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range w.all() {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", firstLine(p.sql), err)
		}
		*p.dst = st
	}
	return nil
}

func (w *writerStmts) close() error {
	var errs []error
	for _, p := range w.all() {
		if *p.dst != nil {
			errs = append(errs, (*p.dst).Close())
		}
	}
	return errors.Join(errs...)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
