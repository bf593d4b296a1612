package delivery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/transport"
)

// fakeReceived counts in-progress acks; nothing else is called on it.
type fakeReceived struct {
	transport.Received
	beats atomic.Int32
}

func (f *fakeReceived) InProgress(context.Context) error { f.beats.Add(1); return nil }

// TestHolds: a held message is kept from the ack wait by a beat at most
// every beat interval, handed again once when due, and a message still
// held when the holds close is returned, never handed again.
func TestHolds(t *testing.T) {
	t.Parallel()
	var h holds
	again := make(chan transport.Received, 2)
	progress := func(m transport.Received) { _ = m.InProgress(context.Background()) }
	due := &fakeReceived{}
	late := &fakeReceived{}
	if !h.hold(due, 50*time.Millisecond, 10*time.Millisecond, time.Now, func(m transport.Received) { again <- m }, progress) ||
		!h.hold(late, time.Hour, 10*time.Millisecond, time.Now, func(m transport.Received) { again <- m }, progress) {
		t.Fatal("hold refused before close")
	}
	select {
	case m := <-again:
		if m != due {
			t.Fatal("the message held for an hour was handed again")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message held for 50ms was never handed again")
	}
	if n := due.beats.Load(); n < 3 {
		t.Fatalf("%d in-progress acks in 50ms at a 10ms beat; want at least 3", n)
	}
	if h.count() != 1 {
		t.Fatalf("%d held; want 1", h.count())
	}
	left := h.close()
	if len(left) != 1 || left[0].msg != late {
		t.Fatalf("close returned %d messages; want the late one", len(left))
	}
	if h.hold(due, 0, time.Second, time.Now, func(transport.Received) { t.Error("handed again after close") }, progress) {
		t.Fatal("hold accepted a message after close")
	}
	select {
	case <-again:
		t.Fatal("a message was handed again after close")
	default:
	}
}
