package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
)

// Delivery is what a DELIVERIES message says: which attempt of which
// delivery to make. The payload travels as the message's Data.
type Delivery struct {
	DeliveryID     string
	EventID        string
	SubscriptionID string
	Tenant         string
	EventType      string
	OccurredAt     time.Time
	// Attempt is the 1-based number of the attempt to make.
	Attempt int
}

// MaxAttempt bounds the attempt numbers ParseDelivery accepts.
const MaxAttempt = 1 << 20

// AttemptID is the message ID of attempt number attempt of a delivery:
// "<delivery id>.a<attempt>". Publishing it twice (fanout redoing a batch)
// deduplicates in the broker.
func AttemptID(deliveryID string, attempt int) string {
	var b strings.Builder
	b.Grow(len(deliveryID) + 8)
	b.WriteString(deliveryID)
	b.WriteString(".a")
	b.WriteString(strconv.Itoa(attempt))
	return b.String()
}

// ReleaseID is the message ID of an attempt released by the scheduler when
// it fell due at due: AttemptID followed by ".r" and due in base-36 Unix
// nanoseconds, so that releasing the same scheduled retry twice
// deduplicates while a later schedule of the same attempt is a new
// message.
func ReleaseID(deliveryID string, attempt int, due time.Time) string {
	return AttemptID(deliveryID, attempt) + ".r" + strconv.FormatInt(due.UnixNano(), 36)
}

// DeliveryMessage encodes attempt number attempt of delivery d (of event
// ev) for DELIVERIES, with the message ID AttemptID. The payload is shared
// with ev, not copied. Use CopyTrace to carry the trace context along.
func DeliveryMessage(d *store.Delivery, ev *store.Event, attempt int) transport.Message {
	return transport.Message{
		ID:      AttemptID(d.ID, attempt),
		Subject: d.SubscriptionID,
		Key:     d.SubscriptionID,
		Headers: map[string]string{
			HeaderDeliveryID:     d.ID,
			HeaderEventID:        ev.ID,
			HeaderSubscriptionID: d.SubscriptionID,
			HeaderTenant:         ev.Tenant,
			HeaderEventType:      ev.Type,
			HeaderOccurredAt:     ev.OccurredAt.UTC().Format(time.RFC3339Nano),
			HeaderAttempt:        strconv.Itoa(attempt),
		},
		Data: ev.Payload,
	}
}

// ReleaseMessage encodes a claimed due retry for DELIVERIES: its attempt
// of its delivery, with the message ID ReleaseID.
func ReleaseMessage(r *store.DueRetry) transport.Message {
	m := DeliveryMessage(&r.Delivery, &r.Event, r.Attempt)
	m.ID = ReleaseID(r.DeliveryID, r.Attempt, r.DueAt)
	return m
}

// CopyTrace copies the W3C traceparent and tracestate headers, when
// present and not empty, from src into dst's headers.
func CopyTrace(dst *transport.Message, src map[string]string) {
	for _, k := range [...]string{HeaderTraceparent, HeaderTracestate} {
		if v := src[k]; v != "" {
			if dst.Headers == nil {
				dst.Headers = make(map[string]string, 2)
			}
			dst.Headers[k] = v
		}
	}
}

// ParseDelivery decodes a DELIVERIES message. Its errors name every header
// at fault; on error the returned Delivery still holds every field that
// could be read (DeliveryID in particular, when present), so the caller can
// dead-letter the delivery.
func ParseDelivery(m *transport.Message) (Delivery, error) {
	h := m.Headers
	d := Delivery{
		DeliveryID:     h[HeaderDeliveryID],
		EventID:        h[HeaderEventID],
		SubscriptionID: h[HeaderSubscriptionID],
		Tenant:         h[HeaderTenant],
		EventType:      h[HeaderEventType],
	}
	var errs []error
	for _, f := range [...]struct{ v, name string }{
		{d.DeliveryID, HeaderDeliveryID}, {d.EventID, HeaderEventID},
		{d.SubscriptionID, HeaderSubscriptionID}, {d.Tenant, HeaderTenant},
	} {
		if f.v == "" {
			errs = append(errs, errMissing(f.name))
		}
	}
	if v := h[HeaderOccurredAt]; v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HeaderOccurredAt, err))
		}
		d.OccurredAt = t
	}
	n, err := parseAttempt(h[HeaderAttempt])
	if err != nil {
		errs = append(errs, err)
	}
	d.Attempt = n
	return d, errors.Join(errs...)
}

// parseAttempt reads an attempt number: 1 to MaxAttempt.
func parseAttempt(v string) (int, error) {
	if v == "" {
		return 0, errMissing(HeaderAttempt)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxAttempt {
		return 0, fmt.Errorf("header %s: %q is not an attempt number", HeaderAttempt, v)
	}
	return n, nil
}
