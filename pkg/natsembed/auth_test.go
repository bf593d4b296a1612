package natsembed_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/pkg/internal/lockedbuf"
	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
)

// connect opens a client with opts and closes it when the test ends.
func connect(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(5 * time.Second)}, opts...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// publish creates a stream and stores a message in it, through nc.
func publish(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "A", Subjects: []string{"a.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "a.x", []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// wantRefused fails the test unless err is the server's refusal of a
// client without valid credentials.
func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: connected, want it refused", what)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("%s: %v, want %v", what, err, nats.ErrAuthorization)
	}
}

// TestPortRefusesAnonymousClients: the client port admits a client with
// the server's credentials and refuses one without, or with another
// server's.
func TestPortRefusesAnonymousClients(t *testing.T) {
	t.Parallel()
	s := natsembedtest.Start(t)
	other := natsembedtest.Start(t)
	if s.Options().Credentials.PublicKey() == other.Options().Credentials.PublicKey() {
		t.Fatal("two servers generated the same credentials")
	}
	_, err := connect(t, s.ClientURL())
	wantRefused(t, "anonymous client on the port", err)
	_, err = connect(t, s.ClientURL(), other.ConnectOptions()...)
	wantRefused(t, "client with another server's credentials", err)
	if got := natsembedtest.AnonymousAnswer(t, s); got != natsembedtest.Refusal {
		t.Fatalf("anonymous client in process: server answered %q, want %q", got, natsembedtest.Refusal)
	}

	nc, err := connect(t, s.ClientURL(), s.ConnectOptions()...)
	if err != nil {
		t.Fatalf("client with the credentials: %v", err)
	}
	publish(t, nc)
}

// TestInProcessOnly: a server started InProcessOnly opens no port, admits
// an in-process client with its credentials and refuses one without.
func TestInProcessOnly(t *testing.T) {
	t.Parallel()
	s, err := natsembed.Start(natsembed.Options{InProcessOnly: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	if a := s.ListenAddr(); a != nil {
		t.Fatalf("in-process server listens on %v", a)
	}
	if s.ClientURL() != natsembed.InProcessURL {
		t.Fatalf("ClientURL %q, want %q", s.ClientURL(), natsembed.InProcessURL)
	}
	if got := natsembedtest.AnonymousAnswer(t, s); got != natsembedtest.Refusal {
		t.Fatalf("anonymous client in process: server answered %q, want %q", got, natsembedtest.Refusal)
	}
	if _, err := connect(t, s.ClientURL(), s.Options().Credentials.Option()); err == nil {
		t.Fatal("connected to InProcessURL over the network")
	}

	nc, err := connect(t, s.ClientURL(), s.ConnectOptions()...)
	if err != nil {
		t.Fatalf("in-process client with the credentials: %v", err)
	}
	publish(t, nc)
}

// TestGivenCredentials: a server started with credentials admits them.
func TestGivenCredentials(t *testing.T) {
	t.Parallel()
	c, err := natsembed.NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	s, err := natsembed.Start(natsembed.Options{Port: -1, StoreDir: t.TempDir(), Credentials: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	if _, err := connect(t, s.ClientURL(), c.Option()); err != nil {
		t.Fatalf("client with the given credentials: %v", err)
	}
}

// TestCredentialsNeverShown: neither fmt, slog nor the server's log shows
// the seed of the credentials.
func TestCredentialsNeverShown(t *testing.T) {
	t.Parallel()
	var logs lockedbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	s, err := natsembed.Start(natsembed.Options{Port: -1, StoreDir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := connect(t, s.ClientURL(), s.ConnectOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, nc)
	nc.Close()

	opts := s.Options()
	seed := string(opts.Credentials.Seed())
	if !strings.HasPrefix(seed, "SU") {
		t.Fatalf("seed %.2q… is not an NKey user seed", seed)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%v %+v %#v %s %v %#v\n", opts, opts, opts, opts.Credentials, s, s)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "opts", opts, "credentials", opts.Credentials)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "opts", opts, "credentials", opts.Credentials)
	for what, text := range map[string]string{"fmt and slog": out.String(), "the server's log": logs.String()} {
		if strings.Contains(text, seed) || strings.Contains(text, seed[2:20]) {
			t.Errorf("%s show the seed", what)
		}
	}
	if !strings.Contains(out.String(), opts.Credentials.PublicKey()) {
		t.Errorf("fmt and slog do not show the public key:\n%s", out.String())
	}
	if logs.String() == "" {
		t.Error("the server logged nothing")
	}
}
