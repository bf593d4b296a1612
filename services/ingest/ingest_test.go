package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
)

const token = "test-token-0123456789"

// startIngest runs an ingest service with authentication on, on a real
// embedded NATS server and SQLite store.
func startIngest(t *testing.T) *Service {
	t.Helper()
	ctx := context.Background()
	tr, st := servicetest.Transport(t), servicetest.Store(t)
	cfg := DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", ""
	cfg.AuthTokens = []string{token}
	s, err := New(cfg, deps.Deps[Store]{Store: st, Transport: tr, Logger: servicetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func TestBearerTokenRequired(t *testing.T) {
	t.Parallel()
	s := startIngest(t)
	conn := dial(t, s)
	client := hooklinev1.NewIngestServiceClient(conn)
	req := &hooklinev1.PublishRequest{Tenant: "acme", EventType: "order.created", Payload: []byte(`{}`)}
	tests := []struct {
		name string
		auth string
		want codes.Code
	}{
		{"no credentials", "", codes.Unauthenticated},
		{"wrong token", "Bearer nope-nope-nope-nope", codes.Unauthenticated},
		{"not bearer", "Basic " + token, codes.Unauthenticated},
		{"right token", "Bearer " + token, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			if tt.auth != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tt.auth)
			}
			_, err := client.Publish(ctx, req)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}

func TestConfigValidateNamesEveryFlag(t *testing.T) {
	t.Parallel()
	cfg := Config{GRPCAddr: "nope", HTTPAddr: "also-nope", AuthTokens: []string{"short"}, AllowCIDRs: []string{"not-a-cidr"}, DefaultSecretTTL: -1,
		OperatorKeys: []string{"sha256:zz"}, KeyCacheTTL: -1}
	cfg.TLS.CertFile = "/nonexistent/cert.pem"
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, flag := range []string{"--ingest-grpc-addr", "--ingest-http-addr", "--ingest-max-payload-bytes", "--ingest-max-batch-events",
		"--ingest-auth-tokens", "--ingest-allow-cidrs", "--ingest-previous-secret-ttl", "--ingest-operator-keys[0]", "--ingest-key-cache-ttl",
		"\n--ingest-tls-key-file"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error does not name %s:\n%v", flag, err)
		}
	}
	if strings.Contains(err.Error(), "----") {
		t.Errorf("a flag named with four dashes:\n%v", err)
	}
	if err := new(DefaultConfig()).Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestBadPageTokenIsInvalidArgument(t *testing.T) {
	t.Parallel()
	s := startIngest(t)
	conn := dial(t, s)
	admin := hooklinev1.NewAdminServiceClient(conn)
	ctx := authorized(t)
	_, err := admin.ListDeliveries(ctx, &hooklinev1.ListDeliveriesRequest{PageToken: "not-a-token"})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "page_token") {
		t.Fatalf("ListDeliveries with a bad token: %v, want InvalidArgument naming page_token", err)
	}
}

// TestPublishBatchIdempotency: keys seen before and keys repeated within
// the batch come back as duplicates with the first event's id.
func TestPublishBatchIdempotency(t *testing.T) {
	t.Parallel()
	s := startIngest(t)
	conn := dial(t, s)
	client := hooklinev1.NewIngestServiceClient(conn)
	ctx := authorized(t)
	ev := func(key string) *hooklinev1.PublishRequest {
		return &hooklinev1.PublishRequest{Tenant: "acme", EventType: "order.created", Payload: []byte(`{}`), IdempotencyKey: key}
	}
	first, err := client.Publish(ctx, ev("a"))
	if err != nil || first.GetDuplicate() {
		t.Fatalf("first publish: %v, %v", first, err)
	}
	res, err := client.PublishBatch(ctx, &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{ev("a"), ev("b"), ev("b"), ev("")}})
	if err != nil {
		t.Fatal(err)
	}
	r := res.GetResults()
	if len(r) != 4 {
		t.Fatalf("%d results for 4 events", len(r))
	}
	tests := []struct {
		name    string
		got     *hooklinev1.PublishResponse
		wantID  string
		wantDup bool
	}{
		{"key used before", r[0], first.GetEventId(), true},
		{"new key", r[1], r[1].GetEventId(), false},
		{"key repeated in the batch", r[2], r[1].GetEventId(), true},
		{"no key", r[3], r[3].GetEventId(), false},
	}
	for _, tt := range tests {
		if tt.got.GetEventId() != tt.wantID || tt.got.GetDuplicate() != tt.wantDup {
			t.Errorf("%s: %v, want id %s duplicate %v", tt.name, tt.got, tt.wantID, tt.wantDup)
		}
	}
	if r[1].GetEventId() == r[3].GetEventId() || r[1].GetEventId() == first.GetEventId() {
		t.Errorf("distinct events share an id: %v", r)
	}
	// A second batch finds both keys recorded.
	again, err := client.PublishBatch(ctx, &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{ev("b"), ev("a")}})
	if err != nil {
		t.Fatal(err)
	}
	if g := again.GetResults(); g[0].GetEventId() != r[1].GetEventId() || !g[0].GetDuplicate() || g[1].GetEventId() != first.GetEventId() || !g[1].GetDuplicate() {
		t.Errorf("second batch: %v", g)
	}
}

// dial connects to the service's gRPC API until the test ends.
func dial(t testing.TB, s *Service) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// callTimeout bounds each call of a test, so a hang fails the test that
// hangs rather than the package.
const callTimeout = 10 * time.Second

// authorized is a context carrying the test's bearer token, bounded by
// callTimeout.
func authorized(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}
