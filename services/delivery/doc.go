// Package delivery is Hookline's delivery service: it consumes the
// DELIVERIES stream, POSTs each event to its subscription's endpoint,
// records every attempt, and hands failures to the scheduler through the
// RETRIES stream.
//
// # Guarantees
//
//   - A DELIVERIES message is acknowledged only after its attempt is
//     durably recorded (in group-committed batches) and, if the attempt
//     failed, its RETRIES message is durably published. When the store or
//     the broker fails, the message is negatively acknowledged with a delay
//     and redelivered: backpressure, never loss.
//   - Every attempt of a delivery carries the same webhook-id (the delivery
//     id), a fresh webhook-timestamp, and a Standard Webhooks signature by
//     every unexpired secret of the subscription.
//   - Isolation: at most MaxInFlightPerEndpoint requests per subscription
//     run at once in a replica; a message over the cap, or over the
//     subscription's rate limit, is postponed instead of occupying a
//     worker (see Postponing).
//   - Connections go only to addresses the SSRF guard allows, checked at
//     dial time after DNS resolution. Redirects are never followed.
//
// # Postponing
//
// Each replica keeps a virtual queue per endpoint: the endpoint serves
// one delivery per interval (its moving-average attempt duration divided
// by MaxInFlightPerEndpoint, no shorter than its rate limit allows), and a
// postponed delivery is given the next free interval after the queue's
// tail, at least OverCapDelay and at most OverCapMaxDelay ahead. The first
// MaxHeldPerEndpoint deliveries of that queue stay with the broker (nak
// with that delay). Further ones are put off through the store
// (store.ScheduleRetries with the same attempt number: the delivery stays
// pending, or retrying, with NextAttemptAt set) and their message is
// acknowledged; the scheduler releases them when due. An endpoint's
// backlog, however deep, therefore lives in the store and never fills the
// consumer's MaxAckPending, which every other endpoint needs. Putting off
// is not an attempt: nothing is recorded in the attempt history. Order
// among an endpoint's deliveries is not kept.
//
// # Outcomes
//
// 2xx: succeeded (and the subscription's FailingSince is cleared). 410
// Gone: the subscription is disabled and the delivery parked (the attempt
// is recorded with status parked), so enabling the subscription redrives
// it. Anything else — 3xx, 4xx, 5xx, timeouts, network errors, addresses
// refused by the SSRF guard — leaves the delivery retrying and publishes a
// RETRIES message. A subscription failing continuously for longer than
// DisableAfter is disabled, with a warning log carrying event
// "subscription_disabled", the subscription id and the tenant.
//
// # DELIVERIES messages
//
// Built by NewMessage (used by fanout and the scheduler): ID
// ids.AttemptMessage(deliveryID, attempt); Subject and Key the subscription
// id; headers hookline-delivery-id, hookline-event-id,
// hookline-subscription-id, hookline-tenant, hookline-event-type,
// hookline-occurred-at (RFC 3339, nanoseconds), hookline-attempt (the
// 1-based number of the attempt to make) and, when known, traceparent and
// tracestate; Data the event's JSON payload. A message without a delivery
// id is logged and dropped; one with a delivery id but otherwise malformed
// dead-letters that delivery with the reason.
//
// # RETRIES messages
//
// Built by NewRetryMessage, read by ParseRetryMessage: ID
// ids.AttemptMessage(deliveryID, failedAttempt) + ".retry" (so a
// republished retry deduplicates); Subject and Key the subscription id;
// headers hookline-delivery-id, hookline-subscription-id, hookline-attempt
// (the number of the attempt that FAILED), hookline-event-id,
// hookline-tenant, optionally hookline-retry-after (whole seconds the
// receiver asked to wait, from Retry-After on a 429 or 503) and the trace
// context; no Data.
package delivery
