// Package groupcommit batches writes from many concurrent callers into
// few calls of a flush function (group commit).
//
// Each caller hands one item to Do and blocks until the flush that
// contains its item has completed, then learns that item's outcome. A
// batch is flushed when MaxItems items are queued or Linger has passed
// since its first item, whichever comes first, so a lone caller waits at
// most about Linger plus the flush itself. While every flusher is busy the
// waiting batch keeps taking items (up to MaxItems), so under load one
// flush carries everything that queued during the previous one.
package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("groupcommit: closed")

// FlushFunc writes items durably. It reports the outcome of each item in
// errs (same length as items, all nil on entry): leaving errs[i] nil means
// item i is durable. A FlushFunc must not retain items or errs.
type FlushFunc[T any] func(ctx context.Context, items []T, errs []error)

// Config shapes batches.
type Config struct {
	// MaxItems is the largest batch. Zero means 256.
	MaxItems int
	// Linger is how long a batch waits for more items after its first.
	// Zero means 2 ms; negative means no wait: a batch is whatever is
	// queued (and whatever queues while the flushers are busy).
	Linger time.Duration
	// Flushers is how many flushes may run at once. Zero means 1.
	Flushers int
	// Timeout bounds one flush. Zero means 30 s.
	Timeout time.Duration
}

type entry[T any] struct {
	item T
	done chan error
}

// Batcher groups items into batches; create it with New.
type Batcher[T any] struct {
	cfg   Config
	flush FlushFunc[T]

	mu     sync.RWMutex
	closed bool
	in     chan entry[T]

	batches chan []entry[T]
	wg      sync.WaitGroup
	pool    sync.Pool // of []entry[T] backing arrays
	waiting atomic.Int64
	dones   sync.Pool // of chan error
}

// New starts a Batcher that calls flush. Close must be called to stop its
// goroutines.
func New[T any](cfg Config, flush FlushFunc[T]) *Batcher[T] {
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = 256
	}
	if cfg.Linger == 0 {
		cfg.Linger = 2 * time.Millisecond
	}
	if cfg.Flushers <= 0 {
		cfg.Flushers = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	b := &Batcher[T]{
		cfg:     cfg,
		flush:   flush,
		in:      make(chan entry[T], cfg.MaxItems*2),
		batches: make(chan []entry[T]),
	}
	b.dones.New = func() any { return make(chan error, 1) }
	b.wg.Add(1 + cfg.Flushers)
	go b.collect()
	for range cfg.Flushers {
		go b.flusher()
	}
	return b
}

// Do queues item and waits until the flush containing it completes,
// returning that item's error. If ctx ends before the item is queued, Do
// returns ctx.Err() and the item is not written; once queued, the item is
// flushed and Do waits for the outcome regardless of ctx (flushes are
// bounded by Config.Timeout). After Close, Do returns ErrClosed.
func (b *Batcher[T]) Do(ctx context.Context, item T) error {
	done := b.dones.Get().(chan error)
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		b.dones.Put(done)
		return ErrClosed
	}
	b.waiting.Add(1)
	select {
	case b.in <- entry[T]{item: item, done: done}:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.waiting.Add(-1)
		b.mu.RUnlock()
		b.dones.Put(done)
		return ctx.Err()
	}
	err := <-done
	b.dones.Put(done)
	return err
}

// Waiting reports how many items are queued and not yet handed to a
// flusher: the backlog in front of the store.
func (b *Batcher[T]) Waiting() int { return int(b.waiting.Load()) }

// Close flushes every queued item, waits for running flushes and stops
// the batcher. Calls to Do that are already waiting complete normally.
func (b *Batcher[T]) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.in)
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Batcher[T]) getBatch() []entry[T] {
	if v := b.pool.Get(); v != nil {
		return (*(v.(*[]entry[T])))[:0]
	}
	return make([]entry[T], 0, b.cfg.MaxItems)
}

func (b *Batcher[T]) collect() {
	defer b.wg.Done()
	defer close(b.batches)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	open := true // b.in not yet closed
	for open {
		first, ok := <-b.in
		if !ok {
			return
		}
		// Take whatever is already queued, then wait up to Linger for more.
		var batch []entry[T]
		batch, open = b.fill(append(b.getBatch(), first), nil)
		if open && b.cfg.Linger > 0 && len(batch) < b.cfg.MaxItems {
			timer.Reset(b.cfg.Linger)
			batch, open = b.fill(batch, timer.C)
			timer.Stop()
		}
		// Hand the batch over, taking more items while every flusher is
		// busy.
		for sent := false; !sent; {
			in := b.in
			if !open || len(batch) >= b.cfg.MaxItems {
				in = nil
			}
			select {
			case b.batches <- batch:
				b.waiting.Add(-int64(len(batch)))
				sent = true
			case e, ok := <-in:
				if !ok {
					open = false
					continue
				}
				batch = append(batch, e)
			}
		}
	}
}

// fill appends queued items to batch until it holds MaxItems, until b.in
// is closed (open is then false), or until nothing more is queued (wait
// nil) or wait fires.
func (b *Batcher[T]) fill(batch []entry[T], wait <-chan time.Time) (_ []entry[T], open bool) {
	for len(batch) < b.cfg.MaxItems {
		var (
			e  entry[T]
			ok bool
		)
		if wait == nil {
			select {
			case e, ok = <-b.in:
			default:
				return batch, true
			}
		} else {
			select {
			case e, ok = <-b.in:
			case <-wait:
				return batch, true
			}
		}
		if !ok {
			return batch, false
		}
		batch = append(batch, e)
	}
	return batch, true
}

func (b *Batcher[T]) flusher() {
	defer b.wg.Done()
	var items []T
	var errs []error
	for batch := range b.batches {
		items = items[:0]
		for _, e := range batch {
			items = append(items, e.item)
		}
		if cap(errs) < len(batch) {
			errs = make([]error, len(batch), b.cfg.MaxItems)
		}
		errs = errs[:len(batch)] // all nil: cleared after the previous flush
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
		b.flush(ctx, items, errs)
		cancel()
		for i, e := range batch {
			e.done <- errs[i]
			batch[i] = entry[T]{}
		}
		clear(items)
		clear(errs)
		b.pool.Put(&batch)
	}
}
