// Package transporttest is the conformance suite for transport.Transport
// implementations: the executable form of the guarantees documented in
// package transport. An implementation's tests call Run with a function
// that starts a fresh, isolated broker.
//
// Every wait on the broker after a restart is bounded per attempt
// (attemptTimeout) and retried within a generous overall deadline
// (restartTimeout), so one request lost while a client reconnects costs
// one attempt, not the whole test.
package transporttest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
)

// Harness gives the suite access to one isolated broker.
type Harness struct {
	// Open returns a new client, with its own connection, to the
	// harness's broker: every client opened by one harness shares the
	// broker's streams and signals, as separate processes do. The client
	// is closed when t ends (closing it earlier must be allowed).
	// Required.
	Open func(t *testing.T) transport.Transport
	// Restart stops the broker and starts it again with the same storage
	// and address, returning once it accepts clients. Clients opened
	// before must reconnect by themselves. Nil if unsupported; the
	// restart subtests are then skipped.
	Restart func(t *testing.T)
}

// timeout bounds every wait in the suite; only a broken implementation
// gets near it.
const timeout = 20 * time.Second

// After a broker restart, each request the suite makes is bounded by
// attemptTimeout and retried until restartTimeout: a request sent while
// the client reconnects may be lost with the old connection, and must not
// wait for the whole deadline.
const (
	attemptTimeout = 2 * time.Second
	restartTimeout = poll.DefaultTimeout
)

// Run runs the conformance suite. newHarness is called once per subtest
// and must return a harness on a fresh broker that no other subtest uses,
// so the subtests can run in parallel.
//
// Beyond the documented contract, the suite relies on: handlers receiving a
// context that ends when Consume's does; AckWait values of one second being
// honoured; a new group starting from the oldest retained message; and
// Consume on an already cancelled context returning nil.
//
// The subtests of an optional interface (transport.LagReader) are skipped
// for a Transport that does not implement it.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"PublishIsDurable", testPublishIsDurable},
		{"PublishSurvivesRestart", testPublishSurvivesRestart},
		{"ConsumeSurvivesRestart", testConsumeSurvivesRestart},
		{"Deduplication", testDeduplication},
		{"RoundTrip", testRoundTrip},
		{"AckedNotRedelivered", testAckedNotRedelivered},
		{"NakWithDelay", testNakWithDelay},
		{"InProgressExtendsAckWait", testInProgress},
		{"UnackedRedeliveredAfterConsumerDies", testRedeliveredAfterConsumerDies},
		{"GroupSharesWork", testGroupSharesWork},
		{"IndependentGroups", testIndependentGroups},
		{"BatchPublishResultsInOrder", testBatchPublishOrder},
		{"ConsumeStopsOnCancel", testConsumeStopsOnCancel},
		{"StopHandsBackEverythingAtOnce", testStopHandsBack},
		{"ConsumeConcurrencyBounded", testConcurrencyBounded},
		{"BacklogCountsWhatNoMemberTook", testBacklog},
		{"LagOfNewGroupIsEveryRetainedMessage", testLagNewGroup},
		{"LagIsPerGroup", testLagPerGroup},
		{"LagCountsWhatTheGroupHasNotAcked", testLag},
		{"InvalidInput", testInvalidInput},
		{"SignalReachesEveryListener", testSignalReachesEveryListener},
		{"SignalAfterListenReturnsArrives", testSignalAfterListen},
		{"NotifyWithoutListener", testNotifyWithoutListener},
		{"StopEndsCalls", testStopEndsCalls},
		{"StopWaitsForRunningCall", testStopWaitsForRunningCall},
		{"SignalDataRoundTrips", testSignalDataRoundTrip},
		{"InvalidTopicRefused", testInvalidTopic},
		{"ListenCallsNeverOverlap", testListenCallsNeverOverlap},
		{"SignalsAfterClose", testSignalsAfterClose},
		{"ListenSurvivesRestart", testListenSurvivesRestart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t))
		})
	}
}

// ---- helpers ----

// record is one delivery seen by a handler.
type record struct {
	msg          transport.Message
	numDelivered int
	at           time.Time
	client       int
}

// collector collects items arriving from other goroutines and lets the
// test wait for a condition on them.
type collector[T any] struct {
	mu      sync.Mutex
	items   []T
	arrived chan struct{} // a token after every add
}

func newCollector[T any]() *collector[T] { return &collector[T]{arrived: make(chan struct{}, 1)} }

func (c *collector[T]) add(item T) {
	c.mu.Lock()
	c.items = append(c.items, item)
	c.mu.Unlock()
	select {
	case c.arrived <- struct{}{}:
	default:
	}
}

func (c *collector[T]) snapshot() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.items)
}

// waitUntil waits until cond holds on the items or d passes, and reports
// whether cond held.
func (c *collector[T]) waitUntil(d time.Duration, cond func([]T) bool) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	for {
		if cond(c.snapshot()) {
			return true
		}
		select {
		case <-c.arrived:
		case <-tm.C:
			return cond(c.snapshot())
		}
	}
}

// sink collects deliveries.
type sink = collector[record]

func newSink() *sink { return newCollector[record]() }

// count returns how many records have the given message ID.
func count(recs []record, id string) int {
	n := 0
	for _, r := range recs {
		if r.msg.ID == id {
			n++
		}
	}
	return n
}

// ids returns the set of message IDs in recs.
func ids(recs []record) map[string]int {
	m := make(map[string]int, len(recs))
	for _, r := range recs {
		m[r.msg.ID]++
	}
	return m
}

// hasAll reports whether recs contains every id in want.
func hasAll(want []string) func([]record) bool {
	return func(recs []record) bool {
		got := ids(recs)
		for _, id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	}
}

// consumer is a running Consume call.
type consumer struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startConsume runs tr.Consume in a goroutine until stop (or the end of t).
func startConsume(t *testing.T, tr transport.Transport, stream transport.Stream, cfg transport.ConsumerConfig, h transport.Handler) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- tr.Consume(ctx, stream, cfg, h) }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop cancels the Consume call and fails t unless it returns nil promptly.
func (c *consumer) stop(t *testing.T) {
	t.Helper()
	c.once.Do(func() {
		c.cancel()
		select {
		case c.err = <-c.done:
			if c.err != nil {
				t.Errorf("Consume returned %v after cancel, want nil", c.err)
			}
		case <-time.After(timeout):
			c.err = fmt.Errorf("Consume did not return within %s of cancel", timeout)
			t.Error(c.err)
		}
	})
}

// collect returns a handler that records every delivery in s and acks it.
func collect(t *testing.T, s *sink, client int) transport.Handler {
	return func(ctx context.Context, m transport.Received) {
		s.add(record{msg: *m.Message(), numDelivered: m.NumDelivered(), at: time.Now(), client: client})
		if err := m.Ack(ctx); err != nil {
			t.Errorf("Ack %s: %v", m.Message().ID, err)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, tr transport.Transport, stream transport.Stream, msgs ...transport.Message) []transport.PublishResult {
	t.Helper()
	res, err := tr.Publish(ctxT(t), stream, msgs...)
	if err != nil {
		t.Fatalf("Publish %d messages on %s: %v", len(msgs), stream, err)
	}
	if len(res) != len(msgs) {
		t.Fatalf("Publish returned %d results for %d messages", len(res), len(msgs))
	}
	return res
}

// retry calls req with a context of attemptTimeout until it returns nil,
// for up to restartTimeout, and fails t (with the last error) if it never
// does. It is how the suite talks to a broker that has just restarted.
func retry(t *testing.T, what string, req func(ctx context.Context) error) {
	t.Helper()
	poll.WithinReason(t, restartTimeout, what, func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		if err := req(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// msgs makes n messages with IDs prefix-0 ... and distinct keys.
func msgs(prefix string, n int) ([]transport.Message, []string) {
	ms := make([]transport.Message, n)
	idl := make([]string, n)
	for i := range ms {
		id := prefix + "-" + strconv.Itoa(i)
		ms[i] = transport.Message{ID: id, Key: "key-" + strconv.Itoa(i), Data: []byte("payload " + id)}
		idl[i] = id
	}
	return ms, idl
}

// ---- subtests ----

func testPublishIsDurable(t *testing.T, h Harness) {
	pub := h.Open(t)
	ms, want := msgs("durable", 20)
	publish(t, pub, transport.Deliveries, ms...)
	if err := pub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sub := h.Open(t)
	s := newSink()
	startConsume(t, sub, transport.Deliveries, transport.ConsumerConfig{Group: "g", Concurrency: 4}, collect(t, s, 0))
	if !s.waitUntil(timeout, hasAll(want)) {
		t.Fatalf("after reopening, consumed %d distinct of %d published messages", len(ids(s.snapshot())), len(want))
	}
}

func testPublishSurvivesRestart(t *testing.T, h Harness) {
	if h.Restart == nil {
		t.Skip("harness cannot restart the broker")
	}
	pub := h.Open(t)
	ms, want := msgs("restart", 20)
	publish(t, pub, transport.Events, ms...)
	if err := pub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	h.Restart(t)
	sub := h.Open(t)
	s := newSink()
	startConsume(t, sub, transport.Events, transport.ConsumerConfig{Group: "g", Concurrency: 4}, collect(t, s, 0))
	if !s.waitUntil(restartTimeout, hasAll(want)) {
		t.Fatalf("after a broker restart, consumed %d distinct of %d published messages", len(ids(s.snapshot())), len(want))
	}
}

func testConsumeSurvivesRestart(t *testing.T, h Harness) {
	if h.Restart == nil {
		t.Skip("harness cannot restart the broker")
	}
	tr := h.Open(t)
	s := newSink()
	startConsume(t, tr, transport.Deliveries, transport.ConsumerConfig{Group: "g", Concurrency: 2}, collect(t, s, 0))
	before, wantBefore := msgs("before", 10)
	publish(t, tr, transport.Deliveries, before...)
	if !s.waitUntil(timeout, hasAll(wantBefore)) {
		t.Fatalf("before restart: consumed %d of %d", len(ids(s.snapshot())), len(wantBefore))
	}
	h.Restart(t)
	// The same client publishes and consumes after the restart. A publish
	// attempt that fails (or is lost) while the client reconnects is
	// repeated with the same IDs, which deduplicates.
	after, wantAfter := msgs("after", 10)
	retry(t, "a publish after the restart", func(ctx context.Context) error {
		_, err := tr.Publish(ctx, transport.Deliveries, after...)
		return err
	})
	if !s.waitUntil(restartTimeout, hasAll(wantAfter)) {
		t.Fatalf("after restart: consumer saw %d distinct messages, want all %d of the second batch too",
			len(ids(s.snapshot())), len(wantBefore)+len(wantAfter))
	}
	retry(t, "Ready after the restart", tr.Ready)
}

func testDeduplication(t *testing.T, h Harness) {
	tr := h.Open(t)
	first := transport.Message{ID: "dup-1", Key: "k", Data: []byte("first")}
	second := transport.Message{ID: "dup-1", Key: "k", Data: []byte("second")}
	if res := publish(t, tr, transport.Deliveries, first); res[0].Duplicate {
		t.Fatal("first publish reported Duplicate=true")
	}
	if res := publish(t, tr, transport.Deliveries, second); !res[0].Duplicate {
		t.Fatal("second publish with the same ID reported Duplicate=false")
	}
	// The same ID again inside a batch, after a fresh message.
	res := publish(t, tr, transport.Deliveries,
		transport.Message{ID: "fresh-1", Key: "k", Data: []byte("x")},
		transport.Message{ID: "dup-1", Key: "k", Data: []byte("third")},
	)
	if res[0].Duplicate || !res[1].Duplicate {
		t.Fatalf("batch results %+v, want [false true]", res)
	}
	publish(t, tr, transport.Deliveries, transport.Message{ID: "sentinel", Key: "k", Data: []byte("end")})

	s := newSink()
	startConsume(t, tr, transport.Deliveries, transport.ConsumerConfig{Group: "g"}, collect(t, s, 0))
	if !s.waitUntil(timeout, hasAll([]string{"dup-1", "fresh-1", "sentinel"})) {
		t.Fatalf("consumed %v, want dup-1, fresh-1 and sentinel", ids(s.snapshot()))
	}
	recs := s.snapshot()
	if n := count(recs, "dup-1"); n != 1 {
		t.Fatalf("dup-1 consumed %d times, want once", n)
	}
	for _, r := range recs {
		if r.msg.ID == "dup-1" && string(r.msg.Data) != "first" {
			t.Fatalf("dup-1 carries %q, want the first publish's data", r.msg.Data)
		}
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	tr := h.Open(t)
	binary := make([]byte, 256*4)
	for i := range binary {
		binary[i] = byte(i)
	}
	// The suite is neutral about the services' message format: these are
	// headers of the kind the services send (hookline-* metadata and the
	// W3C trace context), which must round-trip unchanged whatever they
	// mean.
	headers := map[string]string{
		"hookline-event-id":        "evt_01J9Z3",
		"hookline-tenant":          "acme",
		"hookline-event-type":      "order.created.v1",
		"hookline-occurred-at":     "2025-01-02T03:04:05.123456789Z",
		"hookline-delivery-id":     "dlv_01J9Z3",
		"hookline-subscription-id": "sub_42",
		"hookline-attempt":         "3",
		"hookline-retry-after":     "120",
		"traceparent":              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate":               "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		"X-Mixed-Case":             "Value With Spaces And Ünïcode ✓",
		"x-mixed-case":             "lower",
		"hookline-empty":           "",
		"hookline-json":            `{"a":[1,2,3],"b":"c: d"}`,
	}
	sent := []struct {
		stream transport.Stream
		msg    transport.Message
	}{
		{transport.Events, transport.Message{ID: "rt-1", Subject: "acme.order.created.v1", Key: "acme", Headers: headers, Data: binary}},
		{transport.Events, transport.Message{ID: "rt-2", Subject: "acme.order.deleted", Key: "k/with:odd=chars", Data: []byte{}}},
		{transport.Deliveries, transport.Message{ID: "rt-3", Data: []byte(`{"hello":"world"}`)}},
		{transport.Deliveries, transport.Message{ID: "rt-4", Key: "sub_42", Headers: map[string]string{"traceparent": headers["traceparent"]}, Data: []byte{0, 0xff, 0}}},
	}
	for _, s := range sent {
		publish(t, tr, s.stream, s.msg)
	}
	got := map[string]record{}
	var mu sync.Mutex
	s := newSink()
	for i, stream := range transport.Streams {
		startConsume(t, tr, stream, transport.ConsumerConfig{Group: "rt"}, func(ctx context.Context, m transport.Received) {
			mu.Lock()
			got[m.Message().ID] = record{msg: *m.Message()}
			mu.Unlock()
			collect(t, s, i)(ctx, m)
		})
	}
	if !s.waitUntil(timeout, hasAll([]string{"rt-1", "rt-2", "rt-3", "rt-4"})) {
		t.Fatalf("consumed %v, want rt-1..rt-4", ids(s.snapshot()))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range sent {
		want, r := s.msg, got[s.msg.ID].msg
		if r.ID != want.ID || r.Subject != want.Subject || r.Key != want.Key {
			t.Errorf("%s: got id=%q subject=%q key=%q, want id=%q subject=%q key=%q",
				want.ID, r.ID, r.Subject, r.Key, want.ID, want.Subject, want.Key)
		}
		if !bytes.Equal(r.Data, want.Data) {
			t.Errorf("%s: data %x, want %x", want.ID, r.Data, want.Data)
		}
		if len(r.Headers) != len(want.Headers) || (len(want.Headers) > 0 && !maps.Equal(r.Headers, want.Headers)) {
			t.Errorf("%s: headers\n got %v\nwant %v", want.ID, r.Headers, want.Headers)
		}
	}
}

func testAckedNotRedelivered(t *testing.T, h Harness) {
	tr := h.Open(t)
	const ackWait = time.Second
	s := newSink()
	startConsume(t, tr, transport.Deliveries, transport.ConsumerConfig{Group: "g", AckWait: ackWait}, collect(t, s, 0))
	publish(t, tr, transport.Deliveries, transport.Message{ID: "acked", Data: []byte("x")})
	if !s.waitUntil(timeout, hasAll([]string{"acked"})) {
		t.Fatal("message not delivered")
	}
	// Give the broker three AckWaits to (wrongly) redeliver.
	if s.waitUntil(3*ackWait, func(r []record) bool { return count(r, "acked") > 1 }) {
		t.Fatalf("acked message delivered %d times", count(s.snapshot(), "acked"))
	}
}

func testNakWithDelay(t *testing.T, h Harness) {
	tr := h.Open(t)
	const delay = time.Second
	const slack = 150 * time.Millisecond
	s := newSink()
	var naked atomic.Bool
	startConsume(t, tr, transport.Deliveries, transport.ConsumerConfig{Group: "g"}, func(ctx context.Context, m transport.Received) {
		s.add(record{msg: *m.Message(), numDelivered: m.NumDelivered(), at: time.Now()})
		if naked.CompareAndSwap(false, true) {
			if err := m.Nak(ctx, delay); err != nil {
				t.Errorf("nak: %v", err)
			}
			return
		}
		if err := m.Ack(ctx); err != nil {
			t.Errorf("ack: %v", err)
		}
	})
	publish(t, tr, transport.Deliveries, transport.Message{ID: "naked", Data: []byte("x")})
	if !s.waitUntil(timeout, func(r []record) bool { return len(r) >= 2 }) {
		t.Fatalf("nak'd message not redelivered (deliveries: %d)", len(s.snapshot()))
	}
	recs := s.snapshot()
	if gap := recs[1].at.Sub(recs[0].at); gap < delay-slack {
		t.Errorf("redelivered %s after nak, want at least %s", gap, delay)
	}
	if recs[0].numDelivered != 1 || recs[1].numDelivered != 2 {
		t.Errorf("NumDelivered %d then %d, want 1 then 2", recs[0].numDelivered, recs[1].numDelivered)
	}
	if recs[1].msg.ID != "naked" {
		t.Errorf("redelivered %q", recs[1].msg.ID)
	}
}

func testInProgress(t *testing.T, h Harness) {
	tr := h.Open(t)
	const ackWait = time.Second
	const hold = 3 * ackWait
	s := newSink()
	done := make(chan struct{})
	var handled atomic.Int32
	startConsume(t, tr, transport.Deliveries, transport.ConsumerConfig{Group: "g", AckWait: ackWait, Concurrency: 2}, func(ctx context.Context, m transport.Received) {
		s.add(record{msg: *m.Message(), numDelivered: m.NumDelivered(), at: time.Now()})
		if handled.Add(1) > 1 {
			_ = m.Ack(ctx)
			return
		}
		// Hold the message for several AckWaits, reporting progress.
		tick := time.NewTicker(ackWait / 4)
		defer tick.Stop()
		end := time.NewTimer(hold)
		defer end.Stop()
		for {
			select {
			case <-tick.C:
				if err := m.InProgress(ctx); err != nil {
					t.Errorf("in progress: %v", err)
				}
			case <-end.C:
				if err := m.Ack(ctx); err != nil {
					t.Errorf("ack: %v", err)
				}
				close(done)
				return
			case <-ctx.Done():
				return
			}
		}
	})
	publish(t, tr, transport.Deliveries, transport.Message{ID: "slow", Data: []byte("x")})
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatal("handler did not finish")
	}
	// A redelivery during the hold would already be recorded; allow one
	// more AckWait for one in flight.
	if s.waitUntil(ackWait+ackWait/2, func(r []record) bool { return len(r) > 1 }) {
		t.Fatalf("message held with InProgress was redelivered (%d deliveries)", len(s.snapshot()))
	}
}

func testRedeliveredAfterConsumerDies(t *testing.T, h Harness) {
	const ackWait = time.Second
	cfg := transport.ConsumerConfig{Group: "g", AckWait: ackWait}

	first := h.Open(t)
	got := make(chan int, 1)
	c1 := startConsume(t, first, transport.Deliveries, cfg, func(ctx context.Context, m transport.Received) {
		select {
		case got <- m.NumDelivered():
		default:
		}
		// No ack: this consumer "dies" with the message.
	})
	publish(t, first, transport.Deliveries, transport.Message{ID: "orphan", Data: []byte("x")})
	select {
	case <-got:
	case <-time.After(timeout):
		t.Fatal("first consumer got nothing")
	}
	c1.stop(t)
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second := h.Open(t)
	s := newSink()
	startConsume(t, second, transport.Deliveries, cfg, collect(t, s, 2))
	if !s.waitUntil(timeout, hasAll([]string{"orphan"})) {
		t.Fatal("unacked message was not redelivered to the surviving group member")
	}
	if nd := s.snapshot()[0].numDelivered; nd < 2 {
		t.Errorf("redelivered message has NumDelivered=%d, want >= 2", nd)
	}
}

func testGroupSharesWork(t *testing.T, h Harness) {
	const n = 500
	a, b := h.Open(t), h.Open(t)
	s := newSink()
	// Each member holds its first message until the other member has one
	// too, so both are guaranteed a share however the broker balances.
	first := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var once [2]sync.Once
	handler := func(client int) transport.Handler {
		ack := collect(t, s, client)
		return func(ctx context.Context, m transport.Received) {
			once[client].Do(func() { close(first[client]) })
			select {
			case <-first[1-client]:
			case <-time.After(timeout):
			}
			ack(ctx, m)
		}
	}
	cfg := transport.ConsumerConfig{Group: "workers", Concurrency: 4}
	startConsume(t, a, transport.Deliveries, cfg, handler(0))
	startConsume(t, b, transport.Deliveries, cfg, handler(1))
	ms, want := msgs("work", n)
	publish(t, a, transport.Deliveries, ms...)
	if !s.waitUntil(timeout, hasAll(want)) {
		var split [2]int
		for _, r := range s.snapshot() {
			split[r.client]++
		}
		t.Fatalf("group consumed %d distinct of %d messages (members: %d/%d)", len(ids(s.snapshot())), n, split[0], split[1])
	}
	var per [2]map[string]bool
	per[0], per[1] = map[string]bool{}, map[string]bool{}
	for _, r := range s.snapshot() {
		if per[r.client][r.msg.ID] {
			t.Errorf("%s processed twice by client %d", r.msg.ID, r.client)
		}
		per[r.client][r.msg.ID] = true
	}
	for id := range per[0] {
		if per[1][id] {
			t.Errorf("%s processed by both members", id)
		}
	}
	if len(per[0]) == 0 || len(per[1]) == 0 {
		t.Errorf("work split %d/%d, want both members to get some", len(per[0]), len(per[1]))
	}
}

func testIndependentGroups(t *testing.T, h Harness) {
	tr := h.Open(t)
	ms, want := msgs("ev", 50)
	for i := range ms {
		ms[i].Subject = "tenant" + strconv.Itoa(i%3) + ".order.created"
	}
	publish(t, tr, transport.Events, ms...)
	s1, s2 := newSink(), newSink()
	startConsume(t, tr, transport.Events, transport.ConsumerConfig{Group: "fanout", Concurrency: 2}, collect(t, s1, 1))
	startConsume(t, h.Open(t), transport.Events, transport.ConsumerConfig{Group: "audit", Concurrency: 2}, collect(t, s2, 2))
	if !s1.waitUntil(timeout, hasAll(want)) {
		t.Errorf("group fanout saw %d of %d events", len(ids(s1.snapshot())), len(want))
	}
	if !s2.waitUntil(timeout, hasAll(want)) {
		t.Errorf("group audit saw %d of %d events", len(ids(s2.snapshot())), len(want))
	}
}

func testBatchPublishOrder(t *testing.T, h Harness) {
	const n = 1000
	tr := h.Open(t)
	ms, _ := msgs("batch", n)
	// Pre-publish every 7th message so the results have a pattern that
	// only comes out right if they are in order.
	var pre []transport.Message
	for i := 0; i < n; i += 7 {
		pre = append(pre, ms[i])
	}
	for _, r := range publish(t, tr, transport.Deliveries, pre...) {
		if r.Duplicate {
			t.Fatal("pre-publish reported a duplicate")
		}
	}
	res := publish(t, tr, transport.Deliveries, ms...)
	for i, r := range res {
		if want := i%7 == 0; r.Duplicate != want {
			t.Fatalf("result %d: Duplicate=%v, want %v", i, r.Duplicate, want)
		}
	}
	if res, err := tr.Publish(ctxT(t), transport.Deliveries); err != nil || len(res) != 0 {
		t.Fatalf("empty Publish = %v, %v; want no results and no error", res, err)
	}
}

func testConsumeStopsOnCancel(t *testing.T, h Harness) {
	tr := h.Open(t)
	started := make(chan struct{})
	release := make(chan struct{})
	var running atomic.Int32
	var startOnce sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "g", Concurrency: 3}, func(hctx context.Context, m transport.Received) {
			running.Add(1)
			defer running.Add(-1)
			startOnce.Do(func() { close(started) })
			<-hctx.Done() // the handler's context ends with Consume's
			<-release     // then it takes a while to wind down
			_ = m.Nak(context.Background(), 0)
		})
	}()
	ms, _ := msgs("cancel", 10)
	publish(t, tr, transport.Deliveries, ms...)
	select {
	case <-started:
	case <-time.After(timeout):
		t.Fatal("no handler started")
	}
	cancel()
	select {
	case err := <-done:
		close(release)
		t.Fatalf("Consume returned (%v) while a handler was still running", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Consume returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume did not return within 10s of cancel and its handlers returning")
	}
	if n := running.Load(); n != 0 {
		t.Fatalf("Consume returned while %d handlers were still running", n)
	}
	// Consume on an already cancelled context returns nil too.
	if err := tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "g"}, func(context.Context, transport.Received) {}); err != nil {
		t.Fatalf("Consume with a cancelled context = %v, want nil", err)
	}
}

// testStopHandsBack: when a consumer stops gracefully, every message it
// had pulled — handed to a handler that gives it back, queued, or still on
// its way from the broker — returns to the group at once, not after the
// ack wait. A rolling restart must not delay work by the ack wait.
func testStopHandsBack(t *testing.T, h Harness) {
	const n = 500
	const ackWait = time.Minute // far beyond the deadline below
	cfg := transport.ConsumerConfig{Group: "g", AckWait: ackWait, Concurrency: 50}
	first := h.Open(t)
	ms, want := msgs("handback", n)
	// The first consumer hands every message straight back, so messages
	// are always on their way to it when it stops.
	var handled atomic.Int64
	busy := make(chan struct{})
	var busyOnce sync.Once
	c1 := startConsume(t, first, transport.Deliveries, cfg, func(_ context.Context, m transport.Received) {
		_ = m.Nak(context.Background(), 0)
		if handled.Add(1) == 5*n {
			busyOnce.Do(func() { close(busy) })
		}
	})
	publish(t, first, transport.Deliveries, ms...)
	select {
	case <-busy:
	case <-time.After(timeout):
		t.Fatal("the first consumer did not get busy")
	}
	c1.stop(t)

	second := h.Open(t)
	s := newSink()
	startConsume(t, second, transport.Deliveries, cfg, collect(t, s, 2))
	if !s.waitUntil(timeout, hasAll(want)) {
		t.Fatalf("%d of %d messages reached the group within %s of the first consumer's stop (ack wait %s)",
			len(ids(s.snapshot())), n, timeout, ackWait)
	}
}

func testConcurrencyBounded(t *testing.T, h Harness) {
	const conc = 3
	tr := h.Open(t)
	var running, peak atomic.Int32
	release := make(chan struct{})
	s := newSink()
	startConsume(t, tr, transport.Deliveries, transport.ConsumerConfig{Group: "g", Concurrency: conc}, func(ctx context.Context, m transport.Received) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		s.add(record{msg: *m.Message()})
		select {
		case <-release:
		case <-ctx.Done():
		}
		running.Add(-1)
		_ = m.Ack(ctx)
	})
	ms, want := msgs("conc", 30)
	publish(t, tr, transport.Deliveries, ms...)
	if !s.waitUntil(timeout, func(r []record) bool { return len(r) >= conc }) {
		t.Fatalf("only %d handlers started, want %d", len(s.snapshot()), conc)
	}
	// With every worker blocked, no further handler may start.
	if s.waitUntil(300*time.Millisecond, func(r []record) bool { return len(r) > conc }) {
		t.Fatalf("%d handlers running with Concurrency=%d", len(s.snapshot()), conc)
	}
	close(release)
	if !s.waitUntil(timeout, hasAll(want)) {
		t.Fatalf("consumed %d of %d", len(ids(s.snapshot())), len(want))
	}
	if p := peak.Load(); p > conc {
		t.Fatalf("peak concurrency %d, want <= %d", p, conc)
	}
}

func testBacklog(t *testing.T, h Harness) {
	tr := h.Open(t)
	if _, err := tr.Backlog(ctxT(t), transport.Deliveries, "never-consumed"); err == nil {
		t.Errorf("Backlog of a group that never consumed: nil error")
	}
	release := make(chan struct{})
	s := newSink()
	startConsume(t, tr, transport.Deliveries, transport.ConsumerConfig{Group: "g", Concurrency: 1, MaxAckPending: 1}, func(ctx context.Context, m transport.Received) {
		s.add(record{msg: *m.Message()})
		select {
		case <-release:
		case <-ctx.Done():
		}
		_ = m.Ack(ctx)
	})
	ms, want := msgs("backlog", 10)
	publish(t, tr, transport.Deliveries, ms...)
	if !s.waitUntil(timeout, func(r []record) bool { return len(r) == 1 }) {
		t.Fatalf("the handler never got a message")
	}
	// One message is with the blocked handler, nine wait.
	waitBacklog := func(want int64) {
		t.Helper()
		poll.WithinReason(t, timeout, fmt.Sprintf("Backlog = %d", want), func() (bool, string) {
			ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
			defer cancel()
			n, err := tr.Backlog(ctx, transport.Deliveries, "g")
			if err != nil {
				return false, fmt.Sprintf("Backlog: %v", err)
			}
			return n == want, fmt.Sprintf("Backlog = %d", n)
		})
	}
	waitBacklog(int64(len(ms) - 1))
	close(release)
	if !s.waitUntil(timeout, hasAll(want)) {
		t.Fatalf("consumed %d of %d", len(ids(s.snapshot())), len(want))
	}
	waitBacklog(0)
}

func testInvalidInput(t *testing.T, h Harness) {
	tr := h.Open(t)
	ctx := ctxT(t)
	nop := func(context.Context, transport.Received) {}
	if err := tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{}, nop); err == nil {
		t.Error("Consume without a Group succeeded")
	}
	if _, err := tr.Publish(ctx, transport.Deliveries, transport.Message{Data: []byte("x")}); err == nil {
		t.Error("Publish without an ID succeeded")
	}
	if _, err := tr.Publish(ctx, transport.Stream("nope"), transport.Message{ID: "x"}); err == nil {
		t.Error("Publish on an unknown stream succeeded")
	}
	if err := tr.Ready(ctx); err != nil {
		t.Errorf("Ready on an open client: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := tr.Ready(ctx); err == nil {
		t.Error("Ready on a closed client succeeded")
	}
	if _, err := tr.Publish(ctx, transport.Deliveries, transport.Message{ID: "late"}); err == nil {
		t.Error("Publish on a closed client succeeded")
	}
}
