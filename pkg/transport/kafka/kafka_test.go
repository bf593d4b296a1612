package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
	"github.com/hookline/hookline/pkg/transport/transporttest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		shared.Close()
	}
	sharedMu.Unlock()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shared is the broker of the tests that need no broker of their own
// (distinct groups and message IDs keep them apart); TestMain closes it.
var (
	sharedMu sync.Mutex
	shared   *kfake.Cluster
)

func sharedCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatalf("start kfake: %v", err)
		}
		shared = c
	}
	return shared
}

// testPartitions is the partition count of the test topics: enough for
// two group members to share work while one member keeps the partitions
// its blocked handlers hold.
const testPartitions = 8

// newCluster starts an in-process Kafka broker on loopback and stops it
// when t ends.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("KAFKA_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// openWith opens a Transport with cfg and closes it when t ends.
func openWith(t testing.TB, cfg kafka.Config) *kafka.Transport {
	t.Helper()
	return openLogged(t, cfg, testLogger(t))
}

// openLogged is openWith logging to logger.
func openLogged(t testing.TB, cfg kafka.Config, logger *slog.Logger) *kafka.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.DefaultTimeout)
	defer cancel()
	if cfg.Partitions == 0 {
		cfg.Partitions = testPartitions
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "hookline-test"
	}
	tr, err := kafka.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("kafka.New: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) transporttest.Harness {
		b := newRestartable(t)
		return transporttest.Harness{
			Open: func(t *testing.T) transport.Transport {
				return openWith(t, kafka.Config{Brokers: b.Addrs()})
			},
			Restart: b.Restart,
		}
	})
}

// waitTimeout bounds the waits of this file's tests.
const waitTimeout = 30 * time.Second

func TestNewRefusesFewerPartitions(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kfake.SeedTopics(2, kafka.DeliveriesTopic))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	tr, err := kafka.New(ctx, kafka.Config{Brokers: c.ListenAddrs(), Partitions: 4}, testLogger(t))
	if err == nil {
		_ = tr.Close()
		t.Fatal("New accepted a topic with 2 partitions when 4 are configured")
	}
	if !strings.Contains(err.Error(), "hookline.deliveries has 2 partitions, fewer than the configured 4") {
		t.Fatalf("error %q does not name the topic and the counts", err)
	}
	// More partitions than configured are fine.
	openWith(t, kafka.Config{Brokers: c.ListenAddrs(), Partitions: 1})
}

func TestSASL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mechanism string
	}{
		{kafka.ScramSHA256},
		{kafka.ScramSHA512},
	}
	for _, tc := range tests {
		t.Run(tc.mechanism, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(tc.mechanism, "hookline", "s3cret"))
			tr := openWith(t, kafka.Config{Brokers: c.ListenAddrs(), SASL: &kafka.SASL{Mechanism: tc.mechanism, Username: "hookline", Password: "s3cret"}})
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if _, err := tr.Publish(ctx, transport.Events, transport.Message{ID: "sasl-1", Key: "acme", Data: []byte("x")}); err != nil {
				t.Fatalf("Publish with SASL: %v", err)
			}
			bad, cancelBad := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancelBad()
			if tr, err := kafka.New(bad, kafka.Config{Brokers: c.ListenAddrs(), SASL: &kafka.SASL{Mechanism: tc.mechanism, Username: "hookline", Password: "wrong"}}, nil); err == nil {
				_ = tr.Close()
				t.Fatal("New with a wrong password succeeded")
			}
		})
	}
	if _, err := kafka.New(context.Background(), kafka.Config{Brokers: []string{"127.0.0.1:1"}, SASL: &kafka.SASL{Mechanism: "GSSAPI", Username: "u"}}, nil); err == nil {
		t.Error("New accepted an unknown SASL mechanism")
	}
}

// received is one handler call.
type received struct {
	id string
	nd int
}

// TestSlowMessageDoesNotHoldItsPartition: messages of one key (one
// partition) are handled concurrently; a message whose handler never
// settles does not keep the others from being handled, and after the
// consumer stops it is delivered again (NumDelivered >= 2) by the group's
// next consumer, because the commit never passed it.
func TestSlowMessageDoesNotHoldItsPartition(t *testing.T) {
	t.Parallel()
	c := sharedCluster(t)
	tr := openWith(t, kafka.Config{Brokers: c.ListenAddrs()})
	const n = 20
	// IDs and group are unique to this run: the shared broker outlives
	// one run under -count, and the consumers deduplicate IDs.
	prefix := fmt.Sprintf("slow%d", time.Now().UnixNano())
	group, slow := prefix, prefix+"-0"
	msgs := make([]transport.Message, n)
	for i := range msgs {
		msgs[i] = transport.Message{ID: fmt.Sprintf("%s-%d", prefix, i), Key: prefix, Data: []byte("x")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := tr.Publish(ctx, transport.Deliveries, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := make(chan received, 4*n)
	cctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(cctx, transport.Deliveries, transport.ConsumerConfig{Group: group, Concurrency: 4, AckWait: time.Minute}, func(hctx context.Context, m transport.Received) {
			got <- received{m.Message().ID, m.NumDelivered()}
			if m.Message().ID == slow {
				<-hctx.Done() // never settled
				return
			}
			_ = m.Ack(hctx)
		})
	}()
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case r := <-got:
			if strings.HasPrefix(r.id, prefix+"-") {
				seen[r.id] = true
			}
		case <-time.After(waitTimeout):
			stop()
			t.Fatalf("handled %d of %d messages while %s was held", len(seen), n, slow)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Consume: %v", err)
	}

	got2 := make(chan received, 4*n)
	cctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	done2 := make(chan error, 1)
	go func() {
		done2 <- tr.Consume(cctx2, transport.Deliveries, transport.ConsumerConfig{Group: group}, func(hctx context.Context, m transport.Received) {
			got2 <- received{m.Message().ID, m.NumDelivered()}
			_ = m.Ack(hctx)
		})
	}()
	defer func() {
		stop2()
		if err := <-done2; err != nil {
			t.Errorf("Consume: %v", err)
		}
	}()
	for {
		select {
		case r := <-got2:
			if r.id != slow {
				continue
			}
			if r.nd < 2 {
				t.Fatalf("%s redelivered with NumDelivered=%d, want >= 2", slow, r.nd)
			}
			return
		case <-time.After(waitTimeout):
			t.Fatal("the unsettled message was not delivered to the group's next consumer")
		}
	}
}
