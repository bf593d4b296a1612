package kafka_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/pkg/poll"
)

// restartable is a kfake broker that persists to a directory of its own
// and can be stopped and started again on the same loopback port, as a
// real broker restarts: clients keep the address and must reconnect.
type restartable struct {
	dir  string
	opts []kfake.Opt
	port int // fixed by the first start

	mu sync.Mutex
	c  *kfake.Cluster // nil while stopped
}

// restartBindTimeout bounds rebinding the port and the first connection
// after a restart.
const restartBindTimeout = 10 * time.Second

// newRestartable starts a persisting broker (kfake.DataDir in a directory
// of t's) on a free loopback port, with opts; it is stopped when t ends.
func newRestartable(t testing.TB, opts ...kfake.Opt) *restartable {
	t.Helper()
	b := &restartable{dir: t.TempDir(), opts: opts}
	t.Cleanup(b.Stop)
	b.Start(t)
	return b
}

// Addr returns the broker's address, which does not change across
// restarts.
func (b *restartable) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
}

// Addrs returns []string{b.Addr()}, for kafka.Config.Brokers.
func (b *restartable) Addrs() []string { return []string{b.Addr()} }

// Cluster returns the running broker, nil while stopped.
func (b *restartable) Cluster() *kfake.Cluster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.c
}

// Stop closes the broker, which writes its state to its directory;
// idempotent.
func (b *restartable) Stop() {
	b.mu.Lock()
	c := b.c
	b.c = nil
	b.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Start starts the broker (again, on its port, with the state its
// directory holds) and returns once it accepts connections. The port may
// be held for a moment after a stop: binding is retried, within
// restartBindTimeout.
func (b *restartable) Start(t testing.TB) {
	t.Helper()
	if b.Cluster() != nil {
		t.Fatal("restartable.Start: the broker is running")
	}
	opts := append([]kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(b.dir)}, b.opts...)
	if b.port != 0 {
		opts = append(opts, kfake.Ports(b.port))
	}
	var c *kfake.Cluster
	poll.WithinReason(t, restartBindTimeout, fmt.Sprintf("kfake to start on port %d", b.port), func() (bool, string) {
		var err error
		c, err = kfake.NewCluster(opts...)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if b.port == 0 {
		_, p, err := net.SplitHostPort(c.ListenAddrs()[0])
		if err == nil {
			b.port, err = strconv.Atoi(p)
		}
		if err != nil {
			c.Close()
			t.Fatalf("kfake address %v: %v", c.ListenAddrs(), err)
		}
	}
	b.mu.Lock()
	b.c = c
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), restartBindTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		t.Fatalf("kfake on %s does not accept connections: %v", b.Addr(), err)
	}
	_ = conn.Close()
}

// Restart stops the broker and starts it again: transporttest's
// Harness.Restart.
func (b *restartable) Restart(t *testing.T) {
	t.Helper()
	b.Stop()
	b.Start(t)
}
