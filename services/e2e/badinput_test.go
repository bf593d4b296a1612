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
