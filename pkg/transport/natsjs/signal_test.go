package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/pkg/transport/transporttest"
)

// quiet is how long a test watches for something that must not happen.
const quiet = 300 * time.Millisecond

// logRecorder is a slog.Handler that keeps every record, at every level.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}

// count returns how many records have a message containing msg, and how
// many records are at level Warn or above.
func (r *logRecorder) count(msg string) (matching, warnings int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if strings.Contains(rec.Message, msg) {
			matching++
		}
		if rec.Level >= slog.LevelWarn {
			warnings++
		}
	}
	return matching, warnings
}

// calls records the data of every call of a listener function.
type calls struct {
	mu  sync.Mutex
	got []string
}

func (c *calls) add(d []byte) {
	c.mu.Lock()
	c.got = append(c.got, string(d))
	c.mu.Unlock()
}

func (c *calls) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSignalSubject: a signal is a core NATS message on
// "hookline.signal.<topic>", in both directions, and no stream captures
// it.
func TestSignalSubject(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	tr := open(t, srv)
	nc, err := nats.Connect(srv.ClientURL(), srv.ConnectOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := ctxT(t)

	raw, err := nc.SubscribeSync(natsjs.SignalSubjectPrefix + "wake")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Notify(ctx, "wake", []byte("to raw")); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	m, err := raw.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatalf("raw subscriber on %s: %v", raw.Subject, err)
	}
	if string(m.Data) != "to raw" || m.Subject != "hookline.signal.wake" {
		t.Fatalf("raw subscriber got %q on %s", m.Data, m.Subject)
	}

	var got calls
	stop, err := tr.Listen(ctx, "wake", got.add)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer stop()
	if err := nc.Publish("hookline.signal.wake", []byte("from raw")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the raw signal to reach the listener", func() bool { return slices.Contains(got.snapshot(), "from raw") })

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := js.StreamNameBySubject(ctx, "hookline.signal.wake"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream for the signal subject: %q, %v; want none", name, err)
	}
}

// TestInvalidTopicErrorNamesTopic: the error of Notify and Listen for an
// invalid topic names the topic.
func TestInvalidTopicErrorNamesTopic(t *testing.T) {
	t.Parallel()
	tr := open(t, natsembedtest.Start(t))
	// The conformance suite checks that every kind of invalid topic is
	// refused; these are the kinds whose message natsjs words itself.
	for _, tc := range []struct{ name, topic string }{
		{"empty", ""}, {"dot", "due.soon"}, {"too long", strings.Repeat("t", 129)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := fmt.Sprintf("%q", tc.topic)
			if err := tr.Notify(ctxT(t), tc.topic, nil); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Notify error %v does not name the topic %s", err, want)
			}
			stop, err := tr.Listen(ctxT(t), tc.topic, func([]byte) {})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Listen error %v does not name the topic %s", err, want)
			}
			if stop != nil {
				t.Error("Listen returned a stop function with its error")
				stop()
			}
		})
	}
	if _, err := tr.Listen(ctxT(t), "ok", nil); err == nil {
		t.Error("Listen with a nil function succeeded")
	}
}

// TestSlowListenerDropsSignals: a listener whose function is stuck keeps
// Config.SignalBuffer signals and drops the rest with a debug log; the
// connection keeps working meanwhile, and calls resume in order once the
// function returns.
func TestSlowListenerDropsSignals(t *testing.T) {
	t.Parallel()
	const buffer = 2
	const n = 50
	srv := natsembedtest.Start(t)
	logs := &logRecorder{}
	cfg := embedded(srv)
	cfg.SignalBuffer = buffer
	slow := openWith(t, cfg, slog.New(logs))
	sender := open(t, srv)

	var got calls
	entered, release := make(chan struct{}), make(chan struct{})
	stop, err := slow.Listen(ctxT(t), "flood", func(d []byte) {
		got.add(d)
		if string(d) == "0" {
			close(entered)
			<-release
		}
	})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer stop()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	if err := sender.Notify(ctxT(t), "flood", []byte("0")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the listener was not called")
	}
	for i := 1; i < n; i++ {
		if err := sender.Notify(ctxT(t), "flood", []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("Notify %d: %v", i, err)
		}
	}
	// Signal 0 is in the call, 1 and 2 wait, 3..49 are dropped.
	const wantDropped = n - 1 - buffer
	poll.UntilReason(t, "the dropped signals to be logged", func() (bool, string) {
		d, _ := logs.count("signal dropped")
		return d == wantDropped, fmt.Sprintf("%d dropped", d)
	})
	// The stuck listener does not hold up the connection.
	rctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
	defer cancel()
	if err := slow.Ready(rctx); err != nil {
		t.Fatalf("Ready while a listener is stuck: %v", err)
	}

	close(release)
	poll.Until(t, "the queued signals to be handled", func() bool { return len(got.snapshot()) == 1+buffer })
	if err := sender.Notify(ctxT(t), "flood", []byte("fence")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the fence", func() bool { return slices.Contains(got.snapshot(), "fence") })
	if g, want := got.snapshot(), []string{"0", "1", "2", "fence"}; !slices.Equal(g, want) {
		t.Errorf("calls %q, want %q", g, want)
	}
	if d, warnings := logs.count("signal dropped"); d != wantDropped || warnings != 0 {
		t.Errorf("logged %d drops and %d warnings or errors, want %d drops at debug level and none", d, warnings, wantDropped)
	}
}

// TestListenContext: Listen fails, leaving nothing subscribed, when the
// server cannot confirm the subscription before ctx ends: with ctx
// already ended, or while the server is down. Once the server is back,
// signals on the topic reach a new listener and never the failed one;
// Notify while the server is down is buffered, not an error.
func TestListenContext(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	opts := srv.Options()
	tr := open(t, srv)
	sender := open(t, srv)
	failedCalled := make(chan string, 100)
	failedFn := func(d []byte) { failedCalled <- string(d) }

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if stop, err := tr.Listen(cancelled, "ctx", failedFn); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Listen with a cancelled context = %v, want context.Canceled", err)
		if stop != nil {
			stop()
		}
	}

	srv.Shutdown()
	poll.Until(t, "the client to notice the server is down", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		return tr.Ready(ctx) != nil
	})
	short, cancelShort := context.WithTimeout(context.Background(), quiet)
	stop, err := tr.Listen(short, "ctx", failedFn)
	cancelShort()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Listen while the server is down = %v, want context.DeadlineExceeded", err)
		if stop != nil {
			stop()
		}
	}
	if err := tr.Notify(ctxT(t), "ctx", []byte("while down")); err != nil {
		t.Errorf("Notify while the server is down: %v", err)
	}

	srv2, err := natsembed.Start(opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(srv2.Shutdown)
	var got calls
	var stopOK func()
	retry(t, "Listen after the restart", func(ctx context.Context) error {
		var err error
		stopOK, err = tr.Listen(ctx, "ctx", got.add)
		return err
	})
	defer stopOK()
	sent := 0
	poll.UntilReason(t, "a signal to reach the new listener", func() (bool, string) {
		if len(got.snapshot()) > 0 {
			return true, ""
		}
		sent++
		ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		if err := sender.Notify(ctx, "ctx", []byte("after "+strconv.Itoa(sent))); err != nil {
			return false, err.Error()
		}
		return false, fmt.Sprintf("%d sent", sent)
	})
	select {
	case d := <-failedCalled:
		t.Fatalf("the function of a Listen call that failed was called with %q", d)
	default:
	}
}

// TestCloseStopsListeners: Close waits for a running listener function
// and stops every listener; their stop functions return at once after.
func TestCloseStopsListeners(t *testing.T) {
	t.Parallel()
	tr := open(t, natsembedtest.Start(t))
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var returned bool
	stopBusy, err := tr.Listen(ctxT(t), "busy", func([]byte) {
		once.Do(func() {
			close(entered)
			<-release
			returned = true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	stopIdle, err := tr.Listen(ctxT(t), "idle", func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Notify(ctxT(t), "busy", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the listener was not called")
	}
	closed := make(chan struct{})
	go func() {
		_ = tr.Close()
		close(closed)
	}()
	select {
	case <-closed:
		close(release)
		t.Fatal("Close returned while a listener function was running")
	case <-time.After(quiet):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return after the listener function did")
	}
	if !returned {
		t.Fatal("Close returned before the listener function")
	}
	for _, stop := range []func(){stopBusy, stopIdle, stopBusy} {
		if !transporttest.StopReturns(t, stop) {
			t.Fatal("stop after Close did not return")
		}
	}
}
