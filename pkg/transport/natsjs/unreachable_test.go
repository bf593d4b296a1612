package natsjs_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// lockedBuffer is a log sink safe for the connection's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNewUnreachableSaysItOnce: with nothing listening at the URL, New
// keeps trying until its context ends, says why in one warning line (not
// one per attempt), and returns an error naming the server.
func TestNewUnreachableSaysItOnce(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tr, err := natsjs.New(ctx, natsjs.Config{URL: "nats://" + addr, ReconnectWait: 50 * time.Millisecond}, logger)
	if err == nil {
		_ = tr.Close()
		t.Fatal("New succeeded with nothing listening")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the server %s", err, addr)
	}
	warnings := strings.Count(logs.String(), "level=WARN")
	if warnings != 1 {
		t.Errorf("%d warning lines over about 60 connection attempts, want 1:\n%s", warnings, logs.String())
	}
}
