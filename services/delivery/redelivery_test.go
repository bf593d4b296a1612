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
		done <- e.tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: delivery.Group, Concurrency: 1, AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending}, func(_ context.Context, r transport.Received) {
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
// make the request again: a failed attempt's retry request is published
// again instead, and a finished delivery is left alone. A redelivered
// message whose attempt was never recorded is sent as usual.
func TestRedeliveredAttemptNotMadeTwice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		recorded  store.DeliveryStatus // "" = attempt 1 not recorded
		wantPosts int64
		wantRetry bool
	}{
		{"failed attempt recorded", store.DeliveryRetrying, 0, true},
		{"succeeded attempt recorded", store.DeliverySucceeded, 0, false},
		{"nothing recorded", "", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var posts atomic.Int64
			srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) { posts.Add(1) })
			sub := e.subscription(srv.URL)
			ev, d := e.delivery(sub)
			if tt.recorded != "" {
				a := storetest.NewAttempt(d, 1, time.Now())
				if err := e.st.RecordAttempts(context.Background(), []store.AttemptResult{{Attempt: a, Status: tt.recorded}}); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig()
			e.redeliver(delivery.NewMessage(&d, &ev, 1), cfg)
			e.run(cfg)
			if tt.wantRetry {
				m := e.retryFor(d.ID)
				req, err := delivery.ParseRetryMessage(&m)
				if err != nil || req.FailedAttempt != 1 {
					t.Fatalf("retry request %+v, %v; want one for failed attempt 1", req, err)
				}
			}
			if tt.wantPosts > 0 {
				e.waitStatus(d.ID, store.DeliverySucceeded)
			} else {
				// The service acknowledges the message without sending it:
				// a second message published behind it is delivered, and the
				// first was handled before it.
				_, d2 := e.delivery(sub)
				e.publish(delivery.NewMessage(&d2, &ev, 1))
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
		})
	}
}
