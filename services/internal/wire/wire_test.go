package wire_test

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/messages.golden from the encoders")

// sample is a delivery of an event, with every field set.
func sample() (store.Delivery, store.Event) {
	ev := store.Event{ID: "evt_01JD0000000000000000000000", Tenant: "acme", Type: "order.created", Payload: []byte(`{"a":1}`),
		Labels:     map[string]string{"region": "eu", "tier": "gold"},
		OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)),
		ReceivedAt: time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC)}
	d := store.Delivery{ID: ids.Delivery(ev.ID, "sub_1"), EventID: ev.ID, SubscriptionID: "sub_1", Tenant: "acme", EventType: ev.Type}
	return d, ev
}

// TestGolden pins the format of every message on the wire: a change of an
// encoder that would break replicas of another version shows up here.
// Regenerate with go test -run TestGolden -update after a deliberate change.
func TestGolden(t *testing.T) {
	t.Parallel()
	d, ev := sample()
	due := time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC)
	released := wire.ReleaseMessage(&store.DueRetry{
		ScheduledRetry: store.ScheduledRetry{DeliveryID: d.ID, Attempt: 2, DueAt: due}, Delivery: d, Event: ev})
	first := wire.DeliveryMessage(&d, &ev, 1)
	wire.CopyTrace(&first, map[string]string{wire.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	type golden struct {
		Name    string            `json:"name"`
		ID      string            `json:"id"`
		Subject string            `json:"subject"`
		Key     string            `json:"key,omitempty"`
		Headers map[string]string `json:"headers"`
		Data    string            `json:"data,omitempty"`
	}
	var got []golden
	for _, c := range []struct {
		name string
		m    transport.Message
	}{
		{"event", wire.EventMessage(&ev)},
		{"first attempt", first},
		{"released retry", released},
	} {
		got = append(got, golden{c.name, c.m.ID, c.m.Subject, c.m.Key, c.m.Headers, string(c.m.Data)})
	}
	got = append(got, golden{Name: "due signal", Data: hex.EncodeToString(wire.WakeSignal(due))})
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "messages.golden")
	if *update {
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	if string(want) != string(b)+"\n" {
		t.Fatalf("messages differ from %s (go test -run TestGolden -update after a deliberate change):\ngot:\n%s", path, b)
	}
}

func TestEventRoundTrip(t *testing.T) {
	t.Parallel()
	_, full := sample()
	noLabels := full
	noLabels.Labels = nil
	for _, ev := range []store.Event{full, noLabels} {
		m := wire.EventMessage(&ev)
		if m.ID != ev.ID || m.Subject != "acme.order.created" {
			t.Fatalf("EventMessage: id %q subject %q", m.ID, m.Subject)
		}
		if _, ok := m.Headers[wire.HeaderLabels]; ok != (len(ev.Labels) > 0) {
			t.Fatalf("labels header present = %v with %d labels", ok, len(ev.Labels))
		}
		got, err := wire.ParseEvent(&m)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != ev.ID || got.Tenant != ev.Tenant || got.Type != ev.Type || string(got.Payload) != string(ev.Payload) ||
			!got.OccurredAt.Equal(ev.OccurredAt) || !got.ReceivedAt.Equal(ev.ReceivedAt) || !maps.Equal(got.Labels, ev.Labels) {
			t.Fatalf("round trip = %+v; want %+v", got, ev)
		}
	}
}

func TestParseEventErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(map[string]string)
		header string // the header the error must name
	}{
		{"no event id", func(h map[string]string) { delete(h, wire.HeaderEventID) }, wire.HeaderEventID},
		{"no tenant", func(h map[string]string) { delete(h, wire.HeaderTenant) }, wire.HeaderTenant},
		{"no type", func(h map[string]string) { h[wire.HeaderEventType] = "" }, wire.HeaderEventType},
		{"bad occurred-at", func(h map[string]string) { h[wire.HeaderOccurredAt] = "yesterday" }, wire.HeaderOccurredAt},
		{"no received-at", func(h map[string]string) { delete(h, wire.HeaderReceivedAt) }, wire.HeaderReceivedAt},
		{"bad labels", func(h map[string]string) { h[wire.HeaderLabels] = "[" }, wire.HeaderLabels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, ev := sample()
			m := wire.EventMessage(&ev)
			tt.mutate(m.Headers)
			if _, err := wire.ParseEvent(&m); err == nil || !strings.Contains(err.Error(), tt.header) {
				t.Fatalf("ParseEvent = %v; want an error naming %s", err, tt.header)
			}
		})
	}
}

func TestDeliveryRoundTrip(t *testing.T) {
	t.Parallel()
	d, ev := sample()
	due := time.Unix(1735787105, 123)
	tests := []struct {
		name    string
		m       transport.Message
		attempt int
		id      string
	}{
		{"first attempt", wire.DeliveryMessage(&d, &ev, 1), 1, d.ID + ".a1"},
		{"released retry", wire.ReleaseMessage(&store.DueRetry{
			ScheduledRetry: store.ScheduledRetry{DeliveryID: d.ID, Attempt: 3, DueAt: due}, Delivery: d, Event: ev}),
			3, wire.ReleaseID(d.ID, 3, due)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.m.ID != tt.id || tt.m.Subject != "sub_1" || tt.m.Key != "sub_1" || string(tt.m.Data) != `{"a":1}` {
				t.Fatalf("message = %+v", tt.m)
			}
			got, err := wire.ParseDelivery(&tt.m)
			if err != nil {
				t.Fatal(err)
			}
			want := wire.Delivery{DeliveryID: d.ID, EventID: ev.ID, SubscriptionID: "sub_1", Tenant: "acme",
				EventType: "order.created", OccurredAt: got.OccurredAt, Attempt: tt.attempt}
			if got != want || !got.OccurredAt.Equal(ev.OccurredAt) {
				t.Fatalf("round trip = %+v; want %+v at %v", got, want, ev.OccurredAt)
			}
		})
	}
}

func TestMessageIDs(t *testing.T) {
	t.Parallel()
	due := time.Unix(1735787105, 0)
	ids := []string{
		wire.AttemptID("dlv_1", 1),
		wire.AttemptID("dlv_1", 2),
		wire.AttemptID("dlv_2", 1),
		wire.ReleaseID("dlv_1", 2, due),
		wire.ReleaseID("dlv_1", 2, due.Add(time.Nanosecond)),
		wire.ReleaseID("dlv_1", 3, due),
	}
	if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
		t.Fatalf("IDs of different attempts or due times collide: %v", ids)
	}
	if wire.ReleaseID("dlv_1", 2, due) != wire.ReleaseID("dlv_1", 2, due) {
		t.Fatal("ReleaseID is not deterministic: a release published twice would not deduplicate")
	}
}

func TestParseDeliveryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(h map[string]string)
		header string
		keepID bool // DeliveryID still returned, so the delivery can be dead-lettered
	}{
		{"no delivery id", func(h map[string]string) { delete(h, wire.HeaderDeliveryID) }, wire.HeaderDeliveryID, false},
		{"no subscription", func(h map[string]string) { delete(h, wire.HeaderSubscriptionID) }, wire.HeaderSubscriptionID, true},
		{"no tenant", func(h map[string]string) { delete(h, wire.HeaderTenant) }, wire.HeaderTenant, true},
		{"no event", func(h map[string]string) { delete(h, wire.HeaderEventID) }, wire.HeaderEventID, true},
		{"no attempt", func(h map[string]string) { delete(h, wire.HeaderAttempt) }, wire.HeaderAttempt, true},
		{"attempt zero", func(h map[string]string) { h[wire.HeaderAttempt] = "0" }, wire.HeaderAttempt, true},
		{"attempt huge", func(h map[string]string) { h[wire.HeaderAttempt] = "99999999999" }, wire.HeaderAttempt, true},
		{"bad time", func(h map[string]string) { h[wire.HeaderOccurredAt] = "yesterday" }, wire.HeaderOccurredAt, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, ev := sample()
			m := wire.DeliveryMessage(&d, &ev, 1)
			tt.mutate(m.Headers)
			got, err := wire.ParseDelivery(&m)
			if err == nil || !strings.Contains(err.Error(), tt.header) {
				t.Fatalf("err = %v; want one naming %s", err, tt.header)
			}
			if (got.DeliveryID != "") != tt.keepID {
				t.Fatalf("delivery id %q kept = %v; want %v", got.DeliveryID, got.DeliveryID != "", tt.keepID)
			}
		})
	}
}

func TestCopyTrace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  map[string]string
		want map[string]string
	}{
		{"both", map[string]string{wire.HeaderTraceparent: "00-a-b-01", wire.HeaderTracestate: "k=v", "other": "x"},
			map[string]string{wire.HeaderTraceparent: "00-a-b-01", wire.HeaderTracestate: "k=v"}},
		{"empty tracestate", map[string]string{wire.HeaderTraceparent: "00-a-b-01", wire.HeaderTracestate: ""},
			map[string]string{wire.HeaderTraceparent: "00-a-b-01"}},
		{"none", map[string]string{"other": "x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m transport.Message
			wire.CopyTrace(&m, tt.src)
			if !maps.Equal(m.Headers, tt.want) {
				t.Fatalf("headers = %v; want %v", m.Headers, tt.want)
			}
		})
	}
}

func TestWakeSignal(t *testing.T) {
	t.Parallel()
	for _, due := range []time.Time{time.Unix(0, 0), time.Unix(1735787105, 999999999), time.Unix(-5, 0)} {
		got, err := wire.ParseWake(wire.WakeSignal(due))
		if err != nil || !got.Equal(due) {
			t.Fatalf("round trip of %v = %v, %v", due, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, make([]byte, 9)} {
		if _, err := wire.ParseWake(bad); err == nil {
			t.Errorf("ParseWake(%v) accepted", bad)
		}
	}
}

func TestReservedWebhookHeader(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"webhook-signature": true, "Webhook-Id": true, "WEBHOOK-TIMESTAMP": true, "webhook-anything": true,
		"content-type": true, "User-Agent": true, "traceparent": true, "Host": true, "transfer-encoding": true,
		"X-Api-Key": false, "Authorization": false, "x-webhook": false,
	} {
		if got := wire.ReservedWebhookHeader(name); got != want {
			t.Errorf("ReservedWebhookHeader(%q) = %v, want %v", name, got, want)
		}
	}
}

func FuzzParseDelivery(f *testing.F) {
	d, ev := sample()
	m := wire.DeliveryMessage(&d, &ev, 1)
	f.Add(m.Headers[wire.HeaderDeliveryID], "sub_1", "acme", "evt_1", "1", m.Headers[wire.HeaderOccurredAt])
	f.Add("", "", "", "", "-1", "")
	f.Add("d", "s", "t", "e", "007", "2025-01-01T00:00:00Z")
	f.Fuzz(func(t *testing.T, did, sid, tenant, eid, attempt, occurred string) {
		m := transport.Message{Headers: map[string]string{
			wire.HeaderDeliveryID: did, wire.HeaderSubscriptionID: sid, wire.HeaderTenant: tenant,
			wire.HeaderEventID: eid, wire.HeaderAttempt: attempt, wire.HeaderOccurredAt: occurred,
		}}
		got, err := wire.ParseDelivery(&m)
		if got.DeliveryID != did {
			t.Fatalf("delivery id %q; want %q", got.DeliveryID, did)
		}
		if err != nil {
			return
		}
		if got.Attempt < 1 || got.Attempt > wire.MaxAttempt || did == "" || sid == "" || tenant == "" || eid == "" {
			t.Fatalf("accepted %+v", got)
		}
		// What parses re-encodes to the same delivery.
		dd := store.Delivery{ID: did, SubscriptionID: sid}
		e := store.Event{ID: eid, Tenant: tenant, Type: got.EventType, OccurredAt: got.OccurredAt}
		m2 := wire.DeliveryMessage(&dd, &e, got.Attempt)
		again, err := wire.ParseDelivery(&m2)
		if err != nil || again.Attempt != got.Attempt || !again.OccurredAt.Equal(got.OccurredAt) || again.DeliveryID != did {
			t.Fatalf("re-encoded %+v, %v; want %+v", again, err, got)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	_, ev := sample()
	m := wire.EventMessage(&ev)
	f.Add(ev.ID, "acme", "order.created", m.Headers[wire.HeaderOccurredAt], m.Headers[wire.HeaderReceivedAt], m.Headers[wire.HeaderLabels])
	f.Add("", "", "", "", "", "")
	f.Add("e", "t", "x", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", `{"a":"b"}`)
	f.Fuzz(func(t *testing.T, id, tenant, typ, occurred, received, labels string) {
		m := transport.Message{Headers: map[string]string{
			wire.HeaderEventID: id, wire.HeaderTenant: tenant, wire.HeaderEventType: typ,
			wire.HeaderOccurredAt: occurred, wire.HeaderReceivedAt: received, wire.HeaderLabels: labels,
		}}
		got, err := wire.ParseEvent(&m)
		if err != nil {
			return
		}
		if id == "" || tenant == "" || typ == "" {
			t.Fatalf("accepted %+v", got)
		}
		m2 := wire.EventMessage(&got)
		again, err := wire.ParseEvent(&m2)
		if err != nil || again.ID != got.ID || !again.OccurredAt.Equal(got.OccurredAt) ||
			!again.ReceivedAt.Equal(got.ReceivedAt) || !maps.Equal(again.Labels, got.Labels) {
			t.Fatalf("re-encoded %+v, %v; want %+v", again, err, got)
		}
	})
}
