package delivery

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
)

// Envelope is the metadata a DELIVERIES message carries in its headers.
type Envelope struct {
	DeliveryID     string
	EventID        string
	SubscriptionID string
	Tenant         string
	EventType      string
	OccurredAt     time.Time
	// Attempt is the 1-based number of the attempt to make.
	Attempt int
}

// NewMessage encodes attempt number attempt of delivery d (of event ev) as a
// DELIVERIES message: ID ids.AttemptMessage(d.ID, attempt), Subject and Key
// the subscription id, the hookline-* headers of Envelope, and the event's
// JSON payload as Data (shared with ev, not copied). Fanout and the
// scheduler both use it, so the delivery service sees one format. Use
// CopyTrace to carry the W3C trace context along.
func NewMessage(d *store.Delivery, ev *store.Event, attempt int) transport.Message {
	return transport.Message{
		ID:      ids.AttemptMessage(d.ID, attempt),
		Subject: d.SubscriptionID,
		Key:     d.SubscriptionID,
		Headers: map[string]string{
			transport.HeaderDeliveryID:     d.ID,
			transport.HeaderEventID:        ev.ID,
			transport.HeaderSubscriptionID: d.SubscriptionID,
			transport.HeaderTenant:         ev.Tenant,
			transport.HeaderEventType:      ev.Type,
			transport.HeaderOccurredAt:     ev.OccurredAt.UTC().Format(time.RFC3339Nano),
			transport.HeaderAttempt:        strconv.Itoa(attempt),
		},
		Data: ev.Payload,
	}
}

// CopyTrace copies the W3C traceparent and tracestate headers, when
// present and non-empty, from src into dst's headers.
func CopyTrace(dst *transport.Message, src map[string]string) {
	for _, k := range [...]string{transport.HeaderTraceparent, transport.HeaderTracestate} {
		if v := src[k]; v != "" {
			if dst.Headers == nil {
				dst.Headers = make(map[string]string, 2)
			}
			dst.Headers[k] = v
		}
	}
}

// errMissing reports a required header that is absent.
func errMissing(h string) error { return fmt.Errorf("missing header %s", h) }

// ParseMessage decodes the headers of a DELIVERIES message. On error the
// returned Envelope still holds every field that could be read (in
// particular DeliveryID, when present), so the caller can dead-letter the
// delivery.
func ParseMessage(m *transport.Message) (Envelope, error) {
	h := m.Headers
	env := Envelope{
		DeliveryID:     h[transport.HeaderDeliveryID],
		EventID:        h[transport.HeaderEventID],
		SubscriptionID: h[transport.HeaderSubscriptionID],
		Tenant:         h[transport.HeaderTenant],
		EventType:      h[transport.HeaderEventType],
	}
	var errs []error
	for _, f := range [...]struct {
		v, name string
	}{
		{env.DeliveryID, transport.HeaderDeliveryID},
		{env.EventID, transport.HeaderEventID},
		{env.SubscriptionID, transport.HeaderSubscriptionID},
		{env.Tenant, transport.HeaderTenant},
	} {
		if f.v == "" {
			errs = append(errs, errMissing(f.name))
		}
	}
	if v, ok := h[transport.HeaderOccurredAt]; ok && v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", transport.HeaderOccurredAt, err))
		}
		env.OccurredAt = t
	}
	n, err := parseAttempt(h[transport.HeaderAttempt])
	if err != nil {
		errs = append(errs, err)
	}
	env.Attempt = n
	return env, errors.Join(errs...)
}

// maxAttempt bounds attempt numbers read from headers.
const maxAttempt = 1 << 20

func parseAttempt(v string) (int, error) {
	if v == "" {
		return 0, errMissing(transport.HeaderAttempt)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxAttempt {
		return 0, fmt.Errorf("header %s: %q is not an attempt number", transport.HeaderAttempt, v)
	}
	return n, nil
}

// RetryRequest is what a RETRIES message asks the scheduler: schedule the
// attempt after FailedAttempt of a delivery.
type RetryRequest struct {
	DeliveryID     string
	SubscriptionID string
	EventID        string
	Tenant         string
	// FailedAttempt is the number of the attempt that failed.
	FailedAttempt int
	// RetryAfter is the wait the receiver asked for with Retry-After
	// (rounded up to whole seconds); zero when it asked for none.
	RetryAfter time.Duration
}

// retrySuffix ends the message ID of a RETRIES message.
const retrySuffix = ".retry"

// NewRetryMessage encodes r as a RETRIES message (see the package
// documentation for the format). Its ID depends only on the delivery and
// the failed attempt, so republishing after an ambiguous failure
// deduplicates.
func NewRetryMessage(r RetryRequest) transport.Message {
	h := make(map[string]string, 8)
	h[transport.HeaderDeliveryID] = r.DeliveryID
	h[transport.HeaderSubscriptionID] = r.SubscriptionID
	h[transport.HeaderAttempt] = strconv.Itoa(r.FailedAttempt)
	if r.EventID != "" {
		h[transport.HeaderEventID] = r.EventID
	}
	if r.Tenant != "" {
		h[transport.HeaderTenant] = r.Tenant
	}
	if r.RetryAfter > 0 {
		secs := (r.RetryAfter + time.Second - 1) / time.Second
		h[transport.HeaderRetryAfter] = strconv.FormatInt(int64(secs), 10)
	}
	return transport.Message{
		ID:      ids.AttemptMessage(r.DeliveryID, r.FailedAttempt) + retrySuffix,
		Subject: r.SubscriptionID,
		Key:     r.SubscriptionID,
		Headers: h,
	}
}

// ParseRetryMessage decodes a RETRIES message. On error the returned
// request still holds the DeliveryID when present.
func ParseRetryMessage(m *transport.Message) (RetryRequest, error) {
	h := m.Headers
	r := RetryRequest{
		DeliveryID:     h[transport.HeaderDeliveryID],
		SubscriptionID: h[transport.HeaderSubscriptionID],
		EventID:        h[transport.HeaderEventID],
		Tenant:         h[transport.HeaderTenant],
	}
	var errs []error
	if r.DeliveryID == "" {
		errs = append(errs, errMissing(transport.HeaderDeliveryID))
	}
	if r.SubscriptionID == "" {
		errs = append(errs, errMissing(transport.HeaderSubscriptionID))
	}
	n, err := parseAttempt(h[transport.HeaderAttempt])
	if err != nil {
		errs = append(errs, err)
	}
	r.FailedAttempt = n
	if v := h[transport.HeaderRetryAfter]; v != "" {
		secs, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %q is not a number of seconds", transport.HeaderRetryAfter, v))
		} else {
			r.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return r, errors.Join(errs...)
}
