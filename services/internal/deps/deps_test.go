package deps

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// The production transport reports its window.
var _ dedupWindower = (*natsjs.Transport)(nil)

// windowed is a transport with a duplicate window; only DuplicateWindow
// is called.
type windowed struct {
	transport.Transport
	w time.Duration
}

func (w windowed) DuplicateWindow() time.Duration { return w.w }

func TestWarnIfOutlastsDedup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		tr    transport.Transport
		value time.Duration
		warn  bool
	}{
		{"shorter than the window", windowed{w: 30 * time.Second}, 20 * time.Second, false},
		{"as long as the window", windowed{w: 30 * time.Second}, 30 * time.Second, true},
		{"longer than the window", windowed{w: 30 * time.Second}, time.Minute, true},
		{"broker without a window", struct{ transport.Transport }{}, time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			d := Deps{Transport: tt.tr, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
			if got := d.WarnIfOutlastsDedup("fanout-ack-wait", tt.value); got != tt.warn {
				t.Fatalf("WarnIfOutlastsDedup = %v, want %v", got, tt.warn)
			}
			logged := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "flag=--fanout-ack-wait")
			if logged != tt.warn {
				t.Fatalf("warning logged = %v, want %v; log: %q", logged, tt.warn, buf.String())
			}
		})
	}
}
