-- 0001_init: the initial Hookline schema.
--
-- Conventions (mirrored by the CockroachDB schema):
--   * times are INTEGER unix nanoseconds, UTC; NULL where the Go value is
--     the zero time and the column is optional;
--   * subscription durations are INTEGER milliseconds, attempt durations
--     INTEGER nanoseconds;
--   * lists and maps are JSON text;
--   * no foreign keys and no sequences: every write is an idempotent insert
--     keyed by a natural or random key.

CREATE TABLE subscriptions (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    event_types     TEXT    NOT NULL,           -- JSON array of patterns
    secrets         TEXT    NOT NULL,           -- JSON array of {value, created_at, expires_at}
    headers         TEXT    NOT NULL,           -- JSON object
    timeout_ms      INTEGER NOT NULL DEFAULT 0,
    retry_schedule  TEXT,                       -- JSON array of ms; NULL = service default
    rate_limit      INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL,
    disabled_reason TEXT    NOT NULL DEFAULT '',
    failing_since   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX subscriptions_tenant_id ON subscriptions (tenant, id);

CREATE TABLE events (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    labels      TEXT    NOT NULL,               -- JSON object
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX events_received_at ON events (received_at);

CREATE TABLE deliveries (
    id               TEXT    NOT NULL PRIMARY KEY,
    event_id         TEXT    NOT NULL,
    subscription_id  TEXT    NOT NULL,
    tenant           TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_status_code INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_created ON deliveries (created_at, id);
CREATE INDEX deliveries_tenant_created ON deliveries (tenant, created_at, id);
CREATE INDEX deliveries_subscription_created ON deliveries (subscription_id, created_at, id);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_status ON deliveries (status, created_at);

CREATE TABLE attempts (
    delivery_id     TEXT    NOT NULL,
    number          INTEGER NOT NULL,
    event_id        TEXT    NOT NULL,
    subscription_id TEXT    NOT NULL,
    tenant          TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ns     INTEGER NOT NULL,
    status_code     INTEGER NOT NULL,
    response_body   BLOB,
    error           TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, number)
);
CREATE INDEX attempts_started ON attempts (started_at, delivery_id, number);
CREATE INDEX attempts_tenant_started ON attempts (tenant, started_at);
CREATE INDEX attempts_subscription_started ON attempts (subscription_id, started_at);
CREATE INDEX attempts_event ON attempts (event_id);

CREATE TABLE scheduled_retries (
    delivery_id   TEXT    NOT NULL PRIMARY KEY,
    attempt       INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    claimed_until INTEGER
);
CREATE INDEX scheduled_retries_due ON scheduled_retries (due_at);

CREATE TABLE idempotency_keys (
    tenant          TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
