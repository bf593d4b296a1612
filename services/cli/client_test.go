package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// fakeAPI is a real gRPC server implementing the ingest and admin services
// with canned responses. Every request and its authorization metadata are
// recorded by an interceptor, so tests can check what the CLI sent.
type fakeAPI struct {
	hooklinev1.UnimplementedIngestServiceServer
	hooklinev1.UnimplementedAdminServiceServer

	mu    sync.Mutex
	calls []call
}

type call struct {
	method string // short method name, such as "Publish"
	req    proto.Message
	auth   string
}

var (
	testTime = timestamppb.New(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	testSub  = &hooklinev1.Subscription{
		Id: "sub_1", Tenant: "acme", Url: "https://example.com/hooks", SendTraceContext: true,
		EventTypes: []string{"order.*"}, State: hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_ENABLED,
		Secrets:    []*hooklinev1.Secret{{Value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", CreateTime: testTime}},
		CreateTime: testTime, UpdateTime: testTime,
	}
	testDelivery = &hooklinev1.Delivery{
		Id: "dlv_1", EventId: "evt_1", SubscriptionId: "sub_1", Tenant: "acme", EventType: "order.created",
		Status: hooklinev1.DeliveryStatus_DELIVERY_STATUS_RETRYING, Attempts: 2, LastStatusCode: 503,
		NextAttemptTime: testTime, CreateTime: testTime, UpdateTime: testTime,
	}
)

func startFakeAPI(t *testing.T) (*fakeAPI, string) {
	t.Helper()
	f := &fakeAPI{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		c := call{method: info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:], req: req.(proto.Message)}
		if v := md.Get("authorization"); len(v) > 0 {
			c.auth = v[0]
		}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		return h(ctx, req)
	}))
	hooklinev1.RegisterIngestServiceServer(srv, f)
	hooklinev1.RegisterAdminServiceServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil {
			t.Errorf("gRPC Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return f, lis.Addr().String()
}

func (f *fakeAPI) recorded() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeAPI) Publish(_ context.Context, r *hooklinev1.PublishRequest) (*hooklinev1.PublishResponse, error) {
	return &hooklinev1.PublishResponse{EventId: "evt_1", Duplicate: r.GetIdempotencyKey() == "dup"}, nil
}

func (f *fakeAPI) CreateSubscription(_ context.Context, r *hooklinev1.CreateSubscriptionRequest) (*hooklinev1.Subscription, error) {
	if strings.HasPrefix(r.GetSubscription().GetUrl(), "ftp:") {
		return nil, status.Error(codes.InvalidArgument, `subscription.url: scheme "ftp" is not http or https`)
	}
	return testSub, nil
}

func (f *fakeAPI) GetSubscription(context.Context, *hooklinev1.GetSubscriptionRequest) (*hooklinev1.Subscription, error) {
	return nil, status.Error(codes.NotFound, "subscription sub_x not found")
}

func (f *fakeAPI) UpdateSubscription(context.Context, *hooklinev1.UpdateSubscriptionRequest) (*hooklinev1.Subscription, error) {
	return testSub, nil
}

func (f *fakeAPI) DeleteSubscription(context.Context, *hooklinev1.DeleteSubscriptionRequest) (*hooklinev1.DeleteSubscriptionResponse, error) {
	return &hooklinev1.DeleteSubscriptionResponse{}, nil
}

func (f *fakeAPI) RotateSubscriptionSecret(context.Context, *hooklinev1.RotateSubscriptionSecretRequest) (*hooklinev1.Subscription, error) {
	return testSub, nil
}

func (f *fakeAPI) DisableSubscription(context.Context, *hooklinev1.DisableSubscriptionRequest) (*hooklinev1.Subscription, error) {
	s := proto.CloneOf(testSub)
	s.State = hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_DISABLED
	s.DisabledReason = "maintenance"
	s.SendTraceContext = false
	return s, nil
}

func (f *fakeAPI) SendTestEvent(context.Context, *hooklinev1.SendTestEventRequest) (*hooklinev1.SendTestEventResponse, error) {
	return &hooklinev1.SendTestEventResponse{EventId: "evt_t", DeliveryId: "dlv_t"}, nil
}

// ListSubscriptions serves two pages: sub_1 (token "p2"), then sub_2.
func (f *fakeAPI) ListSubscriptions(_ context.Context, r *hooklinev1.ListSubscriptionsRequest) (*hooklinev1.ListSubscriptionsResponse, error) {
	if r.GetPageToken() == "p2" {
		s := proto.CloneOf(testSub)
		s.Id = "sub_2"
		return &hooklinev1.ListSubscriptionsResponse{Subscriptions: []*hooklinev1.Subscription{s}}, nil
	}
	return &hooklinev1.ListSubscriptionsResponse{Subscriptions: []*hooklinev1.Subscription{testSub}, NextPageToken: "p2"}, nil
}

func (f *fakeAPI) ListDeliveries(context.Context, *hooklinev1.ListDeliveriesRequest) (*hooklinev1.ListDeliveriesResponse, error) {
	return &hooklinev1.ListDeliveriesResponse{Deliveries: []*hooklinev1.Delivery{testDelivery}}, nil
}

func (f *fakeAPI) GetDelivery(context.Context, *hooklinev1.GetDeliveryRequest) (*hooklinev1.Delivery, error) {
	return testDelivery, nil
}

func (f *fakeAPI) Redeliver(context.Context, *hooklinev1.RedeliverRequest) (*hooklinev1.Delivery, error) {
	d := proto.CloneOf(testDelivery)
	d.Status = hooklinev1.DeliveryStatus_DELIVERY_STATUS_PENDING
	return d, nil
}

func (f *fakeAPI) ListAttempts(context.Context, *hooklinev1.ListAttemptsRequest) (*hooklinev1.ListAttemptsResponse, error) {
	return &hooklinev1.ListAttemptsResponse{Attempts: []*hooklinev1.Attempt{
		{DeliveryId: "dlv_1", Number: 2, StartTime: testTime, Duration: durationpb.New(120 * time.Millisecond), StatusCode: 503, ResponseBody: "busy",
			TraceId: "4bf92f3577b34da6a3ce929d0e0e4736"},
		{DeliveryId: "dlv_1", Number: 1, StartTime: testTime, Duration: durationpb.New(15 * time.Second), Error: "timeout"},
	}}, nil
}

func (f *fakeAPI) GetEvent(_ context.Context, r *hooklinev1.GetEventRequest) (*hooklinev1.Event, error) {
	return &hooklinev1.Event{
		Id: r.GetId(), Tenant: "acme", EventType: "order.created", Payload: []byte(`{"id":1}`),
		Labels: map[string]string{"region": "eu"}, OccurredAt: testTime, ReceiveTime: testTime,
	}, nil
}

// runCLI runs the hookline root command against addr with token "tok".
func runCLI(t *testing.T, addr string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"--server", addr, "--token", "tok"}, args...))
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func TestClientCommands(t *testing.T) {
	t.Parallel()
	dataFile := filepath.Join(t.TempDir(), "order.json")
	if err := os.WriteFile(dataFile, []byte(`{"id": 7}`), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		// want are the requests the server must receive, in order.
		want       []proto.Message
		wantOut    []string // substrings of stdout
		wantErrOut string   // substring of stderr
	}{
		{
			name: "publish",
			args: []string{"publish", "--tenant", "acme", "--type", "order.created", "--data", `{"id":1}`,
				"--idempotency-key", "k1", "--label", "region=eu", "--label", "tier=a=b", "--occurred-at", "2026-03-04T05:06:07Z"},
			want: []proto.Message{&hooklinev1.PublishRequest{
				Tenant: "acme", EventType: "order.created", Payload: []byte(`{"id":1}`), IdempotencyKey: "k1",
				Labels: map[string]string{"region": "eu", "tier": "a=b"}, OccurredAt: testTime,
			}},
			wantOut: []string{"event id:  evt_1\nduplicate: false\n"},
		},
		{
			name:    "publish data from file, duplicate",
			args:    []string{"publish", "--tenant", "acme", "--type", "order.created", "--data", "@" + dataFile, "--idempotency-key", "dup"},
			want:    []proto.Message{&hooklinev1.PublishRequest{Tenant: "acme", EventType: "order.created", Payload: []byte(`{"id": 7}`), IdempotencyKey: "dup"}},
			wantOut: []string{"duplicate: true"},
		},
		{
			name: "subscriptions create",
			args: []string{"subscriptions", "create", "--tenant", "acme", "--url", "https://example.com/hooks",
				"--event-type", "order.*", "--event-type", "invoice.paid", "--header", "X-Env=prod",
				"--timeout", "15s", "--retry-schedule", "5s,1m", "--rate-limit", "10", "--description", "orders", "--send-trace-context"},
			want: []proto.Message{&hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
				Tenant: "acme", Url: "https://example.com/hooks", Description: "orders",
				EventTypes: []string{"order.*", "invoice.paid"}, Headers: map[string]string{"X-Env": "prod"},
				Timeout: durationpb.New(15 * time.Second), RetrySchedule: []*durationpb.Duration{durationpb.New(5 * time.Second), durationpb.New(time.Minute)},
				RateLimit: 10, SendTraceContext: true,
			}}},
			wantOut: []string{"id:", "sub_1\n", "state:", "enabled\n", "signing secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
				"trace context:  sent\n"},
		},
		{
			name: "subscriptions update puts only given flags in the mask",
			args: []string{"subscriptions", "update", "sub_1", "--tenant", "acme", "--url", "https://new.example.com", "--rate-limit", "0"},
			want: []proto.Message{&hooklinev1.UpdateSubscriptionRequest{
				Subscription: &hooklinev1.Subscription{Id: "sub_1", Tenant: "acme", Url: "https://new.example.com"},
				UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"url", "rate_limit"}},
			}},
			wantOut: []string{"sub_1"},
		},
		{
			name: "subscriptions update turns trace context off",
			args: []string{"subscriptions", "update", "sub_1", "--tenant", "acme", "--send-trace-context=false"},
			want: []proto.Message{&hooklinev1.UpdateSubscriptionRequest{
				Subscription: &hooklinev1.Subscription{Id: "sub_1", Tenant: "acme"},
				UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"send_trace_context"}},
			}},
			wantOut: []string{"sub_1"},
		},
		{
			name:    "subscriptions disable shows trace context not sent",
			args:    []string{"subscriptions", "disable", "sub_1", "--tenant", "acme"},
			want:    []proto.Message{&hooklinev1.DisableSubscriptionRequest{Id: "sub_1", Tenant: "acme"}},
			wantOut: []string{"trace context:   not sent\n"},
		},
		{
			name: "subscriptions list follows pages with --all",
			args: []string{"subscriptions", "list", "--tenant", "acme", "--state", "enabled", "--limit", "1", "--all"},
			want: []proto.Message{
				&hooklinev1.ListSubscriptionsRequest{Tenant: "acme", State: hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_ENABLED, PageSize: 1},
				&hooklinev1.ListSubscriptionsRequest{Tenant: "acme", State: hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_ENABLED, PageSize: 1, PageToken: "p2"},
			},
			wantOut: []string{
				"ID     STATE    URL                        EVENT TYPES  DESCRIPTION  CREATED\n" +
					"sub_1  enabled  https://example.com/hooks  order.*      -            2026-03-04T05:06:07Z\n" +
					"sub_2  enabled  https://example.com/hooks  order.*      -            2026-03-04T05:06:07Z\n",
			},
		},
		{
			name:       "subscriptions list one page prints the next token",
			args:       []string{"subscriptions", "list", "--tenant", "acme"},
			want:       []proto.Message{&hooklinev1.ListSubscriptionsRequest{Tenant: "acme"}},
			wantOut:    []string{"sub_1"},
			wantErrOut: "more results: --page-token p2 (or --all)",
		},
		{
			name:    "subscriptions delete",
			args:    []string{"subscriptions", "delete", "sub_1", "--tenant", "acme"},
			want:    []proto.Message{&hooklinev1.DeleteSubscriptionRequest{Id: "sub_1", Tenant: "acme"}},
			wantOut: []string{"deleted subscription sub_1\n"},
		},
		{
			name:    "subscriptions disable",
			args:    []string{"subscriptions", "disable", "sub_1", "--tenant", "acme", "--reason", "maintenance"},
			want:    []proto.Message{&hooklinev1.DisableSubscriptionRequest{Id: "sub_1", Tenant: "acme", Reason: "maintenance"}},
			wantOut: []string{"disabled\n", "disabled reason:", "maintenance\n"},
		},
		{
			name:    "subscriptions rotate-secret with ttl",
			args:    []string{"subscriptions", "rotate-secret", "sub_1", "--tenant", "acme", "--previous-ttl", "24h"},
			want:    []proto.Message{&hooklinev1.RotateSubscriptionSecretRequest{Id: "sub_1", Tenant: "acme", PreviousSecretTtl: durationpb.New(24 * time.Hour)}},
			wantOut: []string{"whsec_"},
		},
		{
			name: "subscriptions rotate-secret without ttl",
			args: []string{"subscriptions", "rotate-secret", "sub_1", "--tenant", "acme"},
			want: []proto.Message{&hooklinev1.RotateSubscriptionSecretRequest{Id: "sub_1", Tenant: "acme"}},
		},
		{
			name:    "subscriptions test",
			args:    []string{"subscriptions", "test", "sub_1", "--tenant", "acme", "--type", "ping", "--data", `{"x":true}`},
			want:    []proto.Message{&hooklinev1.SendTestEventRequest{Id: "sub_1", Tenant: "acme", EventType: "ping", Payload: []byte(`{"x":true}`)}},
			wantOut: []string{"event id:    evt_t\ndelivery id: dlv_t\n"},
		},
		{
			name: "deliveries list",
			args: []string{"deliveries", "list", "--tenant", "acme", "--subscription", "sub_1", "--event", "evt_1", "--status", "retrying",
				"--created-after", "2026-03-04T05:06:07Z", "--limit", "5"},
			want: []proto.Message{&hooklinev1.ListDeliveriesRequest{
				Tenant: "acme", SubscriptionId: "sub_1", EventId: "evt_1", Status: hooklinev1.DeliveryStatus_DELIVERY_STATUS_RETRYING,
				CreatedAfter: testTime, PageSize: 5,
			}},
			wantOut: []string{
				"ID     STATUS    ATTEMPTS  LAST CODE  EVENT TYPE     EVENT  SUBSCRIPTION  NEXT ATTEMPT          CREATED\n" +
					"dlv_1  retrying  2         503        order.created  evt_1  sub_1         2026-03-04T05:06:07Z  2026-03-04T05:06:07Z\n",
			},
		},
		{
			name:    "deliveries get",
			args:    []string{"deliveries", "get", "dlv_1", "--tenant", "acme"},
			want:    []proto.Message{&hooklinev1.GetDeliveryRequest{Id: "dlv_1", Tenant: "acme"}},
			wantOut: []string{"status:           retrying\n", "last status code: 503\n"},
		},
		{
			name: "attempts list",
			args: []string{"attempts", "list", "--tenant", "acme", "--delivery", "dlv_1"},
			want: []proto.Message{&hooklinev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: "dlv_1"}},
			wantOut: []string{
				"DELIVERY  #  STARTED               DURATION  CODE  ERROR    RESPONSE  TRACE\n",
				"dlv_1     2  2026-03-04T05:06:07Z  120ms     503   -        busy      4bf92f3577b34da6a3ce929d0e0e4736\n",
				"dlv_1     1  2026-03-04T05:06:07Z  15s       -     timeout  -         -\n",
			},
		},
		{
			name:    "redeliver",
			args:    []string{"redeliver", "dlv_1", "--tenant", "acme"},
			want:    []proto.Message{&hooklinev1.RedeliverRequest{DeliveryId: "dlv_1", Tenant: "acme"}},
			wantOut: []string{"pending\n"},
		},
		{
			name:    "events get",
			args:    []string{"events", "get", "evt_9", "--tenant", "acme"},
			want:    []proto.Message{&hooklinev1.GetEventRequest{Id: "evt_9", Tenant: "acme"}},
			wantOut: []string{"id:", "evt_9\n", "labels:", "region=eu\n", "payload:", "{\"id\":1}\n"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api, addr := startFakeAPI(t)
			out, errOut, err := runCLI(t, addr, tc.args...)
			if err != nil {
				t.Fatalf("hookline %s: %v\nstderr: %s", strings.Join(tc.args, " "), err, errOut)
			}
			calls := api.recorded()
			if len(calls) != len(tc.want) {
				t.Fatalf("server got %d calls, want %d: %v", len(calls), len(tc.want), calls)
			}
			for i, c := range calls {
				if !proto.Equal(c.req, tc.want[i]) {
					t.Errorf("call %d (%s):\n got %v\nwant %v", i, c.method, c.req, tc.want[i])
				}
				if c.auth != "Bearer tok" {
					t.Errorf("call %d authorization = %q, want %q", i, c.auth, "Bearer tok")
				}
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errOut, tc.wantErrOut) {
				t.Errorf("stderr %q does not contain %q", errOut, tc.wantErrOut)
			}
		})
	}
}

func TestClientJSONOutput(t *testing.T) {
	t.Parallel()
	_, addr := startFakeAPI(t)

	out, _, err := runCLI(t, addr, "--output", "json", "attempts", "list", "--tenant", "acme")
	if err != nil {
		t.Fatalf("attempts list: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d JSON lines, want 2:\n%s", len(lines), out)
	}
	var a hooklinev1.Attempt
	if err := protojson.Unmarshal([]byte(lines[1]), &a); err != nil {
		t.Fatalf("line %q: %v", lines[1], err)
	}
	if a.GetNumber() != 1 || a.GetError() != "timeout" {
		t.Errorf("second attempt = %v", &a)
	}

	out, _, err = runCLI(t, addr, "-o", "json", "subscriptions", "create", "--tenant", "acme", "--url", "https://example.com/hooks")
	if err != nil {
		t.Fatalf("subscriptions create: %v", err)
	}
	var s hooklinev1.Subscription
	if err := protojson.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !proto.Equal(&s, testSub) {
		t.Errorf("decoded subscription %v, want %v", &s, testSub)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("JSON output is not one line: %q", out)
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	_, addr := startFakeAPI(t)
	tests := []struct {
		name     string
		args     []string
		wantErr  string
		wantCode codes.Code // codes.OK for errors detected before any call
	}{
		{"server InvalidArgument", []string{"subscriptions", "create", "--tenant", "acme", "--url", "ftp://x"},
			`InvalidArgument: subscription.url: scheme "ftp" is not http or https`, codes.InvalidArgument},
		{"server NotFound", []string{"subscriptions", "get", "sub_x", "--tenant", "acme"},
			"NotFound: subscription sub_x not found", codes.NotFound},
		{"unimplemented", []string{"subscriptions", "enable", "sub_1"},
			"Unimplemented: method EnableSubscription not implemented", codes.Unimplemented},
		{"bad status", []string{"deliveries", "list", "--status", "lost"},
			`--status "lost": want one of dead, parked, pending, retrying, succeeded`, codes.OK},
		{"bad data", []string{"publish", "--type", "a", "--data", "{"}, "--data: payload is not valid JSON", codes.OK},
		{"missing url", []string{"subscriptions", "create", "--tenant", "acme"}, "--url is required", codes.OK},
		{"empty update", []string{"subscriptions", "update", "sub_1"}, "nothing to update", codes.OK},
		{"bad output", []string{"-o", "yaml", "events", "get", "e"}, `--output "yaml"`, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := runCLI(t, addr, tc.args...)
			if err == nil {
				t.Fatalf("hookline %v succeeded, want error %q", tc.args, tc.wantErr)
			}
			if tc.wantCode != codes.OK {
				if err.Error() != tc.wantErr {
					t.Errorf("error %q, want %q", err, tc.wantErr)
				}
				var se *StatusError
				if !errors.As(err, &se) || status.Code(err) != tc.wantCode {
					t.Errorf("error %v: code %s, want %s", err, status.Code(err), tc.wantCode)
				}
			} else if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestClientUnreachableServer(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens here any more
	_, _, err = runCLI(t, addr, "--timeout", "5s", "events", "get", "evt_1")
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("error %v: code %s, want Unavailable or DeadlineExceeded", err, code)
	}
	if !strings.HasPrefix(err.Error(), status.Code(err).String()+": ") {
		t.Errorf("error %q does not start with its code", err)
	}
}
