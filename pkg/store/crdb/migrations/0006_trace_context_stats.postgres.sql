-- 0006_trace_context_stats: trace context (OpenTelemetry) and the
-- operator's counts. The PostgreSQL and CockroachDB forms are the same:
-- nothing here is keyed by time (subscriptions are few, and their
-- failing_since does not arrive in order).
--
-- subscriptions.send_trace_context: whether deliveries carry the W3C trace
-- context (traceparent, tracestate) to the receiver; false by default, and
-- for every subscription created before this migration (a constant
-- default: PostgreSQL rewrites no rows, and subscriptions are few).
--
-- attempts.trace_parent: the W3C traceparent of the attempt's own span;
-- scheduled_retries.trace_parent: that of the attempt that scheduled the
-- retry, so that the retry's span links to it. NULL when not traced, and
-- on rows written before this migration; nullable without a default, as
-- in 0005: the cheapest column to add to a large table.
--
-- subscriptions_state_failing covers the subscription counts of Stats
-- (healthy, failing, disabled), so they are read from the index instead
-- of from every row with its sealed secrets and JSON. The delivery counts
-- use deliveries_status_created and the scheduled retries' buckets
-- scheduled_retries_due, both of 0001.

ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS send_trace_context BOOL NOT NULL DEFAULT false;

ALTER TABLE attempts ADD COLUMN IF NOT EXISTS trace_parent TEXT;

ALTER TABLE scheduled_retries ADD COLUMN IF NOT EXISTS trace_parent TEXT;

CREATE INDEX IF NOT EXISTS subscriptions_state_failing ON subscriptions (state, failing_since);
