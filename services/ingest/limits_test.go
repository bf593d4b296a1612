package ingest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/apikey"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
)

// testService is an ingest service on a real NATS server and SQLite store,
// with a clock the test moves and an operator key.
type testService struct {
	svc      *Service
	store    Store
	clock    *testClock
	conn     *grpc.ClientConn
	operator string
}

func startTestService(t testing.TB, mutate func(*Config)) *testService {
	t.Helper()
	operator, _, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ts := &testService{clock: &testClock{}, operator: operator, store: servicetest.Store(t)}
	ts.clock.ns.Store(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).UnixNano())
	cfg := DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.OperatorKeys = []string{apikey.HashString(operator)}
	cfg.AllowCIDRs = []string{"127.0.0.0/8"}
	if mutate != nil {
		mutate(&cfg)
	}
	ts.svc, err = New(cfg, deps.Deps[Store]{Store: ts.store, Transport: servicetest.Transport(t), Logger: servicetest.Logger(), Now: ts.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ts.svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	ts.conn = dial(t, ts.svc)
	return ts
}

// ctx is a context carrying key as the bearer credentials (none for
// ""), bounded for one call.
func (ts *testService) ctx(t testing.TB, key string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	if key == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// TestPublishRateLimit: a tenant's burst passes, the next publish is
// ResourceExhausted with when to retry (RetryInfo and the retry-after
// header over gRPC, 429 and Retry-After over HTTP), the bucket refills with
// time, another tenant is unaffected, and a batch larger than the burst is
// InvalidArgument naming events.
func TestPublishRateLimit(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, func(c *Config) {
		c.Limits.PublishRate, c.Limits.PublishBurst = 0.5, 2
	})
	in := hooklinev1.NewIngestServiceClient(ts.conn)
	pub := func(tenant string) (*hooklinev1.PublishResponse, metadata.MD, error) {
		var hdr metadata.MD
		r, err := in.Publish(ts.ctx(t, ts.operator), &hooklinev1.PublishRequest{Tenant: tenant, EventType: "order.created", Payload: []byte(`{}`)}, grpc.Header(&hdr))
		return r, hdr, err
	}
	for i := range 2 {
		if _, _, err := pub("acme"); err != nil {
			t.Fatalf("publish %d within the burst: %v", i+1, err)
		}
	}
	_, hdr, err := pub("acme")
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), `tenant "acme"`) {
		t.Fatalf("publish over the burst: %v, want ResourceExhausted naming the tenant", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() != 2*time.Second {
		t.Errorf("RetryInfo %v, want a 2s delay (one event at 0.5/s)", retry)
	}
	if got := hdr.Get(retryAfterHeader); len(got) != 1 || got[0] != "2" {
		t.Errorf("retry-after header %q, want 2", got)
	}
	if _, _, err := pub("globex"); err != nil {
		t.Errorf("another tenant is limited by acme's bucket: %v", err)
	}
	// An operator's batch of two tenants is held to each tenant's bucket.
	_, err = in.PublishBatch(ts.ctx(t, ts.operator), &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{
		{Tenant: "initech", EventType: "a.b", Payload: []byte(`{}`)},
		{Tenant: "acme", EventType: "a.b", Payload: []byte(`{}`)},
	}})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), `tenant "acme"`) {
		t.Errorf("a two-tenant batch with acme over its limit: %v, want ResourceExhausted naming acme", err)
	}

	// Over HTTP: 429 with Retry-After.
	req, _ := http.NewRequest("POST", "http://"+ts.svc.HTTPAddr()+"/v1/events:publish", strings.NewReader(`{"tenant":"acme","eventType":"order.created","payload":"e30="}`))
	req.Header.Set("Authorization", "Bearer "+ts.operator)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("HTTP publish over the limit: %d, Retry-After %q; want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	ts.clock.advance(2 * time.Second)
	if _, _, err := pub("acme"); err != nil {
		t.Errorf("publish after the retry delay: %v", err)
	}

	_, err = in.PublishBatch(ts.ctx(t, ts.operator), &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{
		{Tenant: "globex", EventType: "a.b", Payload: []byte(`{}`)},
		{Tenant: "globex", EventType: "a.b", Payload: []byte(`{}`)},
		{Tenant: "globex", EventType: "a.b", Payload: []byte(`{}`)},
	}})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "events: batch of 3 events exceeds the publish burst of 2") {
		t.Errorf("batch larger than the burst: %v, want InvalidArgument naming events", err)
	}
}

// TestMaxSubscriptionsPerTenant: the global limit and a per-tenant
// override from the limits file both hold, per tenant.
func TestMaxSubscriptionsPerTenant(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(file, []byte("tenants:\n  small: {max_subscriptions: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startTestService(t, func(c *Config) {
		c.Limits.MaxSubscriptions, c.Limits.LimitsFile = 2, file
	})
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	create := func(tenant string) error {
		_, err := admin.CreateSubscription(ts.ctx(t, ts.operator), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
			Tenant: tenant, Url: "http://127.0.0.1:9/", EventTypes: []string{"*"},
		}})
		return err
	}
	tests := []struct {
		tenant string
		allow  int
	}{{"acme", 2}, {"small", 1}, {"globex", 2}}
	for _, tt := range tests {
		for i := range tt.allow {
			if err := create(tt.tenant); err != nil {
				t.Fatalf("%s: subscription %d of %d: %v", tt.tenant, i+1, tt.allow, err)
			}
		}
		err := create(tt.tenant)
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "subscription.tenant") {
			t.Errorf("%s: subscription %d: %v, want ResourceExhausted naming subscription.tenant", tt.tenant, tt.allow+1, err)
		}
	}
}

// TestKeyLifecycle: a key's last use is recorded at the next flush, a
// manage key issues keys of its own tenant but not operator keys, and a
// revoked key stops working at once on the replica that revoked it.
func TestKeyLifecycle(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, nil)
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	created, err := admin.CreateAPIKey(ts.ctx(t, ts.operator), &hooklinev1.CreateAPIKeyRequest{Tenant: "acme", Scopes: []string{"manage"}})
	if err != nil {
		t.Fatal(err)
	}
	manage := created.GetKey()
	if created.GetApiKey().GetLastUsedTime() != nil || !strings.HasPrefix(manage, created.GetApiKey().GetId()+"_") {
		t.Fatalf("new key %v: want no last use and the key to start with its id", created)
	}

	if _, err := admin.ListAPIKeys(ts.ctx(t, manage), &hooklinev1.ListAPIKeysRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := ts.svc.auth.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	k, err := ts.store.GetAPIKey(context.Background(), created.GetApiKey().GetId())
	if err != nil || !k.LastUsedAt.Equal(ts.clock.now()) {
		t.Fatalf("last use after a call and a flush: %v, %v; want %v", k.LastUsedAt, err, ts.clock.now())
	}

	_, err = admin.CreateAPIKey(ts.ctx(t, manage), &hooklinev1.CreateAPIKeyRequest{Scopes: []string{"operator"}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("a manage key issuing an operator key: %v, want PermissionDenied", err)
	}
	child, err := admin.CreateAPIKey(ts.ctx(t, manage), &hooklinev1.CreateAPIKeyRequest{Scopes: []string{"publish"}})
	if err != nil || child.GetApiKey().GetTenant() != "acme" {
		t.Fatalf("a manage key issuing a publish key: %v, %v; want one of tenant acme", child, err)
	}

	if _, err := admin.RevokeAPIKey(ts.ctx(t, manage), &hooklinev1.RevokeAPIKeyRequest{Id: created.GetApiKey().GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.ListAPIKeys(ts.ctx(t, manage), &hooklinev1.ListAPIKeysRequest{})
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), "revoked") {
		t.Errorf("a revoked key: %v, want Unauthenticated saying revoked", err)
	}
}

// TestOperatorKeysFromFile: operator keys in a file, as keys or hashes,
// with comments and blank lines, each authenticate as an operator; a
// malformed entry is refused at start naming the file and line.
func TestOperatorKeysFromFile(t *testing.T) {
	t.Parallel()
	k1, _, _ := apikey.Generate()
	k2, _, _ := apikey.Generate()
	file := filepath.Join(t.TempDir(), "operators")
	if err := os.WriteFile(file, []byte("# operators\n\n"+k1+"\n"+apikey.HashString(k2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startTestService(t, func(c *Config) { c.OperatorKeys, c.OperatorKeysFile = nil, file })
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	for i, k := range []string{k1, k2} {
		if _, err := admin.ListSubscriptions(ts.ctx(t, k), &hooklinev1.ListSubscriptionsRequest{Tenant: AllTenants}); err != nil {
			t.Errorf("operator key %d from the file: %v", i+1, err)
		}
	}
	if _, err := admin.ListSubscriptions(ts.ctx(t, ts.operator), &hooklinev1.ListSubscriptionsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a key not in the file: %v, want Unauthenticated", err)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte(k1+"\nsha256:nothex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.OperatorKeysFile = bad
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "--ingest-operator-keys-file "+bad+" line 2") || strings.Contains(err.Error(), k1) {
		t.Errorf("Validate of a bad keys file: %v; want the file and line named and no key echoed", err)
	}
}

// TestUnknownKeyLookupsAreBounded: made-up keys cost at most the lookup
// rate in store queries; beyond it they are Unavailable without a query,
// while keys already cached and configured operator keys keep working.
func TestUnknownKeyLookupsAreBounded(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, func(c *Config) { c.KeyLookupRate = 1 }) // burst 2
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	created, err := admin.CreateAPIKey(ts.ctx(t, ts.operator), &hooklinev1.CreateAPIKeyRequest{Tenant: "acme", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	list := func(key string) codes.Code {
		_, err := admin.ListSubscriptions(ts.ctx(t, key), &hooklinev1.ListSubscriptionsRequest{})
		return status.Code(err)
	}
	if got := list(created.GetKey()); got != codes.OK { // looked up once (1 of the burst), cached from then on
		t.Fatalf("a stored key: %v", got)
	}
	madeUp := func() string { k, _, _ := apikey.Generate(); return k }
	if got := list(madeUp()); got != codes.Unauthenticated {
		t.Fatalf("a made-up key within the rate: %v, want Unauthenticated", got)
	}
	if got := list(madeUp()); got != codes.Unavailable {
		t.Fatalf("a made-up key over the rate: %v, want Unavailable", got)
	}
	for name, key := range map[string]string{"cached stored key": created.GetKey(), "configured operator key": ts.operator} {
		if got := list(key); got != codes.OK {
			t.Errorf("%s over the lookup rate: %v, want OK", name, got)
		}
	}
	ts.clock.advance(time.Second)
	if got := list(madeUp()); got != codes.Unauthenticated {
		t.Errorf("a made-up key a second later: %v, want Unauthenticated (looked up again)", got)
	}
}
