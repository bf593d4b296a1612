// Package natsembedtest starts embedded NATS servers for tests.
package natsembedtest

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/pkg/natsembed"
)

// Start starts an embedded NATS server with JetStream on a random loopback
// port and a fresh t.TempDir() store, and shuts it down when the test ends.
// Like every embedded server it refuses anonymous clients: connect with
// its ConnectOptions (or Connect here). It fails the test if the server
// cannot start.
func Start(t testing.TB) *natsembed.Server {
	t.Helper()
	return start(t, natsembed.Options{Port: -1, StoreDir: t.TempDir()})
}

// Restart shuts s down and starts a new server on the same host, port,
// store dir and credentials, so clients reconnect to it and find the same
// streams and messages. The new server is shut down when the test ends.
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

// Connect is JetStream on the embedded server s, with its credentials.
func Connect(t testing.TB, s *natsembed.Server, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return JetStream(t, s.ClientURL(), append(s.ConnectOptions(), opts...)...)
}

// JetStream connects a plain NATS client to url with opts, closed when the
// test ends, and returns it with its JetStream context: for tests that
// look at the broker behind Hookline's back. An embedded server needs its
// ConnectOptions among opts (Connect passes them); a nats-server started
// without authentication needs none. It fails the test if either cannot be
// had.
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

// Refusal is a server's answer to a client without valid credentials.
const Refusal = "-ERR 'Authorization Violation'"

// AnonymousAnswer speaks the NATS protocol on a raw in-process connection
// to s: it reads the server's INFO, sends a CONNECT without credentials
// and returns the server's answer, Refusal from a server that refuses
// anonymous clients. (nats.Connect cannot show a refusal in process: on
// the unbuffered pipe, its handshake and the server's error are written
// at once and block each other until the server's write deadline.) A
// server that admits the client answers nothing, and the test fails after
// 10 seconds.
func AnonymousAnswer(t testing.TB, s *natsembed.Server) string {
	t.Helper()
	c, err := s.InProcessConn()
	if err != nil {
		t.Fatalf("natsembedtest: %v", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("natsembedtest: %v", err)
	}
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("natsembedtest: server's greeting %q, %v", info, err)
	}
	if _, err := c.Write([]byte(`CONNECT {"verbose":false,"pedantic":false,"protocol":1}` + "\r\n")); err != nil {
		t.Fatalf("natsembedtest: send CONNECT: %v", err)
	}
	answer, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("natsembedtest: answer to an anonymous CONNECT: %q, %v", answer, err)
	}
	return strings.TrimSpace(answer)
}
