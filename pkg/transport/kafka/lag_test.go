package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
)

// waitLag polls tr's lag of group on stream, each request bounded by
// attemptTimeout, until it is want.
func waitLag(t *testing.T, tr *kafka.Transport, stream transport.Stream, group string, want transport.Lag) {
	t.Helper()
	poll.WithinReason(t, waitTimeout, fmt.Sprintf("lag of %s on %s to be %+v", group, stream, want), func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
		defer cancel()
		lag, err := tr.Lag(ctx, stream, group)
		if err != nil {
			return false, err.Error()
		}
		return lag == want, fmt.Sprintf("Lag = %+v", lag)
	})
}

// partitionLeaders returns the distinct brokers leading topic's partitions.
func partitionLeaders(t *testing.T, brokers []string, topic string) map[int]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), attemptTimeout)
	defer cancel()
	rt := &kafkago.Transport{}
	defer rt.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: attemptTimeout, Transport: rt}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	leaders := map[int]bool{}
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			leaders[p.Leader.ID] = true
		}
	}
	return leaders
}

// TestLagAcrossBrokers: on a three-broker cluster, where the topic's
// partitions have different leaders and the group's coordinator is one
// of them, Lag sums every partition, read by a client that knows a
// single broker as well as by the group's member: a new group, one whose
// handlers hold messages, and one that acknowledged everything.
func TestLagAcrossBrokers(t *testing.T) {
	t.Parallel()
	const n, hold = 40, 4
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	member := openWith(t, kafka.Config{Brokers: c.ListenAddrs()})
	observer := openWith(t, kafka.Config{Brokers: c.ListenAddrs()[2:]})
	if l := partitionLeaders(t, c.ListenAddrs(), kafka.DeliveriesTopic); len(l) < 2 {
		t.Fatalf("the partitions of %s are led by %d broker(s), want several", kafka.DeliveriesTopic, len(l))
	}
	ms := make([]transport.Message, n)
	for i := range ms {
		ms[i] = transport.Message{ID: "lag-" + strconv.Itoa(i), Key: "key-" + strconv.Itoa(i), Data: []byte("x")}
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if _, err := member.Publish(ctx, transport.Deliveries, ms...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	trs := []*kafka.Transport{member, observer}
	for _, tr := range trs {
		waitLag(t, tr, transport.Deliveries, "workers", transport.Lag{Pending: n})
	}

	release := make(chan struct{})
	var mu sync.Mutex
	got := map[string]bool{}
	handled := func(k int) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= k, fmt.Sprintf("%d of %d", len(got), k)
	}
	cctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- member.Consume(cctx, transport.Deliveries, transport.ConsumerConfig{Group: "workers", Concurrency: hold, MaxAckPending: hold},
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
	poll.WithinReason(t, waitTimeout, "the handlers to hold messages", func() (bool, string) { return handled(hold) })
	for _, tr := range trs {
		waitLag(t, tr, transport.Deliveries, "workers", transport.Lag{Pending: n - hold, Unacked: hold})
	}
	close(release)
	poll.WithinReason(t, waitTimeout, "every message handled", func() (bool, string) { return handled(n) })
	for _, tr := range trs {
		waitLag(t, tr, transport.Deliveries, "workers", transport.Lag{})
	}
}
