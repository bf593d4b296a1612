// Package delivery is Hookline's delivery service: it consumes the
// DELIVERIES stream (messages in the format of package wire), POSTs each
// event to its subscription's endpoint, and records every attempt together
// with what it leads to.
//
// # Guarantees
//
//   - A DELIVERIES message is acknowledged only after its attempt is
//     durably recorded, in one store transaction with the delivery's new
//     status and, when the attempt failed, the due time of the next attempt
//     (or the dead-lettering, once the retry schedule is exhausted). There
//     is no moment at which a failed attempt is recorded and its retry is
//     not. When the store fails, the result is kept and written again
//     until it is durable: backpressure, never loss, and never the same
//     request twice for want of a record.
//   - Only a message's first delivery is sent. A message not sent yet is
//     held by the replica (see holds), never handed back to the broker
//     while the service runs; a stopping service puts it off through the
//     store. A redelivered message whose attempt is recorded already (a
//     replica died between recording and acknowledging) is acknowledged:
//     its retry was recorded with it. One whose attempt is not recorded is
//     recorded as an attempt whose outcome is unknown (OutcomeUnknown),
//     retried at once. So the attempt history holds every request an
//     endpoint saw.
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
// # Handling a message
//
// handle runs three steps, each returning data that the next step or the
// settler (package settle) acts on: admit decides whether the attempt is
// made now (or the message is dropped, dead-lettered, parked, postponed, or
// acknowledged as already made), attempt makes the HTTP request, and
// conclude decides what the outcome leads to. Only then is the endpoint's
// health updated (afterAttempt).
//
// # Postponing
//
// Each replica keeps a virtual queue per endpoint: the endpoint serves
// one delivery per interval (its moving-average attempt duration divided
// by MaxInFlightPerEndpoint, no shorter than its rate limit allows), and a
// postponed delivery is given the next free interval after the queue's
// tail, at least OverCapDelay and at most OverCapMaxDelay ahead. The first
// MaxHeldPerEndpoint deliveries of that queue are held by the replica for
// that delay (see holds). Further ones are put off through the store
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
// Gone: the delivery is parked (the attempt is recorded with status
// parked) and the subscription disabled, so enabling it redrives the
// delivery. Anything else — 3xx, 4xx, 5xx, timeouts, network errors,
// addresses refused by the SSRF guard — schedules the next attempt after
// the subscription's retry schedule (RetrySchedule when it has none), with
// RetryJitter, or after the receiver's Retry-After on a 429 or 503 when
// that is longer; after the last retry the delivery is dead-lettered. A
// subscription failing continuously for longer than DisableAfter is
// disabled, with a warning log carrying event "subscription_disabled", the
// subscription id and the tenant.
//
// # Telling the scheduler
//
// Due times live in the store, where the scheduler polls for them. After
// each batch it writes, the service also sends one signal (wire.TopicDue)
// with the batch's earliest due time, so a short retry or put-off attempt
// is released when due rather than at the scheduler's next poll.
package delivery
