package fanout

import (
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/transport"
)

func TestParseEvent(t *testing.T) {
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
			ev, err := parseEvent(&transport.Message{ID: "evt_1", Headers: h, Data: []byte(`{"a":1}`)})
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
