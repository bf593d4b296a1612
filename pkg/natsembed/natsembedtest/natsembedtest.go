// Package natsembedtest starts embedded NATS servers for tests.
package natsembedtest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/pkg/natsembed"
)

// Start starts an embedded NATS server with JetStream on a random loopback
// port and a fresh t.TempDir() store, and shuts it down when the test ends.
// It fails the test if the server cannot start.
func Start(t testing.TB) *natsembed.Server {
	t.Helper()
	return start(t, natsembed.Options{Port: -1, StoreDir: t.TempDir()})
}

// Restart shuts s down and starts a new server on the same host, port and
// store dir, so clients reconnect to it and find the same streams and
// messages. The new server is shut down when the test ends.
func Restart(t testing.TB, s *natsembed.Server) *natsembed.Server {
	t.Helper()
	opts := s.Options()
	s.Shutdown()
	return start(t, opts)
}

func start(t testing.TB, opts natsembed.Options) *natsembed.Server {
	t.Helper()
	s, err := natsembed.Start(opts)
	if err != nil {
		t.Fatalf("natsembedtest: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// JetStream connects a plain NATS client to url with opts, closed when the
// test ends, and returns it with its JetStream context: for tests that
// look at the broker behind Hookline's back. It fails the test if either
// cannot be had.
func JetStream(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("natsembedtest: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natsembedtest: jetstream: %v", err)
	}
	return nc, js
}
