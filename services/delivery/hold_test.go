package delivery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
)

// fakeReceived counts in-progress acks; nothing else is called on it.
type fakeReceived struct {
	transport.Received
	beats atomic.Int32
}

func (f *fakeReceived) InProgress(context.Context) error { f.beats.Add(1); return nil }

// TestHolds: a held message is kept from the ack wait by a beat every
// beat interval until it is due, then handed again once; a message still
// held when the holds close is returned, never handed again. The due time
// is read from an injected clock, so the test does not depend on how late
// timers fire.
func TestHolds(t *testing.T) {
	t.Parallel()
	var h holds
	var clock atomic.Int64 // fake time in nanoseconds since t0
	t0 := time.Unix(1000, 0)
	now := func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	again := make(chan transport.Received, 2)
	handAgain := func(m transport.Received) { again <- m }
	progress := func(m transport.Received) { _ = m.InProgress(context.Background()) }
	due := &fakeReceived{}
	late := &fakeReceived{}
	if !h.hold(due, time.Minute, time.Millisecond, now, handAgain, progress) ||
		!h.hold(late, time.Hour, time.Millisecond, now, handAgain, progress) {
		t.Fatal("hold refused before close")
	}
	poll.Until(t, "three beats while not due", func() bool { return due.beats.Load() >= 3 })
	select {
	case <-again:
		t.Fatal("a message was handed again before it was due")
	default:
	}
	clock.Store(int64(2 * time.Minute)) // due is due, late is not
	select {
	case m := <-again:
		if m != due {
			t.Fatal("the message held for an hour was handed again")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the due message was never handed again")
	}
	if h.count() != 1 {
		t.Fatalf("%d held; want 1", h.count())
	}
	left := h.close()
	if len(left) != 1 || left[0].msg != late {
		t.Fatalf("close returned %d messages; want the late one", len(left))
	}
	if h.hold(due, 0, time.Second, now, func(transport.Received) { t.Error("handed again after close") }, progress) {
		t.Fatal("hold accepted a message after close")
	}
	select {
	case <-again:
		t.Fatal("a message was handed again after close")
	default:
	}
}
