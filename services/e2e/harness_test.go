package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hookline/hookline/pkg/signature"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/devserver"
	"github.com/hookline/hookline/services/internal/servicetest"
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
	cfg.Ingest.GRPCAddr = "127.0.0.1:0"
	cfg.Ingest.HTTPAddr = "127.0.0.1:0"
	cfg.Fanout.SubscriptionRefresh = 50 * time.Millisecond
	cfg.Fanout.RetryDelay = 50 * time.Millisecond
	cfg.Scheduler.PollInterval = 20 * time.Millisecond
	cfg.Delivery.SubscriptionRefresh = 50 * time.Millisecond
	cfg.Scheduler.SubscriptionRefresh = 50 * time.Millisecond
	return cfg
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

// delivery is one request a receiver got.
type delivery struct {
	webhookID string
	eventID   string
	eventType string
	verified  error
	body      []byte
}

// receiver is an HTTP endpoint recording every request. respond picks the
// status for the n-th request (1-based) of a webhook-id.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	got     []delivery
	perID   map[string]int
	respond func(webhookID string, n int) int
	secret  string
	notify  chan struct{}
}

func newReceiver(t *testing.T, respond func(webhookID string, n int) int) *receiver {
	r := &receiver{t: t, perID: map[string]int{}, respond: respond, notify: make(chan struct{}, 1)}
	if r.respond == nil {
		r.respond = func(string, int) int { return http.StatusOK }
	}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) setSecret(s string) { r.mu.Lock(); r.secret = s; r.mu.Unlock() }

func (r *receiver) setRespond(f func(string, int) int) { r.mu.Lock(); r.respond = f; r.mu.Unlock() }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get(signature.HeaderID)
	var payload struct {
		EventID   string `json:"event_id"`
		EventType string `json:"type"`
	}
	_ = json.Unmarshal(body, &payload)
	r.mu.Lock()
	d := delivery{webhookID: id, eventID: payload.EventID, eventType: payload.EventType, body: body}
	if r.secret != "" {
		v, err := signature.NewVerifier(r.secret)
		if err != nil {
			d.verified = err
		} else {
			d.verified = v.Verify(req.Header, body)
		}
	}
	r.perID[id]++
	code := r.respond(id, r.perID[id])
	r.got = append(r.got, d)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(code)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
