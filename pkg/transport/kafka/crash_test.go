package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/pkg/internal/lockedbuf"
	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
)

// The child process of TestConsumerKilledMidPartition is this test binary
// running TestHelperConsumer, configured through these variables; without
// helperEnv set, TestHelperConsumer does nothing.
const (
	helperEnv     = "HOOKLINE_KAFKA_HELPER_CONSUMER"
	helperBrokers = "HOOKLINE_KAFKA_HELPER_BROKERS"
	helperGroup   = "HOOKLINE_KAFKA_HELPER_GROUP"
	helperHold    = "HOOKLINE_KAFKA_HELPER_HOLD" // comma-separated IDs never settled
)

// The helper reports on stdout, one line each: helperAcked ID once it has
// acknowledged ID, helperHolding ID once a handler holds ID (never to
// settle it).
const (
	helperAcked   = "HELPER acked "
	helperHolding = "HELPER holding "
)

// helperLifetime bounds the life of a helper whose parent forgot it.
const helperLifetime = 2 * time.Minute

// crashConfig is the Transport configuration of both consumers: short
// group timeouts, so the group notices the killed member within seconds
// (the broker must allow them: kfake.GroupMinSessionTimeout).
func crashConfig(brokers []string) kafka.Config {
	return kafka.Config{
		Brokers:           brokers,
		Partitions:        testPartitions,
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    time.Second,
		RebalanceTimeout:  time.Second,
	}
}

// crashStep bounds each step of TestConsumerKilledMidPartition.
const crashStep = 30 * time.Second

// TestHelperConsumer is the child process of TestConsumerKilledMidPartition
// (see there); run directly, it skips.
func TestHelperConsumer(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process of TestConsumerKilledMidPartition")
	}
	// The parent holds our stdin: when it goes away, so do we.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	hold := map[string]bool{}
	for _, id := range strings.Split(os.Getenv(helperHold), ",") {
		hold[id] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperLifetime)
	defer cancel()
	tr, err := kafka.New(ctx, crashConfig(strings.Split(os.Getenv(helperBrokers), ",")), testLogger(t))
	if err != nil {
		t.Fatalf("kafka.New: %v", err)
	}
	defer tr.Close()
	var out sync.Mutex
	report := func(prefix, id string) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintln(os.Stdout, prefix+id)
	}
	cfg := transport.ConsumerConfig{Group: os.Getenv(helperGroup), Concurrency: 64, AckWait: helperLifetime}
	err = tr.Consume(ctx, transport.Deliveries, cfg, func(hctx context.Context, m transport.Received) {
		id := m.Message().ID
		if hold[id] {
			report(helperHolding, id)
			<-hctx.Done() // unfinished until the process dies
			return
		}
		if err := m.Ack(hctx); err != nil {
			t.Errorf("Ack %s: %v", id, err)
			return
		}
		report(helperAcked, id)
	})
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	t.Fatal("the helper consumer outlived helperLifetime")
}

// TestConsumerKilledMidPartition: a consumer process is killed (SIGKILL,
// no clean close, no leave of the group) while it holds unfinished
// messages of a partition whose other messages, before and after them,
// it acknowledged. After the rebalance, the group's other member gets
// every message the killed one never acknowledged, none skipped, with
// NumDelivered >= 2 for those the killed one had in its handlers.
// Messages it acknowledged after its last commit are delivered again
// (at-least-once; the test logs how many), those before it are not. The
// kill comes at once, or once the child has committed up to its first
// unfinished message.
func TestConsumerKilledMidPartition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		waitCommit bool
	}{
		{"killed at once", false},
		{"killed after a commit", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testConsumerKilled(t, tc.waitCommit)
		})
	}
}

func testConsumerKilled(t *testing.T, waitCommit bool) {
	c := newCluster(t, kfake.GroupMinSessionTimeout(500*time.Millisecond))
	cfg := crashConfig(c.ListenAddrs())
	tr := openWith(t, cfg)

	// One key: every message on one partition.
	const n = 24
	group := "crash"
	var ids, hold []string
	msgs := make([]transport.Message, n)
	for i := range msgs {
		id := fmt.Sprintf("m%02d", i)
		ids = append(ids, id)
		if i%6 == 3 { // m03, m09, m15, m21: with acknowledged messages before and after each
			hold = append(hold, id)
		}
		msgs[i] = transport.Message{ID: id, Key: "one-partition", Data: []byte(id)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashStep)
	defer cancel()
	if _, err := tr.Publish(ctx, transport.Deliveries, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// Step 1: the child consumes; wait until it has acknowledged every
	// message but those it holds, and holds those.
	child := startHelper(t, cfg.Brokers, group, hold)
	acked, held := map[string]bool{}, map[string]bool{}
	step := time.NewTimer(crashStep)
	for len(acked) < n-len(hold) || len(held) < len(hold) {
		select {
		case line, ok := <-child.lines:
			if !ok {
				t.Fatalf("the helper exited (acked %d, held %d): %v\nstderr:\n%s", len(acked), len(held), child.wait(), child.stderr())
			}
			if id, ok := strings.CutPrefix(line, helperAcked); ok {
				acked[id] = true
			} else if id, ok := strings.CutPrefix(line, helperHolding); ok {
				held[id] = true
			}
		case <-step.C:
			t.Fatalf("within %v the helper acked %d of %d and held %d of %d\nstderr:\n%s", crashStep, len(acked), n-len(hold), len(held), len(hold), child.stderr())
		}
	}
	step.Stop()
	// The messages are on one partition at offsets 0 to n-1, in order.
	firstHeld := int64(slices.Index(ids, hold[0]))
	if waitCommit {
		poll.WithinReason(t, crashStep, fmt.Sprintf("the helper to commit offset %d", firstHeld), func() (bool, string) {
			off, err := committedMax(cfg.Brokers, group)
			return off == firstHeld, fmt.Sprintf("committed %d, err %v", off, err)
		})
	}

	// Step 2: kill it, with the messages in its handlers.
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill the helper: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.wait() }()
	select {
	case <-exited:
	case <-time.After(crashStep):
		t.Fatal("the killed helper did not exit")
	}
	for line := range child.lines { // reported before it died
		if id, ok := strings.CutPrefix(line, helperAcked); ok {
			acked[id] = true
		}
	}

	// Step 3: a sentinel after everything, on the same partition, then
	// the group's other member, handling one message at a time in order.
	const sentinel = "sentinel"
	if _, err := tr.Publish(ctx, transport.Deliveries, transport.Message{ID: sentinel, Key: "one-partition", Data: []byte("end")}); err != nil {
		t.Fatalf("Publish sentinel: %v", err)
	}
	type delivery struct {
		id string
		nd int
	}
	got := make(chan delivery, 4*n)
	cctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(cctx, transport.Deliveries, transport.ConsumerConfig{Group: group, Concurrency: 1}, func(hctx context.Context, m transport.Received) {
			got <- delivery{m.Message().ID, m.NumDelivered()}
			_ = m.Ack(hctx)
		})
	}()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Consume: %v", err)
			}
		case <-time.After(crashStep):
			t.Error("Consume did not return after cancel")
		}
	}()
	delivered := map[string]int{} // ID -> lowest NumDelivered
	step = time.NewTimer(crashStep)
	defer step.Stop()
	for delivered[sentinel] == 0 {
		select {
		case d := <-got:
			if prev, ok := delivered[d.id]; !ok || d.nd < prev {
				delivered[d.id] = d.nd
			}
		case <-step.C:
			t.Fatalf("within %v of the kill the group's other member got %d messages and not the sentinel", crashStep, len(delivered))
		}
	}

	var skipped, dups []string
	for i, id := range ids {
		nd, ok := delivered[id]
		switch {
		case !acked[id] && !ok:
			skipped = append(skipped, id)
		case held[id] && nd < 2:
			t.Errorf("%s, held by the killed consumer, redelivered with NumDelivered=%d, want >= 2", id, nd)
		case acked[id] && ok && waitCommit && int64(i) < firstHeld:
			t.Errorf("%s, acknowledged and committed before the kill, delivered again", id)
		case acked[id] && ok:
			dups = append(dups, id)
		}
	}
	if len(skipped) > 0 {
		t.Errorf("never delivered after the kill, though never acknowledged: %v", skipped)
	}
	for _, id := range hold {
		if acked[id] {
			t.Errorf("%s was held, yet reported acknowledged", id)
		}
	}
	slices.Sort(dups)
	t.Logf("the killed consumer acked %d and held %d of %d; after the rebalance: %d delivered, %d of them duplicates (acked before the kill, after its last commit): %v",
		len(acked), len(held), n, len(delivered)-1, len(dups), dups)
}

// committedMax returns the highest offset group has committed on
// DeliveriesTopic (-1 if none).
func committedMax(brokers []string, group string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	rt := &kafkago.Transport{}
	defer rt.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: attemptTimeout, Transport: rt}
	parts := make([]int, testPartitions)
	for i := range parts {
		parts[i] = i
	}
	resp, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{kafka.DeliveriesTopic: parts}})
	if err != nil {
		return -1, err
	}
	if resp.Error != nil {
		return -1, resp.Error
	}
	off := int64(-1)
	for _, p := range resp.Topics[kafka.DeliveriesTopic] {
		if p.Error != nil {
			return -1, p.Error
		}
		off = max(off, p.CommittedOffset)
	}
	return off, nil
}

// helper is a running child process of TestConsumerKilledMidPartition.
type helper struct {
	cmd     *exec.Cmd
	lines   chan string   // its stdout, line by line; closed at EOF
	scanned chan struct{} // closed once stdout is read to EOF
	errb    *lockedbuf.Buffer
	once    sync.Once
	err     error
}

// startHelper starts this test binary as a helper consumer of group on
// brokers, holding the messages hold; it is killed when t ends, if still
// running.
func startHelper(t *testing.T, brokers []string, group string, hold []string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperConsumer$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		helperEnv+"=1",
		helperBrokers+"="+strings.Join(brokers, ","),
		helperGroup+"="+group,
		helperHold+"="+strings.Join(hold, ","),
	)
	h := &helper{cmd: cmd, lines: make(chan string, 1024), errb: &lockedbuf.Buffer{}}
	cmd.Stderr = h.errb
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("helper stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("helper stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	// The scanner ends at EOF, once the process is gone: before wait
	// returns, which closes the pipe.
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	h.scanned = scanned
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = h.wait()
	})
	return h
}

// wait waits for the process to exit (and its output to be read) and
// returns its exit error; idempotent.
func (h *helper) wait() error {
	h.once.Do(func() {
		<-h.scanned
		h.err = h.cmd.Wait()
	})
	return h.err
}

func (h *helper) stderr() string { return h.errb.String() }
