package ingest

import (
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

func TestTraceIDOf(t *testing.T) {
	t.Parallel()
	const (
		id   = "4bf92f3577b34da6a3ce929d0e0e4736"
		span = "00f067aa0ba902b7"
	)
	tests := []struct {
		name string
		tp   string
		want string
	}{
		{"sampled", "00-" + id + "-" + span + "-01", id},
		{"not sampled", "00-" + id + "-" + span + "-00", id},
		{"not traced", "", ""},
		{"a later version with more fields", "01-" + id + "-" + span + "-01-whatever", id},
		{"a later version, exact size", "cc-" + id + "-" + span + "-01", id},
		{"version 00 with more fields", "00-" + id + "-" + span + "-01-x", ""},
		{"a later version, junk after the flags", "01-" + id + "-" + span + "-01x", ""},
		{"invalid version ff", "ff-" + id + "-" + span + "-01", ""},
		{"all-zero trace id", "00-00000000000000000000000000000000-" + span + "-01", ""},
		{"all-zero span id", "00-" + id + "-0000000000000000-01", ""},
		{"uppercase hex", "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + span + "-01", ""},
		{"not hex", "00-" + id[:31] + "g-" + span + "-01", ""},
		{"bad flags", "00-" + id + "-" + span + "-0z", ""},
		{"short", "00-" + id + "-" + span + "-1", ""},
		{"separators moved", "00" + id + "--" + span + "-01", ""},
		{"a bare trace id", id, ""},
	}
	for _, tt := range tests {
		if got := traceIDOf(tt.tp); got != tt.want {
			t.Errorf("%s: traceIDOf(%q) = %q, want %q", tt.name, tt.tp, got, tt.want)
		}
	}
}

func TestConvertTraceContext(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, on := range []bool{true, false} {
		p := subscriptionToProto(&store.Subscription{ID: "sub_1", Tenant: "acme", SendTraceContext: on}, now, withoutSecretValues)
		if p.GetSendTraceContext() != on {
			t.Errorf("subscription with SendTraceContext %v converted to send_trace_context %v", on, p.GetSendTraceContext())
		}
	}
	tests := []struct {
		tp, want string
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := attemptToProto(&store.Attempt{DeliveryID: "dlv_1", Number: 1, TraceParent: tt.tp}).GetTraceId(); got != tt.want {
			t.Errorf("attempt with traceparent %q: trace_id %q, want %q", tt.tp, got, tt.want)
		}
	}
}
