package delivery_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/wire"
)

// redeliver publishes msg and hands it once to a stand-in replica of the
// delivery group that naks it and stops, as a replica that died before
// acknowledging would, so the service (started with cfg) gets it
// redelivered. The stand-in's consumer settings are the service's: a
// service that changed them (the ack wait) while the message waits out its
// nak delay would leave it with the broker until the new ack wait (see
// docs/architecture.md).
func (e *env) redeliver(msg transport.Message, cfg delivery.Config) {
	e.t.Helper()
	e.publish(msg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- e.tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: wire.GroupDelivery, Concurrency: 1, AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending}, func(_ context.Context, r transport.Received) {
			_ = r.Nak(context.Background(), 0)
			select {
			case got <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		e.t.Fatal("the stand-in replica never got the message")
	}
	cancel()
	if err := <-done; err != nil {
		e.t.Fatalf("Consume: %v", err)
	}
}

// TestRedeliveredAttemptNotMadeTwice: a message redelivered after its
// attempt was recorded (the replica died before acknowledging it) does not
// make the request again, and leaves the delivery as recorded: a failed
// attempt's retry was recorded with it and stays due when it was. A
// redelivered message whose attempt was never recorded is sent as usual.
func TestRedeliveredAttemptNotMadeTwice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		recorded  store.DeliveryStatus // "" = attempt 1 not recorded
		wantPosts int64
	}{
		{"failed attempt recorded", store.DeliveryRetrying, 0},
		{"succeeded attempt recorded", store.DeliverySucceeded, 0},
		{"nothing recorded", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var posts atomic.Int64
			srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) { posts.Add(1) })
			sub := e.subscription(srv.URL)
			ev, d := e.delivery(sub)
			due := time.Now().Add(time.Hour).Truncate(time.Millisecond)
			if tt.recorded != "" {
				a := storetest.NewAttempt(d, 1, time.Now())
				r := store.AttemptResult{Attempt: a, Status: tt.recorded}
				if tt.recorded == store.DeliveryRetrying {
					r.NextAttemptAt = due
				}
				if err := e.st.RecordAttempts(context.Background(), []store.AttemptResult{r}); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig()
			e.redeliver(wire.DeliveryMessage(&d, &ev, 1), cfg)
			e.run(cfg)
			if tt.wantPosts > 0 {
				e.waitStatus(d.ID, store.DeliverySucceeded)
			} else {
				// The service acknowledges the message without sending it:
				// a second message published behind it is delivered, and the
				// first was handled before it.
				_, d2 := e.delivery(sub)
				e.publish(wire.DeliveryMessage(&d2, &ev, 1))
				e.waitStatus(d2.ID, store.DeliverySucceeded)
			}
			e.stopService()
			want := tt.wantPosts
			if tt.wantPosts == 0 {
				want = 1 // the second delivery only
			}
			if got := posts.Load(); got != want {
				t.Fatalf("receiver got %d requests; want %d", got, want)
			}
			if got := e.attempts(d.ID); len(got) > 1 {
				t.Fatalf("%d attempts recorded; want at most 1", len(got))
			}
			if tt.recorded == store.DeliveryRetrying {
				got := e.waitStatus(d.ID, store.DeliveryRetrying)
				if got.Attempts != 1 || !got.NextAttemptAt.Equal(due) {
					t.Fatalf("delivery %+v; want still retrying after attempt 1, due at %v", got, due)
				}
			}
		})
	}
}
