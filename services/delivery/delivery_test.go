package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/signature"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/internal/wire"
)

// request is what a receiver saw.
type request struct {
	header http.Header
	body   []byte
}

// recorder is an httptest receiver answering with respond and recording
// every request on reqs.
func recorder(t *testing.T, respond http.HandlerFunc) (*httptest.Server, chan request) {
	t.Helper()
	reqs := make(chan request, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case reqs <- request{header: r.Header.Clone(), body: body}:
		default:
		}
		respond(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func next(t *testing.T, reqs chan request) request {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("receiver got no request")
		return request{}
	}
}

func TestSuccessIsSignedWithHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, reqs := recorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	sub := e.subscription(srv.URL, func(s *store.Subscription) {
		s.Headers = map[string]string{
			"X-Team":       "payments",
			"content-type": "text/plain", // must not override
			"Webhook-Id":   "forged",     // must not override
			"user-agent":   "evil",       // must not override
		}
		s.FailingSince = time.Now().Add(-time.Hour)
	})
	e.run(testConfig())
	ev, d := e.delivery(sub)
	msg := wire.DeliveryMessage(&d, &ev, 1)
	e.publish(msg)

	r := next(t, reqs)
	if !bytes.Equal(r.body, ev.Payload) {
		t.Errorf("body = %q; want %q", r.body, ev.Payload)
	}
	checks := map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "Hookline/1",
		"Webhook-Id":   d.ID,
		"X-Team":       "payments",
	}
	for k, want := range checks {
		if got := r.header.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q; want [%q]", k, got, want)
		}
	}
	live, err := signature.NewVerifier(sub.Secrets[1].Value)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Verify(r.header, r.body); err != nil {
		t.Errorf("signature with the live secret does not verify: %v", err)
	}
	expired, err := signature.NewVerifier(sub.Secrets[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if err := expired.Verify(r.header, r.body); err == nil {
		t.Error("the expired secret still signs")
	}

	got := e.waitStatus(d.ID, store.DeliverySucceeded)
	if got.Attempts != 1 || got.LastStatusCode != 200 {
		t.Errorf("delivery = %+v; want 1 attempt, last status 200", got)
	}
	as := e.attempts(d.ID)
	if len(as) != 1 || as[0].StatusCode != 200 || string(as[0].ResponseBody) != `{"ok":true}` || as[0].Error != "" || as[0].Duration <= 0 || as[0].StartedAt.IsZero() {
		t.Errorf("attempts = %+v", as)
	}
	poll.Until(t, "FailingSince cleared", func() bool { return e.subscriptionNow(sub.ID).FailingSince.IsZero() })
}

func TestOneWebhookIDAcrossAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var n atomic.Int32
	srv, reqs := recorder(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	sub := e.subscription(srv.URL)
	e.run(testConfig())
	ev, d := e.delivery(sub)
	e.publish(wire.DeliveryMessage(&d, &ev, 1))
	first := next(t, reqs)
	e.waitStatus(d.ID, store.DeliveryRetrying)
	// The scheduler would publish attempt 2 when due; do as it does.
	e.publish(wire.DeliveryMessage(&d, &ev, 2))
	second := next(t, reqs)
	if a, b := first.header.Get("Webhook-Id"), second.header.Get("Webhook-Id"); a != d.ID || b != d.ID {
		t.Fatalf("webhook-id = %q then %q; want %q both times", a, b, d.ID)
	}
	got := e.waitStatus(d.ID, store.DeliverySucceeded)
	if got.Attempts != 2 {
		t.Fatalf("attempts = %d; want 2", got.Attempts)
	}
	if as := e.attempts(d.ID); len(as) != 2 {
		t.Fatalf("recorded %d attempts; want 2", len(as))
	}
}

func TestGoneDisablesAndParks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, reqs := recorder(t, status(http.StatusGone))
	sub := e.subscription(srv.URL)
	e.run(testConfig())
	d := e.send(sub)
	next(t, reqs)
	e.waitStatus(d.ID, store.DeliveryParked)
	if as := e.attempts(d.ID); len(as) != 1 || as[0].StatusCode != http.StatusGone {
		t.Fatalf("attempts = %+v; want one 410", as)
	}
	// The subscription is disabled once the attempt is recorded (a
	// disabled subscription's later deliveries are parked unsent:
	// TestSubscriptionStates).
	poll.Until(t, "subscription disabled for 410", func() bool {
		s := e.subscriptionNow(sub.ID)
		return s.State == store.SubscriptionDisabled && s.DisabledReason == wire.ReasonGone
	})
}

func TestFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.MaxResponseBody = 16
	e.run(cfg)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	var redirected atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected.Add(1) }))
	t.Cleanup(target.Close)

	// The default schedule's first delay is 5 s, spread by ±20 %.
	firstRetry := func(d time.Duration) bool { return d >= 4*time.Second && d <= 6*time.Second+time.Second }
	tests := []struct {
		name     string
		respond  http.HandlerFunc
		timeout  time.Duration
		wantCode int
		wantErr  string
		wantBody string
		// nextIn checks how long after the attempt began the next one is
		// due; nil means the default schedule's first delay.
		nextIn func(time.Duration) bool
	}{
		{name: "500", respond: status(500), wantCode: 500, wantErr: "endpoint returned 500"},
		{name: "404", respond: status(404), wantCode: 404, wantErr: "endpoint returned 404"},
		{name: "429 with delta seconds", respond: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		}, wantCode: 429, nextIn: func(d time.Duration) bool { return d >= 120*time.Second && d <= 125*time.Second }},
		{name: "503 with http date", respond: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			// The delay counts from the attempt's start, before this handler
			// ran, and the date drops sub-seconds: about 90 s, a few more on
			// a loaded machine.
		}, wantCode: 503, nextIn: func(d time.Duration) bool { return d >= 88*time.Second && d <= 96*time.Second }},
		{name: "500 ignores retry-after", respond: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(500)
		}, wantCode: 500},
		{name: "redirect not followed", respond: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusFound)
		}, wantCode: 302, wantErr: "redirects are not followed"},
		{name: "body capped", respond: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			_, _ = io.WriteString(w, strings.Repeat("0123456789", 10000))
		}, wantCode: 500, wantBody: "0123456789012345"},
		{name: "timeout", respond: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}, timeout: 50 * time.Millisecond, wantErr: "timeout after 50ms"},
	}
	// The group returns once every parallel case has finished.
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				srv, reqs := recorder(t, tt.respond)
				sub := e.subscription(srv.URL, func(s *store.Subscription) { s.Timeout = tt.timeout })
				d := e.send(sub)
				next(t, reqs)
				got := e.waitStatus(d.ID, store.DeliveryRetrying)
				if got.Attempts != 1 || got.LastStatusCode != tt.wantCode {
					t.Errorf("delivery = %+v; want attempt 1 with status %d", got, tt.wantCode)
				}
				as := e.attempts(d.ID)
				if len(as) != 1 {
					t.Fatalf("attempts = %+v", as)
				}
				a := as[0]
				if a.StatusCode != tt.wantCode || !strings.Contains(a.Error, tt.wantErr) {
					t.Errorf("attempt status %d error %q; want %d containing %q", a.StatusCode, a.Error, tt.wantCode, tt.wantErr)
				}
				if tt.wantBody != "" && string(a.ResponseBody) != tt.wantBody {
					t.Errorf("stored body %q; want %q", a.ResponseBody, tt.wantBody)
				}
				if len(a.ResponseBody) > 16 {
					t.Errorf("stored body has %d bytes; cap is 16", len(a.ResponseBody))
				}
				nextIn := tt.nextIn
				if nextIn == nil {
					nextIn = firstRetry
				}
				if in := got.NextAttemptAt.Sub(a.StartedAt); !nextIn(in) {
					t.Errorf("next attempt due %v after this one began", in)
				}
				poll.Until(t, "FailingSince set", func() bool { return !e.subscriptionNow(sub.ID).FailingSince.IsZero() })
				if s := e.subscriptionNow(sub.ID); s.State != store.SubscriptionEnabled {
					t.Errorf("subscription disabled after one failure: %q", s.DisabledReason)
				}
			})
		}
	})
	if n := redirected.Load(); n != 0 {
		t.Errorf("redirect was followed %d times", n)
	}
}

func TestLoopbackRefusedWithoutAllowList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	cfg := testConfig()
	cfg.AllowCIDRs = nil
	e.run(cfg)
	sub := e.subscription(srv.URL)
	d := e.send(sub)
	e.waitStatus(d.ID, store.DeliveryRetrying)
	as := e.attempts(d.ID)
	if len(as) != 1 || as[0].StatusCode != 0 || !strings.Contains(as[0].Error, "SSRF") {
		t.Fatalf("attempts = %+v; want one refused by the SSRF guard", as)
	}
	if hits.Load() != 0 {
		t.Fatal("loopback receiver was reached")
	}
}

// TestLocalhostNamesNeverReachDNS: a receiver named under .localhost (RFC
// 6761) is reached on loopback when loopback is allowed, and refused when
// it is not, without a single query to the resolver.
func TestLocalhostNamesNeverReachDNS(t *testing.T) {
	t.Parallel()
	var queries atomic.Int32
	noDNS := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		queries.Add(1)
		return nil, errors.New("tests send no DNS query")
	}}
	t.Cleanup(func() { // after the parallel subtests
		if n := queries.Load(); n != 0 {
			t.Errorf("%d DNS queries for localhost names", n)
		}
	})
	tests := []struct {
		name  string
		allow []string
		want  store.DeliveryStatus
	}{
		{"loopback allowed", []string{"127.0.0.0/8"}, store.DeliverySucceeded},
		{"loopback not allowed", nil, store.DeliveryRetrying},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.resolver = noDNS
			srv, _ := recorder(t, status(http.StatusOK))
			cfg := testConfig()
			cfg.AllowCIDRs = tt.allow
			e.run(cfg)
			u, _ := url.Parse(srv.URL)
			sub := e.subscription("http://hooks.localhost.:" + u.Port() + "/")
			d := e.send(sub)
			e.waitStatus(d.ID, tt.want)
			if tt.want != store.DeliverySucceeded {
				if as := e.attempts(d.ID); len(as) != 1 || !strings.Contains(as[0].Error, "localhost") {
					t.Fatalf("attempts = %+v; want one refused naming localhost", as)
				}
			}
		})
	}
}

func TestDisableAfterFailingContinuously(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, _ := recorder(t, status(500))
	cfg := testConfig()
	cfg.DisableAfter = time.Minute
	e.run(cfg)
	sub := e.subscription(srv.URL, func(s *store.Subscription) { s.FailingSince = time.Now().Add(-2 * time.Minute) })
	d := e.send(sub)
	e.waitStatus(d.ID, store.DeliveryRetrying)
	poll.Until(t, "subscription disabled", func() bool {
		return e.subscriptionNow(sub.ID).State == store.SubscriptionDisabled
	})
	if r := e.subscriptionNow(sub.ID).DisabledReason; !strings.Contains(r, "failing continuously") {
		t.Fatalf("disabled reason %q", r)
	}
	// A subscription failing for less than the window stays enabled.
	sub2 := e.subscription(srv.URL, func(s *store.Subscription) { s.FailingSince = time.Now().Add(-10 * time.Second) })
	d2 := e.send(sub2)
	e.waitStatus(d2.ID, store.DeliveryRetrying)
	if s := e.subscriptionNow(sub2.ID); s.State != store.SubscriptionEnabled {
		t.Fatalf("subscription failing for 10s was disabled: %q", s.DisabledReason)
	}
}

func TestSubscriptionStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, reqs := recorder(t, status(200))
	e.run(testConfig())

	t.Run("deleted", func(t *testing.T) {
		// Never stored, so no cache can hold it: as if deleted long ago.
		sub := storetest.NewSubscription("acme")
		sub.URL = srv.URL
		ev, d := e.delivery(sub)
		e.publish(wire.DeliveryMessage(&d, &ev, 1))
		got := e.waitStatus(d.ID, store.DeliveryDead)
		if got.LastError != wire.ReasonSubscriptionDeleted {
			t.Fatalf("reason %q", got.LastError)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		sub := e.subscription(srv.URL, func(s *store.Subscription) {
			s.State, s.DisabledReason = store.SubscriptionDisabled, "operator"
		})
		d := e.send(sub)
		e.waitStatus(d.ID, store.DeliveryParked)
	})
	t.Run("malformed with delivery id", func(t *testing.T) {
		sub := e.subscription(srv.URL)
		ev, d := e.delivery(sub)
		m := wire.DeliveryMessage(&d, &ev, 1)
		m.Headers[wire.HeaderAttempt] = "zero"
		e.publish(m)
		got := e.waitStatus(d.ID, store.DeliveryDead)
		if !strings.Contains(got.LastError, "malformed") || !strings.Contains(got.LastError, wire.HeaderAttempt) {
			t.Fatalf("reason %q", got.LastError)
		}
	})
	t.Run("malformed without delivery id is dropped", func(t *testing.T) {
		sub := e.subscription(srv.URL)
		ev, d := e.delivery(sub)
		bad := wire.DeliveryMessage(&d, &ev, 1)
		delete(bad.Headers, wire.HeaderDeliveryID)
		bad.ID += ".bad"
		e.publish(bad)
		// Messages are handled concurrently, but a good message
		// published after it succeeding shows the service is alive;
		// the bad one must not have produced a request.
		good := e.send(sub)
		e.waitStatus(good.ID, store.DeliverySucceeded)
		next(t, reqs)
		if got := e.waitStatus(d.ID, store.DeliveryPending); got.Attempts != 0 {
			t.Fatalf("delivery of the id-less message changed: %+v", got)
		}
	})
	if len(reqs) != 0 {
		t.Fatalf("%d unexpected requests", len(reqs))
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var (
		mu    sync.Mutex
		times []time.Time
	)
	srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	})
	e.run(testConfig())
	const limit, n = 5, 10
	sub := e.subscription(srv.URL, func(s *store.Subscription) { s.RateLimit = limit })
	var ds []store.Delivery
	for range n {
		ds = append(ds, e.send(sub))
	}
	for _, d := range ds {
		e.waitStatus(d.ID, store.DeliverySucceeded)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != n {
		t.Fatalf("%d requests; want %d", len(times), n)
	}
	// A burst of `limit`, then one token every 1/limit s: the last of n
	// requests cannot come before (n-limit)/limit s after the first.
	if span, floor := times[n-1].Sub(times[0]), time.Duration(n-limit)*time.Second/limit; span < floor*9/10 {
		t.Fatalf("%d requests took %v; the rate limit allows no less than %v", n, span, floor)
	}
}

func TestSlowEndpointDoesNotBlockFastOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	slow := servicetest.StalledEndpoint(t)
	fast, fastReqs := recorder(t, status(200))
	cfg := testConfig()
	cfg.Concurrency = 4
	cfg.MaxInFlightPerEndpoint = 2
	cfg.ShutdownGrace = 10 * time.Millisecond // the slow requests are abandoned at the end
	e.run(cfg)
	slowSub := e.subscription(slow.URL)
	fastSub := e.subscription(fast.URL)
	for range 20 {
		e.send(slowSub)
	}
	poll.Until(t, "slow endpoint saturated", func() bool { return slow.InFlight() == 2 })
	var fastDs []store.Delivery
	for range 5 {
		fastDs = append(fastDs, e.send(fastSub))
	}
	for range fastDs {
		next(t, fastReqs)
	}
	for _, d := range fastDs {
		e.waitStatus(d.ID, store.DeliverySucceeded)
	}
	if m := slow.MostInFlight(); m > 2 {
		t.Fatalf("slow endpoint had %d requests in flight; cap is 2", m)
	}
}

func TestAttemptsAreBatched(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv, _ := recorder(t, status(200))
	cfg := testConfig()
	cfg.Concurrency = 64
	cfg.MaxInFlightPerEndpoint = 64
	cfg.BatchLinger = 5 * time.Millisecond
	const n = 200
	sub := e.subscription(srv.URL)
	var msgs []transport.Message
	var ids []string
	for range n {
		ev, d := e.delivery(sub)
		msgs = append(msgs, wire.DeliveryMessage(&d, &ev, 1))
		ids = append(ids, d.ID)
	}
	e.publish(msgs...)
	e.run(cfg)
	for _, id := range ids {
		e.waitStatus(id, store.DeliverySucceeded)
	}
	calls, results := e.st.calls.Load(), e.st.results.Load()
	if results != n {
		t.Fatalf("RecordAttempts got %d results; want %d", results, n)
	}
	if calls >= n/2 {
		t.Fatalf("%d RecordAttempts calls for %d attempts; want batching", calls, n)
	}
	t.Logf("%d attempts in %d RecordAttempts calls", n, calls)
}

// TestShutdownAbandonsUnfinishedAttempt: an attempt still in flight when
// the shutdown grace runs out is cut short and recorded with its outcome
// unknown (the endpoint may have got the request), its retry due at once;
// the retry is a new attempt.
func TestShutdownAbandonsUnfinishedAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	entered := make(chan struct{}, 1)
	var answer atomic.Int32 // 0: hang, else status
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := answer.Load(); c != 0 {
			w.WriteHeader(int(c))
			return
		}
		// Read the body so the server notices the client going away.
		_, _ = io.Copy(io.Discard, r.Body)
		entered <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig()
	cfg.ShutdownGrace = 10 * time.Millisecond
	e.run(cfg)
	sub := e.subscription(srv.URL)
	ev, d := e.delivery(sub)
	e.publish(wire.DeliveryMessage(&d, &ev, 1))
	<-entered
	stoppedAt := time.Now()
	e.stopService() // must return; the attempt is abandoned and recorded
	got, err := e.st.GetDelivery(context.Background(), store.AllTenants(), d.ID)
	if err != nil || got.Status != store.DeliveryRetrying || got.Attempts != 1 || got.NextAttemptAt.After(time.Now()) || got.NextAttemptAt.Before(stoppedAt) {
		t.Fatalf("after abandon: %+v, %v; want retrying after 1 attempt, due at once", got, err)
	}
	if as := e.attempts(d.ID); len(as) != 1 || !strings.HasPrefix(as[0].Error, delivery.OutcomeUnknown) || as[0].StatusCode != 0 {
		t.Fatalf("attempts after abandon: %+v; want one with its outcome unknown", as)
	}
	answer.Store(200)
	e.run(cfg)
	e.publish(wire.DeliveryMessage(&d, &ev, 2)) // as the scheduler releases the retry
	if got := e.waitStatus(d.ID, store.DeliverySucceeded); got.Attempts != 2 {
		t.Fatalf("succeeded after %d attempts; want 2", got.Attempts)
	}
}

func TestRunTwiceAndReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.run(testConfig())
	if err := svc.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := svc.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.Concurrency = 0
	if _, err := delivery.New(cfg, deps.Deps[delivery.Store]{Store: e.st, Transport: e.tr}); err == nil || !strings.Contains(err.Error(), "--delivery-concurrency") {
		t.Fatalf("New = %v", err)
	}
	if _, err := delivery.New(testConfig(), deps.Deps[delivery.Store]{}); err == nil {
		t.Fatal("New without deps succeeded")
	}
}

// BenchmarkDeliveryThroughput measures the delivery hot path end to end:
// NATS consume, HTTP POST to a local receiver, batched attempt records in
// SQLite, ack. Reports deliveries/s.
func BenchmarkDeliveryThroughput(b *testing.B) {
	ctx := context.Background()
	e := newBenchEnv(b)
	var got atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if got.Add(1) == target {
			close(done)
		}
	}))
	b.Cleanup(srv.Close)
	const subs = 16
	var ss []*store.Subscription
	for i := range subs {
		s := benchSubscription(b, e.st, srv.URL, i)
		ss = append(ss, s)
	}
	msgs := make([]transport.Message, 0, 1000)
	flush := func() {
		if _, err := e.tr.Publish(ctx, transport.Deliveries, msgs...); err != nil {
			b.Fatal(err)
		}
		msgs = msgs[:0]
	}
	var ds []store.Delivery
	for i := range b.N {
		s := ss[i%subs]
		ev := store.Event{ID: fmt.Sprintf("evt_bench%d", i), Tenant: s.Tenant, Type: "order.created", Payload: []byte(`{"n":1,"name":"benchmark payload"}`), OccurredAt: time.Now()}
		d := store.Delivery{ID: fmt.Sprintf("dlv_bench%d", i), EventID: ev.ID, SubscriptionID: s.ID, Tenant: s.Tenant, EventType: ev.Type, Status: store.DeliveryPending, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		ds = append(ds, d)
		msgs = append(msgs, wire.DeliveryMessage(&d, &ev, 1))
		if len(msgs) == cap(msgs) {
			flush()
		}
		if len(ds) == 1000 {
			if err := e.st.InsertFanout(ctx, nil, ds); err != nil {
				b.Fatal(err)
			}
			ds = ds[:0]
		}
	}
	if len(msgs) > 0 {
		flush()
	}
	if err := e.st.InsertFanout(ctx, nil, ds); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	svc, err := delivery.New(cfg, deps.Deps[delivery.Store]{Store: e.st, Transport: e.tr, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { stopped <- svc.Run(runCtx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d delivered", got.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-stopped; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
}

// failingRecords is the real store whose RecordAttempts fails while
// failing is set, counting the calls and results it refused.
type failingRecords struct {
	*countingStore
	failing        atomic.Bool
	refusedCalls   atomic.Int64
	refusedResults atomic.Int64
}

func (f *failingRecords) RecordAttempts(ctx context.Context, rs []store.AttemptResult) error {
	if f.failing.Load() {
		f.refusedCalls.Add(1)
		f.refusedResults.Add(int64(len(rs)))
		return errors.New("store unavailable (test)")
	}
	return f.countingStore.RecordAttempts(ctx, rs)
}

// recordsFailing is a delivery service whose store refuses to record
// attempts until healed, and the endpoint it delivers to.
type recordsFailing struct {
	store *failingRecords
	hits  *atomic.Int32 // requests the endpoint received
	url   string
	stop  func() error // stops the service; idempotent after the first call
}

// runWithRecordsFailing starts a delivery service with cfg on e's store,
// refusing attempt records from the start, and an endpoint answering 200;
// the service is stopped when the test ends unless stop was called.
func runWithRecordsFailing(t *testing.T, e *env, cfg delivery.Config) recordsFailing {
	t.Helper()
	fr := &failingRecords{countingStore: e.st}
	fr.failing.Store(true)
	hits := new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	svc, err := delivery.New(cfg, deps.Deps[delivery.Store]{Store: fr, Transport: e.tr, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return recordsFailing{store: fr, hits: hits, url: srv.URL, stop: stop}
}

// TestAttemptsHeldBackWhileRecordsFail: once the store refuses to record
// an attempt, the service makes no attempt but one probe per error
// backoff (each probe's record is refused alone), instead of sending
// every message to be refused; an attempt made keeps its result and
// writes it again rather than being made again; once records succeed,
// every delivery is made, once.
func TestAttemptsHeldBackWhileRecordsFail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.ErrorBackoff = 200 * time.Millisecond
	rf := runWithRecordsFailing(t, e, cfg)
	fr, hits := rf.store, rf.hits

	sub := e.subscription(rf.url)
	first := e.send(sub)
	poll.Until(t, "the first record refused", func() bool { return fr.refusedCalls.Load() >= 1 })
	began := time.Now()
	var rest []store.Delivery
	for range 10 {
		rest = append(rest, e.send(sub))
	}
	poll.Until(t, "three more records refused", func() bool { return fr.refusedCalls.Load() >= 4 })
	// The first attempt, then at most one probe per error backoff: each
	// probe a new delivery, its result kept and written again.
	if n, most := hits.Load(), 2+int32(time.Since(began)/cfg.ErrorBackoff); n > most {
		t.Fatalf("%d requests in %v while the store failed; at most %d with one probe per %v: attempts were not held back",
			n, time.Since(began).Round(time.Millisecond), most, cfg.ErrorBackoff)
	}

	fr.failing.Store(false)
	for _, d := range append(rest, first) {
		if got := e.waitStatus(d.ID, store.DeliverySucceeded); got.Attempts != 1 {
			t.Errorf("delivery %s succeeded after %d attempts; want 1", d.ID, got.Attempts)
		}
	}
	// An attempt whose record failed keeps its result until it is
	// recorded: no request is made twice.
	if n := hits.Load(); n != int32(len(rest)+1) {
		t.Fatalf("the endpoint got %d requests for %d deliveries; want one each", n, len(rest)+1)
	}
}

// TestHeldMessagesAreBounded: while the store refuses attempt records, a
// replica holds at most Concurrency × 4 messages back and puts the rest
// off through the store (pending, no attempt, a due time); when it stops,
// it puts off what it held too. No request is made but the first, whose
// worker keeps its result, trying to record it.
func TestHeldMessagesAreBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := testConfig()
	cfg.Concurrency = 2             // holds at most 8
	cfg.ErrorBackoff = time.Hour    // no probe, no retry of the record during the test
	cfg.ShutdownGrace = time.Second // the first worker gives up its record at stop
	rf := runWithRecordsFailing(t, e, cfg)
	fr, hits := rf.store, rf.hits

	sub := e.subscription(rf.url)
	e.send(sub)
	poll.Until(t, "the first record refused", func() bool { return fr.refusedCalls.Load() >= 1 })
	var rest []store.Delivery
	for range 12 {
		rest = append(rest, e.send(sub))
	}
	putOff := func() int {
		n := 0
		for _, d := range rest {
			got, err := e.st.GetDelivery(context.Background(), store.AllTenants(), d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status == store.DeliveryPending && got.Attempts == 0 && !got.NextAttemptAt.IsZero() {
				n++
			}
		}
		return n
	}
	poll.UntilReason(t, "the messages beyond the holds put off", func() (bool, string) {
		n := putOff()
		return n == 12-8, fmt.Sprintf("%d put off; want %d", n, 12-8)
	})
	if err := rf.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := putOff(); n != 12 {
		t.Fatalf("%d of 12 put off after the stop; want every held one put off", n)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d requests; want 1 (the first attempt, never made again)", n)
	}
}
