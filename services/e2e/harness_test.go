package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hookline/hookline/pkg/signature"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/cli"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/devserver"
	"github.com/hookline/hookline/services/fanout"
	"github.com/hookline/hookline/services/ingest"
	"github.com/hookline/hookline/services/internal/broker"
	"github.com/hookline/hookline/services/internal/servicetable"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/scheduler"
)

// pipeline is a running devserver with API clients.
type pipeline struct {
	srv    *devserver.Server
	cancel context.CancelFunc
	done   chan error
	ingest hooklinev1.IngestServiceClient
	admin  hooklinev1.AdminServiceClient
	conn   *grpc.ClientConn
}

// testConfig is the development configuration with every port random and
// every poll short, on dataDir.
func testConfig(dataDir string) devserver.Config {
	cfg := devserver.DefaultConfig()
	cfg.DataDir = dataDir
	in := servicetable.ConfigOf[ingest.Config](cfg.Services)
	in.GRPCAddr, in.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	fo := servicetable.ConfigOf[fanout.Config](cfg.Services)
	fo.SubscriptionRefresh, fo.RetryDelay = 50*time.Millisecond, 50*time.Millisecond
	servicetable.ConfigOf[delivery.Config](cfg.Services).SubscriptionRefresh = 50 * time.Millisecond
	servicetable.ConfigOf[scheduler.Config](cfg.Services).PollInterval = 20 * time.Millisecond
	return cfg
}

// transportCase is a transport the end-to-end tests run on.
type transportCase struct {
	name string
	// use points a devserver configuration at the transport: nothing for
	// NATS (the devserver's embedded server, in its data directory); for
	// Kafka, the kfake broker of the subtest, which outlives the
	// pipelines the subtest starts (as a real cluster outlives a restart
	// of Hookline).
	use func(*devserver.Config)
}

// kafkaTestPartitions keeps group rebalances short in the tests.
const kafkaTestPartitions = 4

// forEachTransport runs f once per transport, as parallel subtests named
// after it: the same test on NATS JetStream and on Kafka (kfake, an
// in-process broker speaking the Kafka protocol).
func forEachTransport(t *testing.T, f func(t *testing.T, tr transportCase)) {
	t.Helper()
	for _, name := range []string{broker.NATS, broker.Kafka} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc := transportCase{name: name, use: func(*devserver.Config) {}}
			if name == broker.Kafka {
				c, err := kfake.NewCluster(kfake.NumBrokers(1))
				if err != nil {
					t.Fatalf("start kfake: %v", err)
				}
				t.Cleanup(c.Close)
				addrs := c.ListenAddrs()
				tc.use = func(cfg *devserver.Config) {
					cfg.Broker.Transport = broker.Kafka
					cfg.Broker.Kafka.Brokers = addrs
					cfg.Broker.Kafka.Partitions = kafkaTestPartitions
				}
			}
			f(t, tc)
		})
	}
}

// startPipeline runs a devserver on dataDir until the test ends (or stop).
func startPipeline(t *testing.T, dataDir string, mutate ...func(*devserver.Config)) *pipeline {
	t.Helper()
	cfg := testConfig(dataDir)
	for _, m := range mutate {
		m(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := devserver.New(ctx, cfg, servicetest.Logger())
	if err != nil {
		cancel()
		t.Fatalf("devserver.New: %v", err)
	}
	p := &pipeline{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- srv.Run(ctx) }()
	p.conn, err = grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p.ingest = hooklinev1.NewIngestServiceClient(p.conn)
	p.admin = hooklinev1.NewAdminServiceClient(p.conn)
	t.Cleanup(p.stop)
	return p
}

// stop shuts the pipeline down and waits for it; safe to call twice.
func (p *pipeline) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	_ = p.conn.Close()
	<-p.done
}

// receiver is a real webhook endpoint on loopback: the Receiver of
// `hookline listen`, answering as respond says.
type receiver struct {
	*cli.Receiver
	srv *httptest.Server

	mu     sync.Mutex
	secret string // the subscription's signing secret, once known
}

// newReceiver serves a Receiver whose status for the n-th request (1-based)
// of a webhook-id is respond(id, n); nil answers 200 to everything.
func newReceiver(t *testing.T, respond func(webhookID string, n int) int) *receiver {
	t.Helper()
	if respond == nil {
		respond = func(string, int) int { return http.StatusOK }
	}
	rcv, err := cli.NewReceiver(cli.ReceiverConfig{Respond: respond})
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{Receiver: rcv, srv: httptest.NewServer(rcv)}
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) setSecret(s string) { r.mu.Lock(); r.secret = s; r.mu.Unlock() }

// badSignatures lists the requests whose signature does not verify with
// the subscription's secret, at the time each was received.
func (r *receiver) badSignatures() []string {
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	v, err := signature.NewVerifier(secret)
	if err != nil {
		return []string{"no usable secret: " + err.Error()}
	}
	var bad []string
	for _, req := range r.Requests() {
		if err := v.VerifyAt(req.Header, req.Body, req.Time); err != nil {
			bad = append(bad, req.WebhookID+": "+err.Error())
		}
	}
	return bad
}
