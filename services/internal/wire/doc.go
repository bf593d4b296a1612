// Package wire is the one home of everything Hookline's services say to
// each other through the broker: the message of each stream with its
// encoder and decoder, message IDs, consumer group names, header names,
// signal topics and the reasons recorded on deliveries. A service never
// builds or reads a message by hand, and never imports another service to
// do it: ingest, fanout, delivery and the scheduler all use this package.
//
// # EVENTS (ingest → fanout)
//
// Built by EventMessage, read by ParseEvent. ID: the event id (broker
// deduplication of a retried publish). Subject: "<tenant>.<event type>".
// Headers: hookline-event-id, hookline-tenant, hookline-event-type,
// hookline-occurred-at and hookline-received-at (RFC 3339, nanoseconds),
// hookline-labels (a JSON object, only when there are labels). Data: the
// event's JSON payload, untouched. Consumed by the group GroupFanout.
//
// # DELIVERIES (fanout, scheduler → delivery)
//
// One message per attempt to make. Built by DeliveryMessage (first
// attempts, by fanout) and ReleaseMessage (a due retry or a put-off
// attempt, by the scheduler); read by ParseDelivery. ID: AttemptID
// ("<delivery id>.a<attempt>"); a released one also names its due time
// (".r" + base-36 Unix nanoseconds), so a release published twice (a lease
// that expired mid-publish) deduplicates while a later release of the same
// attempt number (a redrive, an operator's redeliver) is a new message.
// Subject and Key: the subscription id. Headers: hookline-delivery-id,
// hookline-event-id, hookline-subscription-id, hookline-tenant,
// hookline-event-type, hookline-occurred-at, hookline-attempt (the 1-based
// number of the attempt to make) and, when known, traceparent and
// tracestate. Data: the event's JSON payload. Consumed by the group
// GroupDelivery.
//
// # Signals
//
// TopicDue carries due times (WakeSignal, ParseWake): whoever writes a
// scheduled retry due soon tells the schedulers, so they release it on
// time instead of at their next poll. Signals are best effort; the polls
// find whatever a lost signal would have announced.
package wire
