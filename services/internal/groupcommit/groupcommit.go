// Package groupcommit batches writes from many concurrent callers into
// few calls of a flush function (group commit).
//
// Each caller hands one item to Do and blocks until the flush that
// contains its item has completed, then learns that item's outcome. A
// batch is flushed when MaxItems items are queued or Linger has passed
// since its first item, whichever comes first, so a lone caller waits at
// most about Linger plus the flush itself, and under load one flush
// carries many items.
package groupcommit

import (
	"context"
	"errors"
	"sync"
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
	// Zero means 2 ms.
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
	dones   sync.Pool // of chan error
}

// New starts a Batcher that calls flush. Close must be called to stop its
// goroutines.
func New[T any](cfg Config, flush FlushFunc[T]) *Batcher[T] {
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = 256
	}
	if cfg.Linger <= 0 {
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
	select {
	case b.in <- entry[T]{item: item, done: done}:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		b.dones.Put(done)
		return ctx.Err()
	}
	err := <-done
	b.dones.Put(done)
	return err
}

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
	for {
		first, ok := <-b.in
		if !ok {
			return
		}
		batch := append(b.getBatch(), first)
		// Take whatever is already queued without waiting.
	drain:
		for len(batch) < b.cfg.MaxItems {
			select {
			case e, ok := <-b.in:
				if !ok {
					b.batches <- batch
					return
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		if len(batch) < b.cfg.MaxItems {
			timer.Reset(b.cfg.Linger)
		linger:
			for len(batch) < b.cfg.MaxItems {
				select {
				case e, ok := <-b.in:
					if !ok {
						timer.Stop()
						b.batches <- batch
						return
					}
					batch = append(batch, e)
				case <-timer.C:
					break linger
				}
			}
			timer.Stop()
		}
		b.batches <- batch
	}
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
