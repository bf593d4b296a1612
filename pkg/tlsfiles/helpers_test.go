package tlsfiles_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/tlsfiles"
)

// ioTimeout bounds every network operation of a test, so a bug shows up
// as a failure rather than a hang.
const ioTimeout = 10 * time.Second

// fakeClock is a Reloader clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logRecorder is a slog.Handler keeping every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// count returns how many records of level were logged.
func (h *logRecorder) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level {
			n++
		}
	}
	return n
}

// dump renders every record, for failure messages.
func (h *logRecorder) dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.records {
		fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		b.WriteByte('\n')
	}
	return b.String()
}

// serveTLS listens on 127.0.0.1:0 with tls.Listen and cfg, completes each
// connection's handshake, writes "ok" and closes it. It returns the
// listener's address; the listener and every connection are closed, and
// their goroutines ended, when the test ends.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(ioTimeout))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				_, _ = io.WriteString(c, "ok")
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial connects to addr with cfg and reads the server's "ok", so a client
// certificate the server refuses after the client's side of a TLS 1.3
// handshake completed still shows up as an error.
func dial(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return tls.ConnectionState{}, fmt.Errorf("reading after handshake: %w", err)
	}
	if string(buf) != "ok" {
		return tls.ConnectionState{}, fmt.Errorf("server said %q, want ok", buf)
	}
	return c.(*tls.Conn).ConnectionState(), nil
}

// servedCN dials addr and returns the common name of the certificate the
// server presented; it fails the test if the connection fails.
func servedCN(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	cs, err := dial(addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return cs.PeerCertificates[0].Subject.CommonName
}

// touch moves each file's modification time a minute past its current
// one, so a Reloader sees it changed even on a file system with coarse
// timestamps.
func touch(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("touch: %v", err)
		}
		mt := fi.ModTime().Add(time.Minute)
		if err := os.Chtimes(f, mt, mt); err != nil {
			t.Fatalf("touch: %v", err)
		}
	}
}

// writeFile replaces path's contents in place.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// newReloader makes a Reloader on a fake clock with a recording logger.
func newReloader(t *testing.T, c tlsfiles.ServerConfig) (*tlsfiles.Reloader, *fakeClock, *logRecorder) {
	t.Helper()
	clock := newFakeClock()
	logs := &logRecorder{}
	r, err := tlsfiles.NewReloaderWithClock(c, slog.New(logs), clock.Now)
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	return r, clock, logs
}

// isRefused reports whether err is the server refusing the handshake
// with a TLS alert, as opposed to the client giving up on the server.
func isRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "remote error: tls:")
}
