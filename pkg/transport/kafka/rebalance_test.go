package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
)

// gatedGroup is the members of one consumer group in a test, each a
// Consume call on a Transport of its own, whose handlers wait for a gate
// before acknowledging, and what they saw.
type gatedGroup struct {
	t     *testing.T
	group string

	mu      sync.Mutex
	gate    chan struct{} // closed: handlers acknowledge
	handled map[string]int
	acked   map[string]bool
	again   int           // calls with NumDelivered >= 2
	calls   chan struct{} // a token per call or ack
}

func newGatedGroup(t *testing.T, group string) *gatedGroup {
	return &gatedGroup{t: t, group: group, gate: make(chan struct{}), handled: map[string]int{}, acked: map[string]bool{}, calls: make(chan struct{}, 1)}
}

func (g *gatedGroup) poke() {
	select {
	case g.calls <- struct{}{}:
	default:
	}
}

// open lets every handler acknowledge; close makes new calls wait again.
func (g *gatedGroup) open() { g.mu.Lock(); close(g.gate); g.mu.Unlock() }
func (g *gatedGroup) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

// join starts a member on its own Transport; the returned function stops
// it (an orderly leave: its handlers' contexts end, and a message not yet
// acknowledged goes back to the group) and waits for it.
func (g *gatedGroup) join(brokers []string) (leave func()) {
	tr := openWith(g.t, kafka.Config{Brokers: brokers})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: g.group, Concurrency: 4, MaxAckPending: 64, AckWait: time.Minute}, func(hctx context.Context, m transport.Received) {
			id := m.Message().ID
			g.mu.Lock()
			g.handled[id]++
			if m.NumDelivered() >= 2 {
				g.again++
			}
			gate := g.gate
			g.mu.Unlock()
			g.poke()
			select {
			case <-gate:
			case <-hctx.Done():
				return // not acknowledged: the group hands it out again
			}
			if m.Ack(hctx) == nil {
				g.mu.Lock()
				g.acked[id] = true
				g.mu.Unlock()
				g.poke()
			}
		})
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			g.t.Errorf("Consume: %v", err)
		}
	}
}

// waitFor waits until cond holds, each wait for progress bounded by
// waitTimeout.
func (g *gatedGroup) waitFor(what string, cond func() bool) {
	g.t.Helper()
	for {
		g.mu.Lock()
		ok := cond()
		g.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-g.calls:
		case <-time.After(waitTimeout):
			g.t.Fatalf("no progress for %v waiting for %s", waitTimeout, what)
		}
	}
}

// TestRebalanceDuplicates measures what rebalances cost, with messages in
// the members' hands at each: a second member joins while the first holds
// unacknowledged messages, and later the first leaves in order while it
// holds some again. Every message is acknowledged in the end; a message
// handed out twice must have been marked as possibly delivered before the
// second time, and the counts are logged (the issue's "how many a
// rebalance produces").
func TestRebalanceDuplicates(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	brokers := c.ListenAddrs()
	pub := openWith(t, kafka.Config{Brokers: brokers})
	prefix := fmt.Sprintf("rb%d", time.Now().UnixNano())
	g := newGatedGroup(t, prefix)
	const perRound = 600
	publish := func(round int) {
		msgs := make([]transport.Message, perRound)
		for i := range msgs {
			n := round*perRound + i
			msgs[i] = transport.Message{ID: fmt.Sprintf("%s-%d", prefix, n), Key: fmt.Sprintf("sub_%d", n%32), Data: []byte("x")}
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if _, err := pub.Publish(ctx, transport.Deliveries, msgs...); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	waitGroup := func(members int) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if _, err := c.WaitGroupStable(ctx, prefix, members); err != nil {
			t.Fatalf("group of %d members not stable: %v", members, err)
		}
	}

	// Round 1: A holds four messages in its handlers when B joins.
	publish(0)
	leaveA := g.join(brokers)
	defer func() {
		if leaveA != nil {
			leaveA()
		}
	}()
	g.waitFor("A holding messages", func() bool { return len(g.handled) >= 4 })
	leaveB := g.join(brokers)
	defer leaveB()
	waitGroup(2)
	g.open()
	g.waitFor("round 1 acknowledged", func() bool { return len(g.acked) >= perRound })
	dups1, again1 := dupCount(g)

	// Round 2: both hold messages when A leaves.
	g.close()
	publish(1)
	g.waitFor("both holding messages", func() bool { return len(g.handled) >= perRound+8 })
	leaveA()
	leaveA = nil
	waitGroup(1)
	g.open()
	g.waitFor("round 2 acknowledged", func() bool { return len(g.acked) >= 2*perRound })
	dups2, again2 := dupCount(g)

	t.Logf("a member joining while another held 4 unacknowledged messages: %d of %d messages handed out twice (%d marked as possibly delivered)", dups1, perRound, again1)
	t.Logf("a member leaving in order while holding messages: %d of %d handed out twice (%d marked)", dups2-dups1, perRound, again2-again1)
	if dups2 > again2 {
		t.Errorf("%d messages handed out twice but only %d marked NumDelivered >= 2: a copy was handed out as a first delivery", dups2, again2)
	}
}

// dupCount counts handler calls beyond the first per message, and the
// calls marked as possibly delivered before; the caller must not hold
// g.mu.
func dupCount(g *gatedGroup) (dups, again int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, n := range g.handled {
		dups += n - 1
	}
	return dups, g.again
}
