package deps

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
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
			d := Deps[store.Store]{Transport: tt.tr, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
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

func TestCheck(t *testing.T) {
	t.Parallel()
	var st store.Store = struct{ store.Store }{}
	var tr transport.Transport = struct{ transport.Transport }{}
	tests := []struct {
		name    string
		d       Deps[store.Store]
		wantErr bool
	}{
		{"complete", Deps[store.Store]{Store: st, Transport: tr}, false},
		{"no store", Deps[store.Store]{Transport: tr}, true},
		{"no transport", Deps[store.Store]{Store: st}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.d.Check("delivery")
			if (err != nil) != tt.wantErr {
				t.Fatalf("Check = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "delivery") {
					t.Fatalf("error %q does not name the service", err)
				}
				return
			}
			if tt.d.Logger == nil || tt.d.Now == nil || tt.d.Resolver == nil {
				t.Fatalf("defaults not filled in: %+v", tt.d)
			}
		})
	}
}
