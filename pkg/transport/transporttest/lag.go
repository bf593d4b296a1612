package transporttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
)

// The subtests of the optional transport.LagReader. They are skipped for
// a Transport that does not implement it.

// lagReader returns tr's LagReader, or skips t if tr has none.
func lagReader(t *testing.T, tr transport.Transport) transport.LagReader {
	t.Helper()
	lr, ok := tr.(transport.LagReader)
	if !ok {
		t.Skipf("%T does not implement transport.LagReader", tr)
	}
	return lr
}

// lagWant is what a test waits for the lag to be.
type lagWant struct {
	what string
	ok   func(transport.Lag) bool
}

// lagIs accepts exactly want.
func lagIs(want transport.Lag) lagWant {
	return lagWant{fmt.Sprintf("%+v", want), func(l transport.Lag) bool { return l == want }}
}

// lagTotal accepts any split of n unacknowledged messages.
func lagTotal(n int64) lagWant {
	return lagWant{fmt.Sprintf("Total %d", n), func(l transport.Lag) bool {
		return l.Total() == n && l.Pending >= 0 && l.Unacked >= 0
	}}
}

// waitLag polls the lag of group on stream until it is want, each
// request bounded by attemptTimeout, and fails t (with the last lag or
// error) if it is not within timeout. Acknowledgements reach the broker
// asynchronously, so every expectation is polled for.
func waitLag(t *testing.T, lr transport.LagReader, stream transport.Stream, group string, want lagWant) {
	t.Helper()
	poll.WithinReason(t, timeout, fmt.Sprintf("lag of group %s on %s to be %s", group, stream, want.what), func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		lag, err := lr.Lag(ctx, stream, group)
		if err != nil {
			return false, fmt.Sprintf("Lag: %v", err)
		}
		return want.ok(lag), fmt.Sprintf("Lag = %+v", lag)
	})
}

// testLagNewGroup: a group that never consumed lags by every message the
// stream holds, all of them Pending; each stream counts its own
// messages. Invalid input and a closed Transport fail.
func testLagNewGroup(t *testing.T, h Harness) {
	tr := h.Open(t)
	lr := lagReader(t, tr)
	tests := []struct {
		stream  transport.Stream
		n       int
		subject string
	}{
		{transport.Events, 7, "acme.order.created"},
		{transport.Deliveries, 4, ""},
	}
	for _, tc := range tests {
		waitLag(t, lr, tc.stream, "never-consumed", lagIs(transport.Lag{}))
	}
	for _, tc := range tests {
		ms, _ := msgs("lag-"+string(tc.stream), tc.n)
		for i := range ms {
			ms[i].Subject = tc.subject
		}
		publish(t, tr, tc.stream, ms...)
	}
	for _, tc := range tests {
		waitLag(t, lr, tc.stream, "never-consumed", lagIs(transport.Lag{Pending: int64(tc.n)}))
	}

	ctx := ctxT(t)
	if lag, err := lr.Lag(ctx, transport.Stream("nope"), "g"); err == nil {
		t.Errorf("Lag on an unknown stream = %+v, want an error", lag)
	}
	if lag, err := lr.Lag(ctx, transport.Events, ""); err == nil {
		t.Errorf("Lag of an empty group = %+v, want an error", lag)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := lr.Lag(ctx, transport.Events, "never-consumed"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Lag on a closed Transport: %v, want ErrClosed", err)
	}
}

// testLagPerGroup: groups lag independently on one stream; a group that
// acknowledged everything lags by nothing.
func testLagPerGroup(t *testing.T, h Harness) {
	const n = 12
	tr := h.Open(t)
	lr := lagReader(t, tr)
	ms, want := msgs("per-group", n)
	for i := range ms {
		ms[i].Subject = "acme.order.created"
	}
	publish(t, tr, transport.Events, ms...)
	s := newSink()
	c := startConsume(t, tr, transport.Events, transport.ConsumerConfig{Group: "fanout", Concurrency: 4}, collect(t, s, 0))
	if !s.waitUntil(timeout, hasAll(want)) {
		t.Fatalf("group fanout consumed %d of %d", len(ids(s.snapshot())), n)
	}
	waitLag(t, lr, transport.Events, "fanout", lagIs(transport.Lag{}))
	waitLag(t, lr, transport.Events, "audit", lagIs(transport.Lag{Pending: n}))
	// Still nothing once the group's only member has stopped.
	c.stop(t)
	waitLag(t, lr, transport.Events, "fanout", lagIs(transport.Lag{}))
}

// testLag: lag falls as the group acknowledges, and messages held
// unacknowledged in handlers count as Unacked, not Pending. Each phase
// allows no prefetching (MaxAckPending equals Concurrency), so what was
// delivered is exactly what the handlers hold.
func testLag(t *testing.T, h Harness) {
	const (
		n    = 20 // published
		k    = 5  // acknowledged by the first consumer
		hold = 3  // held by the second consumer's handlers
	)
	tr := h.Open(t)
	lr := lagReader(t, tr)
	ms, want := msgs("lag", n)
	publish(t, tr, transport.Deliveries, ms...)
	waitLag(t, lr, transport.Deliveries, "g", lagIs(transport.Lag{Pending: n}))

	// The first consumer handles one message at a time: it acknowledges
	// k, then holds the next one until it is stopped, and hands it back.
	acked := newSink()
	holding := make(chan struct{})
	var holdOnce sync.Once
	first := startConsume(t, tr, transport.Deliveries,
		transport.ConsumerConfig{Group: "g", Concurrency: 1, MaxAckPending: 1, AckWait: time.Minute},
		func(ctx context.Context, m transport.Received) {
			if len(acked.snapshot()) < k {
				if err := m.Ack(ctx); err != nil {
					t.Errorf("Ack %s: %v", m.Message().ID, err)
				}
				acked.add(record{msg: *m.Message()})
				return
			}
			holdOnce.Do(func() { close(holding) })
			<-ctx.Done()
			_ = m.Nak(context.Background(), 0)
		})
	select {
	case <-holding:
	case <-time.After(timeout):
		t.Fatalf("the first consumer acknowledged %d messages and holds none", len(acked.snapshot()))
	}
	waitLag(t, lr, transport.Deliveries, "g", lagIs(transport.Lag{Pending: n - k - 1, Unacked: 1}))
	// Stopped, the consumer handed the message it held back: how a
	// broker counts that one is its own affair, but it is not
	// acknowledged.
	first.stop(t)
	waitLag(t, lr, transport.Deliveries, "g", lagTotal(n-k))

	// The second consumer's handlers hold what they get until released,
	// then acknowledge everything.
	release := make(chan struct{})
	s := newSink()
	startConsume(t, tr, transport.Deliveries,
		transport.ConsumerConfig{Group: "g", Concurrency: hold, MaxAckPending: hold, AckWait: time.Minute},
		func(ctx context.Context, m transport.Received) {
			s.add(record{msg: *m.Message()})
			select {
			case <-release:
			case <-ctx.Done():
			}
			if err := m.Ack(ctx); err != nil {
				t.Errorf("Ack %s: %v", m.Message().ID, err)
			}
		})
	if !s.waitUntil(timeout, func(r []record) bool { return len(r) >= hold }) {
		close(release)
		t.Fatalf("the second consumer's handlers got %d messages, want %d", len(s.snapshot()), hold)
	}
	waitLag(t, lr, transport.Deliveries, "g", lagIs(transport.Lag{Pending: n - k - hold, Unacked: hold}))
	close(release)
	done := ids(acked.snapshot())
	var left []string
	for _, id := range want {
		if done[id] == 0 {
			left = append(left, id)
		}
	}
	if !s.waitUntil(timeout, hasAll(left)) {
		t.Fatalf("the second consumer got %d distinct of the %d messages left", len(ids(s.snapshot())), n-k)
	}
	waitLag(t, lr, transport.Deliveries, "g", lagIs(transport.Lag{}))
}
