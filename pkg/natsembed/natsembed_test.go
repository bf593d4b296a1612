package natsembed_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/poll"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// attemptTimeout bounds each broker request a test makes after a restart;
// poll retries it within its own, generous deadline.
const attemptTimeout = 2 * time.Second

func TestStartRequiresStoreDir(t *testing.T) {
	t.Parallel()
	if _, err := natsembed.Start(natsembed.Options{Port: -1}); err == nil {
		t.Fatal("Start without StoreDir succeeded")
	}
}

func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = natsembed.Start(natsembed.Options{Port: port, StoreDir: t.TempDir()})
	if err == nil {
		t.Fatal("Start on a port in use succeeded")
	}
}

func TestStartRestartKeepsData(t *testing.T) {
	t.Parallel()
	s := natsembedtest.Start(t)
	u := s.ClientURL()
	if _, portStr, err := net.SplitHostPort(u[len("nats://"):]); err != nil {
		t.Fatalf("ClientURL %q: %v", u, err)
	} else if p, _ := strconv.Atoi(portStr); p <= 0 {
		t.Fatalf("ClientURL %q has no real port", u)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The client keeps the first server's options: Restart keeps its
	// credentials.
	_, js := natsembedtest.Connect(t, s, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.x", []byte("hello")); err != nil {
		t.Fatal(err)
	}

	s2 := natsembedtest.Restart(t, s)
	if s2.ClientURL() != u {
		t.Fatalf("restarted URL %q, want %q", s2.ClientURL(), u)
	}
	if s2.Options().Credentials.PublicKey() != s.Options().Credentials.PublicKey() {
		t.Fatal("restarted server has new credentials")
	}
	s.Shutdown() // second call is a no-op

	// The client reconnects to the new server, which has the stored
	// message. A request sent while the client reconnects can be lost
	// with the old connection and is then never answered: each attempt
	// has its own deadline, so a lost one costs attemptTimeout, not the
	// whole wait.
	var msg *jetstream.RawStreamMsg
	poll.UntilReason(t, "the stored message after the restart", func() (bool, string) {
		actx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		st, err := js.Stream(actx, "T")
		if err != nil {
			return false, fmt.Sprintf("stream info: %v", err)
		}
		if msg, err = st.GetMsg(actx, 1); err != nil {
			return false, fmt.Sprintf("get message 1: %v", err)
		}
		return true, ""
	})
	if string(msg.Data) != "hello" {
		t.Fatalf("got %q after restart", msg.Data)
	}
}

// TestInProcessConn: a client connected through nats.InProcessServer
// talks to JetStream without a socket: given a URL where nothing listens,
// it connects and publishes all the same.
func TestInProcessConn(t *testing.T) {
	t.Parallel()
	s := natsembedtest.Start(t)
	nc, err := nats.Connect("nats://127.0.0.1:1", append(s.ConnectOptions(), nats.InProcessServer(s))...)
	if err != nil {
		t.Fatalf("connect in process: %v", err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "p.x", []byte("hello"))
	if err != nil {
		t.Fatalf("publish in process: %v", err)
	}
	msg, err := js.Stream(ctx, "P")
	if err != nil {
		t.Fatal(err)
	}
	got, err := msg.GetMsg(ctx, ack.Sequence)
	if err != nil || string(got.Data) != "hello" {
		t.Fatalf("stored message = %v, %v", got, err)
	}
}
