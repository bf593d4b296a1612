-- 0001_init, PostgreSQL form: the initial Hookline schema.
--
-- The CockroachDB form (0001_init.cockroach.sql) is this file with
-- USING HASH added to the primary key and indexes that lead with (or are)
-- a time-ordered value; a test keeps the two in step.
--
-- Conventions (the SQLite store's, so both behave identically):
--   * times are INT8 unix nanoseconds, UTC; NULL where the Go value is the
--     zero time and the column is optional;
--   * subscription durations are INT8 milliseconds, attempt durations INT8
--     nanoseconds;
--   * lists and maps are JSONB; payloads and response bodies BYTEA;
--   * no foreign keys, no sequences: keys are the random (ULID) or derived
--     (hash) ids the callers give, and every write is an idempotent insert
--     or update keyed by them;
--   * IF NOT EXISTS everywhere, so an interrupted migration can run again.

CREATE TABLE IF NOT EXISTS subscriptions (
    id              TEXT  NOT NULL,
    tenant          TEXT  NOT NULL,
    url             TEXT  NOT NULL,
    description     TEXT  NOT NULL DEFAULT '',
    event_types     JSONB NOT NULL,            -- array of patterns
    secrets         JSONB NOT NULL,            -- array of {value, created_at, expires_at}
    headers         JSONB NOT NULL,            -- object
    timeout_ms      INT8  NOT NULL DEFAULT 0,
    retry_schedule  JSONB,                     -- array of ms; NULL = service default
    rate_limit      INT8  NOT NULL DEFAULT 0,
    state           TEXT  NOT NULL,
    disabled_reason TEXT  NOT NULL DEFAULT '',
    failing_since   INT8,
    created_at      INT8  NOT NULL,
    updated_at      INT8  NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS subscriptions_tenant_id ON subscriptions (tenant, id);

CREATE TABLE IF NOT EXISTS events (
    id          TEXT  NOT NULL,                -- "evt_" + ULID: time-ordered
    tenant      TEXT  NOT NULL,
    event_type  TEXT  NOT NULL,
    payload     BYTEA NOT NULL,
    labels      JSONB NOT NULL,                -- object
    occurred_at INT8  NOT NULL,
    received_at INT8  NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at);

CREATE TABLE IF NOT EXISTS deliveries (
    id               TEXT NOT NULL,            -- "dlv_" + hash(event, subscription)
    event_id         TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INT8 NOT NULL DEFAULT 0,
    next_attempt_at  INT8,
    last_status_code INT8 NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       INT8 NOT NULL,
    updated_at       INT8 NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries (created_at, id);
CREATE INDEX IF NOT EXISTS deliveries_tenant_created ON deliveries (tenant, created_at, id);
CREATE INDEX IF NOT EXISTS deliveries_subscription_created ON deliveries (subscription_id, created_at, id);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);
CREATE INDEX IF NOT EXISTS deliveries_status_created ON deliveries (status, created_at, id);

CREATE TABLE IF NOT EXISTS attempts (
    delivery_id     TEXT  NOT NULL,
    number          INT8  NOT NULL,
    event_id        TEXT  NOT NULL,
    subscription_id TEXT  NOT NULL,
    tenant          TEXT  NOT NULL,
    started_at      INT8  NOT NULL,
    duration_ns     INT8  NOT NULL,
    status_code     INT8  NOT NULL,
    response_body   BYTEA,
    error           TEXT  NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, number)
);
CREATE INDEX IF NOT EXISTS attempts_started ON attempts (started_at, delivery_id, number);
CREATE INDEX IF NOT EXISTS attempts_tenant_started ON attempts (tenant, started_at, delivery_id, number);
CREATE INDEX IF NOT EXISTS attempts_subscription_started ON attempts (subscription_id, started_at, delivery_id, number);
CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_id);

CREATE TABLE IF NOT EXISTS scheduled_retries (
    delivery_id   TEXT NOT NULL,
    attempt       INT8 NOT NULL,
    due_at        INT8 NOT NULL,
    claimed_until INT8,                        -- lease end; NULL = never claimed
    PRIMARY KEY (delivery_id)
);
CREATE INDEX IF NOT EXISTS scheduled_retries_due ON scheduled_retries (due_at, delivery_id);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    created_at      INT8 NOT NULL,
    PRIMARY KEY (tenant, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);
