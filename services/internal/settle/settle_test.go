package settle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/groupcommit"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/internal/settle"
)

// TestCommitAcksOnlyDurableWork runs Commit on real broker messages: a
// write that succeeds acks the message, one that fails hands it back.
func TestCommitAcksOnlyDurableWork(t *testing.T) {
	t.Parallel()
	tr := servicetest.Transport(t)
	log := servicetest.Logger()
	b := groupcommit.New(groupcommit.Config{}, func(_ context.Context, items []string, errs []error) {
		for i, it := range items {
			if it == "fail" {
				errs[i] = errors.New("store down")
			}
		}
	})
	defer b.Close()
	if _, err := tr.Publish(context.Background(), transport.Deliveries,
		transport.Message{ID: "ok", Data: []byte("ok")}, transport.Message{ID: "fail", Data: []byte("fail")}); err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: "g", AckWait: time.Minute}, func(_ context.Context, m transport.Received) {
			item := string(m.Message().Data)
			ok := settle.Commit(log, b, m, item, 10*time.Millisecond)
			if ok != (item == "ok") {
				t.Errorf("Commit(%s) = %v", item, ok)
			}
			seen <- item
		})
	}()
	defer func() { cancel(); <-done }()
	// "ok" is acked and never seen again; "fail" keeps coming back.
	counts := map[string]int{}
	deadline := time.After(20 * time.Second)
	for counts["fail"] < 3 {
		select {
		case it := <-seen:
			counts[it]++
		case <-deadline:
			t.Fatalf("the failed write's message came back %d times, want 3", counts["fail"])
		}
	}
	if counts["ok"] != 1 {
		t.Fatalf("the durable message was seen %d times, want once", counts["ok"])
	}
}
