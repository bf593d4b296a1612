package delivery_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/delivery"
)

func sample() (store.Delivery, store.Event) {
	ev := store.Event{ID: "evt_1", Tenant: "acme", Type: "order.created", Payload: []byte(`{"a":1}`),
		OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))}
	d := store.Delivery{ID: ids.Delivery("evt_1", "sub_1"), EventID: "evt_1", SubscriptionID: "sub_1", Tenant: "acme", EventType: ev.Type}
	return d, ev
}

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	d, ev := sample()
	m := delivery.NewMessage(&d, &ev, 3)
	if m.ID != ids.AttemptMessage(d.ID, 3) || m.Subject != "sub_1" || m.Key != "sub_1" || string(m.Data) != `{"a":1}` {
		t.Fatalf("message = %+v", m)
	}
	delivery.CopyTrace(&m, map[string]string{transport.HeaderTraceparent: "00-abc-def-01", "other": "x"})
	if m.Headers[transport.HeaderTraceparent] != "00-abc-def-01" || m.Headers["other"] != "" {
		t.Fatalf("trace headers = %v", m.Headers)
	}
	if _, ok := m.Headers[transport.HeaderTracestate]; ok {
		t.Fatal("empty tracestate copied")
	}
	env, err := delivery.ParseMessage(&m)
	if err != nil {
		t.Fatal(err)
	}
	want := delivery.Envelope{DeliveryID: d.ID, EventID: "evt_1", SubscriptionID: "sub_1", Tenant: "acme", EventType: "order.created", OccurredAt: ev.OccurredAt, Attempt: 3}
	if !env.OccurredAt.Equal(want.OccurredAt) {
		t.Fatalf("occurred at %v; want %v", env.OccurredAt, want.OccurredAt)
	}
	env.OccurredAt = want.OccurredAt
	if env != want {
		t.Fatalf("envelope = %+v; want %+v", env, want)
	}
}

func TestParseMessageErrors(t *testing.T) {
	t.Parallel()
	d, ev := sample()
	tests := []struct {
		name    string
		mutate  func(h map[string]string)
		wantErr string
		wantID  bool
	}{
		{"no delivery id", func(h map[string]string) { delete(h, transport.HeaderDeliveryID) }, transport.HeaderDeliveryID, false},
		{"no subscription", func(h map[string]string) { delete(h, transport.HeaderSubscriptionID) }, transport.HeaderSubscriptionID, true},
		{"no tenant", func(h map[string]string) { delete(h, transport.HeaderTenant) }, transport.HeaderTenant, true},
		{"no event", func(h map[string]string) { delete(h, transport.HeaderEventID) }, transport.HeaderEventID, true},
		{"no attempt", func(h map[string]string) { delete(h, transport.HeaderAttempt) }, transport.HeaderAttempt, true},
		{"attempt zero", func(h map[string]string) { h[transport.HeaderAttempt] = "0" }, transport.HeaderAttempt, true},
		{"attempt huge", func(h map[string]string) { h[transport.HeaderAttempt] = "99999999999" }, transport.HeaderAttempt, true},
		{"bad time", func(h map[string]string) { h[transport.HeaderOccurredAt] = "yesterday" }, transport.HeaderOccurredAt, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := delivery.NewMessage(&d, &ev, 1)
			tt.mutate(m.Headers)
			env, err := delivery.ParseMessage(&m)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v; want mentioning %s", err, tt.wantErr)
			}
			if (env.DeliveryID != "") != tt.wantID {
				t.Fatalf("delivery id %q kept = %v; want %v", env.DeliveryID, env.DeliveryID != "", tt.wantID)
			}
		})
	}
}

func TestRetryMessageRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   delivery.RetryRequest
		want time.Duration // RetryAfter after the round trip
	}{
		{"plain", delivery.RetryRequest{DeliveryID: "dlv_1", SubscriptionID: "sub_1", EventID: "evt_1", Tenant: "acme", FailedAttempt: 2}, 0},
		{"retry after rounds up", delivery.RetryRequest{DeliveryID: "dlv_1", SubscriptionID: "sub_1", FailedAttempt: 1, RetryAfter: 1500 * time.Millisecond}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := delivery.NewRetryMessage(tt.in)
			if m.ID != ids.AttemptMessage(tt.in.DeliveryID, tt.in.FailedAttempt)+".retry" || m.Key != tt.in.SubscriptionID {
				t.Fatalf("message = %+v", m)
			}
			got, err := delivery.ParseRetryMessage(&m)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.in
			want.RetryAfter = tt.want
			if got != want {
				t.Fatalf("round trip = %+v; want %+v", got, want)
			}
		})
	}
	bad := transport.Message{Headers: map[string]string{transport.HeaderDeliveryID: "dlv_1", transport.HeaderAttempt: "x", transport.HeaderRetryAfter: "-1"}}
	r, err := delivery.ParseRetryMessage(&bad)
	if err == nil || r.DeliveryID != "dlv_1" || !strings.Contains(err.Error(), transport.HeaderSubscriptionID) || !strings.Contains(err.Error(), transport.HeaderRetryAfter) {
		t.Fatalf("ParseRetryMessage(bad) = %+v, %v", r, err)
	}
}

func FuzzParseMessage(f *testing.F) {
	d, ev := sample()
	m := delivery.NewMessage(&d, &ev, 1)
	f.Add(m.Headers[transport.HeaderDeliveryID], "sub_1", "acme", "evt_1", "1", m.Headers[transport.HeaderOccurredAt])
	f.Add("", "", "", "", "-1", "")
	f.Add("d", "s", "t", "e", "007", "2025-01-01T00:00:00Z")
	f.Fuzz(func(t *testing.T, did, sid, tenant, eid, attempt, occurred string) {
		m := transport.Message{Headers: map[string]string{
			transport.HeaderDeliveryID: did, transport.HeaderSubscriptionID: sid, transport.HeaderTenant: tenant,
			transport.HeaderEventID: eid, transport.HeaderAttempt: attempt, transport.HeaderOccurredAt: occurred,
		}}
		env, err := delivery.ParseMessage(&m)
		if env.DeliveryID != did {
			t.Fatalf("delivery id %q; want %q", env.DeliveryID, did)
		}
		if err == nil {
			if env.Attempt < 1 || did == "" || sid == "" || tenant == "" || eid == "" {
				t.Fatalf("accepted %+v", env)
			}
			// What parses re-encodes to the same envelope.
			dd := store.Delivery{ID: did, SubscriptionID: sid}
			e := store.Event{ID: eid, Tenant: tenant, Type: env.EventType, OccurredAt: env.OccurredAt}
			m2 := delivery.NewMessage(&dd, &e, env.Attempt)
			env2, err := delivery.ParseMessage(&m2)
			if err != nil || env2.Attempt != env.Attempt || !env2.OccurredAt.Equal(env.OccurredAt) {
				t.Fatalf("re-encoded %+v, %v; want %+v", env2, err, env)
			}
		}
	})
}

func FuzzParseRetryMessage(f *testing.F) {
	f.Add("dlv_1", "sub_1", "1", "")
	f.Add("dlv_1", "sub_1", "3", "120")
	f.Add("", "", "x", "-5")
	f.Fuzz(func(t *testing.T, did, sid, attempt, retryAfter string) {
		m := transport.Message{Headers: map[string]string{
			transport.HeaderDeliveryID: did, transport.HeaderSubscriptionID: sid,
			transport.HeaderAttempt: attempt, transport.HeaderRetryAfter: retryAfter,
		}}
		r, err := delivery.ParseRetryMessage(&m)
		if r.DeliveryID != did {
			t.Fatalf("delivery id %q; want %q", r.DeliveryID, did)
		}
		if err != nil {
			return
		}
		if r.FailedAttempt < 1 || r.RetryAfter < 0 || did == "" || sid == "" {
			t.Fatalf("accepted %+v", r)
		}
		m2 := delivery.NewRetryMessage(r)
		r2, err := delivery.ParseRetryMessage(&m2)
		if err != nil || r2 != r {
			t.Fatalf("round trip %+v, %v; want %+v", r2, err, r)
		}
	})
}

func TestConfigFlags(t *testing.T) {
	t.Parallel()
	var cfg delivery.Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	def := delivery.DefaultConfig()
	if cfg.Concurrency != 256 || cfg.Timeout != 15*time.Second || cfg.MaxResponseBody != 4096 ||
		cfg.MaxInFlightPerEndpoint != 32 || cfg.DisableAfter != 120*time.Hour || len(cfg.AllowCIDRs) != 0 || cfg.MaxIdleConnsPerHost < 64 {
		t.Fatalf("flag defaults = %+v", cfg)
	}
	if cfg.AckWait != def.AckWait {
		t.Fatalf("flag and DefaultConfig defaults differ")
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !strings.HasPrefix(f.Name, "delivery-") || f.Usage == "" {
			t.Errorf("flag %q: want a delivery- prefix and help text", f.Name)
		}
	})
	err := fs.Parse([]string{"--delivery-concurrency=8", "--delivery-allow-cidrs=127.0.0.0/8,::1", "--delivery-disable-after=0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Concurrency != 8 || len(cfg.AllowCIDRs) != 2 || cfg.DisableAfter != 0 {
		t.Fatalf("parsed = %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*delivery.Config)
		flags  []string
	}{
		{"zero concurrency", func(c *delivery.Config) { c.Concurrency = 0 }, []string{"--delivery-concurrency"}},
		{"ack wait too short", func(c *delivery.Config) { c.AckWait = c.MaxTimeout }, []string{"--delivery-ack-wait"}},
		{"timeout over cap", func(c *delivery.Config) { c.Timeout = 2 * c.MaxTimeout }, []string{"--delivery-timeout"}},
		{"bad cidr", func(c *delivery.Config) { c.AllowCIDRs = []string{"10.0.0.0/99"} }, []string{"--delivery-allow-cidrs"}},
		{"several", func(c *delivery.Config) { c.BatchSize, c.MaxInFlightPerEndpoint, c.DisableAfter = 0, -1, -time.Hour },
			[]string{"--delivery-batch-size", "--delivery-max-in-flight-per-endpoint", "--delivery-disable-after"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := delivery.DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			for _, f := range tt.flags {
				if err == nil || !strings.Contains(err.Error(), f) {
					t.Errorf("Validate() = %v; want an error naming %s", err, f)
				}
			}
		})
	}
}

func TestReservedHeader(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"webhook-signature": true, "Webhook-Id": true, "WEBHOOK-TIMESTAMP": true, "webhook-anything": true,
		"content-type": true, "User-Agent": true, "traceparent": true, "Host": true,
		"X-Api-Key": false, "Authorization": false, "x-webhook": false,
	} {
		if got := delivery.ReservedHeader(name); got != want {
			t.Errorf("ReservedHeader(%q) = %v, want %v", name, got, want)
		}
	}
}
