package delivery_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/services/internal/wire"
)

// TestFailedAttemptRecordsWhatFollows: a failed attempt is recorded with
// the delivery's next due time — the subscription's schedule, else the
// service's, or the receiver's Retry-After when longer — or, after the
// last retry, with the dead-lettering. The service's clock is injected and
// jitter is off, so every due time is exact.
func TestFailedAttemptRecordsWhatFollows(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		schedule   []time.Duration // the subscription's; nil: the service's
		retryAfter string
		attempt    int
		wantStatus store.DeliveryStatus
		wantNext   time.Duration // after t0, when retrying
		wantError  string        // in the delivery's LastError, when dead
	}{
		{"service schedule", nil, "", 1, store.DeliveryRetrying, 7 * time.Second, ""},
		{"service schedule, second retry", nil, "", 2, store.DeliveryRetrying, 11 * time.Second, ""},
		{"subscription schedule", []time.Duration{time.Hour}, "", 1, store.DeliveryRetrying, time.Hour, ""},
		{"longer Retry-After wins", []time.Duration{time.Second}, "120", 1, store.DeliveryRetrying, 120 * time.Second, ""},
		{"shorter Retry-After loses", []time.Duration{time.Hour}, "120", 1, store.DeliveryRetrying, time.Hour, ""},
		{"schedule exhausted", []time.Duration{time.Hour}, "", 2, store.DeliveryDead, 0,
			"retry schedule exhausted after 2 attempts; last: endpoint returned 503"},
		{"no retries at all", []time.Duration{}, "", 1, store.DeliveryDead, 0, "retry schedule exhausted after 1 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.now = func() time.Time { return t0 }
			srv, reqs := recorder(t, func(w http.ResponseWriter, _ *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			cfg := testConfig()
			cfg.RetrySchedule = []time.Duration{7 * time.Second, 11 * time.Second}
			cfg.RetryJitter = 0
			e.run(cfg)
			sub := e.subscription(srv.URL, func(s *store.Subscription) { s.RetrySchedule = tt.schedule })
			ev, d := e.delivery(sub)
			e.publish(wire.DeliveryMessage(&d, &ev, tt.attempt))
			next(t, reqs)
			got := e.waitDelivery(d.ID, "attempt recorded", func(d *store.Delivery) bool { return d.Attempts == tt.attempt })
			if got.Status != tt.wantStatus {
				t.Fatalf("status %s, want %s (last error %q)", got.Status, tt.wantStatus, got.LastError)
			}
			switch tt.wantStatus {
			case store.DeliveryRetrying:
				if want := t0.Add(tt.wantNext); !got.NextAttemptAt.Equal(want) {
					t.Errorf("next attempt due %v, want %v", got.NextAttemptAt, want)
				}
			case store.DeliveryDead:
				if !strings.Contains(got.LastError, tt.wantError) || !got.NextAttemptAt.IsZero() {
					t.Errorf("dead with last error %q, next %v; want %q and nothing due", got.LastError, got.NextAttemptAt, tt.wantError)
				}
				if as := e.attempts(d.ID); len(as) != 1 || as[0].Error != "endpoint returned 503" {
					t.Errorf("attempts %+v; want the one made, with its own error", as)
				}
			}
		})
	}
}

// TestDueTimeAnnounced: once a failed attempt and its next due time are
// recorded, the service tells the schedulers that due time with a signal,
// so the retry is released on time rather than at the next poll.
func TestDueTimeAnnounced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dues := e.dueSignals()
	srv, reqs := recorder(t, status(http.StatusInternalServerError))
	e.run(testConfig())
	sub := e.subscription(srv.URL, func(s *store.Subscription) { s.RetrySchedule = []time.Duration{100 * time.Millisecond} })
	d := e.send(sub)
	next(t, reqs)
	got := e.waitStatus(d.ID, store.DeliveryRetrying)
	select {
	case due := <-dues:
		if !due.Equal(got.NextAttemptAt) {
			t.Fatalf("announced %v; the next attempt is due %v", due, got.NextAttemptAt)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no due time announced")
	}
}
