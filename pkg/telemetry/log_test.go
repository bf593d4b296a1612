package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/hookline/hookline/pkg/telemetry"
)

// TestLogHandlerAddsTraceIDs: a line written in a traced context carries
// the span's trace_id and span_id, also through With and WithGroup; a
// line without a span carries neither.
func TestLogHandlerAddsTraceIDs(t *testing.T) {
	t.Parallel()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	traced := trace.ContextWithSpanContext(context.Background(), sc)
	tests := []struct {
		name      string
		ctx       context.Context
		derive    func(*slog.Logger) *slog.Logger
		wantTrace bool
	}{
		{"traced", traced, func(l *slog.Logger) *slog.Logger { return l }, true},
		{"traced, derived logger", traced, func(l *slog.Logger) *slog.Logger { return l.With("service", "delivery").WithGroup("g") }, true},
		{"no span", context.Background(), func(l *slog.Logger) *slog.Logger { return l }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logger := tc.derive(slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))))
			logger.InfoContext(tc.ctx, "attempt recorded")
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log line %q: %v", buf.String(), err)
			}
			_, hasTrace := line["trace_id"]
			if !hasTrace {
				if g, ok := line["g"].(map[string]any); ok {
					line = g
					_, hasTrace = line["trace_id"]
				}
			}
			if hasTrace != tc.wantTrace {
				t.Fatalf("trace_id present %v, want %v: %s", hasTrace, tc.wantTrace, buf.String())
			}
			if tc.wantTrace && (line["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || line["span_id"] != "00f067aa0ba902b7") {
				t.Fatalf("ids %v/%v, want the span's: %s", line["trace_id"], line["span_id"], buf.String())
			}
		})
	}
}
