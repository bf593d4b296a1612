package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

func parseSubscriptionFlags(t *testing.T, args []string) (*pflag.FlagSet, *subscriptionFlags) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f := &subscriptionFlags{}
	addSubscriptionFlags(fs, f)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %v: %v", args, err)
	}
	return fs, f
}

func durations(ds ...time.Duration) []*durationpb.Duration {
	out := make([]*durationpb.Duration, len(ds))
	for i, d := range ds {
		out[i] = durationpb.New(d)
	}
	return out
}

func TestBuildCreateRequest(t *testing.T) {
	t.Parallel()
	const url = "https://example.com/h"
	tests := []struct {
		name    string
		args    []string
		want    *hooklinev1.Subscription // Tenant "acme" is added
		wantErr string
	}{
		{"url only", []string{"--url", url}, &hooklinev1.Subscription{Url: url}, ""},
		{"repeated and comma-separated event types",
			[]string{"--url", url, "--event-type", "order.*", "--event-type", "invoice.paid,invoice.voided"},
			&hooklinev1.Subscription{Url: url, EventTypes: []string{"order.*", "invoice.paid", "invoice.voided"}}, ""},
		{"headers keep commas and '=' in values",
			[]string{"--url", url, "--header", "Authorization=Basic a=b", "--header", "X-List=1,2"},
			&hooklinev1.Subscription{Url: url, Headers: map[string]string{"Authorization": "Basic a=b", "X-List": "1,2"}}, ""},
		{"every field",
			[]string{"--url", url, "--description", "d", "--timeout", "15s", "--retry-schedule", "5s, 1m,2h", "--rate-limit", "50", "--event-type", "*",
				"--send-trace-context"},
			&hooklinev1.Subscription{Url: url, Description: "d", Timeout: durationpb.New(15 * time.Second),
				RetrySchedule: durations(5*time.Second, time.Minute, 2*time.Hour), RateLimit: 50, EventTypes: []string{"*"},
				SendTraceContext: true}, ""},
		{"trace context off is the default", []string{"--url", url, "--send-trace-context=false"}, &hooklinev1.Subscription{Url: url}, ""},
		{"missing url", []string{"--event-type", "a"}, nil, "--url is required"},
		{"bad header", []string{"--url", url, "--header", "novalue"}, nil, `--header "novalue": want KEY=VALUE`},
		{"empty header key", []string{"--url", url, "--header", "=v"}, nil, "want KEY=VALUE"},
		{"bad retry delay", []string{"--url", url, "--retry-schedule", "5s,soon"}, nil, "--retry-schedule"},
		{"non-positive retry delay", []string{"--url", url, "--retry-schedule", "0s"}, nil, "must be positive"},
		{"zero timeout", []string{"--url", url, "--timeout", "0s"}, nil, "--timeout 0s: must be positive"},
		{"negative rate limit", []string{"--url", url, "--rate-limit", "-1"}, nil, "--rate-limit -1"},
		{"rate limit overflow", []string{"--url", url, "--rate-limit", "4294967296"}, nil, "--rate-limit 4294967296"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs, f := parseSubscriptionFlags(t, tc.args)
			req, err := buildCreateRequest("acme", fs, f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("buildCreateRequest: %v", err)
			}
			want := proto.CloneOf(tc.want)
			want.Tenant = "acme"
			if !proto.Equal(req, &hooklinev1.CreateSubscriptionRequest{Subscription: want}) {
				t.Errorf("got %v\nwant subscription %v", req, want)
			}
		})
	}
}

func TestBuildUpdateRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		want      *hooklinev1.Subscription // Id and Tenant are added
		wantPaths []string
		wantErr   string
	}{
		{"one field", []string{"--description", "new"}, &hooklinev1.Subscription{Description: "new"}, []string{"description"}, ""},
		{"zero values still go in the mask",
			[]string{"--rate-limit", "0", "--description", "", "--retry-schedule", ""},
			&hooklinev1.Subscription{}, []string{"description", "retry_schedule", "rate_limit"}, ""},
		{"lists replace",
			[]string{"--event-type", "a.*", "--header", "K=V", "--timeout", "2s"},
			&hooklinev1.Subscription{EventTypes: []string{"a.*"}, Headers: map[string]string{"K": "V"}, Timeout: durationpb.New(2 * time.Second)},
			[]string{"event_types", "headers", "timeout"}, ""},
		{"trace context on", []string{"--send-trace-context"}, &hooklinev1.Subscription{SendTraceContext: true}, []string{"send_trace_context"}, ""},
		{"trace context off still goes in the mask", []string{"--send-trace-context=false"}, &hooklinev1.Subscription{}, []string{"send_trace_context"}, ""},
		{"nothing given", nil, nil, nil, "nothing to update"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs, f := parseSubscriptionFlags(t, tc.args)
			req, err := buildUpdateRequest("sub_1", "acme", fs, f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("buildUpdateRequest: %v", err)
			}
			want := proto.CloneOf(tc.want)
			want.Id, want.Tenant = "sub_1", "acme"
			wantReq := &hooklinev1.UpdateSubscriptionRequest{Subscription: want, UpdateMask: &fieldmaskpb.FieldMask{Paths: tc.wantPaths}}
			if !proto.Equal(req, wantReq) {
				t.Errorf("got %v\nwant %v", req, wantReq)
			}
		})
	}
}

func TestParseEnumAndTimes(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"succeeded", "SUCCEEDED", "DELIVERY_STATUS_SUCCEEDED", "Succeeded"} {
		v, err := parseEnum("status", in, deliveryStatusPrefix, hooklinev1.DeliveryStatus_value)
		if err != nil || hooklinev1.DeliveryStatus(v) != hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
			t.Errorf("parseEnum(%q) = %v, %v", in, v, err)
		}
	}
	for _, in := range []string{"unspecified", "nope"} {
		if _, err := parseEnum("status", in, deliveryStatusPrefix, hooklinev1.DeliveryStatus_value); err == nil {
			t.Errorf("parseEnum(%q) succeeded", in)
		}
	}
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	ts, err := parseTimeFlag("created-after", "90m", now)
	if err != nil || !ts.AsTime().Equal(now.Add(-90*time.Minute)) {
		t.Errorf("parseTimeFlag(90m) = %v, %v", ts, err)
	}
	if _, err := parseTimeFlag("created-after", "yesterday", now); err == nil {
		t.Error("parseTimeFlag(yesterday) succeeded")
	}
}

// TestTLSFlagErrorsNameTheFlag: bad TLS files are reported before dialling,
// each naming the CLI's flag.
func TestTLSFlagErrorsNameTheFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing CA file", []string{"--ca-file", "/nonexistent/ca.pem"}, "--ca-file: "},
		{"cert without key", []string{"--cert-file", "/nonexistent/c.pem"}, "--key-file"},
	}
	for _, tt := range tests {
		_, _, err := runCLI(t, "127.0.0.1:1", append(tt.args, "subscriptions", "list")...)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "----") {
			t.Errorf("%s: %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
}
