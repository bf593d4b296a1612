package natsjs_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
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

func (s *server) url() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.ClientURL()
}

func (s *server) restart(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv = natsembedtest.Restart(t, s.srv)
}

func open(t testing.TB, url string) *natsjs.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var logger *slog.Logger
	if os.Getenv("NATSJS_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	tr, err := natsjs.New(ctx, natsjs.Config{URL: url, Name: t.Name()}, logger)
	if err != nil {
		t.Fatalf("natsjs.New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func TestConformance(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, func(t *testing.T) transporttest.Harness {
		s := &server{srv: natsembedtest.Start(t)}
		return transporttest.Harness{
			Open:    func(t *testing.T) transport.Transport { return open(t, s.url()) },
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
			tr, err := natsjs.New(ctx, natsjs.Config{URL: srv.ClientURL()}, nil)
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

// TestReadyAcrossRestart checks that Ready fails while the server is down
// and recovers once it is back, on the same client.
func TestReadyAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	opts := srv.Options()
	tr := open(t, srv.ClientURL())
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
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := tr.Ready(ctx)
		if err == nil {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("Ready after restart: %v", err)
		}
	}
}

// TestInvalidMessages checks that messages that cannot round-trip through
// NATS are rejected before anything is published.
func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	tr := open(t, natsembedtest.Start(t).ClientURL())
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
			Headers: map[string]string{transport.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			Data:    data,
		}
	}
	return ms
}

// BenchmarkPublishBatch publishes batches of 100 messages of 512 bytes.
func BenchmarkPublishBatch(b *testing.B) {
	tr := open(b, natsembedtest.Start(b).ClientURL())
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
	tr := open(b, natsembedtest.Start(b).ClientURL())
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
