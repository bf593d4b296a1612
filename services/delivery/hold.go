package delivery

import (
	"sync"
	"time"

	"github.com/hookline/hookline/pkg/transport"
)

// holds keeps messages this replica decided not to send yet — postponed
// behind their endpoint's queue, or held back while the store fails — in
// the replica instead of handing them back to the broker. A message handed
// back comes again with a higher NumDelivered, which the service must read
// as "may have been sent" (see Service.redelivered); a held one keeps its
// first delivery. While held, a message is kept from the broker's ack wait
// by in-progress acknowledgements, and when its wait is over it is handled
// again as if it had just arrived. When the service stops, what is still
// held is put off through the store (see Service.drainHolds).
type holds struct {
	mu     sync.Mutex
	closed bool
	held   map[*heldMessage]struct{}
	wg     sync.WaitGroup // handlers of messages whose wait is over
}

// heldMessage is one held message and when it is to be handled again.
type heldMessage struct {
	msg   transport.Received
	due   time.Time
	timer *time.Timer
}

// hold keeps msg for wait, then calls again(msg) on its own goroutine. It
// reports false, holding nothing, once the holds are closed. Every beat
// (at most every beat, since the broker's ack wait must not run out) sends
// an in-progress acknowledgement and waits again.
func (h *holds) hold(msg transport.Received, wait, beat time.Duration, now func() time.Time, again func(transport.Received), progress func(transport.Received)) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	if h.held == nil {
		h.held = make(map[*heldMessage]struct{})
	}
	m := &heldMessage{msg: msg, due: now().Add(wait)}
	var fire func()
	fire = func() {
		h.mu.Lock()
		if _, ok := h.held[m]; !ok { // drained meanwhile
			h.mu.Unlock()
			return
		}
		if left := m.due.Sub(now()); left > 0 {
			m.timer = time.AfterFunc(min(left, beat), fire)
			h.mu.Unlock()
			progress(msg)
			return
		}
		delete(h.held, m)
		h.wg.Add(1)
		h.mu.Unlock()
		defer h.wg.Done()
		again(msg)
	}
	h.held[m] = struct{}{}
	m.timer = time.AfterFunc(min(wait, beat), fire)
	return true
}

// close stops holding: it returns every message still held, with its due
// time, and waits for the handlers of those whose wait was over. Nothing
// is held after it returns.
func (h *holds) close() []heldMessage {
	h.mu.Lock()
	h.closed = true
	out := make([]heldMessage, 0, len(h.held))
	for m := range h.held {
		m.timer.Stop()
		out = append(out, *m)
	}
	h.held = nil
	h.mu.Unlock()
	h.wg.Wait()
	return out
}

// count is how many messages are held.
func (h *holds) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}
