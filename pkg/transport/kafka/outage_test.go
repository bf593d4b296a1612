package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
)

// attemptTimeout bounds one request to a broker that may be down or just
// back; requests are retried within waitTimeout.
const attemptTimeout = 2 * time.Second

// seenSet records the IDs a consumer handled.
type seenSet struct {
	mu  sync.Mutex
	ids map[string]int // ID -> highest NumDelivered
	ch  chan struct{}  // a token after every add
}

func newSeenSet() *seenSet { return &seenSet{ids: map[string]int{}, ch: make(chan struct{}, 1)} }

func (s *seenSet) add(id string, nd int) {
	s.mu.Lock()
	s.ids[id] = max(s.ids[id], nd)
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// missing returns the IDs of want not seen yet.
func (s *seenSet) missing(want []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range want {
		if _, ok := s.ids[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// waitAll waits until every ID of want was seen, within d.
func (s *seenSet) waitAll(t testing.TB, want []string, d time.Duration, what string) {
	t.Helper()
	tm := time.NewTimer(d)
	defer tm.Stop()
	for {
		m := s.missing(want)
		if len(m) == 0 {
			return
		}
		select {
		case <-s.ch:
		case <-tm.C:
			t.Fatalf("%s: %d of %d messages never consumed within %v, e.g. %v", what, len(m), len(want), d, m[:min(5, len(m))])
		}
	}
}

// publishRetry publishes msgs, each attempt bounded by attemptTimeout,
// until one succeeds (within waitTimeout); a retry carries the same IDs.
func publishRetry(t testing.TB, tr transport.Transport, stream transport.Stream, msgs ...transport.Message) {
	t.Helper()
	poll.WithinReason(t, waitTimeout, fmt.Sprintf("publishing %d messages", len(msgs)), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		if _, err := tr.Publish(ctx, stream, msgs...); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// TestBrokerOutageMidRun: the broker goes away while a Transport publishes
// and consumes, and comes back (same address, same data: kfake.DataDir).
// While it is away, Publish fails within its context (no hang beyond it),
// and the Transport logs one warning; when it is back, one info line, and
// nothing else needs doing: messages published before, during (retried
// until they succeed) and after the outage all reach the consumer group,
// which commits again (Backlog drops to 0).
func TestBrokerOutageMidRun(t *testing.T) {
	t.Parallel()
	// Short group timeouts: the broker, restarted, waits for the group
	// member it remembers for a session timeout before the consumer's new
	// membership takes over.
	b := newRestartable(t, kfake.GroupMinSessionTimeout(500*time.Millisecond))
	logger, logs := newLogRecorder(t)
	tr := openLogged(t, kafka.Config{Brokers: b.Addrs(), HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 2 * time.Second, RebalanceTimeout: 2 * time.Second}, logger)

	const n = 20
	batch := func(phase string) ([]transport.Message, []string) {
		ms := make([]transport.Message, n)
		ids := make([]string, n)
		for i := range ms {
			ids[i] = fmt.Sprintf("%s-%d", phase, i)
			ms[i] = transport.Message{ID: ids[i], Key: fmt.Sprintf("k%d", i), Data: []byte(phase)}
		}
		return ms, ids
	}
	before, beforeIDs := batch("before")
	during, duringIDs := batch("during")
	after, afterIDs := batch("after")

	seen := newSeenSet()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "outage", Concurrency: 4}, func(hctx context.Context, m transport.Received) {
			seen.add(m.Message().ID, m.NumDelivered())
			_ = m.Ack(hctx)
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Consume: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Consume did not return after cancel")
		}
	})

	publishRetry(t, tr, transport.Deliveries, before...)
	seen.waitAll(t, beforeIDs, waitTimeout, "before the outage")

	b.Stop()
	waitLog(t, logs, slog.LevelWarn, "lost the connection to the brokers")
	// The broker is away: Publish fails, within its context.
	for _, d := range []time.Duration{200 * time.Millisecond, time.Second} {
		pctx, pcancel := context.WithTimeout(context.Background(), d)
		start := time.Now()
		_, err := tr.Publish(pctx, transport.Deliveries, during...)
		took := time.Since(start)
		pcancel()
		if err == nil {
			t.Fatal("Publish succeeded with the broker away")
		}
		if took > d+time.Second {
			t.Errorf("Publish with a %v context returned after %v: %v", d, took, err)
		}
		t.Logf("Publish with the broker away, %v context: failed after %v: %v", d, took.Round(time.Millisecond), err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), attemptTimeout)
	if err := tr.Ready(rctx); err == nil {
		t.Error("Ready with the broker away: nil error")
	}
	rcancel()

	b.Start(t)
	publishRetry(t, tr, transport.Deliveries, during...)
	publishRetry(t, tr, transport.Deliveries, after...)
	seen.waitAll(t, duringIDs, waitTimeout, "published across the outage")
	seen.waitAll(t, afterIDs, waitTimeout, "after the outage")
	seen.waitAll(t, beforeIDs, waitTimeout, "before the outage") // none lost
	waitLog(t, logs, slog.LevelInfo, "connection to the brokers is back")
	poll.WithinReason(t, waitTimeout, "the group to commit everything", func() (bool, string) {
		bctx, bcancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer bcancel()
		n, err := tr.Backlog(bctx, transport.Deliveries, "outage")
		if err != nil {
			return false, err.Error()
		}
		return n == 0, fmt.Sprintf("backlog %d", n)
	})

	if n := logs.count(slog.LevelWarn, "lost the connection to the brokers"); n != 1 {
		t.Errorf("%d warnings about losing the brokers, want 1", n)
	}
	if n := logs.count(slog.LevelInfo, "connection to the brokers is back"); n != 1 {
		t.Errorf("%d info lines about the brokers being back, want 1", n)
	}
	if w := logs.atLeast(slog.LevelWarn); len(w) != 1 {
		t.Errorf("logged %d lines at warning level or above, want 1:\n%q", len(w), w)
	}
}

// TestCloseWithBrokerAway: Close does not wait out the retries kafka-go
// still makes for a batch whose Publish gave up while the broker was away
// (ten attempts with backoff, seconds); it returns within about one
// backoff.
func TestCloseWithBrokerAway(t *testing.T) {
	t.Parallel()
	b := newRestartable(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	tr, err := kafka.New(ctx, kafka.Config{Brokers: b.Addrs(), Partitions: testPartitions}, testLogger(t))
	if err != nil {
		t.Fatalf("kafka.New: %v", err)
	}
	b.Stop()
	pctx, pcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = tr.Publish(pctx, transport.Deliveries, transport.Message{ID: "away", Key: "k", Data: []byte("x")})
	pcancel()
	if err == nil {
		t.Fatal("Publish succeeded with the broker away")
	}
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Close took %v with the broker away", took)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return with the broker away")
	}
}
