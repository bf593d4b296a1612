package ingest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// TestIdempotencyKeyReuse: a key retried with the same request answers
// duplicate with the first event; reused with another payload or type it
// is AlreadyExists naming the field and the first event (gRPC, and 409
// over HTTP), within a call or across calls, and nothing is published.
func TestIdempotencyKeyReuse(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, nil)
	in := hooklinev1.NewIngestServiceClient(ts.conn)
	ev := func(typ, payload string) *hooklinev1.PublishRequest {
		return &hooklinev1.PublishRequest{Tenant: "acme", EventType: typ, Payload: []byte(payload), IdempotencyKey: "order-42"}
	}
	first, err := in.Publish(ts.ctx(t, ts.operator), ev("order.created", `{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	again, err := in.Publish(ts.ctx(t, ts.operator), ev("order.created", `{"n":1}`))
	if err != nil || !again.GetDuplicate() || again.GetEventId() != first.GetEventId() {
		t.Fatalf("retry with the same request: %v, %v; want duplicate of %s", again, err, first.GetEventId())
	}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"another payload", func() error {
			_, err := in.Publish(ts.ctx(t, ts.operator), ev("order.created", `{"n":2}`))
			return err
		}, "idempotency_key"},
		{"another type", func() error {
			_, err := in.Publish(ts.ctx(t, ts.operator), ev("order.updated", `{"n":1}`))
			return err
		}, "idempotency_key"},
		{"in a batch", func() error {
			_, err := in.PublishBatch(ts.ctx(t, ts.operator), &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{
				{Tenant: "acme", EventType: "a.b", Payload: []byte(`{}`)}, ev("order.created", `{"n":3}`),
			}})
			return err
		}, "events[1].idempotency_key"},
		{"twice within one batch", func() error {
			k := func(p string) *hooklinev1.PublishRequest {
				return &hooklinev1.PublishRequest{Tenant: "acme", EventType: "a.b", Payload: []byte(p), IdempotencyKey: "fresh-key"}
			}
			_, err := in.PublishBatch(ts.ctx(t, ts.operator), &hooklinev1.PublishBatchRequest{Events: []*hooklinev1.PublishRequest{k(`{"a":1}`), k(`{"a":2}`)}})
			return err
		}, "events[1].idempotency_key"},
	}
	for _, tt := range tests {
		err := tt.call()
		st := status.Convert(err)
		if st.Code() != codes.AlreadyExists || !strings.HasPrefix(st.Message(), tt.field+": ") {
			t.Errorf("%s: %v, want AlreadyExists naming %s", tt.name, err, tt.field)
			continue
		}
		if tt.name != "twice within one batch" && !strings.Contains(st.Message(), first.GetEventId()) {
			t.Errorf("%s: %q does not name the first event %s", tt.name, st.Message(), first.GetEventId())
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if i, ok := d.(*errdetails.ErrorInfo); ok {
				info = i
			}
		}
		if info == nil || info.GetReason() != "IDEMPOTENCY_KEY_REUSED" {
			t.Errorf("%s: details %v, want an ErrorInfo IDEMPOTENCY_KEY_REUSED", tt.name, st.Details())
		}
	}
	// "fresh-key" was refused as a whole: it is still free.
	if r, err := in.Publish(ts.ctx(t, ts.operator), &hooklinev1.PublishRequest{Tenant: "acme", EventType: "a.b", Payload: []byte(`{"a":1}`), IdempotencyKey: "fresh-key"}); err != nil || r.GetDuplicate() {
		t.Errorf("a key of a refused batch: %v, %v; want it unused", r, err)
	}

	req, _ := http.NewRequest("POST", "http://"+ts.svc.HTTPAddr()+"/v1/events:publish",
		strings.NewReader(`{"tenant":"acme","eventType":"order.created","payload":"eyJuIjo5fQ==","idempotencyKey":"order-42"}`))
	req.Header.Set("Authorization", "Bearer "+ts.operator)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), first.GetEventId()) {
		t.Errorf("HTTP reuse: %d %s, want 409 naming %s", resp.StatusCode, body, first.GetEventId())
	}
}

// TestPageTokensAreBoundToTheirQuery: a token continues the list that
// issued it; a made-up token, or one from another list, other filters or
// another tenant, is InvalidArgument naming page_token.
func TestPageTokensAreBoundToTheirQuery(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, nil)
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	for _, tenant := range []string{"acme", "acme", "acme", "globex", "globex"} {
		if _, err := admin.CreateSubscription(ts.ctx(t, ts.operator), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
			Tenant: tenant, Url: "http://127.0.0.1:9/", EventTypes: []string{"*"},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := admin.ListSubscriptions(ts.ctx(t, ts.operator), &hooklinev1.ListSubscriptionsRequest{Tenant: "acme", PageSize: 1})
	if err != nil || page.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	tok := page.GetNextPageToken()
	next, err := admin.ListSubscriptions(ts.ctx(t, ts.operator), &hooklinev1.ListSubscriptionsRequest{Tenant: "acme", PageSize: 1, PageToken: tok})
	if err != nil || len(next.GetSubscriptions()) != 1 || next.GetSubscriptions()[0].GetId() == page.GetSubscriptions()[0].GetId() {
		t.Fatalf("second page: %v, %v", next, err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"made up", func() error {
			_, err := admin.ListSubscriptions(ts.ctx(t, ts.operator), &hooklinev1.ListSubscriptionsRequest{Tenant: "acme", PageToken: "garbage"})
			return err
		}},
		{"other tenant", func() error {
			_, err := admin.ListSubscriptions(ts.ctx(t, ts.operator), &hooklinev1.ListSubscriptionsRequest{Tenant: "globex", PageToken: tok})
			return err
		}},
		{"other filter", func() error {
			_, err := admin.ListSubscriptions(ts.ctx(t, ts.operator), &hooklinev1.ListSubscriptionsRequest{
				Tenant: "acme", State: hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_DISABLED, PageToken: tok})
			return err
		}},
		{"other list", func() error {
			_, err := admin.ListDeliveries(ts.ctx(t, ts.operator), &hooklinev1.ListDeliveriesRequest{Tenant: "acme", PageToken: tok})
			return err
		}},
	}
	for _, tt := range tests {
		st := status.Convert(tt.call())
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "page_token: ") {
			t.Errorf("%s: %v, want InvalidArgument naming page_token", tt.name, st.Err())
		}
	}
}
