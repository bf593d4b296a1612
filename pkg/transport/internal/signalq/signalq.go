// Package signalq is what every transport's Listen shares: a listener's
// signals wait in a bounded queue that one goroutine drains into the
// listener's function (never once the listener is stopped), and a Set
// holds the running listeners that the transport's Close stops.
package signalq

import "sync"

// Queue hands queued signals to one function, from one goroutine, one at a
// time. Create it with Start.
type Queue struct {
	fn      func([]byte)
	pending chan []byte
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// Start starts a Queue of size signals that calls fn for each.
func Start(fn func([]byte), size int) *Queue {
	q := &Queue{fn: fn, pending: make(chan []byte, size), done: make(chan struct{})}
	q.wg.Go(q.run)
	return q
}

// Offer queues data without blocking; it reports false, dropping data,
// when the queue is full (signals are best effort).
func (q *Queue) Offer(data []byte) bool {
	select {
	case q.pending <- data:
		return true
	default:
		return false
	}
}

// Cap is how many signals the queue holds.
func (q *Queue) Cap() int { return cap(q.pending) }

func (q *Queue) run() {
	for {
		select {
		case <-q.done:
			return
		case data := <-q.pending:
			// Both may be ready: never call fn once Stop has begun.
			select {
			case <-q.done:
				return
			default:
			}
			q.fn(data)
		}
	}
}

// Stop ends the queue: fn is not called again, and a call that was
// running has returned when Stop returns. It is idempotent; fn must not
// call it.
func (q *Queue) Stop() {
	q.once.Do(func() { close(q.done) })
	q.wg.Wait()
}

// Set is the running listeners of a transport. The zero Set is empty and
// open.
type Set[T comparable] struct {
	mu     sync.Mutex
	closed bool
	m      map[T]struct{}
}

// Add adds l and reports true, or reports false once the set is closed.
func (s *Set[T]) Add(l T) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = make(map[T]struct{})
	}
	s.m[l] = struct{}{}
	return true
}

// Remove removes l.
func (s *Set[T]) Remove(l T) {
	s.mu.Lock()
	delete(s.m, l)
	s.mu.Unlock()
}

// Close closes the set and returns its members, for the caller to stop.
func (s *Set[T]) Close() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	out := make([]T, 0, len(s.m))
	for l := range s.m {
		out = append(out, l)
	}
	return out
}
