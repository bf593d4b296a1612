package ingest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/hookline/hookline/pkg/store"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// httpJSON makes an HTTP/JSON call to ts as the operator and returns the
// status and the body.
func (ts *testService) httpJSON(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ts.ctx(t, ""), method, "http://"+ts.svc.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ts.operator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// httpSubscription makes an HTTP/JSON call answered by a subscription.
func (ts *testService) httpSubscription(t *testing.T, method, path, body string) *hooklinev1.Subscription {
	t.Helper()
	code, resp := ts.httpJSON(t, method, path, body)
	if code != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, code, resp)
	}
	var sub hooklinev1.Subscription
	if err := protojson.Unmarshal([]byte(resp), &sub); err != nil {
		t.Fatalf("%s %s: decode %s: %v", method, path, resp, err)
	}
	// The JSON names the field when it is set (protojson leaves out false).
	if named := strings.Contains(resp, `"sendTraceContext":true`); named != sub.GetSendTraceContext() {
		t.Fatalf("%s %s: sendTraceContext %v, but the JSON is %s", method, path, sub.GetSendTraceContext(), resp)
	}
	return &sub
}

// TestSubscriptionSendTraceContext: send_trace_context is off unless a
// create sets it, and an update changes it when its mask names it
// (either spelling), when it has no mask (every field replaced), and over
// HTTP/JSON when the body holds it (the gateway's mask); an update of
// other fields keeps it. Get and List show it.
func TestSubscriptionSendTraceContext(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, nil)
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	const url = "http://127.0.0.1:9/hooks"

	grpcCreate := func(on bool) func(t *testing.T) *hooklinev1.Subscription {
		return func(t *testing.T) *hooklinev1.Subscription {
			sub, err := admin.CreateSubscription(ts.ctx(t, ts.operator), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
				Tenant: "acme", Url: url, EventTypes: []string{"*"}, Description: "created", SendTraceContext: on,
			}})
			if err != nil {
				t.Fatalf("CreateSubscription: %v", err)
			}
			return sub
		}
	}
	httpCreate := func(body string) func(t *testing.T) *hooklinev1.Subscription {
		return func(t *testing.T) *hooklinev1.Subscription {
			return ts.httpSubscription(t, "POST", "/v1/subscriptions", body)
		}
	}
	grpcUpdate := func(p *hooklinev1.Subscription, paths ...string) func(t *testing.T, created *hooklinev1.Subscription) *hooklinev1.Subscription {
		return func(t *testing.T, created *hooklinev1.Subscription) *hooklinev1.Subscription {
			p := proto.CloneOf(p)
			p.Id, p.Tenant = created.GetId(), "acme"
			req := &hooklinev1.UpdateSubscriptionRequest{Subscription: p}
			if paths != nil {
				req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
			}
			sub, err := admin.UpdateSubscription(ts.ctx(t, ts.operator), req)
			if err != nil {
				t.Fatalf("UpdateSubscription: %v", err)
			}
			return sub
		}
	}
	httpPatch := func(query, body string) func(t *testing.T, created *hooklinev1.Subscription) *hooklinev1.Subscription {
		return func(t *testing.T, created *hooklinev1.Subscription) *hooklinev1.Subscription {
			return ts.httpSubscription(t, "PATCH", "/v1/subscriptions/"+created.GetId()+query, body)
		}
	}

	tests := []struct {
		name     string
		create   func(t *testing.T) *hooklinev1.Subscription
		update   func(t *testing.T, created *hooklinev1.Subscription) *hooklinev1.Subscription // nil: none
		want     bool
		wantDesc string
	}{
		{"gRPC create with it on", grpcCreate(true), nil, true, "created"},
		{"gRPC create: off by default", grpcCreate(false), nil, false, "created"},
		{"HTTP create with it on",
			httpCreate(`{"tenant":"acme","url":"` + url + `","eventTypes":["*"],"description":"created","sendTraceContext":true}`), nil, true, "created"},
		{"HTTP create: off by default",
			httpCreate(`{"tenant":"acme","url":"` + url + `","eventTypes":["*"],"description":"created"}`), nil, false, "created"},
		{"gRPC update masked to it turns it off", grpcCreate(true),
			grpcUpdate(&hooklinev1.Subscription{SendTraceContext: false, Description: "not in the mask"}, "send_trace_context"), false, "created"},
		{"gRPC update masked to its JSON name turns it on", grpcCreate(false),
			grpcUpdate(&hooklinev1.Subscription{SendTraceContext: true}, "sendTraceContext"), true, "created"},
		{"gRPC update of another field keeps it", grpcCreate(true),
			grpcUpdate(&hooklinev1.Subscription{SendTraceContext: false, Description: "changed"}, "description"), true, "changed"},
		{"gRPC update without a mask replaces it", grpcCreate(true),
			grpcUpdate(&hooklinev1.Subscription{Url: url, EventTypes: []string{"*"}, Description: "replaced"}), false, "replaced"},
		{"HTTP PATCH with an update_mask naming it", grpcCreate(false),
			httpPatch("?update_mask=send_trace_context", `{"tenant":"acme","sendTraceContext":true,"description":"not in the mask"}`), true, "created"},
		// Without update_mask the gateway masks the fields of the body
		// (so the operator's body names no tenant).
		{"HTTP PATCH masked by its body", grpcCreate(true),
			httpPatch("", `{"sendTraceContext":false}`), false, "created"},
		{"HTTP PATCH of another field keeps it", grpcCreate(true),
			httpPatch("", `{"description":"changed"}`), true, "changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sub := tt.create(t)
			if tt.update != nil {
				sub = tt.update(t, sub)
			}
			if got := sub.GetSendTraceContext(); got != tt.want {
				t.Errorf("response: send_trace_context %v, want %v", got, tt.want)
			}
			got, err := admin.GetSubscription(ts.ctx(t, ts.operator), &hooklinev1.GetSubscriptionRequest{Id: sub.GetId(), Tenant: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetSendTraceContext() != tt.want || got.GetDescription() != tt.wantDesc || got.GetUrl() != url {
				t.Errorf("GetSubscription: send_trace_context %v, description %q, url %q; want %v, %q, %q",
					got.GetSendTraceContext(), got.GetDescription(), got.GetUrl(), tt.want, tt.wantDesc, url)
			}
			stored, err := ts.store.GetSubscription(context.Background(), store.TenantScope("acme"), sub.GetId())
			if err != nil {
				t.Fatal(err)
			}
			if stored.SendTraceContext != tt.want {
				t.Errorf("stored SendTraceContext %v, want %v", stored.SendTraceContext, tt.want)
			}
			viaHTTP := ts.httpSubscription(t, "GET", "/v1/subscriptions/"+sub.GetId()+"?tenant=acme", "")
			if viaHTTP.GetSendTraceContext() != tt.want {
				t.Errorf("HTTP GET: sendTraceContext %v, want %v", viaHTTP.GetSendTraceContext(), tt.want)
			}
		})
	}
}

// TestSubscriptionListShowsSendTraceContext: a listed subscription says
// whether it sends trace context.
func TestSubscriptionListShowsSendTraceContext(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, nil)
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	want := map[string]bool{}
	for _, on := range []bool{true, false} {
		sub, err := admin.CreateSubscription(ts.ctx(t, ts.operator), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
			Tenant: "acme", Url: "http://127.0.0.1:9/hooks", EventTypes: []string{"*"}, SendTraceContext: on,
		}})
		if err != nil {
			t.Fatal(err)
		}
		want[sub.GetId()] = on
	}
	resp, err := admin.ListSubscriptions(ts.ctx(t, ts.operator), &hooklinev1.ListSubscriptionsRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSubscriptions()) != len(want) {
		t.Fatalf("listed %d subscriptions, want %d", len(resp.GetSubscriptions()), len(want))
	}
	for _, sub := range resp.GetSubscriptions() {
		if sub.GetSendTraceContext() != want[sub.GetId()] {
			t.Errorf("listed %s: send_trace_context %v, want %v", sub.GetId(), sub.GetSendTraceContext(), want[sub.GetId()])
		}
	}
}

// TestUpdateMaskNamesUpdatableFields: a mask naming a field that cannot
// be updated is InvalidArgument listing those that can, send_trace_context
// among them.
func TestUpdateMaskNamesUpdatableFields(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, nil)
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	_, err := admin.UpdateSubscription(ts.ctx(t, ts.operator), &hooklinev1.UpdateSubscriptionRequest{
		Subscription: &hooklinev1.Subscription{Id: "sub_01jpak7ym8me2354z4zz52qfwe", Tenant: "acme"},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	})
	st := status.Convert(err)
	want := `"state" cannot be updated; updatable are url, description, event_types, headers, timeout, retry_schedule, rate_limit, send_trace_context`
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), want) {
		t.Fatalf("update of state: %v; want InvalidArgument saying %q", err, want)
	}
}

// TestAttemptTraceID: a listed attempt carries the trace id of its
// traceparent, over gRPC and HTTP/JSON; an untraced attempt none.
func TestAttemptTraceID(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, nil)
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	sub, err := admin.CreateSubscription(ts.ctx(t, ts.operator), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
		Tenant: "acme", Url: "http://127.0.0.1:9/hooks", EventTypes: []string{"*"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := admin.SendTestEvent(ts.ctx(t, ts.operator), &hooklinev1.SendTestEventRequest{Id: sub.GetId(), Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	now := ts.clock.now()
	attempt := func(n int, tp string) store.AttemptResult {
		return store.AttemptResult{
			Attempt: store.Attempt{DeliveryID: sent.GetDeliveryId(), Number: n, EventID: sent.GetEventId(), SubscriptionID: sub.GetId(),
				Tenant: "acme", StartedAt: now.Add(time.Duration(n) * time.Second), StatusCode: 500, TraceParent: tp},
			Status: store.DeliveryRetrying, NextAttemptAt: now.Add(time.Hour),
		}
	}
	err = ts.store.(store.Store).RecordAttempts(context.Background(), []store.AttemptResult{
		attempt(1, "00-"+traceID+"-00f067aa0ba902b7-01"),
		attempt(2, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", traceID} // newest first

	resp, err := admin.ListAttempts(ts.ctx(t, ts.operator), &hooklinev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: sent.GetDeliveryId()})
	if err != nil {
		t.Fatal(err)
	}
	code, body := ts.httpJSON(t, "GET", "/v1/attempts?tenant=acme&deliveryId="+sent.GetDeliveryId(), "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/attempts: %d %s", code, body)
	}
	var httpResp hooklinev1.ListAttemptsResponse
	if err := protojson.Unmarshal([]byte(body), &httpResp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, `"traceId":"`+traceID+`"`) {
		t.Errorf("the JSON does not name the trace id: %s", body)
	}
	for name, got := range map[string][]*hooklinev1.Attempt{"gRPC": resp.GetAttempts(), "HTTP": httpResp.GetAttempts()} {
		if len(got) != len(want) {
			t.Fatalf("%s: %d attempts, want %d", name, len(got), len(want))
		}
		for i, a := range got {
			if a.GetTraceId() != want[i] {
				t.Errorf("%s: attempt %d trace_id %q, want %q", name, a.GetNumber(), a.GetTraceId(), want[i])
			}
		}
	}
}
