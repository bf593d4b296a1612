package ingest

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hookline/hookline/pkg/store"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/apikey"
)

// The two tenants of the authorization test. Tenant B's name, ids and
// keys must never appear in a response to tenant A's keys.
const (
	tenantA = "tenant-alpha"
	tenantB = "tenant-bravo"
)

// authzFixture is an ingest service with an operator key, and for each
// tenant a subscription, an event, a delivery with an attempt, and keys.
type authzFixture struct {
	*testService
	objs map[string]tenantObjects
	// keys of tenant A by what they are.
	keyPublish, keyRead, keyManage, keyRevoked, keyExpired string
}

// tenantObjects are one tenant's objects the calls address.
type tenantObjects struct {
	sub, event, delivery, keyID string
}

// testClock is the service's clock, moved by the test.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func startAuthz(t *testing.T) *authzFixture {
	t.Helper()
	f := &authzFixture{testService: startTestService(t, nil), objs: map[string]tenantObjects{}}
	for _, tenant := range []string{tenantA, tenantB} {
		f.objs[tenant] = f.makeObjects(t, tenant)
	}
	f.keyPublish = f.newKey(t, tenantA, nil, "publish")
	f.keyRead = f.newKey(t, tenantA, nil, "read")
	f.keyManage = f.newKey(t, tenantA, nil, "manage")
	f.keyRevoked = f.newKey(t, tenantA, nil, "publish", "read", "manage")
	if _, err := f.admin().RevokeAPIKey(f.ctx(t, f.operator), &hooklinev1.RevokeAPIKeyRequest{Id: keyIDOf(f.keyRevoked)}); err != nil {
		t.Fatal(err)
	}
	f.keyExpired = f.newKey(t, tenantA, timestamppb.New(f.clock.now().Add(time.Hour)), "publish", "read", "manage")
	f.clock.advance(2 * time.Hour)
	return f
}

func keyIDOf(key string) string { id, _ := apikey.ID(key); return id }

func (f *authzFixture) admin() hooklinev1.AdminServiceClient {
	return hooklinev1.NewAdminServiceClient(f.conn)
}

func (f *authzFixture) newKey(t *testing.T, tenant string, expires *timestamppb.Timestamp, scopes ...string) string {
	t.Helper()
	resp, err := f.admin().CreateAPIKey(f.ctx(t, f.operator), &hooklinev1.CreateAPIKeyRequest{Tenant: tenant, Scopes: scopes, ExpireTime: expires, Name: "authz " + tenant})
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return resp.GetKey()
}

func (f *authzFixture) newSubscription(t *testing.T, tenant string) string {
	t.Helper()
	sub, err := f.admin().CreateSubscription(f.ctx(t, f.operator), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
		Tenant: tenant, Url: "http://127.0.0.1:9/hooks", EventTypes: []string{"*"},
	}})
	if err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return sub.GetId()
}

func (f *authzFixture) makeObjects(t *testing.T, tenant string) tenantObjects {
	t.Helper()
	o := tenantObjects{sub: f.newSubscription(t, tenant)}
	sent, err := f.admin().SendTestEvent(f.ctx(t, f.operator), &hooklinev1.SendTestEventRequest{Id: o.sub})
	if err != nil {
		t.Fatal(err)
	}
	o.event, o.delivery = sent.GetEventId(), sent.GetDeliveryId()
	err = f.store.(store.Store).RecordAttempts(context.Background(), []store.AttemptResult{{
		Attempt: store.Attempt{DeliveryID: o.delivery, Number: 1, EventID: o.event, SubscriptionID: o.sub, Tenant: tenant,
			StartedAt: f.clock.now(), StatusCode: 500, Error: "endpoint returned 500"},
		Status: store.DeliveryRetrying, NextAttemptAt: f.clock.now().Add(time.Hour),
	}})
	if err != nil {
		t.Fatal(err)
	}
	o.keyID = keyIDOf(f.newKey(t, tenant, nil, "read"))
	return o
}

// target is what one call addresses: a tenant's objects, and the value
// sent in the request's tenant field.
type target struct {
	objects tenantObjects
	tenant  string
}

// rpcKind says how a call selects what it acts on, which decides the code
// a tenant key gets for another tenant's objects.
type rpcKind int

const (
	byID    rpcKind = iota // addresses one object: another tenant's is NotFound
	listing                // filters a list: another tenant's ids select nothing
	creates                // makes something in the named tenant
)

// rpcRow is one RPC of the API: how to build its request, and the same
// call over HTTP/JSON.
type rpcRow struct {
	kind  rpcKind
	scope apikey.Scope
	// fresh, when set, makes a new object for each call that may succeed
	// (the call consumes it, as a delete does).
	fresh func(t *testing.T, f *authzFixture, tenant string) tenantObjects
	req   func(tg target) proto.Message
	// http is the same call: method, path with query, and JSON body.
	http func(tg target) (method, path, body string)
}

// q is the query string of a tenant field: "" when it is empty.
func q(tenant string, more ...string) string {
	v := url.Values{}
	if tenant != "" {
		v.Set("tenant", tenant)
	}
	for i := 0; i+1 < len(more); i += 2 {
		v.Set(more[i], more[i+1])
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// rawJSON is a value jsonBody writes as it is.
type rawJSON string

// jsonBody is a JSON object of fields; empty strings are left out.
func jsonBody(fields map[string]any) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for k, v := range fields {
		if s, ok := v.(string); ok && s == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		switch v := v.(type) {
		case string:
			fmt.Fprintf(&b, "%q:%q", k, v)
		case rawJSON:
			fmt.Fprintf(&b, "%q:%s", k, v)
		default:
			fmt.Fprintf(&b, "%q:%v", k, v)
		}
	}
	b.WriteByte('}')
	return b.String()
}

var payload64 = base64.StdEncoding.EncodeToString([]byte(`{"n":1}`))

// authzRows has a row for every RPC of the API, by full method name.
var authzRows = map[string]rpcRow{
	hooklinev1.IngestService_Publish_FullMethodName: {kind: creates, scope: apikey.ScopePublish,
		req: func(tg target) proto.Message {
			return &hooklinev1.PublishRequest{Tenant: tg.tenant, EventType: "order.created", Payload: []byte(`{"n":1}`)}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/events:publish", jsonBody(map[string]any{"tenant": tg.tenant, "eventType": "order.created", "payload": payload64})
		}},
	hooklinev1.IngestService_PublishBatch_FullMethodName: {kind: creates, scope: apikey.ScopePublish,
		req: func(tg target) proto.Message {
			return &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{{Tenant: tg.tenant, EventType: "order.created", Payload: []byte(`{"n":1}`)}}}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/events:publishBatch", `{"events":[` + jsonBody(map[string]any{"tenant": tg.tenant, "eventType": "order.created", "payload": payload64}) + `]}`
		}},
	hooklinev1.AdminService_GetEvent_FullMethodName: {kind: byID, scope: apikey.ScopeRead,
		req: func(tg target) proto.Message {
			return &hooklinev1.GetEventRequest{Id: tg.objects.event, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "GET", "/v1/events/" + tg.objects.event + q(tg.tenant), ""
		}},
	hooklinev1.AdminService_CreateSubscription_FullMethodName: {kind: creates, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{Tenant: tg.tenant, Url: "http://127.0.0.1:9/new", EventTypes: []string{"*"}}}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/subscriptions", jsonBody(map[string]any{"tenant": tg.tenant, "url": "http://127.0.0.1:9/new", "eventTypes": rawJSON(`["*"]`)})
		}},
	hooklinev1.AdminService_GetSubscription_FullMethodName: {kind: byID, scope: apikey.ScopeRead,
		req: func(tg target) proto.Message {
			return &hooklinev1.GetSubscriptionRequest{Id: tg.objects.sub, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "GET", "/v1/subscriptions/" + tg.objects.sub + q(tg.tenant), ""
		}},
	hooklinev1.AdminService_ListSubscriptions_FullMethodName: {kind: listing, scope: apikey.ScopeRead,
		req:  func(tg target) proto.Message { return &hooklinev1.ListSubscriptionsRequest{Tenant: tg.tenant} },
		http: func(tg target) (string, string, string) { return "GET", "/v1/subscriptions" + q(tg.tenant), "" }},
	hooklinev1.AdminService_UpdateSubscription_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.UpdateSubscriptionRequest{
				Subscription: &hooklinev1.Subscription{Id: tg.objects.sub, Tenant: tg.tenant, Description: "changed"},
				UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"description"}},
			}
		},
		http: func(tg target) (string, string, string) {
			return "PATCH", "/v1/subscriptions/" + tg.objects.sub + "?update_mask=description", jsonBody(map[string]any{"tenant": tg.tenant, "description": "changed"})
		}},
	hooklinev1.AdminService_DeleteSubscription_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		fresh: func(t *testing.T, f *authzFixture, tenant string) tenantObjects {
			return tenantObjects{sub: f.newSubscription(t, tenant)}
		},
		req: func(tg target) proto.Message {
			return &hooklinev1.DeleteSubscriptionRequest{Id: tg.objects.sub, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "DELETE", "/v1/subscriptions/" + tg.objects.sub + q(tg.tenant), ""
		}},
	hooklinev1.AdminService_RotateSubscriptionSecret_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.RotateSubscriptionSecretRequest{Id: tg.objects.sub, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/subscriptions/" + tg.objects.sub + ":rotateSecret", jsonBody(map[string]any{"tenant": tg.tenant})
		}},
	hooklinev1.AdminService_EnableSubscription_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.EnableSubscriptionRequest{Id: tg.objects.sub, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/subscriptions/" + tg.objects.sub + ":enable", jsonBody(map[string]any{"tenant": tg.tenant})
		}},
	hooklinev1.AdminService_DisableSubscription_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.DisableSubscriptionRequest{Id: tg.objects.sub, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/subscriptions/" + tg.objects.sub + ":disable", jsonBody(map[string]any{"tenant": tg.tenant})
		}},
	hooklinev1.AdminService_SendTestEvent_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.SendTestEventRequest{Id: tg.objects.sub, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/subscriptions/" + tg.objects.sub + ":sendTestEvent", jsonBody(map[string]any{"tenant": tg.tenant})
		}},
	hooklinev1.AdminService_GetSubscriptionSecret_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.GetSubscriptionSecretRequest{Id: tg.objects.sub, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "GET", "/v1/subscriptions/" + tg.objects.sub + "/secret" + q(tg.tenant), ""
		}},
	hooklinev1.AdminService_ListDeliveries_FullMethodName: {kind: listing, scope: apikey.ScopeRead,
		req: func(tg target) proto.Message {
			return &hooklinev1.ListDeliveriesRequest{Tenant: tg.tenant, SubscriptionId: tg.objects.sub, EventId: tg.objects.event}
		},
		http: func(tg target) (string, string, string) {
			return "GET", "/v1/deliveries" + q(tg.tenant, "subscriptionId", tg.objects.sub, "eventId", tg.objects.event), ""
		}},
	hooklinev1.AdminService_GetDelivery_FullMethodName: {kind: byID, scope: apikey.ScopeRead,
		req: func(tg target) proto.Message {
			return &hooklinev1.GetDeliveryRequest{Id: tg.objects.delivery, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "GET", "/v1/deliveries/" + tg.objects.delivery + q(tg.tenant), ""
		}},
	hooklinev1.AdminService_ListAttempts_FullMethodName: {kind: listing, scope: apikey.ScopeRead,
		req: func(tg target) proto.Message {
			return &hooklinev1.ListAttemptsRequest{Tenant: tg.tenant, DeliveryId: tg.objects.delivery, SubscriptionId: tg.objects.sub, EventId: tg.objects.event}
		},
		http: func(tg target) (string, string, string) {
			return "GET", "/v1/attempts" + q(tg.tenant, "deliveryId", tg.objects.delivery, "subscriptionId", tg.objects.sub, "eventId", tg.objects.event), ""
		}},
	hooklinev1.AdminService_Redeliver_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.RedeliverRequest{DeliveryId: tg.objects.delivery, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/deliveries/" + tg.objects.delivery + ":redeliver", jsonBody(map[string]any{"tenant": tg.tenant})
		}},
	hooklinev1.AdminService_CreateAPIKey_FullMethodName: {kind: creates, scope: apikey.ScopeManage,
		req: func(tg target) proto.Message {
			return &hooklinev1.CreateAPIKeyRequest{Tenant: tg.tenant, Scopes: []string{"publish"}}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/keys", jsonBody(map[string]any{"tenant": tg.tenant, "scopes": rawJSON(`["publish"]`)})
		}},
	hooklinev1.AdminService_ListAPIKeys_FullMethodName: {kind: listing, scope: apikey.ScopeRead,
		req: func(tg target) proto.Message {
			return &hooklinev1.ListAPIKeysRequest{Tenant: tg.tenant, IncludeRevoked: true}
		},
		http: func(tg target) (string, string, string) {
			return "GET", "/v1/keys" + q(tg.tenant, "includeRevoked", "true"), ""
		}},
	hooklinev1.AdminService_RevokeAPIKey_FullMethodName: {kind: byID, scope: apikey.ScopeManage,
		fresh: func(t *testing.T, f *authzFixture, tenant string) tenantObjects {
			return tenantObjects{keyID: keyIDOf(f.newKey(t, tenant, nil, "read"))}
		},
		req: func(tg target) proto.Message {
			return &hooklinev1.RevokeAPIKeyRequest{Id: tg.objects.keyID, Tenant: tg.tenant}
		},
		http: func(tg target) (string, string, string) {
			return "POST", "/v1/keys/" + tg.objects.keyID + ":revoke", jsonBody(map[string]any{"tenant": tg.tenant})
		}},
}

// TestEveryRPCHasAnAuthzRow fails when an RPC is added to the API without
// deciding, in authzRows, how the authorization test calls it, and when a
// row's scope differs from the one the server enforces.
func TestEveryRPCHasAnAuthzRow(t *testing.T) {
	t.Parallel()
	for _, m := range apiMethods(t) {
		row, ok := authzRows[m]
		if !ok {
			t.Errorf("%s has no row in authzRows", m)
			continue
		}
		if got, _ := MethodScope(m); got != row.scope {
			t.Errorf("%s: the server asks scope %q, the test row %q", m, got, row.scope)
		}
	}
	if len(authzRows) != len(apiMethods(t)) {
		t.Errorf("authzRows has %d rows for %d RPCs", len(authzRows), len(apiMethods(t)))
	}
}

// apiMethods lists every RPC of the hookline.v1 services, from their
// descriptors.
func apiMethods(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, file := range []protoreflect.FileDescriptor{hooklinev1.File_hookline_v1_ingest_proto, hooklinev1.File_hookline_v1_admin_proto} {
		for i := range file.Services().Len() {
			svc := file.Services().Get(i)
			for j := range svc.Methods().Len() {
				out = append(out, "/"+string(svc.FullName())+"/"+string(svc.Methods().Get(j).Name()))
			}
		}
	}
	return out
}

// authzCase is one caller making a call: the key it presents, whose
// objects it addresses, the tenant it names, and the code it must get.
type authzCase struct {
	name    string
	key     func(f *authzFixture, row rpcRow) string
	objects string // tenant whose objects are addressed
	tenant  string // tenant field sent
	want    func(row rpcRow) codes.Code
	// tenantKey is set when the caller is tenant A's key: its responses
	// must hold nothing of tenant B and no secret outside the calls that
	// return one.
	tenantKey bool
}

func always(c codes.Code) func(rpcRow) codes.Code { return func(rpcRow) codes.Code { return c } }

// rightKey is tenant A's key holding exactly the row's scope.
func rightKey(f *authzFixture, row rpcRow) string {
	switch row.scope {
	case apikey.ScopePublish:
		return f.keyPublish
	case apikey.ScopeRead:
		return f.keyRead
	}
	return f.keyManage
}

// wrongKey is tenant A's key lacking the row's scope.
func wrongKey(f *authzFixture, row rpcRow) string {
	if row.scope == apikey.ScopeRead {
		return f.keyPublish
	}
	return f.keyRead
}

var authzCases = []authzCase{
	{name: "no key", key: func(*authzFixture, rpcRow) string { return "" }, objects: tenantA, want: always(codes.Unauthenticated)},
	{name: "unknown key", key: func(*authzFixture, rpcRow) string { k, _, _ := apikey.Generate(); return k }, objects: tenantA, want: always(codes.Unauthenticated)},
	{name: "revoked key", key: func(f *authzFixture, _ rpcRow) string { return f.keyRevoked }, objects: tenantA, want: always(codes.Unauthenticated)},
	{name: "expired key", key: func(f *authzFixture, _ rpcRow) string { return f.keyExpired }, objects: tenantA, want: always(codes.Unauthenticated)},
	{name: "wrong scope", key: wrongKey, objects: tenantA, want: always(codes.PermissionDenied)},
	{name: "own tenant implied", key: rightKey, objects: tenantA, tenant: "", want: always(codes.OK), tenantKey: true},
	{name: "own tenant named", key: rightKey, objects: tenantA, tenant: tenantA, want: always(codes.OK), tenantKey: true},
	{name: "other tenant named", key: rightKey, objects: tenantB, tenant: tenantB, want: always(codes.PermissionDenied), tenantKey: true},
	{name: "other tenant's objects", key: rightKey, objects: tenantB, tenant: "", tenantKey: true,
		want: func(row rpcRow) codes.Code {
			if row.kind == byID {
				return codes.NotFound
			}
			return codes.OK // a list filtered by the other tenant's ids is empty; a create is the key's own
		}},
	{name: "operator on tenant B", key: func(f *authzFixture, _ rpcRow) string { return f.operator }, objects: tenantB, tenant: tenantB, want: always(codes.OK)},
	{name: "operator across tenants", key: func(f *authzFixture, _ rpcRow) string { return f.operator }, objects: tenantB, tenant: AllTenants,
		want: func(row rpcRow) codes.Code {
			if row.kind == creates {
				return codes.InvalidArgument // a create names its tenant
			}
			return codes.OK
		}},
}

// TestAuthorization calls every RPC, over gRPC and over HTTP/JSON, as
// every kind of caller, and checks the code and that nothing of tenant B
// and no signing secret leaks to tenant A's keys.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	f := startAuthz(t)
	httpClient := &http.Client{Timeout: 10 * time.Second}
	for _, method := range apiMethods(t) {
		row, ok := authzRows[method]
		if !ok {
			continue // TestEveryRPCHasAnAuthzRow reports it
		}
		name := method[strings.LastIndexByte(method, '/')+1:]
		for _, tc := range authzCases {
			for _, via := range []string{"grpc", "http"} {
				t.Run(name+"/"+tc.name+"/"+via, func(t *testing.T) {
					want := tc.want(row)
					objs := f.objs[tc.objects]
					if row.fresh != nil {
						objs = row.fresh(t, f, tc.objects) // the call may consume it
					}
					tg := target{objects: objs, tenant: tc.tenant}
					key := tc.key(f, row)
					var got codes.Code
					var body string
					if via == "grpc" {
						got, body = f.callGRPC(t, method, row, tg, key)
					} else {
						got, body = f.callHTTP(t, httpClient, row, tg, key)
					}
					if got != want {
						t.Fatalf("code %v, want %v; response: %s", got, want, body)
					}
					if tc.tenantKey && got == codes.OK {
						// Errors repeat what the caller sent; what the
						// server returns is in successful responses.
						f.checkNoLeak(t, name, body)
					}
				})
			}
		}
	}
}

func (f *authzFixture) callGRPC(t *testing.T, method string, row rpcRow, tg target, key string) (codes.Code, string) {
	t.Helper()
	req := row.req(tg)
	md, _ := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", ".")))
	outType, err := protoregistry.GlobalTypes.FindMessageByName(md.(protoreflect.MethodDescriptor).Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	resp := outType.New().Interface()
	err = f.conn.Invoke(f.ctx(t, key), method, req, resp)
	if err != nil {
		return status.Code(err), status.Convert(err).Message()
	}
	b, _ := protojson.Marshal(resp)
	return codes.OK, string(b)
}

func (f *authzFixture) callHTTP(t *testing.T, c *http.Client, row rpcRow, tg target, key string) (codes.Code, string) {
	t.Helper()
	method, path, body := row.http(tg)
	req, err := http.NewRequest(method, "http://"+f.svc.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpCode(resp.StatusCode), string(b)
}

// httpCode maps the HTTP statuses grpc-gateway answers with back to the
// gRPC codes the cases name.
func httpCode(s int) codes.Code {
	switch s {
	case http.StatusOK:
		return codes.OK
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusBadRequest:
		return codes.InvalidArgument
	}
	return codes.Unknown
}

// secretRPCs are the calls whose responses carry signing secrets.
var secretRPCs = map[string]bool{"CreateSubscription": true, "RotateSubscriptionSecret": true, "GetSubscriptionSecret": true}

// checkNoLeak fails if body, a response to tenant A's key, holds anything
// of tenant B or a signing secret outside the calls that return one.
func (f *authzFixture) checkNoLeak(t *testing.T, rpc, body string) {
	t.Helper()
	b := f.objs[tenantB]
	for _, mark := range []string{tenantB, b.sub, b.event, b.delivery, b.keyID} {
		if strings.Contains(body, mark) {
			t.Errorf("response to tenant A's key holds %q of tenant B: %s", mark, body)
		}
	}
	if !secretRPCs[rpc] && strings.Contains(body, "whsec_") {
		t.Errorf("%s returned a signing secret: %s", rpc, body)
	}
}
