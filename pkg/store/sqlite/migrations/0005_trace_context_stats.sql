-- 0005_trace_context_stats: trace context (OpenTelemetry) and the
-- operator's counts.
--
-- subscriptions.send_trace_context: whether deliveries carry the W3C trace
-- context (traceparent, tracestate) to the receiver; off (0) by default,
-- and for every subscription created before this migration.
--
-- attempts.trace_parent: the W3C traceparent of the attempt's own span;
-- scheduled_retries.trace_parent: that of the attempt that scheduled the
-- retry, so that the retry's span links to it. NULL when not traced, and
-- on rows written before this migration.
--
-- subscriptions_state_failing covers the subscription counts of Stats
-- (healthy, failing, disabled), so they are read from the index instead
-- of from every row with its sealed secrets and JSON. The delivery counts
-- use deliveries_status and the scheduled retries' buckets
-- scheduled_retries_due, both of 0001.

ALTER TABLE subscriptions ADD COLUMN send_trace_context INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN trace_parent TEXT;
ALTER TABLE scheduled_retries ADD COLUMN trace_parent TEXT;
CREATE INDEX subscriptions_state_failing ON subscriptions (state, failing_since);
