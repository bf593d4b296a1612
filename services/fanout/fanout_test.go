package fanout

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/servicetest"
)

func TestParseEventMessage(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)
	good := func() map[string]string {
		return map[string]string{
			transport.HeaderEventID:    "evt_1",
			transport.HeaderTenant:     "acme",
			transport.HeaderEventType:  "order.created",
			transport.HeaderOccurredAt: now.Format(time.RFC3339Nano),
			transport.HeaderReceivedAt: now.Add(time.Second).Format(time.RFC3339Nano),
			transport.HeaderLabels:     `{"region":"eu"}`,
		}
	}
	tests := []struct {
		name    string
		mutate  func(map[string]string)
		wantErr string
	}{
		{name: "complete", mutate: func(map[string]string) {}},
		{name: "no labels", mutate: func(h map[string]string) { delete(h, transport.HeaderLabels) }},
		{name: "no event id", mutate: func(h map[string]string) { delete(h, transport.HeaderEventID) }, wantErr: transport.HeaderEventID},
		{name: "no tenant", mutate: func(h map[string]string) { delete(h, transport.HeaderTenant) }, wantErr: transport.HeaderTenant},
		{name: "bad occurred-at", mutate: func(h map[string]string) { h[transport.HeaderOccurredAt] = "yesterday" }, wantErr: transport.HeaderOccurredAt},
		{name: "bad received-at", mutate: func(h map[string]string) { h[transport.HeaderReceivedAt] = "" }, wantErr: transport.HeaderReceivedAt},
		{name: "bad labels", mutate: func(h map[string]string) { h[transport.HeaderLabels] = "[" }, wantErr: transport.HeaderLabels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := good()
			tt.mutate(h)
			ev, err := ParseEventMessage(&transport.Message{ID: "evt_1", Headers: h, Data: []byte(`{"a":1}`)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID != "evt_1" || ev.Tenant != "acme" || ev.Type != "order.created" || !ev.OccurredAt.Equal(now) ||
				!ev.ReceivedAt.Equal(now.Add(time.Second)) || string(ev.Payload) != `{"a":1}` {
				t.Fatalf("parsed %+v", ev)
			}
			if _, ok := h[transport.HeaderLabels]; ok && ev.Labels["region"] != "eu" {
				t.Fatalf("labels %v", ev.Labels)
			}
		})
	}
}

func TestConfigValidateNamesEveryFlag(t *testing.T) {
	t.Parallel()
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("zero config validated")
	}
	for _, flag := range []string{"--fanout-concurrency", "--fanout-ack-wait", "--fanout-store-batch", "--fanout-subscription-refresh"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error %q does not name %s", err, flag)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// failingListStore is the real store whose ListSubscriptions fails until
// healed, as when the database is unreachable while fanout starts.
type failingListStore struct {
	store.Store
	healed atomic.Bool
}

func (f *failingListStore) ListSubscriptions(ctx context.Context, fl store.SubscriptionFilter) ([]store.Subscription, string, error) {
	if !f.healed.Load() {
		return nil, "", errors.New("store unreachable")
	}
	return f.Store.ListSubscriptions(ctx, fl)
}

// TestEventWaitsForFirstSubscriptionLoad: an event consumed before the
// subscription cache ever loaded is not fanned out to nobody; it waits and
// reaches the subscription once the store answers.
func TestEventWaitsForFirstSubscriptionLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := servicetest.Transport(t)
	st := &failingListStore{Store: servicetest.Store(t)}
	sub := storetest.NewSubscription("acme")
	if err := st.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.SubscriptionRefresh, cfg.RetryDelay = 20*time.Millisecond, 20*time.Millisecond
	svc, err := New(cfg, Deps{Store: st, Transport: tr, Logger: servicetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- svc.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	now := time.Now().UTC()
	msg := transport.Message{ID: "evt_1", Subject: "acme.order.created", Data: []byte(`{}`), Headers: map[string]string{
		transport.HeaderEventID: "evt_1", transport.HeaderTenant: "acme", transport.HeaderEventType: "order.created",
		transport.HeaderOccurredAt: now.Format(time.RFC3339Nano), transport.HeaderReceivedAt: now.Format(time.RFC3339Nano),
	}}
	if _, err := tr.Publish(ctx, transport.Events, msg); err != nil {
		t.Fatal(err)
	}
	// The event is redelivered while the cache cannot load; it must not be
	// acknowledged with no deliveries.
	got, _, err := st.ListDeliveries(ctx, store.DeliveryFilter{EventID: "evt_1"})
	if err != nil || len(got) != 0 {
		t.Fatalf("deliveries before the first load: %v, %v", got, err)
	}
	st.healed.Store(true)
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got, _, err := st.ListDeliveries(ctx, store.DeliveryFilter{EventID: "evt_1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].SubscriptionID == sub.ID {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("event never fanned out after the store came back: %v", got)
		case <-tick.C:
		}
	}
}

func TestEventMessageRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	tests := []store.Event{
		{ID: "evt_1", Tenant: "acme", Type: "order.created", Payload: []byte(`{"a":1}`), OccurredAt: at, ReceivedAt: at.Add(time.Second)},
		{ID: "evt_2", Tenant: "t-2", Type: "x", Payload: []byte(`[]`), Labels: map[string]string{"region": "eu", "k": "v w"}, OccurredAt: at, ReceivedAt: at},
	}
	for _, in := range tests {
		m := NewEventMessage(&in)
		if m.ID != in.ID || m.Subject != in.Tenant+"."+in.Type {
			t.Errorf("message ID %q subject %q", m.ID, m.Subject)
		}
		out, err := ParseEventMessage(&m)
		if err != nil {
			t.Fatalf("ParseEventMessage(NewEventMessage(%s)): %v", in.ID, err)
		}
		if out.ID != in.ID || out.Tenant != in.Tenant || out.Type != in.Type || string(out.Payload) != string(in.Payload) ||
			!out.OccurredAt.Equal(in.OccurredAt) || !out.ReceivedAt.Equal(in.ReceivedAt) || !maps.Equal(out.Labels, in.Labels) {
			t.Errorf("round trip of %s: got %+v", in.ID, out)
		}
	}
}
