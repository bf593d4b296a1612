package scheduler

import (
	"container/heap"
	"sync"
	"time"
)

// maxTrackedDues bounds the due times a replica keeps in memory; the polls
// find the rest.
const maxTrackedDues = 4096

// dueTimes are announced due times not yet released, earliest first. wake
// tells the release loop that the earliest one moved.
type dueTimes struct {
	mu   sync.Mutex
	h    dueHeap
	wake chan struct{}
}

func (d *dueTimes) init() { d.wake = make(chan struct{}, 1) }

// add tracks due (dropped when maxTrackedDues are tracked already).
func (d *dueTimes) add(due time.Time) {
	d.mu.Lock()
	moved := false
	if len(d.h) < maxTrackedDues {
		moved = len(d.h) == 0 || due.Before(d.h[0])
		heap.Push(&d.h, due)
	}
	d.mu.Unlock()
	if moved {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// popDue drops the due times at or before now and reports whether there
// were any.
func (d *dueTimes) popDue(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	due := false
	for len(d.h) > 0 && !now.Before(d.h[0]) {
		heap.Pop(&d.h)
		due = true
	}
	return due
}

// earliest returns the earliest tracked due time (zero: none).
func (d *dueTimes) earliest() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.h) == 0 {
		return time.Time{}
	}
	return d.h[0]
}

// dueHeap is a min-heap of due times.
type dueHeap []time.Time

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *dueHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
