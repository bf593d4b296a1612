package kafka

import (
	"context"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/pkg/transport"
)

// TestLagOfGroupWithoutMembers: for a group with no members, Lag counts
// from the committed offset (or the oldest record, without one) to the log
// end, all of it Pending, whatever the commit metadata says: a "held"
// commit left by a member that is gone holds nothing now.
func TestLagOfGroupWithoutMembers(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := New(ctx, Config{Brokers: c.ListenAddrs(), Partitions: 1}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	const n = 10
	ms := make([]transport.Message, n)
	for i := range ms {
		ms[i] = transport.Message{ID: "m" + strconv.Itoa(i), Key: "k", Data: []byte("x")}
	}
	if _, err := tr.Publish(ctx, transport.Deliveries, ms...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	held := commitMeta{state: stateHeld, token: "gone", seq: 1, pos: 7}.String()
	released := commitMeta{state: stateReleased, token: "gone", seq: 2, pos: 7}.String()
	tests := []struct {
		name     string
		offset   int64 // committed on the only partition; -1: no commit
		metadata string
		want     transport.Lag
	}{
		{"no commit", -1, "", transport.Lag{Pending: n}},
		{"held by a member that is gone", 3, held, transport.Lag{Pending: n - 3}},
		{"released", 3, released, transport.Lag{Pending: n - 3}},
		{"committed by other software", 3, "", transport.Lag{Pending: n - 3}},
		{"committed at the log end", n, held, transport.Lag{}},
		{"committed past the log end", n + 5, "", transport.Lag{}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			group := "lag-" + strconv.Itoa(i)
			if tc.offset >= 0 {
				resp, err := tr.client.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{
					GroupID:      group,
					GenerationID: -1,
					Topics:       map[string][]kafkago.OffsetCommit{DeliveriesTopic: {{Partition: 0, Offset: tc.offset, Metadata: tc.metadata}}},
				})
				if err != nil {
					t.Fatalf("OffsetCommit: %v", err)
				}
				for _, p := range resp.Topics[DeliveriesTopic] {
					if p.Error != nil {
						t.Fatalf("OffsetCommit: %v", p.Error)
					}
				}
			}
			lag, err := tr.Lag(ctx, transport.Deliveries, group)
			if err != nil {
				t.Fatalf("Lag: %v", err)
			}
			if lag != tc.want {
				t.Errorf("Lag = %+v, want %+v", lag, tc.want)
			}
		})
	}
}
