package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Write combining. SQLite has one writer, and every commit appends the
// pages it dirtied to the WAL; services writing concurrently (fanout's
// events and deliveries, delivery's attempts, the scheduler's retries)
// would otherwise each wait for every transaction queued ahead of them,
// commit by commit. Instead, write operations queue for one writer
// goroutine, which runs everything queued (up to maxCombined operations)
// in one transaction, each operation inside its own savepoint: an
// operation that fails is rolled back to its savepoint and reported to its
// caller alone, the others commit together. Pages shared between the
// operations (index pages, the same deliveries) are written to the WAL
// once per commit instead of once per operation.
const maxCombined = 64

// ErrClosed is returned by writes attempted after Close.
var ErrClosed = errors.New("sqlite: store closed")

// writeOp is one queued write.
type writeOp struct {
	ctx  context.Context
	op   string
	fn   func(tx *sql.Tx) error
	done chan error
}

// writer runs queued write operations on the writer connection.
type writer struct {
	db *sql.DB

	mu     sync.RWMutex
	closed bool
	ops    chan *writeOp
	wg     sync.WaitGroup

	txs atomic.Int64 // transactions begun
}

func startWriter(db *sql.DB) *writer {
	w := &writer{db: db, ops: make(chan *writeOp, maxCombined)}
	w.wg.Go(w.loop)
	return w
}

// do queues fn and waits for the transaction that runs it, returning fn's
// error or the transaction's. If ctx ends before fn starts, fn does not
// run and ctx's error is returned. Should ctx end while fn's statements
// run, SQLite may abandon the whole transaction; then every operation of
// the batch reports an error and none is committed, which callers already
// handle as a failed write.
func (w *writer) do(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	o := &writeOp{ctx: ctx, op: op, fn: fn, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.ops <- o:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	return <-o.done
}

// close runs what is queued and stops the writer.
func (w *writer) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.ops)
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *writer) loop() {
	batch := make([]*writeOp, 0, maxCombined)
	errs := make([]error, 0, maxCombined)
	for first := range w.ops {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < maxCombined {
			select {
			case o, ok := <-w.ops:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		errs = errs[:len(batch)]
		w.run(batch, errs)
		for i, o := range batch {
			o.done <- errs[i]
			batch[i], errs[i] = nil, nil
		}
	}
}

// run executes batch in one transaction and sets errs[i] to operation i's
// outcome.
func (w *writer) run(batch []*writeOp, errs []error) {
	fail := func(from int, err error) {
		for i := from; i < len(batch); i++ {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	live := 0
	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			errs[i] = err
		} else {
			live++
		}
	}
	if live == 0 {
		return
	}
	ctx := context.Background()
	w.txs.Add(1)
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		fail(0, fmt.Errorf("begin: %w", err))
		return
	}
	useSavepoints := live > 1
	for i, o := range batch {
		if errs[i] != nil {
			continue
		}
		if useSavepoints {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
				fail(i, fmt.Errorf("savepoint: %w", err))
				_ = tx.Rollback()
				return
			}
		}
		if err := o.fn(tx); err != nil {
			errs[i] = err
			if !useSavepoints {
				_ = tx.Rollback()
				return
			}
			// Undo this operation only. Should SQLite have rolled the whole
			// transaction back (some errors do), this fails, and so does
			// everything in the batch.
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO op"); rerr != nil {
				_ = tx.Rollback()
				fail(0, fmt.Errorf("transaction lost after %s failed: %w", o.op, rerr))
				return
			}
		}
		if useSavepoints {
			if _, err := tx.ExecContext(ctx, "RELEASE op"); err != nil {
				_ = tx.Rollback()
				fail(0, fmt.Errorf("release savepoint: %w", err))
				return
			}
		}
	}
	if err := tx.Commit(); err != nil {
		fail(0, fmt.Errorf("commit: %w", err))
	}
}
