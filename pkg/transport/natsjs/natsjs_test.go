package natsjs_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/pkg/transport/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server is an embedded NATS server that a test can restart.
type server struct {
	mu  sync.Mutex
	srv *natsembed.Server
}

// current is the running server; a restarted one keeps the URL and the
// credentials of the first.
func (s *server) current() *natsembed.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

func (s *server) restart(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv = natsembedtest.Restart(t, s.srv)
}

// attemptTimeout bounds each broker request a test makes after a restart;
// the request is retried within poll.DefaultTimeout.
const attemptTimeout = 2 * time.Second

// open opens a Transport on the embedded server srv, with its
// credentials, and closes it when t ends.
func open(t testing.TB, srv *natsembed.Server) *natsjs.Transport {
	t.Helper()
	var logger *slog.Logger
	if os.Getenv("NATSJS_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return openWith(t, embedded(srv), logger)
}

// embedded is the configuration of a Transport on the embedded server srv.
func embedded(srv *natsembed.Server) natsjs.Config {
	return natsjs.Config{URL: srv.ClientURL(), Options: srv.ConnectOptions()}
}

// openWith opens a Transport with cfg (Name defaults to the test's name)
// and closes it when t ends. New retries each of its requests with its
// own bound (5 s); the overall deadline is generous, since New may run
// right after a broker restart.
func openWith(t testing.TB, cfg natsjs.Config, logger *slog.Logger) *natsjs.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.DefaultTimeout)
	defer cancel()
	if cfg.Name == "" {
		cfg.Name = t.Name()
	}
	tr, err := natsjs.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("natsjs.New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// retry calls req with a context of attemptTimeout until it returns nil,
// for up to poll.DefaultTimeout: one request lost while the client
// reconnects costs one attempt, not the test's deadline.
func retry(t *testing.T, what string, req func(ctx context.Context) error) {
	t.Helper()
	poll.UntilReason(t, what, func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		if err := req(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

func TestConformance(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, func(t *testing.T) transporttest.Harness {
		s := &server{srv: natsembedtest.Start(t)}
		return transporttest.Harness{
			Open:    func(t *testing.T) transport.Transport { return open(t, s.current()) },
			Restart: s.restart,
		}
	})
}

// TestConcurrentNew starts several clients at once on a fresh server, as
// replicas of a service do, and checks they all succeed.
func TestConcurrentNew(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tr, err := natsjs.New(ctx, embedded(srv), nil)
			if err != nil {
				errs <- err
				return
			}
			_ = tr.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent New: %v", err)
	}
}

// TestNewStreams: New creates exactly the streams of transport.Streams.
// A HOOKLINE_RETRIES stream left by an earlier build is kept as it was
// (configuration and messages), by New and by every later New, and is no
// stream of the contract any more.
func TestNewStreams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		retriesBefore bool
		want          []string
	}{
		{"fresh server", false, []string{"HOOKLINE_DELIVERIES", "HOOKLINE_EVENTS"}},
		{"upgraded from a build with RETRIES", true, []string{"HOOKLINE_DELIVERIES", "HOOKLINE_EVENTS", "HOOKLINE_RETRIES"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := natsembedtest.Start(t)
			_, js := natsembedtest.Connect(t, srv)
			ctx := ctxT(t)
			// The stream as an earlier build created it, but with a
			// duplicate window New would never set: an update would show.
			old := jetstream.StreamConfig{
				Name:       "HOOKLINE_RETRIES",
				Subjects:   []string{"hookline.retries.>"},
				Retention:  jetstream.WorkQueuePolicy,
				Storage:    jetstream.FileStorage,
				Duplicates: 3 * time.Minute,
			}
			if tc.retriesBefore {
				if _, err := js.CreateStream(ctx, old); err != nil {
					t.Fatal(err)
				}
				if _, err := js.Publish(ctx, "hookline.retries.sub_1", []byte("left over")); err != nil {
					t.Fatal(err)
				}
			}
			for round := range 2 { // a first start, then a restart of the service
				tr := open(t, srv)
				var names []string
				for name := range js.StreamNames(ctx).Name() {
					names = append(names, name)
				}
				slices.Sort(names)
				if !slices.Equal(names, tc.want) {
					t.Fatalf("round %d: streams %q, want %q", round, names, tc.want)
				}
				if tc.retriesBefore {
					st, err := js.Stream(ctx, "HOOKLINE_RETRIES")
					if err != nil {
						t.Fatal(err)
					}
					info := st.CachedInfo()
					if info.State.Msgs != 1 || info.Config.Duplicates != old.Duplicates || info.Config.Retention != old.Retention ||
						!slices.Equal(info.Config.Subjects, old.Subjects) {
						t.Fatalf("round %d: HOOKLINE_RETRIES changed: %d messages, config %+v", round, info.State.Msgs, info.Config)
					}
				}
				if _, err := tr.Publish(ctx, transport.Stream("retries"), transport.Message{ID: "r"}); err == nil {
					t.Fatalf("round %d: Publish on the retries stream succeeded", round)
				}
				_ = tr.Close()
			}
		})
	}
}

// TestReadyAcrossRestart checks that Ready fails while the server is down
// and recovers once it is back, on the same client.
func TestReadyAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	opts := srv.Options()
	tr := open(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	srv.Shutdown()
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	err := tr.Ready(rctx)
	rcancel()
	if err == nil {
		t.Fatal("Ready succeeded while the server is down")
	}
	srv2, err := natsembed.Start(opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(srv2.Shutdown)
	retry(t, "Ready after the restart", tr.Ready)
}

// TestInvalidMessages checks that messages that cannot round-trip through
// NATS are rejected before anything is published.
func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	tr := open(t, natsembedtest.Start(t))
	ctx := t.Context()
	bad := map[string]transport.Message{
		"wildcard subject": {ID: "a", Subject: "t.*"},
		"empty token":      {ID: "a", Subject: "t..x"},
		"space in subject": {ID: "a", Subject: "t x"},
		"reserved subject": {ID: "a", Subject: "_"},
		"reserved header":  {ID: "a", Headers: map[string]string{natsjs.KeyHeader: "x"}},
		"nats header":      {ID: "a", Headers: map[string]string{"Nats-Expected-Stream": "x"}},
		"newline in value": {ID: "a", Headers: map[string]string{"h": "a\r\nb"}},
		"leading blank":    {ID: "a", Headers: map[string]string{"h": " a"}},
		"colon in key":     {ID: "a", Headers: map[string]string{"h:x": "a"}},
		"newline in id":    {ID: "a\nb"},
		"trailing dot":     {ID: "a", Subject: "t."},
	}
	for name, m := range bad {
		if _, err := tr.Publish(ctx, transport.Events, transport.Message{ID: "ok"}, m); err == nil {
			t.Errorf("%s: Publish succeeded", name)
		}
	}
}

func benchMessages(n int, prefix string) []transport.Message {
	data := make([]byte, 512)
	ms := make([]transport.Message, n)
	for i := range ms {
		ms[i] = transport.Message{
			ID:      prefix + strconv.Itoa(i),
			Subject: "acme.order.created",
			Headers: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			Data:    data,
		}
	}
	return ms
}

// BenchmarkPublishBatch publishes batches of 100 messages of 512 bytes.
func BenchmarkPublishBatch(b *testing.B) {
	tr := open(b, natsembedtest.Start(b))
	const batch = 100
	ctx := context.Background()
	ms := benchMessages(batch, "")
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		for j := range ms {
			ms[j].ID = strconv.Itoa(i*batch + j)
		}
		if _, err := tr.Publish(ctx, transport.Events, ms...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkConsume publishes b.N messages, then measures how fast a group
// with 32 workers consumes and acks them.
func BenchmarkConsume(b *testing.B) {
	tr := open(b, natsembedtest.Start(b))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const batch = 1000
	for i := 0; i < b.N; i += batch {
		ms := benchMessages(min(batch, b.N-i), "m"+strconv.Itoa(i)+"-")
		if _, err := tr.Publish(ctx, transport.Deliveries, ms...); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	all := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "bench", Concurrency: 32}, func(ctx context.Context, m transport.Received) {
			_ = m.Ack(ctx)
			if n.Add(1) == int64(b.N) {
				close(all)
			}
		})
	}()
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("consumed %d of %d", n.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// TestFirstDeliveryAfterRestartIsSuspect: a single server can forget, when
// killed, that it delivered a message just before; after the client lands
// on a restarted server, a message published before the restart is
// reported as possibly delivered before (NumDelivered 2) while one
// published after it is a plain first delivery. A server that went away in
// lame duck mode (stopping JetStream, which writes its state, before
// letting clients go) is trusted: nothing is suspected.
func TestFirstDeliveryAfterRestartIsSuspect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		stop       func(*natsembed.Server)
		wantBefore int
	}{
		{"shut down", (*natsembed.Server).Shutdown, 2},
		{"lame duck", (*natsembed.Server).LameDuckShutdown, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := natsembedtest.Start(t)
			opts := srv.Options()
			tr := open(t, srv)
			retry(t, "publishing before the restart", func(ctx context.Context) error {
				_, err := tr.Publish(ctx, transport.Deliveries, transport.Message{ID: "before", Subject: "s", Data: []byte("before")})
				return err
			})
			tt.stop(srv)
			srv2, err := natsembed.Start(opts)
			if err != nil {
				t.Fatalf("restart: %v", err)
			}
			t.Cleanup(srv2.Shutdown)
			retry(t, "publishing after the restart", func(ctx context.Context) error {
				_, err := tr.Publish(ctx, transport.Deliveries, transport.Message{ID: "after", Subject: "s", Data: []byte("after")})
				return err
			})
			got := make(chan transport.Received, 2)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "g"}, func(_ context.Context, m transport.Received) {
					_ = m.Ack(context.Background())
					got <- m
				})
			}()
			defer func() { cancel(); <-done }()
			want := map[string]int{"before": tt.wantBefore, "after": 1}
			for range want {
				select {
				case m := <-got:
					id := m.Message().ID
					if n := m.NumDelivered(); n != want[id] {
						t.Errorf("message %q: NumDelivered %d; want %d", id, n, want[id])
					}
				case <-time.After(20 * time.Second):
					t.Fatal("messages not delivered")
				}
			}
		})
	}
}
