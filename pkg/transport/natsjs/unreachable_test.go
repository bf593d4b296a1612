package natsjs_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/internal/lockedbuf"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

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
	var logs lockedbuf.Buffer
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
