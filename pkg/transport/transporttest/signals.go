package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
)

// quiet is how long the signal subtests watch for something that must not
// happen (a second call of fn overlapping the first, stop returning while
// fn runs). A wrong implementation shows it at once.
const quiet = 300 * time.Millisecond

// inbox records the signals one listener receives.
type inbox struct {
	*collector[[]byte]

	inCall   atomic.Int32
	overlaps atomic.Int32 // calls that began while another was running
	stopped  atomic.Bool  // set by the test once stop has returned
	late     atomic.Int32 // calls that began after stop returned

	// before, if set, runs at the start of every call (after the
	// overlap check), with the call's data.
	before func(data []byte)
	stop   func()
}

func newInbox() *inbox { return &inbox{collector: newCollector[[]byte]()} }

// fn is the listener function. It keeps data as given, without copying:
// an implementation that reuses the slice shows up as changed data.
func (b *inbox) fn(data []byte) {
	if b.inCall.Add(1) > 1 {
		b.overlaps.Add(1)
	}
	defer b.inCall.Add(-1)
	if b.stopped.Load() {
		b.late.Add(1)
	}
	if b.before != nil {
		b.before(data)
	}
	b.add(data)
}

// stopNow calls stop, failing t unless it returns within timeout, and
// marks the inbox so that any later call of fn is counted as late.
func (b *inbox) stopNow(t *testing.T) {
	t.Helper()
	if !StopReturns(t, b.stop) {
		t.FailNow()
	}
	b.stopped.Store(true)
}

// received reports whether got holds every one of want.
func received(want ...string) func([][]byte) bool {
	return func(got [][]byte) bool {
		for _, w := range want {
			if countData(got, w) == 0 {
				return false
			}
		}
		return true
	}
}

// countData returns how many of got equal data.
func countData(got [][]byte, data string) int {
	n := 0
	for _, g := range got {
		if string(g) == data {
			n++
		}
	}
	return n
}

// listen starts a listener recording into a new inbox (prepared by
// prepare, if not nil, before Listen is called); it is stopped when t
// ends.
func listen(t *testing.T, tr transport.Transport, topic string, prepare func(*inbox)) *inbox {
	t.Helper()
	in := newInbox()
	if prepare != nil {
		prepare(in)
	}
	stop, err := tr.Listen(ctxT(t), topic, in.fn)
	if err != nil {
		t.Fatalf("Listen %q: %v", topic, err)
	}
	if stop == nil {
		t.Fatalf("Listen %q returned a nil stop function", topic)
	}
	in.stop = stop
	t.Cleanup(func() { StopReturns(t, stop) })
	return in
}

// StopReturns calls stop (a listener's stop function) and fails t unless it
// returns within the suite's timeout, so that a stop that never returns
// fails the test instead of hanging it. It reports whether stop returned.
func StopReturns(t *testing.T, stop func()) bool {
	t.Helper()
	done := make(chan struct{})
	go func() {
		stop()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		t.Errorf("stop did not return within %s", timeout)
		return false
	}
}

func notify(t *testing.T, tr transport.Transport, topic, data string) {
	t.Helper()
	if err := tr.Notify(ctxT(t), topic, []byte(data)); err != nil {
		t.Fatalf("Notify %q on %q: %v", data, topic, err)
	}
}

// notifyUntil sends a new signal (prefix-1, prefix-2, ...) on topic,
// each Notify bounded by attemptTimeout, until in has received one of
// them or within passes. Signals are best effort, so a wait for a
// listener that may have dropped some (it was busy, or its connection was
// down) sends again rather than waiting for one signal.
func notifyUntil(t *testing.T, tr transport.Transport, topic, prefix string, in *inbox, within time.Duration) {
	t.Helper()
	sent := map[string]bool{}
	poll.WithinReason(t, within, fmt.Sprintf("a %s signal on %q to reach the listener", prefix, topic), func() (bool, string) {
		for _, g := range in.snapshot() {
			if sent[string(g)] {
				return true, ""
			}
		}
		data := prefix + "-" + strconv.Itoa(len(sent)+1)
		ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		if err := tr.Notify(ctx, topic, []byte(data)); err != nil {
			return false, fmt.Sprintf("Notify: %v", err)
		}
		sent[data] = true
		return false, fmt.Sprintf("%d sent, none received", len(sent))
	})
}

// ---- subtests ----

// testSignalReachesEveryListener: a signal reaches every listener of its
// topic, on the sending client and on another client of the same broker,
// and no listener of another topic.
func testSignalReachesEveryListener(t *testing.T, h Harness) {
	a, b := h.Open(t), h.Open(t)
	listeners := []struct {
		name string
		in   *inbox
	}{
		{"first listener on client a", listen(t, a, "wake", nil)},
		{"second listener on client a", listen(t, a, "wake", nil)},
		{"listener on client b", listen(t, b, "wake", nil)},
	}
	other := listen(t, b, "wake-other", nil)

	notify(t, a, "wake", "from-a")
	notify(t, b, "wake", "from-b")
	for _, l := range listeners {
		if !l.in.waitUntil(timeout, received("from-a", "from-b")) {
			t.Errorf("%s received %q, want from-a and from-b", l.name, l.in.snapshot())
		}
	}
	// A fence on each topic, sent after everything above arrived: once
	// it is in, the earlier signals have been routed too.
	notify(t, a, "wake", "fence")
	notify(t, a, "wake-other", "fence")
	for _, l := range listeners {
		if !l.in.waitUntil(timeout, received("fence")) {
			t.Fatalf("%s did not receive the fence", l.name)
		}
		got := l.in.snapshot()
		if countData(got, "from-a") != 1 || countData(got, "from-b") != 1 || len(got) != 3 {
			t.Errorf("%s received %q, want from-a, from-b and fence once each", l.name, got)
		}
	}
	if !other.waitUntil(timeout, received("fence")) {
		t.Fatal("the listener of another topic did not receive its own fence")
	}
	if got := other.snapshot(); len(got) != 1 {
		t.Errorf("the listener of another topic received %q, want only its fence", got)
	}
}

// testSignalAfterListen: a signal sent after Listen returned arrives,
// from another client as well as from the listener's own, every time:
// Listen must not return before the broker knows of the listener.
func testSignalAfterListen(t *testing.T, h Harness) {
	a, b := h.Open(t), h.Open(t)
	cases := []struct {
		name             string
		listener, sender transport.Transport
	}{
		{"from another client", b, a},
		{"from the same client", a, a},
	}
	for i := range 100 {
		for j, c := range cases {
			topic := "fresh-" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
			in := listen(t, c.listener, topic, nil)
			notify(t, c.sender, topic, "first")
			if !in.waitUntil(timeout, received("first")) {
				t.Fatalf("round %d, %s: a signal sent right after Listen returned never arrived", i, c.name)
			}
			in.stopNow(t)
		}
	}
}

func testNotifyWithoutListener(t *testing.T, h Harness) {
	tr := h.Open(t)
	for _, data := range [][]byte{[]byte("anyone?"), {}, nil} {
		if err := tr.Notify(ctxT(t), "nobody-listens", data); err != nil {
			t.Errorf("Notify %q without a listener: %v", data, err)
		}
	}
	// The client is still usable afterwards.
	in := listen(t, tr, "nobody-listens", nil)
	notify(t, tr, "nobody-listens", "now someone does")
	if !in.waitUntil(timeout, received("now someone does")) {
		t.Fatal("a signal sent after Notify calls without listeners did not arrive")
	}
}

// testStopEndsCalls: after stop returns, fn is never called again, though
// the topic still has traffic that another listener (on the same client)
// receives; stop is idempotent.
func testStopEndsCalls(t *testing.T, h Harness) {
	a, b := h.Open(t), h.Open(t)
	victim := listen(t, b, "stop", nil)
	witness := listen(t, b, "stop", nil)
	remote := listen(t, a, "stop", nil)

	notify(t, a, "stop", "before")
	for name, in := range map[string]*inbox{"the listener to stop": victim, "the witness": witness, "the listener on the other client": remote} {
		if !in.waitUntil(timeout, received("before")) {
			t.Fatalf("%s did not receive the signal sent before stop", name)
		}
	}
	victim.stopNow(t)
	victim.stopNow(t) // idempotent: returns at once

	notify(t, a, "stop", "after")
	notify(t, b, "stop", "later")
	for name, in := range map[string]*inbox{"the witness": witness, "the listener on the other client": remote} {
		if !in.waitUntil(timeout, received("after", "later")) {
			t.Fatalf("%s received %q, want the signals sent after the other listener stopped", name, in.snapshot())
		}
	}
	if n := victim.late.Load(); n > 0 {
		t.Errorf("fn was called %d times after stop returned", n)
	}
	if got := victim.snapshot(); countData(got, "after") > 0 || countData(got, "later") > 0 {
		t.Errorf("the stopped listener received %q", got)
	}
}

// testStopWaitsForRunningCall: stop does not return while a call of fn is
// running; it returns once the call has.
func testStopWaitsForRunningCall(t *testing.T, h Harness) {
	tr := h.Open(t)
	in, unblock, returned := holdFirstCall(t, tr, tr, "hold", "x")
	stopped := make(chan struct{})
	go func() {
		in.stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("stop returned while fn was running")
	case <-time.After(quiet):
	}
	unblock()
	select {
	case <-stopped:
	case <-time.After(timeout):
		t.Fatal("stop did not return after fn did")
	}
	if !returned.Load() {
		t.Fatal("stop returned before the running call of fn")
	}
}

// holdFirstCall listens on topic through listener with an inbox whose
// call of fn for the signal first blocks until unblock is called, sends
// first through sender, and returns once that call has begun. returned
// says whether the held call has returned. unblock may be called more than
// once, and is called when the test ends.
func holdFirstCall(t *testing.T, listener, sender transport.Transport, topic, first string) (in *inbox, unblock func(), returned *atomic.Bool) {
	t.Helper()
	entered := make(chan struct{})
	release := make(chan struct{})
	returned = new(atomic.Bool)
	var once sync.Once
	in = listen(t, listener, topic, func(in *inbox) {
		in.before = func(data []byte) {
			if string(data) != first {
				return
			}
			once.Do(func() {
				close(entered)
				<-release
				returned.Store(true)
			})
		}
	})
	var releaseOnce sync.Once
	unblock = func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the listener's stop if the test fails
	notify(t, sender, topic, first)
	select {
	case <-entered:
	case <-time.After(timeout):
		t.Fatal("fn was not called")
	}
	return in, unblock, returned
}

// testSignalDataRoundTrip: every signal's data arrives byte for byte, on
// another client and on the sender's own, including empty data; fn may
// keep the slice, and Notify does not keep the caller's.
func testSignalDataRoundTrip(t *testing.T, h Harness) {
	a, b := h.Open(t), h.Open(t)
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	large := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"nil", nil},
		{"one byte", []byte{0}},
		{"every byte value", binary},
		{"text", []byte("wake up: retry due at 2025-01-02T03:04:05.1Z\r\n\ttabs and newlines")},
		{"UTF-8", []byte("Ünïcode ✓ 日本")},
		{"64 KiB", large},
	}
	remote := listen(t, b, "data", nil)
	local := listen(t, a, "data", nil)
	for i, c := range cases {
		sent := slices.Clone(c.data)
		if err := a.Notify(ctxT(t), "data", sent); err != nil {
			t.Fatalf("%s: Notify: %v", c.name, err)
		}
		for j := range sent { // the caller may reuse its buffer at once
			sent[j] ^= 0xff
		}
		for name, in := range map[string]*inbox{"other client": remote, "same client": local} {
			if !in.waitUntil(timeout, func(got [][]byte) bool { return len(got) > i }) {
				t.Fatalf("%s: %s received nothing", c.name, name)
			}
			if got := in.snapshot()[i]; !bytes.Equal(got, c.data) {
				t.Errorf("%s: %s received %d bytes %.40x..., want %d bytes %.40x...", c.name, name, len(got), got, len(c.data), c.data)
			}
		}
	}
	// What fn kept is unchanged by later traffic.
	for name, in := range map[string]*inbox{"other client": remote, "same client": local} {
		got := in.snapshot()
		if len(got) != len(cases) {
			t.Fatalf("%s received %d signals, want %d", name, len(got), len(cases))
		}
		for i, c := range cases {
			if !bytes.Equal(got[i], c.data) {
				t.Errorf("%s: the data of %q changed after fn returned", name, c.name)
			}
		}
	}
}

// testInvalidTopic: Notify and Listen refuse a topic that is not 1 to 128
// ASCII letters, digits, '-' and '_', and accept every one that is.
func testInvalidTopic(t *testing.T, h Harness) {
	tr := h.Open(t)
	invalid := []struct{ name, topic string }{
		{"empty", ""},
		{"dot", "a.b"},
		{"single-token wildcard", "*"},
		{"multi-token wildcard", ">"},
		{"trailing wildcard", "a.>"},
		{"space", "a b"},
		{"tab", "a\tb"},
		{"line break", "a\r\nb"},
		{"slash", "a/b"},
		{"colon", "a:b"},
		{"NUL", "a\x00b"},
		{"non-ASCII letter", "café"},
		{"129 characters", strings.Repeat("x", 129)},
	}
	for _, c := range invalid {
		if err := tr.Notify(ctxT(t), c.topic, []byte("x")); err == nil {
			t.Errorf("%s: Notify(%q) succeeded", c.name, c.topic)
		}
		stop, err := tr.Listen(ctxT(t), c.topic, func([]byte) {})
		if err == nil {
			t.Errorf("%s: Listen(%q) succeeded", c.name, c.topic)
			if stop != nil {
				stop()
			}
		}
	}
	valid := []string{"a", "Z", "0", "-", "_", "wake-up_2", "scheduler-due", strings.Repeat("x", 128)}
	for _, topic := range valid {
		in := listen(t, tr, topic, nil)
		notify(t, tr, topic, "ok")
		if !in.waitUntil(timeout, received("ok")) {
			t.Errorf("a signal on the valid topic %q did not arrive", topic)
		}
		in.stopNow(t)
	}
}

// testListenCallsNeverOverlap: while fn runs, signals keep arriving (from
// two clients) but no second call of fn begins; once it returns, calls
// resume.
func testListenCallsNeverOverlap(t *testing.T, h Harness) {
	a, b := h.Open(t), h.Open(t)
	in, unblock, _ := holdFirstCall(t, b, a, "serial", "first")
	for i := range 10 {
		notify(t, a, "serial", "a-"+strconv.Itoa(i))
		notify(t, b, "serial", "b-"+strconv.Itoa(i))
	}
	// An overlapping call records its signal, which wakes the wait.
	in.waitUntil(quiet, func([][]byte) bool { return in.overlaps.Load() > 0 })
	unblock()
	if n := in.overlaps.Load(); n > 0 {
		t.Fatalf("%d calls of fn began while another was running", n)
	}
	// Signals queued or dropped while fn was busy are the
	// implementation's business; calls must resume.
	notifyUntil(t, a, "serial", "resume", in, timeout)
	if n := in.overlaps.Load(); n > 0 {
		t.Fatalf("%d calls of fn began while another was running", n)
	}
}

// testSignalsAfterClose: after Close, Notify and Listen return ErrClosed,
// and the stop function of a listener that Close ended returns at once.
func testSignalsAfterClose(t *testing.T, h Harness) {
	tr := h.Open(t)
	in := newInbox()
	stop, err := tr.Listen(ctxT(t), "closing", in.fn)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	// A listener whose stop is never called: Close must end it by itself
	// (the implementation's goroutine leak check sees it if it does not).
	if _, err := tr.Listen(ctxT(t), "closing", func([]byte) {}); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	notify(t, tr, "closing", "before")
	if !in.waitUntil(timeout, received("before")) {
		t.Fatal("the listener did not receive a signal before Close")
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	in.stop = stop
	in.stopNow(t)
	in.stopNow(t)
	if err := tr.Notify(ctxT(t), "closing", []byte("x")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Notify after Close = %v, want ErrClosed", err)
	}
	stop2, err := tr.Listen(ctxT(t), "closing", func([]byte) {})
	if !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Listen after Close = %v, want ErrClosed", err)
	}
	if stop2 != nil && err == nil {
		stop2()
	}
	if n := in.late.Load(); n > 0 {
		t.Errorf("fn was called %d times after Close and stop", n)
	}
}

// testListenSurvivesRestart: a listener keeps listening across a broker
// restart: signals sent once the clients are back reach it again.
func testListenSurvivesRestart(t *testing.T, h Harness) {
	if h.Restart == nil {
		t.Skip("harness cannot restart the broker")
	}
	a, b := h.Open(t), h.Open(t)
	remote := listen(t, b, "restart", nil)
	local := listen(t, a, "restart", nil)
	notify(t, a, "restart", "before")
	for name, in := range map[string]*inbox{"other client": remote, "same client": local} {
		if !in.waitUntil(timeout, received("before")) {
			t.Fatalf("%s: the signal before the restart did not arrive", name)
		}
	}
	h.Restart(t)
	// Signals sent while a client is still reconnecting are lost: send
	// again until one arrives, each Notify bounded.
	notifyUntil(t, a, "restart", "after-restart", remote, restartTimeout)
	notifyUntil(t, a, "restart", "after-restart-local", local, restartTimeout)
}
