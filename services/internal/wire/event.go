package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
)

// EventMessage encodes an accepted event for EVENTS (see the package
// documentation). The payload is shared with ev, not copied. ParseEvent is
// its inverse.
func EventMessage(ev *store.Event) transport.Message {
	h := make(map[string]string, 6)
	h[HeaderEventID] = ev.ID
	h[HeaderTenant] = ev.Tenant
	h[HeaderEventType] = ev.Type
	h[HeaderOccurredAt] = ev.OccurredAt.UTC().Format(time.RFC3339Nano)
	h[HeaderReceivedAt] = ev.ReceivedAt.UTC().Format(time.RFC3339Nano)
	if len(ev.Labels) > 0 {
		b, _ := json.Marshal(ev.Labels) // a map of strings always marshals
		h[HeaderLabels] = string(b)
	}
	return transport.Message{ID: ev.ID, Subject: ev.Tenant + "." + ev.Type, Headers: h, Data: ev.Payload}
}

// ParseEvent decodes an EVENTS message. Its errors name the header at
// fault. The payload is shared with m.
func ParseEvent(m *transport.Message) (store.Event, error) {
	h := m.Headers
	ev := store.Event{ID: h[HeaderEventID], Tenant: h[HeaderTenant], Type: h[HeaderEventType], Payload: m.Data}
	for _, f := range [...]struct{ v, name string }{
		{ev.ID, HeaderEventID}, {ev.Tenant, HeaderTenant}, {ev.Type, HeaderEventType},
	} {
		if f.v == "" {
			return ev, errMissing(f.name)
		}
	}
	var err error
	if ev.OccurredAt, err = parseTime(h, HeaderOccurredAt); err != nil {
		return ev, err
	}
	if ev.ReceivedAt, err = parseTime(h, HeaderReceivedAt); err != nil {
		return ev, err
	}
	if l := h[HeaderLabels]; l != "" {
		if err := json.Unmarshal([]byte(l), &ev.Labels); err != nil {
			return ev, fmt.Errorf("header %s: %w", HeaderLabels, err)
		}
	}
	return ev, nil
}

// errMissing reports a required header that is absent or empty.
func errMissing(h string) error { return fmt.Errorf("missing header %s", h) }

// parseTime reads the RFC 3339 time of header name, which is required.
func parseTime(h map[string]string, name string) (time.Time, error) {
	v := h[name]
	if v == "" {
		return time.Time{}, errMissing(name)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("header %s: %w", name, err)
	}
	return t, nil
}
