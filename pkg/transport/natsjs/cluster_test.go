package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// clusterStreams are the JetStream streams of transport.Streams.
var clusterStreams = []string{"HOOKLINE_EVENTS", "HOOKLINE_DELIVERIES"}

// clusterWait bounds each wait of the cluster tests for the broker to
// settle (replicas current, messages received): seconds on a loopback
// cluster, with a wide margin for a busy machine.
const clusterWait = 20 * time.Second

// publishBound bounds how long one message may take to be published,
// retried with the same ID in attempts of attemptTimeout: a leader
// election plus a reconnect, with a margin.
const publishBound = 15 * time.Second

// watchAttempt bounds each stream info request while the leader changes.
const watchAttempt = 250 * time.Millisecond

// testLogger is the Transport logger of the tests: rec's records, and
// also stderr when NATSJS_TEST_LOG is set.
func testLogger(t *testing.T, rec *logRecorder) *slog.Logger {
	var h slog.Handler = rec
	if os.Getenv("NATSJS_TEST_LOG") != "" {
		h = teeHandler{rec, slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})}
	}
	return slog.New(h).With("test", t.Name())
}

// teeHandler sends records to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	return errors.Join(h.a.Handle(ctx, r.Clone()), h.b.Handle(ctx, r))
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.a.WithGroup(name), h.b.WithGroup(name)}
}

// streamInfo is the stream's info, asked of the cluster within
// attemptTimeout.
func streamInfo(t *testing.T, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return st.CachedInfo(), nil
}

// fullyReplicated reports why info is not that of an R3 stream with a
// leader and two current replicas, all of them nodes of c.
func fullyReplicated(c *natsembedtest.Cluster, info *jetstream.StreamInfo) error {
	if info.Config.Replicas != 3 {
		return fmt.Errorf("%s: Config.Replicas %d, want 3", info.Config.Name, info.Config.Replicas)
	}
	ci := info.Cluster
	if ci == nil || ci.Leader == "" {
		return fmt.Errorf("%s: no leader (cluster info %+v)", info.Config.Name, ci)
	}
	names := []string{ci.Leader}
	for _, p := range ci.Replicas {
		if !p.Current || p.Offline {
			return fmt.Errorf("%s: replica %s current=%t offline=%t lag=%d", info.Config.Name, p.Name, p.Current, p.Offline, p.Lag)
		}
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if len(slices.Compact(names)) != 3 || len(ci.Replicas) != 2 {
		return fmt.Errorf("%s: leader %s and replicas %v, want 3 distinct peers", info.Config.Name, ci.Leader, ci.Replicas)
	}
	for _, n := range names {
		if c.Index(n) < 0 {
			return fmt.Errorf("%s: peer %q is no node of the cluster", info.Config.Name, n)
		}
	}
	return nil
}

// waitFullyReplicated waits until every Hookline stream has a leader and
// two current replicas.
func waitFullyReplicated(t *testing.T, c *natsembedtest.Cluster, js jetstream.JetStream, what string) {
	t.Helper()
	poll.WithinReason(t, clusterWait, what, func() (bool, string) {
		for _, name := range clusterStreams {
			info, err := streamInfo(t, js, name)
			if err == nil {
				err = fullyReplicated(c, info)
			}
			if err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	})
}

// receivedIDs is what a consumer group received.
type receivedIDs struct {
	mu          sync.Mutex
	ids         map[string]int // message ID: times received
	redelivered int            // receipts with NumDelivered > 1
}

func (r *receivedIDs) add(m transport.Received) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids[m.Message().ID]++
	if m.NumDelivered() > 1 {
		r.redelivered++
	}
}

// missing returns the IDs in want not received yet.
func (r *receivedIDs) missing(want []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var miss []string
	for _, id := range want {
		if r.ids[id] == 0 {
			miss = append(miss, id)
		}
	}
	return miss
}

// waitReceived waits until every ID in want was received.
func (r *receivedIDs) waitReceived(t *testing.T, what string, want []string) {
	t.Helper()
	poll.WithinReason(t, clusterWait, what, func() (bool, string) {
		miss := r.missing(want)
		if len(miss) == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("%d of %d missing, first %q", len(miss), len(want), miss[0])
	})
}

// publisher publishes one message at a time on Deliveries, retrying each
// with its ID until it succeeds, and keeps a record.
type publisher struct {
	t  *testing.T
	tr *natsjs.Transport

	ids        []string // published (acked by the broker), in order
	failed     int      // failed attempts
	errs       []string // the first failed attempts' errors
	slowest    time.Duration
	slowestID  string
	firstStart []time.Time // when each of ids was first attempted
}

// publish publishes the message id, retrying it in attempts of
// attemptTimeout for up to publishBound, and fails the test if it never
// succeeds.
func (p *publisher) publish(id string) {
	p.t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(p.t.Context(), attemptTimeout)
		_, err := p.tr.Publish(ctx, transport.Deliveries, transport.Message{ID: id, Subject: "cluster", Data: []byte(id)})
		cancel()
		if err == nil {
			break
		}
		p.failed++
		if len(p.errs) < 5 {
			p.errs = append(p.errs, fmt.Sprintf("%s after %s: %v", id, time.Since(start).Round(time.Millisecond), err))
		}
		if time.Since(start) > publishBound {
			p.t.Fatalf("publish %s: no success within %s (%d failed attempts overall): %v", id, publishBound, p.failed, err)
		}
		_ = sleep(p.t.Context(), 50*time.Millisecond) // an error that is not a timeout comes back at once
	}
	now := time.Now()
	if d := now.Sub(start); d > p.slowest {
		p.slowest, p.slowestID = d, id
	}
	p.ids = append(p.ids, id)
	p.firstStart = append(p.firstStart, start)
}

// TestClusterR3 runs the transport on a three-node JetStream cluster with
// R3 streams, as production does: both streams get three replicas; a
// consumer group receives what is published; when the node leading
// HOOKLINE_DELIVERIES shuts down, another is elected and publishing (from
// a client connected to the node that went away) and consuming carry on,
// with no acknowledged message lost; and the node, restarted, catches up
// until the streams have three current replicas again.
func TestClusterR3(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	c := natsembedtest.StartCluster(t, 3)
	t.Logf("3-node cluster ready in %s", time.Since(begin).Round(time.Millisecond))

	cfg := natsjs.Config{URL: c.ClientURLs(), Options: c.ConnectOptions(), Replicas: 3}
	created := time.Now()
	openWith(t, cfg, nil)
	t.Logf("New created the R3 streams in %s", time.Since(created).Round(time.Millisecond))
	_, js := natsembedtest.JetStream(t, c.ClientURLs(), append(c.ConnectOptions(), nats.Name("observer"))...)
	waitFullyReplicated(t, c, js, "R3 streams with a leader and two current replicas")

	info, err := streamInfo(t, js, "HOOKLINE_DELIVERIES")
	if err != nil {
		t.Fatal(err)
	}
	oldLeader := info.Cluster.Leader
	down := c.Index(oldLeader)
	var survivors []string
	for i := range c.Size() {
		if i != down {
			survivors = append(survivors, c.ClientURL(i))
		}
	}
	t.Logf("HOOKLINE_DELIVERIES: leader %s, replicas %s and %s", oldLeader, info.Cluster.Replicas[0].Name, info.Cluster.Replicas[1].Name)

	// The publisher is connected to the node that will go away, so it
	// loses its connection as well as the stream's leader; the consumer is
	// connected to a node that stays.
	pubLog := &logRecorder{}
	pubCfg := cfg
	pubCfg.Name = "publisher"
	pubCfg.URL = strings.Join(append([]string{c.ClientURL(down)}, survivors...), ",")
	pubCfg.Options = append(c.ConnectOptions(), nats.DontRandomize())
	p := &publisher{t: t, tr: openWith(t, pubCfg, testLogger(t, pubLog))}
	consCfg := cfg
	consCfg.Name = "consumer"
	consCfg.URL = strings.Join(append(slices.Clone(survivors), c.ClientURL(down)), ",")
	consCfg.Options = append(c.ConnectOptions(), nats.DontRandomize())
	cons := openWith(t, consCfg, testLogger(t, &logRecorder{}))

	got := &receivedIDs{ids: make(map[string]int)}
	cctx, stop := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		// A short AckWait: a delivery lost with the node comes back soon.
		consumed <- cons.Consume(cctx, transport.Deliveries, transport.ConsumerConfig{Group: "workers", Concurrency: 4, AckWait: 2 * time.Second},
			func(_ context.Context, m transport.Received) {
				got.add(m)
				_ = m.Ack(context.Background())
			})
	}()
	defer func() {
		stop()
		if err := <-consumed; err != nil {
			t.Errorf("Consume: %v", err)
		}
	}()

	const before, after = 50, 50
	for i := range before {
		p.publish(fmt.Sprintf("m-%03d", i))
	}
	got.waitReceived(t, "the messages published before the failover", p.ids)
	var consLeader string
	retry(t, "the consumer group's info", func(ctx context.Context) error {
		cn, err := js.Consumer(ctx, "HOOKLINE_DELIVERIES", "workers")
		if err != nil {
			return err
		}
		ci := cn.CachedInfo().Cluster
		if ci == nil || ci.Leader == "" || len(ci.Replicas) != 2 {
			return fmt.Errorf("consumer workers: cluster info %+v, want a leader and 2 replicas", ci)
		}
		consLeader = ci.Leader
		return nil
	})
	t.Logf("consumer group workers: leader %s", consLeader)

	// Shut the leader down while publishing goes on, and watch for the
	// new leader from a client on a survivor.
	_, watch := natsembedtest.JetStream(t, strings.Join(survivors, ","), append(c.ConnectOptions(), nats.Name("watcher"), nats.DontRandomize())...)
	failover := time.Now()
	var shutdownTook atomic.Int64 // nanoseconds, 0 until the node is down
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		c.Shutdown(down)
		shutdownTook.Store(int64(time.Since(failover)))
	})
	var newLeader atomic.Value   // string
	var elected atomic.Int64     // nanoseconds after failover the new leader was seen
	var leaderSince atomic.Value // time.Time the new leader reports it was elected
	wctx, stopWatch := context.WithTimeout(t.Context(), publishBound)
	defer stopWatch()
	wg.Go(func() {
		for wctx.Err() == nil {
			// Short attempts: a request the old leader took with it is
			// given up soon.
			ctx, cancel := context.WithTimeout(wctx, watchAttempt)
			st, err := watch.Stream(ctx, "HOOKLINE_DELIVERIES")
			cancel()
			if err == nil {
				if ci := st.CachedInfo().Cluster; ci != nil && ci.Leader != "" && ci.Leader != oldLeader {
					newLeader.Store(ci.Leader)
					if ci.LeaderSince != nil {
						leaderSince.Store(*ci.LeaderSince)
					}
					elected.Store(int64(time.Since(failover)))
					return
				}
			}
			_ = sleep(wctx, 10*time.Millisecond)
		}
	})

	// Publish until the node is down, a new leader is known, and after
	// messages were published on it.
	afterElection := 0
	for i := before; ; i++ {
		p.publish(fmt.Sprintf("m-%03d", i))
		e := elected.Load()
		if e != 0 && p.firstStart[len(p.firstStart)-1].After(failover.Add(time.Duration(e))) {
			afterElection++
		}
		if afterElection >= after && shutdownTook.Load() != 0 {
			break
		}
		if time.Since(failover) > publishBound {
			t.Fatalf("after %s: node down %t, new leader %v, %d messages published after the election",
				publishBound, shutdownTook.Load() != 0, newLeader.Load(), afterElection)
		}
	}
	leader, _ := newLeader.Load().(string)
	since := "unknown"
	if ls, ok := leaderSince.Load().(time.Time); ok {
		since = ls.Sub(failover).Round(time.Millisecond).String()
	}
	t.Logf("failover: %s shut down in %s; new leader %s elected %s and seen %s after the shutdown began; %d publishes meanwhile, %d failed attempts, slowest publish %s (%s)",
		oldLeader, time.Duration(shutdownTook.Load()).Round(time.Millisecond), leader, since,
		time.Duration(elected.Load()).Round(time.Millisecond), len(p.ids)-before, p.failed, p.slowest.Round(time.Millisecond), p.slowestID)
	for _, e := range p.errs {
		t.Logf("failed publish attempt: %s", e)
	}
	if c.Index(leader) < 0 || leader == oldLeader {
		t.Fatalf("new leader %q", leader)
	}
	if n, _ := pubLog.count("nats reconnected"); n == 0 {
		t.Errorf("the publisher, connected to %s, did not reconnect", oldLeader)
	}
	got.waitReceived(t, "every message published through the failover", p.ids)

	// The node comes back with its store and catches up.
	restart := time.Now()
	c.Restart(t, down)
	t.Logf("%s restarted and healthy in %s", oldLeader, time.Since(restart).Round(time.Millisecond))
	waitFullyReplicated(t, c, js, "three current replicas after the restart")
	t.Logf("three current replicas %s after the restart", time.Since(restart).Round(time.Millisecond))
	n := len(p.ids)
	for i := range 10 {
		p.publish(fmt.Sprintf("m-%03d", n+i))
	}
	got.waitReceived(t, "every message, also those published after the restart", p.ids)
	got.mu.Lock()
	t.Logf("%d messages, %d redelivered receipts; whole test %s", len(p.ids), got.redelivered, time.Since(begin).Round(time.Millisecond))
	got.mu.Unlock()
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestReplicasNeedCluster: Replicas 3 on a single server, not a cluster,
// makes New fail at once with JetStream's own explanation, instead of
// retrying until its deadline.
func TestReplicasNeedCluster(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	cfg := embedded(srv)
	cfg.Replicas = 3
	const deadline = 20 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	tr, err := natsjs.New(ctx, cfg, nil)
	took := time.Since(start)
	if err == nil {
		_ = tr.Close()
		t.Fatal("New with Replicas 3 on a single server succeeded")
	}
	t.Logf("New failed after %s: %v", took.Round(time.Millisecond), err)
	if took > deadline/4 {
		t.Errorf("New took %s of its %s deadline: it retried a final error", took, deadline)
	}
	// JetStream's answer: code 500, err_code 10074, "replicas > 1 not
	// supported in non-clustered mode".
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10074 {
		t.Errorf("error %v is not JetStream's JSStreamReplicasNotSupportedErr (err_code 10074)", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "replicas > 1 not supported in non-clustered mode") || !strings.Contains(msg, "HOOKLINE_") {
		t.Errorf("error %q does not name the stream and say that replicas need a cluster", msg)
	}
}
