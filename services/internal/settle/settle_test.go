package settle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/groupcommit"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/internal/settle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestActSettlesAsDecided runs every kind of decision on real broker
// messages: an ack and a durable commit are never seen again, a nak and a
// failed commit bring the message back.
func TestActSettlesAsDecided(t *testing.T) {
	t.Parallel()
	tr := servicetest.Transport(t)
	b := groupcommit.New(groupcommit.Config{}, func(_ context.Context, items []string, errs []error) {
		for i, it := range items {
			if it == "fail" {
				errs[i] = errors.New("store down")
			}
		}
	})
	defer b.Close()
	s := &settle.Settler[string]{Log: servicetest.Logger(), Batch: b, Backoff: 10 * time.Millisecond}
	decide := map[string]settle.Decision[string]{
		"ack":         settle.Ack[string](),
		"nak":         settle.Nak[string](10 * time.Millisecond),
		"commit":      settle.Commit("ok"),
		"commit-fail": settle.Commit("fail"),
	}
	wantAcked := map[string]bool{"ack": true, "nak": false, "commit": true, "commit-fail": false}
	for name := range decide {
		if _, err := tr.Publish(context.Background(), transport.Deliveries, transport.Message{ID: name, Data: []byte(name)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(chan string, 64)
	stop := servicetest.Run(t, func(ctx context.Context) error {
		return tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "g", AckWait: time.Minute}, func(_ context.Context, m transport.Received) {
			name := string(m.Message().Data)
			if got := s.Act(m, decide[name]); got != wantAcked[name] {
				t.Errorf("Act(%s) = %v, want %v", name, got, wantAcked[name])
			}
			seen <- name
		})
	})
	counts := map[string]int{}
	deadline := time.After(30 * time.Second)
	for counts["nak"] < 3 || counts["commit-fail"] < 3 {
		select {
		case name := <-seen:
			counts[name]++
		case <-deadline:
			t.Fatalf("handed-back messages came back too rarely: %v", counts)
		}
	}
	stop()
	for name, acked := range wantAcked {
		if acked && counts[name] != 1 {
			t.Errorf("%s was seen %d times, want once: an acknowledged message came back", name, counts[name])
		}
	}
}
