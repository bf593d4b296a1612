package signalq

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQueue: signals reach the function in order, a full queue drops
// rather than blocks, and after Stop the function is never called again.
func TestQueue(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	got := make(chan string, 8)
	var calls atomic.Int32
	q := Start(func(b []byte) {
		calls.Add(1)
		got <- string(b)
		<-release
	}, 1)
	if !q.Offer([]byte("a")) {
		t.Fatal("Offer refused the first signal")
	}
	if s := <-got; s != "a" {
		t.Fatalf("got %q, want a", s)
	}
	// fn holds "a"; the queue holds one more; a third is dropped.
	if !q.Offer([]byte("b")) || q.Offer([]byte("c")) {
		t.Fatal("a queue of one took two signals while its function ran, or refused the first")
	}
	stopped := make(chan struct{})
	go func() { q.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while the function was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls; want 1 (b was queued when Stop began)", n)
	}
	q.Stop() // idempotent
}

// TestSet: members added before Close are returned by it; none after.
func TestSet(t *testing.T) {
	t.Parallel()
	var s Set[int]
	for i := range 3 {
		if !s.Add(i) {
			t.Fatal("Add refused before Close")
		}
	}
	s.Remove(1)
	got := s.Close()
	if len(got) != 2 {
		t.Fatalf("Close returned %v; want 0 and 2", got)
	}
	if s.Add(4) {
		t.Fatal("Add accepted a member after Close")
	}
}
