package natsjs_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// waitLag polls tr's lag of group on stream, each request bounded by
// attemptTimeout, until it is want.
func waitLag(t *testing.T, tr *natsjs.Transport, stream transport.Stream, group string, want transport.Lag) {
	t.Helper()
	poll.WithinReason(t, clusterWait, fmt.Sprintf("lag of %s on %s to be %+v", group, stream, want), func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		lag, err := tr.Lag(ctx, stream, group)
		if err != nil {
			return false, err.Error()
		}
		return lag == want, fmt.Sprintf("Lag = %+v", lag)
	})
}

// TestClusterLag: on a three-node cluster with R3 streams, a client on
// every node reads the same lag of a consumer group (the consumer's
// leader answers), whichever node the group's member is connected to: a
// group without a consumer yet, one whose handlers hold messages, and one
// that acknowledged everything.
func TestClusterLag(t *testing.T) {
	t.Parallel()
	const n, hold = 30, 4
	c := natsembedtest.StartCluster(t, 3)
	base := natsjs.Config{Options: append(c.ConnectOptions(), nats.DontRandomize()), Replicas: 3}
	nodes := make([]*natsjs.Transport, c.Size())
	for i := range nodes {
		cfg := base
		cfg.URL = c.ClientURL(i)
		cfg.Name = "node-" + strconv.Itoa(i)
		nodes[i] = openWith(t, cfg, nil)
	}
	member := nodes[0]

	ms := make([]transport.Message, n)
	for i := range ms {
		ms[i] = transport.Message{ID: "lag-" + strconv.Itoa(i), Subject: "acme.order.created", Data: []byte("x")}
	}
	retry(t, "publishing on the R3 stream", func(ctx context.Context) error {
		_, err := member.Publish(ctx, transport.Events, ms...)
		return err
	})
	for _, tr := range nodes {
		waitLag(t, tr, transport.Events, "fanout", transport.Lag{Pending: n})
	}

	release := make(chan struct{})
	var mu sync.Mutex
	got := map[string]bool{}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- member.Consume(ctx, transport.Events, transport.ConsumerConfig{Group: "fanout", Concurrency: hold, MaxAckPending: hold},
			func(hctx context.Context, m transport.Received) {
				mu.Lock()
				got[m.Message().ID] = true
				mu.Unlock()
				select {
				case <-release:
				case <-hctx.Done():
				}
				_ = m.Ack(hctx)
			})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	}()
	handledAtLeast := func(k int) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= k, fmt.Sprintf("%d of %d", len(got), k)
	}
	poll.WithinReason(t, clusterWait, "the handlers to hold messages", func() (bool, string) { return handledAtLeast(hold) })
	for _, tr := range nodes {
		waitLag(t, tr, transport.Events, "fanout", transport.Lag{Pending: n - hold, Unacked: hold})
	}
	close(release)
	poll.WithinReason(t, clusterWait, "every message handled", func() (bool, string) { return handledAtLeast(n) })
	for _, tr := range nodes {
		waitLag(t, tr, transport.Events, "fanout", transport.Lag{})
	}
}
