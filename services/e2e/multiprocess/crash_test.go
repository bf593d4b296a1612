package multiprocess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/poll"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/broker"
	"github.com/hookline/hookline/services/internal/wire"
)

// TestDeliveryKilledBetweenRecordAndAck kills the delivery process after it
// recorded a failed attempt and before its acknowledgement reached the
// broker, and shows that the retry still happens, exactly once.
//
// The delivery process reaches nats-server through a proxy that the test
// stalls (client to server) when the receiver gets the first request: the
// attempt's record still goes to PostgreSQL, directly, but the ack that
// follows it never leaves the proxy. Once the store shows the attempt and
// its scheduled retry, the test SIGKILLs the process and drops what the
// proxy held, then starts a replacement. The broker redelivers attempt 1
// after the ack wait; the replacement must see that it is recorded and not
// make it again, while the scheduler releases attempt 2 when due. The
// receiver must get exactly two requests, and the store must hold exactly
// attempts 1 and 2, with the delivery succeeded and nothing left scheduled.
func TestDeliveryKilledBetweenRecordAndAck(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binaries and runs four processes (about 20 s); make test runs it")
	}
	bin := buildBinaries(t)
	store := storeURL(t)
	c := newCluster(t, bin, store, broker.NATS) // the proxy and the broker reader speak NATS
	c.startNATS()
	proxy := newStallProxy(t, c.natsAddr)
	grpcAddr := freeAddr(t)
	c.waitReady(
		c.startService("ingest", "hookline-ingest", append([]string{"--ingest-grpc-addr", grpcAddr}, ingestFlags...)...),
		c.startService("scheduler", "hookline-scheduler", schedulerFlags...),
		c.startService("fanout", "hookline-fanout", fanoutFlags...),
	)
	// The first delivery process talks to nats-server through the proxy.
	first := c.startServiceOn(proxy.url(), "delivery", "hookline-delivery", deliveryFlags...)
	c.waitReady(first)

	var requests atomic.Int64
	rcvURL := serveOnLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if requests.Add(1) == 1 {
			proxy.stall() // the attempt's ack will not reach the broker
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})) + "/hook"
	api := dialAPI(t, grpcAddr)
	sub, err := withTimeout(30*time.Second, func(ctx context.Context) (*hooklinev1.Subscription, error) {
		return api.admin.CreateSubscription(ctx, &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
			Tenant: tenant, Url: rcvURL, EventTypes: []string{"order.*"},
			RetrySchedule: []*durationpb.Duration{durationpb.New(time.Second), durationpb.New(time.Second)},
		}})
	})
	if err != nil {
		t.Fatalf("creating the subscription: %v", err)
	}
	res, err := withTimeout(30*time.Second, func(ctx context.Context) (*hooklinev1.PublishResponse, error) {
		return api.ingest.Publish(ctx, &hooklinev1.PublishRequest{Tenant: tenant, EventType: eventType, Payload: []byte(`{"seq":1}`)})
	})
	if err != nil {
		t.Fatalf("publishing: %v", err)
	}
	deliveryID := ids.Delivery(res.GetEventId(), sub.GetId())

	db := connectStore(t, store)
	poll.UntilReason(t, "attempt 1 recorded with its retry", func() (bool, string) {
		n, scheduled := db.attempts(t, deliveryID), db.scheduledAttempt(t, deliveryID)
		return n == 1 && scheduled == 2, fmt.Sprintf("%d attempts recorded, attempt %d scheduled, %d requests received", n, scheduled, requests.Load())
	})
	first.kill(t)
	proxy.drop()
	// At debug level the replacement logs the redelivered attempt it does
	// not make again: the proof that the kill landed before the ack.
	second := c.startService("delivery", "hookline-delivery", append(deliveryFlags, "--log-level", "debug")...)
	c.waitReady(second)

	broker := connectBroker(t, c.natsURL())
	poll.UntilReason(t, "the delivery succeeded and the broker has nothing left for it", func() (bool, string) {
		status, attempts := db.delivery(t, deliveryID)
		left := broker.pendingDeliveries()
		return status == "succeeded" && left == 0, fmt.Sprintf("delivery %s after %d attempts, %d DELIVERIES messages unacknowledged", status, attempts, left)
	})
	if log, err := os.ReadFile(second.logPath); err != nil || !strings.Contains(string(log), "attempt already recorded; not made again") {
		t.Errorf("the replacement never logged the redelivered attempt 1 as recorded already (read: %v): the ack was not held back, or the check did not run", err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("the receiver got %d requests; want 2 (attempt 1, then its retry once)", n)
	}
	if got := db.attemptNumbers(t, deliveryID); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("attempts recorded: %v; want [1 2]", got)
	}
	if s := db.scheduledAttempt(t, deliveryID); s != 0 {
		t.Errorf("attempt %d still scheduled after the delivery succeeded", s)
	}
	for _, e := range c.unexpectedExits() {
		t.Error(e)
	}
}

// stallProxy forwards TCP connections to an upstream address until
// stalled: from then on, what clients send is held back (never forwarded),
// as if the client had stopped before sending it. drop closes every
// connection, discarding what was held.
type stallProxy struct {
	ln       net.Listener
	upstream string
	stalled  atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newStallProxy(t *testing.T, upstream string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &stallProxy{ln: ln, upstream: upstream}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.drop()
		p.wg.Wait()
	})
	return p
}

func (p *stallProxy) url() string { return "nats://" + p.ln.Addr().String() }

// stall holds back everything clients send from now on.
func (p *stallProxy) stall() { p.stalled.Store(true) }

// drop closes every connection.
func (p *stallProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *stallProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(server, client, true) })
		p.wg.Go(func() { p.pipe(client, server, false) })
	}
}

// pipe copies from src to dst until either closes; the client's side
// (fromClient) is held back once the proxy is stalled.
func (p *stallProxy) pipe(dst, src net.Conn, fromClient bool) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !(fromClient && p.stalled.Load()) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startServiceOn is startService with the process reaching NATS at
// natsURL instead of the cluster's nats-server.
func (c *cluster) startServiceOn(natsURL, name, binary string, flags ...string) *process {
	c.t.Helper()
	return c.startService(name, binary, append(flags, "--nats-url", natsURL)...)
}

// serveOnLoopback serves h on a free loopback port until the test ends and
// returns its base URL (http://127.0.0.1:port).
func serveOnLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("receiver: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// brokerReader asks nats-server about the delivery group, on one
// connection opened for the test.
type brokerReader struct{ js jetstream.JetStream }

func connectBroker(t *testing.T, url string) brokerReader {
	t.Helper()
	_, js := natsembedtest.JetStream(t, url, nats.Timeout(5*time.Second))
	return brokerReader{js}
}

// pendingDeliveries is how many DELIVERIES messages the delivery group has
// not acknowledged yet (waiting or taken), by one request bounded to 2 s;
// -1 when it cannot tell.
func (b brokerReader) pendingDeliveries() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons, err := b.js.Consumer(ctx, "HOOKLINE_DELIVERIES", wire.GroupDelivery)
	if err != nil {
		return -1
	}
	info := cons.CachedInfo()
	return int(info.NumPending) + info.NumAckPending
}

// storeReader reads the test's store directly, each read bounded.
type storeReader struct{ conn *pgx.Conn }

func connectStore(t *testing.T, url string) storeReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to the store: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return storeReader{conn}
}

func (s storeReader) query(t *testing.T, sql string, dest []any, args ...any) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.conn.QueryRow(ctx, sql, args...).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return true
}

// attempts counts the attempts recorded for a delivery.
func (s storeReader) attempts(t *testing.T, id string) int {
	var n int
	s.query(t, `SELECT count(*) FROM attempts WHERE delivery_id = $1`, []any{&n}, id)
	return n
}

// attemptNumbers lists the numbers of the attempts recorded, in order.
func (s storeReader) attemptNumbers(t *testing.T, id string) []int {
	var ns []int
	s.query(t, `SELECT coalesce(array_agg(number ORDER BY number), '{}') FROM attempts WHERE delivery_id = $1`, []any{&ns}, id)
	return ns
}

// scheduledAttempt is the attempt number of the delivery's scheduled
// retry, 0 when none is scheduled.
func (s storeReader) scheduledAttempt(t *testing.T, id string) int {
	var n int
	if !s.query(t, `SELECT attempt FROM scheduled_retries WHERE delivery_id = $1`, []any{&n}, id) {
		return 0
	}
	return n
}

// delivery returns the delivery's status and recorded attempt count.
func (s storeReader) delivery(t *testing.T, id string) (status string, attempts int) {
	s.query(t, `SELECT status, attempts FROM deliveries WHERE id = $1`, []any{&status, &attempts}, id)
	return status, attempts
}
