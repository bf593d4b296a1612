package wire

import (
	"net/textproto"
	"strings"
)

// Consumer groups. Every replica of a service consumes in its group, so
// the replicas share the stream's messages.
const (
	// GroupFanout is fanout's group on EVENTS.
	GroupFanout = "fanout"
	// GroupDelivery is the delivery service's group on DELIVERIES.
	GroupDelivery = "delivery"
)

// Header names of broker messages. Values are strings.
const (
	HeaderEventID        = "hookline-event-id"
	HeaderTenant         = "hookline-tenant"
	HeaderEventType      = "hookline-event-type"
	HeaderOccurredAt     = "hookline-occurred-at" // RFC 3339 with nanoseconds
	HeaderReceivedAt     = "hookline-received-at" // RFC 3339 with nanoseconds
	HeaderLabels         = "hookline-labels"      // JSON object of string labels
	HeaderDeliveryID     = "hookline-delivery-id"
	HeaderSubscriptionID = "hookline-subscription-id"
	HeaderAttempt        = "hookline-attempt" // 1-based number of the attempt to make
	// HeaderTraceparent and HeaderTracestate are the W3C trace context.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Signal topics (transport.Notifier).
const (
	// TopicDue tells the schedulers that a retry falls due soon.
	TopicDue = "scheduler-due"
)

// Reasons recorded as a delivery's LastError when it ends without an
// attempt, or as a subscription's DisabledReason.
const (
	// ReasonSubscriptionDeleted dead-letters a delivery whose subscription
	// no longer exists.
	ReasonSubscriptionDeleted = "subscription deleted"
	// ReasonGone disables a subscription whose endpoint answered 410.
	ReasonGone = "endpoint returned 410 Gone"
	// ReasonMalformed prefixes the reason a delivery is dead-lettered for
	// when its message cannot be read (the parse error follows).
	ReasonMalformed = "malformed delivery message: "
	// ReasonTenantMismatch dead-letters a delivery whose message names a
	// tenant that does not own its subscription.
	ReasonTenantMismatch = ReasonMalformed + "tenant does not own the subscription"
)

// reservedWebhookHeaders may not be set by a subscription's custom
// headers, in canonical form.
var reservedWebhookHeaders = map[string]bool{
	"Content-Type":        true,
	"Content-Length":      true,
	"Content-Encoding":    true,
	"Transfer-Encoding":   true,
	"User-Agent":          true,
	"Host":                true,
	"Connection":          true,
	"Keep-Alive":          true,
	"Te":                  true,
	"Trailer":             true,
	"Upgrade":             true,
	"Expect":              true,
	"Proxy-Authorization": true,
	"Proxy-Connection":    true,
	"Traceparent":         true,
	"Tracestate":          true,
}

// ReservedWebhookHeader reports whether a subscription's custom header
// named name (any case) is one Hookline sets on a webhook request itself:
// the Standard Webhooks headers (webhook-*), content and connection
// headers, and the trace context. The admin API refuses such headers, and
// the delivery service would not send them.
func ReservedWebhookHeader(name string) bool {
	return ReservedCanonicalHeader(textproto.CanonicalMIMEHeaderKey(name))
}

// ReservedCanonicalHeader is ReservedWebhookHeader for a name already in
// canonical form (textproto.CanonicalMIMEHeaderKey), without converting it
// again.
func ReservedCanonicalHeader(k string) bool {
	return reservedWebhookHeaders[k] || strings.HasPrefix(k, "Webhook-")
}
