package devserver

import (
	"bytes"
	"log/slog"
	"regexp"
	"sync"
	"testing"

	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/services/ingest"
	"github.com/hookline/hookline/services/internal/servicetable"
)

// syncBuffer is a bytes.Buffer safe for concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// nkeySeed matches an encoded NKey user seed.
var nkeySeed = regexp.MustCompile(`SU[A-Z2-7]{56}`)

// TestNATSOnlyInProcess: the development server's NATS opens no port,
// refuses a client without the generated credentials, serves the
// pipeline with them, and logs no seed.
func TestNATSOnlyInProcess(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	in := servicetable.ConfigOf[ingest.Config](cfg.Services)
	in.GRPCAddr, in.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(t.Context(), cfg, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer srv.Close()

	if !srv.nats.Options().InProcessOnly || srv.nats.ClientURL() != natsembed.InProcessURL {
		t.Errorf("embedded NATS at %s, in process only: %v; want no port", srv.nats.ClientURL(), srv.nats.Options().InProcessOnly)
	}
	if got := natsembedtest.AnonymousAnswer(t, srv.nats); got != natsembedtest.Refusal {
		t.Errorf("anonymous client in process: server answered %q, want %q", got, natsembedtest.Refusal)
	}
	if err := srv.transport.Ready(t.Context()); err != nil {
		t.Errorf("the pipeline's transport: %v", err)
	}
	srv.Close()
	if m := nkeySeed.FindString(logs.String()); m != "" {
		t.Errorf("the log shows an NKey seed:\n%s", logs.String())
	}
}
