package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// logRecorder is a slog.Handler that keeps every record, so tests can
// count what a Transport logged. With KAFKA_TEST_LOG set it also passes
// every record on to testLogger's handler.
type logRecorder struct {
	mu      *sync.Mutex
	records *[]slog.Record
	next    slog.Handler // nil: record only
	attrs   []slog.Attr
}

func newLogRecorder(t testing.TB) (*slog.Logger, *logRecorder) {
	r := &logRecorder{mu: &sync.Mutex{}, records: new([]slog.Record)}
	if l := testLogger(t); l != nil {
		r.next = l.Handler()
	}
	return slog.New(r), r
}

// Enabled implements slog.Handler: every level is recorded.
func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	*r.records = append(*r.records, rec)
	r.mu.Unlock()
	if r.next != nil && r.next.Enabled(ctx, rec.Level) {
		return r.next.Handle(ctx, rec)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	return &c
}

// WithGroup implements slog.Handler; groups are flattened.
func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// count returns how many records at level have a message containing msg.
func (r *logRecorder) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range *r.records {
		if rec.Level == level && strings.Contains(rec.Message, msg) {
			n++
		}
	}
	return n
}

// atLeast returns the records at level or above, rendered, for failure
// messages and counts.
func (r *logRecorder) atLeast(level slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range *r.records {
		if rec.Level < level {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}
