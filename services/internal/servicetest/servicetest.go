// Package servicetest gives the services' tests their real dependencies:
// an embedded NATS JetStream server with a connected transport, and a
// SQLite store in a temporary directory or a CockroachDB store on a fresh
// PostgreSQL database, all closed when the test ends.
package servicetest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/crdb"
	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// Logger discards logs unless HOOKLINE_TEST_LOG is set, in which case it
// writes debug-level text to stderr.
func Logger() *slog.Logger {
	if os.Getenv("HOOKLINE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Run runs a service's Run (or any long-running loop) in the background
// until the returned stop is called or tb ends. stop cancels run's context
// and fails tb unless run returns nil within 30 s; calling it again does
// nothing.
func Run(tb testing.TB, run func(ctx context.Context) error) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("Run = %v", err)
				}
			case <-time.After(30 * time.Second):
				tb.Error("Run did not return within 30 s of cancel")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// Transport starts an embedded NATS server for tb and returns a transport
// connected to it.
func Transport(tb testing.TB) *natsjs.Transport {
	tb.Helper()
	ns := natsembedtest.Start(tb)
	tr, err := natsjs.New(context.Background(), natsjs.Config{URL: ns.ClientURL(), Options: ns.ConnectOptions()}, Logger())
	if err != nil {
		tb.Fatalf("natsjs.New: %v", err)
	}
	tb.Cleanup(func() { _ = tr.Close() })
	return tr
}

// Keyring returns a keyring of one new random key, for a test's store.
func Keyring(tb testing.TB) *keyring.Keyring {
	tb.Helper()
	entry, err := keyring.Generate("test-1")
	if err != nil {
		tb.Fatal(err)
	}
	k, err := keyring.Parse(entry)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Store opens a fresh SQLite store in tb's temporary directory.
func Store(tb testing.TB) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "hookline.db"), sqlite.Options{Keyring: Keyring(tb)}, Logger())
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// Postgres opens the CockroachDB store on a fresh, migrated PostgreSQL
// database (see crdbtest.NewDatabase), dropped when tb ends.
func Postgres(tb testing.TB) *crdb.Store {
	tb.Helper()
	st, err := crdb.Open(context.Background(), crdbtest.NewDatabase(tb), crdb.Options{Migrate: true, Keyring: Keyring(tb)}, Logger())
	if err != nil {
		tb.Fatalf("crdb.Open: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// Backend is one store implementation the services' tests run against.
type Backend struct {
	Name string
	Open func(tb testing.TB) store.Store
}

// Backends are every store implementation, for tests of behaviour that
// depends on the store (replicas sharing work, claims, purges).
var Backends = []Backend{
	{"sqlite", func(tb testing.TB) store.Store { return Store(tb) }},
	{"postgres", func(tb testing.TB) store.Store { return Postgres(tb) }},
}

// Replica is a shared transport as one replica sees it: it counts the
// messages of Stream its Consume handlers were handed, so a test can show
// that several replicas on one broker split the work.
type Replica struct {
	transport.Transport
	Stream  transport.Stream
	handled atomic.Int64
}

// Consume counts each message of r.Stream, then hands it to h.
func (r *Replica) Consume(ctx context.Context, s transport.Stream, cfg transport.ConsumerConfig, h transport.Handler) error {
	return r.Transport.Consume(ctx, s, cfg, func(ctx context.Context, m transport.Received) {
		if s == r.Stream {
			r.handled.Add(1)
		}
		h(ctx, m)
	})
}

// Handled is how many messages of r.Stream this replica was handed.
func (r *Replica) Handled() int64 { return r.handled.Load() }
