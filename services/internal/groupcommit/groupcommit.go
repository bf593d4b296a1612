// Package groupcommit batches writes from many goroutines into few store
// calls: each caller hands over one item and waits; a flusher takes every
// item queued at that moment (up to a maximum) and writes them together.
// Under load batches grow by themselves; when idle an item is written at
// once, without waiting for a timer.
package groupcommit

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("groupcommit: closed")

type item[T any] struct {
	v    T
	done chan error
}

// Batcher groups items for a flush function. It is safe for concurrent use.
type Batcher[T any] struct {
	flush    func(context.Context, []T) error
	maxBatch int
	in       chan item[T]

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

// New starts flushers goroutines calling flush with batches of at most
// maxBatch items. Close stops them.
func New[T any](flush func(context.Context, []T) error, maxBatch, flushers int) *Batcher[T] {
	if maxBatch < 1 {
		maxBatch = 1
	}
	if flushers < 1 {
		flushers = 1
	}
	b := &Batcher[T]{flush: flush, maxBatch: maxBatch, in: make(chan item[T], maxBatch*flushers)}
	b.wg.Add(flushers)
	for range flushers {
		go b.loop()
	}
	return b
}

// Add queues v and waits until the batch holding it is flushed, returning
// the flush's error, or until ctx is done (the item may still be written).
func (b *Batcher[T]) Add(ctx context.Context, v T) error {
	done := make(chan error, 1)
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	select {
	case b.in <- item[T]{v: v, done: done}:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting items, flushes what is queued and waits for the
// flushers to exit.
func (b *Batcher[T]) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.in)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Batcher[T]) loop() {
	defer b.wg.Done()
	batch := make([]item[T], 0, b.maxBatch)
	vals := make([]T, 0, b.maxBatch)
	for first := range b.in {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < b.maxBatch {
			select {
			case it, ok := <-b.in:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			default:
				break fill
			}
		}
		vals = vals[:0]
		for _, it := range batch {
			vals = append(vals, it.v)
		}
		// The flush runs detached from any one caller's context: a caller
		// giving up must not fail the others' writes.
		err := b.flush(context.Background(), vals)
		for _, it := range batch {
			it.done <- err
		}
		clear(vals)
	}
}
