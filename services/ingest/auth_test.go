package ingest

import (
	"strings"
	"testing"

	"google.golang.org/grpc/status"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/apikey"
)

// BenchmarkResolveTenants measures the tenant resolution of a 100-event
// batch, the interceptor's per-request walk over the message.
func BenchmarkResolveTenants(b *testing.B) {
	req := &hooklinev1.PublishBatchRequest{}
	for range 100 {
		req.Events = append(req.Events, &hooklinev1.PublishRequest{Tenant: "acme", EventType: "order.created", Payload: []byte(`{}`),
			Labels: map[string]string{"region": "eu"}})
	}
	p := &principal{keyID: "hk_000000000000", tenant: "acme", scopes: []apikey.Scope{apikey.ScopePublish}}
	b.ReportAllocs()
	for b.Loop() {
		if err := resolveTenants(req.ProtoReflect(), p, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// TestResolveTenantsNamesTheField: a refusal names the field at its
// depth; an empty tenant becomes the key's; an operator's "*" becomes
// empty.
func TestResolveTenantsNamesTheField(t *testing.T) {
	t.Parallel()
	key := &principal{keyID: "hk_000000000000", tenant: "acme", scopes: []apikey.Scope{apikey.ScopePublish}}
	op := &principal{scopes: []apikey.Scope{apikey.ScopeOperator}}
	batch := &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{{Tenant: "acme"}, {Tenant: "globex"}}}
	if err := resolveTenants(batch.ProtoReflect(), key, ""); err == nil || !strings.HasPrefix(status.Convert(err).Message(), "events[1].tenant: ") {
		t.Errorf("batch naming another tenant: %v, want a refusal naming events[1].tenant", err)
	}
	create := &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{Tenant: "globex"}}
	if err := resolveTenants(create.ProtoReflect(), key, ""); err == nil || !strings.HasPrefix(status.Convert(err).Message(), "subscription.tenant: ") {
		t.Errorf("create naming another tenant: %v, want a refusal naming subscription.tenant", err)
	}
	empty := &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{{}, {}}}
	if err := resolveTenants(empty.ProtoReflect(), key, ""); err != nil || empty.GetEvents()[1].GetTenant() != "acme" {
		t.Errorf("empty tenants: %v, %v; want the key's", empty, err)
	}
	all := &hooklinev1.ListDeliveriesRequest{Tenant: AllTenants}
	if err := resolveTenants(all.ProtoReflect(), op, ""); err != nil || all.GetTenant() != "" {
		t.Errorf("operator's *: %v, %q; want it emptied", err, all.GetTenant())
	}
}
