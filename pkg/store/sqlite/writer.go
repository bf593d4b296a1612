package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hookline/hookline/pkg/groupcommit"
)

// Write combining. SQLite has one writer, and every commit appends the
// pages it dirtied to the WAL; services writing concurrently (fanout's
// events and deliveries, delivery's attempts, the scheduler's retries)
// would otherwise each wait for every transaction queued ahead of them,
// commit by commit. Instead, write operations go through a group-commit
// batcher with one flusher and no linger: everything queued (up to
// maxCombined operations, more joining while a transaction runs) runs in
// one transaction, each operation inside its own savepoint. An operation
// that fails is rolled back to its savepoint and reported to its caller
// alone; the others commit together. Pages shared between the operations
// (index pages, the same deliveries) are written to the WAL once per
// commit instead of once per operation.
const maxCombined = 64

// ErrClosed is returned by writes attempted after Close.
var ErrClosed = groupcommit.ErrClosed

// writeFunc is a write operation's statements. Its ctx carries the
// caller's values but never ends: the caller's cancellation is honoured
// before the operation starts, never in the middle of a transaction other
// operations share (an interrupted statement can make SQLite roll back
// the whole transaction), and statements run without the per-statement
// watcher goroutine the driver starts for a cancellable context.
type writeFunc func(ctx context.Context, tx *sql.Tx) error

// writeOp is one queued write.
type writeOp struct {
	ctx context.Context
	op  string
	fn  writeFunc
}

// writer runs queued write operations on the writer connection.
type writer struct {
	db    *sql.DB
	batch *groupcommit.Batcher[writeOp]
	txs   atomic.Int64 // transactions begun
	// fault is the storage failure of the last transaction (a full disk,
	// an I/O error), nil once a transaction commits again; Ready reports
	// it, so the store is not ready while it cannot write.
	fault atomic.Pointer[storageFault]
}

// storageFault is a write the database file could not take.
type storageFault struct {
	err  error
	when time.Time
}

// isStorageError reports whether err is the file system refusing a
// write (SQLITE_FULL, SQLITE_IOERR), not a problem of the statement.
func isStorageError(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database or disk is full") || strings.Contains(msg, "disk I/O error") ||
		strings.Contains(msg, "no space left on device")
}

// noteOutcome records a storage failure among errs, or clears the fault
// after a transaction that committed.
func (w *writer) noteOutcome(committed bool, errs []error) {
	if committed {
		w.fault.Store(nil)
		return
	}
	for _, err := range errs {
		if isStorageError(err) {
			w.fault.CompareAndSwap(nil, &storageFault{err: err, when: time.Now()})
			return
		}
	}
}

// storageErr is the current storage fault as an error, or nil.
func (w *writer) storageErr() error {
	f := w.fault.Load()
	if f == nil {
		return nil
	}
	return fmt.Errorf("sqlite: writes failing since %s: %w", f.when.UTC().Format(time.RFC3339), f.err)
}

func startWriter(db *sql.DB) *writer {
	w := &writer{db: db}
	w.batch = groupcommit.New(groupcommit.Config{MaxItems: maxCombined, Linger: -1, Flushers: 1}, w.run)
	return w
}

// do queues fn and waits for the transaction that runs it, returning fn's
// error or the transaction's. If ctx ends before fn is queued, fn does not
// run and ctx's error is returned; one that ends while fn waits in the
// queue skips it. Once fn has started, it runs to its end whatever ctx
// does (see writeFunc); the batch's transaction as a whole is bounded by
// the batcher's flush timeout, after which database/sql rolls it back and
// every operation of the batch reports an error.
func (w *writer) do(ctx context.Context, op string, fn writeFunc) error {
	return w.batch.Do(ctx, writeOp{ctx: ctx, op: op, fn: fn})
}

// close runs what is queued and stops the writer.
func (w *writer) close() { w.batch.Close() }

// run executes batch in one transaction and sets errs[i] to operation i's
// outcome.
func (w *writer) run(ctx context.Context, batch []writeOp, errs []error) {
	fail := func(err error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	live := 0
	for i := range batch {
		if err := batch[i].ctx.Err(); err != nil {
			errs[i] = err
		} else {
			live++
		}
	}
	if live == 0 {
		return
	}
	committed := false
	defer func() { w.noteOutcome(committed, errs) }()
	w.txs.Add(1)
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	// Statements never see a cancellable context: the driver would watch
	// each one with a goroutine (see writeFunc).
	stmtCtx := context.WithoutCancel(ctx)
	// savepoint runs a savepoint statement; if it fails, the transaction
	// is rolled back and every operation not failed already reports it.
	savepoint := func(q, what string) bool {
		if _, err := tx.ExecContext(stmtCtx, q); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("%s: %w", what, err))
			return false
		}
		return true
	}
	useSavepoints := live > 1
	for i := range batch {
		o := &batch[i]
		if errs[i] != nil {
			continue
		}
		if useSavepoints && !savepoint("SAVEPOINT op", "savepoint") {
			return
		}
		if err := o.fn(context.WithoutCancel(o.ctx), tx); err != nil {
			errs[i] = err
			if !useSavepoints {
				_ = tx.Rollback()
				return
			}
			// Undo this operation only. Should SQLite have rolled the whole
			// transaction back (some errors do), this fails, and so does
			// everything in the batch.
			if !savepoint("ROLLBACK TO op", "transaction lost after "+o.op+" failed") {
				return
			}
		}
		if useSavepoints && !savepoint("RELEASE op", "release savepoint") {
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	committed = true
}
