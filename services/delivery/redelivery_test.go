package delivery_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
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

// TestRedeliveredAttemptNotMadeTwice: a redelivered message is never sent.
// When its attempt was recorded (the replica died before acknowledging
// it), the message is acknowledged and the delivery left as recorded: a
// failed attempt's retry was recorded with it and stays due when it was.
// When its attempt was never recorded (the replica may have made the
// request and died before recording it), the attempt is recorded with its
// outcome unknown and the retry, a new attempt, is due at once.
func TestRedeliveredAttemptNotMadeTwice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		recorded store.DeliveryStatus // "" = attempt 1 not recorded
	}{
		{"failed attempt recorded", store.DeliveryRetrying},
		{"succeeded attempt recorded", store.DeliverySucceeded},
		{"nothing recorded", ""},
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
			redeliveredAt := time.Now()
			e.run(cfg)
			// The service settles the redelivered message without sending
			// it: a second delivery published behind it is made, and the
			// first was handled before it.
			_, d2 := e.delivery(sub)
			e.publish(wire.DeliveryMessage(&d2, &ev, 1))
			e.waitStatus(d2.ID, store.DeliverySucceeded)
			if got := posts.Load(); got != 1 {
				t.Fatalf("receiver got %d requests; want 1 (the second delivery's)", got)
			}
			switch tt.recorded {
			case store.DeliveryRetrying:
				got := e.waitStatus(d.ID, store.DeliveryRetrying)
				if got.Attempts != 1 || !got.NextAttemptAt.Equal(due) {
					t.Fatalf("delivery %+v; want still retrying after attempt 1, due at %v", got, due)
				}
			case "":
				got := e.waitStatus(d.ID, store.DeliveryRetrying)
				if got.Attempts != 1 || got.NextAttemptAt.Before(redeliveredAt) || got.NextAttemptAt.After(time.Now()) {
					t.Fatalf("delivery %+v; want retrying after attempt 1, due at once", got)
				}
				as := e.attempts(d.ID)
				if len(as) != 1 || !strings.HasPrefix(as[0].Error, delivery.OutcomeUnknown) {
					t.Fatalf("attempts %+v; want attempt 1 with its outcome unknown", as)
				}
				e.publish(wire.DeliveryMessage(&d, &ev, 2)) // as the scheduler releases the retry
				if got := e.waitStatus(d.ID, store.DeliverySucceeded); got.Attempts != 2 {
					t.Fatalf("succeeded after %d attempts; want 2", got.Attempts)
				}
			}
			if got := e.attempts(d.ID); tt.recorded != "" && len(got) != 1 {
				t.Fatalf("%d attempts recorded; want 1", len(got))
			}
		})
	}
}

// TestHandedBackMessagesStayFirstDeliveries: a message the service does
// not send yet (here, over its subscription's rate limit) is held by the
// replica, not handed back to the broker, so it is never redelivered and
// never mistaken for one whose request may have been made; when the
// service stops, what it still holds is put off through the store
// (pending, no attempt, a due time) and nothing goes back to the broker.
func TestHandedBackMessagesStayFirstDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var posts atomic.Int64
	srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) { posts.Add(1) })
	cfg := testConfig()
	cfg.Concurrency = 4
	e.run(cfg)
	sub := e.subscription(srv.URL, func(s *store.Subscription) { s.RateLimit = 5 })
	var ds []store.Delivery
	for range 20 {
		ds = append(ds, e.send(sub))
	}
	// A burst of 5, then one every 200 ms: the sixth was held and handed
	// again.
	poll.Until(t, "six requests", func() bool { return posts.Load() >= 6 })
	e.stopService()

	succeeded, putOff := 0, 0
	for _, d := range ds {
		got, err := e.st.GetDelivery(context.Background(), store.AllTenants(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case got.Status == store.DeliverySucceeded && got.Attempts == 1:
			succeeded++
		case got.Status == store.DeliveryPending && got.Attempts == 0 && !got.NextAttemptAt.IsZero():
			putOff++
		default:
			t.Errorf("delivery %s: %s after %d attempts (last error %q); want succeeded once, or put off", got.ID, got.Status, got.Attempts, got.LastError)
		}
	}
	if n := posts.Load(); int(n) != succeeded || putOff == 0 {
		t.Fatalf("%d requests, %d deliveries succeeded, %d put off; want one request per success and some put off", n, succeeded, putOff)
	}

	// Nothing went back to the broker: a stand-in member of the group gets
	// only a message published now (a handed-back message would come
	// first, being a redelivery).
	ev, d := e.delivery(sub)
	got := make(chan string, 32)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: wire.GroupDelivery, AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending}, func(_ context.Context, r transport.Received) {
			_ = r.Ack(context.Background())
			got <- r.Message().ID
		})
	}()
	defer func() { cancel(); <-done }()
	want := wire.DeliveryMessage(&d, &ev, 1)
	e.publish(want)
	select {
	case id := <-got:
		if id != want.ID {
			t.Fatalf("the group got %s first; want only %s (a message was handed back to the broker)", id, want.ID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stand-in member got nothing")
	}
}

// TestTwinMessagesBothRecorded: two messages for the same attempt (a
// publish repeated beyond the broker's duplicate window) each make a
// request, and the history holds both: the second as a repeat under the
// next number.
func TestTwinMessagesBothRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var posts atomic.Int64
	srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) { posts.Add(1) })
	sub := e.subscription(srv.URL)
	ev, d := e.delivery(sub)
	first := wire.DeliveryMessage(&d, &ev, 1)
	twin := first
	twin.ID += ".twin"
	e.run(testConfig())
	e.publish(first)
	e.waitStatus(d.ID, store.DeliverySucceeded)
	e.publish(twin)
	poll.Until(t, "the twin's request recorded", func() bool { return len(e.attempts(d.ID)) == 2 })
	if n := posts.Load(); n != 2 {
		t.Fatalf("%d requests; want 2 (one per message)", n)
	}
	got := e.waitStatus(d.ID, store.DeliverySucceeded)
	if got.Attempts != 2 {
		t.Fatalf("delivery counts %d attempts; want 2", got.Attempts)
	}
}
