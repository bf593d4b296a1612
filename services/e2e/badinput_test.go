package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/hookline/hookline/pkg/poll"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// TestBadInput sends each kind of bad input over gRPC and over HTTP/JSON
// and checks the status code and that the message names the field.
func TestBadInput(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, t.TempDir())
	big := append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), 300<<10)...)
	big = append(big, `"}`...)
	pub := func(mut func(*hooklinev1.PublishRequest)) *hooklinev1.PublishRequest {
		r := &hooklinev1.PublishRequest{Tenant: tenant, EventType: "order.created", Payload: []byte(`{}`)}
		mut(r)
		return r
	}
	sub := func(mut func(*hooklinev1.Subscription)) *hooklinev1.CreateSubscriptionRequest {
		s := &hooklinev1.Subscription{Tenant: tenant, Url: "http://127.0.0.1:9/hook", EventTypes: []string{"*"}}
		mut(s)
		return &hooklinev1.CreateSubscriptionRequest{Subscription: s}
	}
	tests := []struct {
		name      string
		req       proto.Message
		path      string // HTTP path; body is the request (or its subscription)
		body      proto.Message
		wantField string
	}{
		{"empty tenant", pub(func(r *hooklinev1.PublishRequest) { r.Tenant = "" }), "/v1/events:publish", nil, "tenant"},
		{"payload not JSON", pub(func(r *hooklinev1.PublishRequest) { r.Payload = []byte("{not json") }), "/v1/events:publish", nil, "payload"},
		{"payload over the cap", pub(func(r *hooklinev1.PublishRequest) { r.Payload = big }), "/v1/events:publish", nil, "payload"},
		{"bad event type", pub(func(r *hooklinev1.PublishRequest) { r.EventType = "order..created" }), "/v1/events:publish", nil, "event_type"},
		{"unknown pattern syntax", sub(func(s *hooklinev1.Subscription) { s.EventTypes = []string{"order.#"} }), "/v1/subscriptions", nil, "subscription.event_types[0]"},
		{"wildcard in the middle", sub(func(s *hooklinev1.Subscription) { s.EventTypes = []string{"*.created"} }), "/v1/subscriptions", nil, "subscription.event_types[0]"},
		{"URL not http(s)", sub(func(s *hooklinev1.Subscription) { s.Url = "ftp://127.0.0.1/hook" }), "/v1/subscriptions", nil, "subscription.url"},
		{"private address not allow-listed", sub(func(s *hooklinev1.Subscription) { s.Url = "http://10.1.2.3/hook" }), "/v1/subscriptions", nil, "subscription.url"},
		{"metadata address", sub(func(s *hooklinev1.Subscription) { s.Url = "http://169.254.169.254/latest" }), "/v1/subscriptions", nil, "subscription.url"},
		{"reserved custom header", sub(func(s *hooklinev1.Subscription) { s.Headers = map[string]string{"webhook-signature": "v1,forged"} }), "/v1/subscriptions", nil, `subscription.headers["webhook-signature"]`},
		{"empty subscription tenant", sub(func(s *hooklinev1.Subscription) { s.Tenant = "" }), "/v1/subscriptions", nil, "subscription.tenant"},
		{"payload not UTF-8", pub(func(r *hooklinev1.PublishRequest) { r.Payload = []byte("{\"x\":\"\xff\xfe\"}") }), "/v1/events:publish", nil, "payload"},
		{"header value with a control byte", sub(func(s *hooklinev1.Subscription) { s.Headers = map[string]string{"X-Team": "a\x01b"} }), "/v1/subscriptions", nil, `subscription.headers["X-Team"]`},
		{"header value with DEL", sub(func(s *hooklinev1.Subscription) { s.Headers = map[string]string{"X-Team": "a\x7fb"} }), "/v1/subscriptions", nil, `subscription.headers["X-Team"]`},
		{"id on create", sub(func(s *hooklinev1.Subscription) { s.Id = "sub_01jfakefakefakefakefakefake" }), "/v1/subscriptions", nil, "subscription.id"},
		{"secret on create", sub(func(s *hooklinev1.Subscription) {
			s.Secrets = []*hooklinev1.Secret{{Value: "whsec_Y2hvc2VuLWJ5LXRoZS1jYWxsZXItMTIzNDU2"}}
		}), "/v1/subscriptions", nil, "subscription.secrets"},
		{"state on create", sub(func(s *hooklinev1.Subscription) { s.State = hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_DISABLED }), "/v1/subscriptions", nil, "subscription.state"},
		{"retry delay of 1ns", sub(func(s *hooklinev1.Subscription) { s.RetrySchedule = []*durationpb.Duration{{Nanos: 1}} }), "/v1/subscriptions", nil, "subscription.retry_schedule[0]"},
		{"timeout of 1ns", sub(func(s *hooklinev1.Subscription) { s.Timeout = &durationpb.Duration{Nanos: 1} }), "/v1/subscriptions", nil, "subscription.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/grpc", func(t *testing.T) {
			t.Parallel()
			var err error
			switch r := tt.req.(type) {
			case *hooklinev1.PublishRequest:
				_, err = p.ingest.Publish(ctxT(t), r)
			case *hooklinev1.CreateSubscriptionRequest:
				_, err = p.admin.CreateSubscription(ctxT(t), r)
			}
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("code = %v (%v), want InvalidArgument", st.Code(), err)
			}
			if !strings.Contains(st.Message(), tt.wantField+":") {
				t.Errorf("message %q does not name %s", st.Message(), tt.wantField)
			}
		})
		t.Run(tt.name+"/http", func(t *testing.T) {
			t.Parallel()
			body := tt.req
			if r, ok := tt.req.(*hooklinev1.CreateSubscriptionRequest); ok {
				body = r.GetSubscription() // the HTTP body is the subscription itself
			}
			b, err := protojson.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Post("http://"+p.srv.HTTPAddr()+tt.path, "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("HTTP %d %s, want 400", resp.StatusCode, raw)
			}
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("error body %s: %v", raw, err)
			}
			if codes.Code(e.Code) != codes.InvalidArgument || !strings.Contains(e.Message, tt.wantField+":") {
				t.Errorf("error body %s: want InvalidArgument naming %s", raw, tt.wantField)
			}
		})
	}
}

// TestBadJSONBodies sends HTTP bodies that are not the request's JSON: each
// is refused with 400, naming where it went wrong.
func TestBadJSONBodies(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, t.TempDir())
	tests := []struct {
		name, path, body, want string
	}{
		{"truncated", "/v1/events:publish", `{"tenant":"acme","eventType":"a.b","payl`, "body: not valid JSON at byte"},
		{"not JSON", "/v1/subscriptions", `tenant=acme`, "body: not valid JSON at byte 2"},
		{"unknown field", "/v1/events:publish", `{"tenant":"acme","eventType":"a.b","payload":"e30=","tenantt":"x"}`, `unknown field "tenantt"`},
		{"unknown subscription field", "/v1/subscriptions", `{"tenant":"acme","url":"http://127.0.0.1:9/","eventTypes":["*"],"retries":3}`, `unknown field "retries"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := http.Post("http://"+p.srv.HTTPAddr()+tt.path, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var e struct{ Message string }
			if err := json.Unmarshal(raw, &e); err != nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("HTTP %d %s, want 400 with %q", resp.StatusCode, raw, tt.want)
			}
		})
	}
}

// TestUpdateMaskSpellings: an update mask may name a field as in the proto
// (event_types) or as in JSON (eventTypes), over gRPC and HTTP.
func TestUpdateMaskSpellings(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, t.TempDir())
	created, err := p.admin.CreateSubscription(ctxT(t), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
		Tenant: tenant, Url: "http://127.0.0.1:9/hook", EventTypes: []string{"*"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, path := range []string{"event_types", "eventTypes"} {
		pattern := []string{"order.*", "invoice.*"}[i]
		got, err := p.admin.UpdateSubscription(ctxT(t), &hooklinev1.UpdateSubscriptionRequest{
			Subscription: &hooklinev1.Subscription{Id: created.GetId(), Tenant: tenant, EventTypes: []string{pattern}},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{path}},
		})
		if err != nil || len(got.GetEventTypes()) != 1 || got.GetEventTypes()[0] != pattern {
			t.Errorf("gRPC update with mask %q: %v, %v", path, got.GetEventTypes(), err)
		}
	}
	req, _ := http.NewRequest("PATCH", "http://"+p.srv.HTTPAddr()+"/v1/subscriptions/"+created.GetId()+"?updateMask=eventTypes",
		strings.NewReader(`{"tenant":"`+tenant+`","eventTypes":["refund.*"]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"refund.*"`) {
		t.Errorf("HTTP PATCH ?updateMask=eventTypes: %d %s", resp.StatusCode, raw)
	}
}

// TestRedeliverOrphanIsRefused: a delivery whose subscription was deleted
// cannot be sent again: FailedPrecondition, and the delivery is unchanged.
func TestRedeliverOrphanIsRefused(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
		p := startPipeline(t, t.TempDir(), tr.use)
		r := newReceiver(t, nil)
		sub := subscribe(t, p, r, []string{"*"})
		sent, err := p.admin.SendTestEvent(ctxT(t), &hooklinev1.SendTestEventRequest{Id: sub.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "test delivery", func() bool {
			d, err := p.admin.GetDelivery(ctxT(t), &hooklinev1.GetDeliveryRequest{Id: sent.GetDeliveryId()})
			return err == nil && d.GetStatus() == hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
		})
		if _, err := p.admin.DeleteSubscription(ctxT(t), &hooklinev1.DeleteSubscriptionRequest{Id: sub.GetId()}); err != nil {
			t.Fatal(err)
		}
		_, err = p.admin.Redeliver(ctxT(t), &hooklinev1.RedeliverRequest{DeliveryId: sent.GetDeliveryId()})
		if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "delivery_id:") {
			t.Fatalf("redeliver of an orphan: %v, want FailedPrecondition naming delivery_id", err)
		}
		d, err := p.admin.GetDelivery(ctxT(t), &hooklinev1.GetDeliveryRequest{Id: sent.GetDeliveryId()})
		if err != nil || d.GetStatus() != hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
			t.Errorf("the orphan after a refused redeliver: %v, %v; want it still succeeded", d.GetStatus(), err)
		}
	})
}
