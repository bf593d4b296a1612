-- 0001_init, CockroachDB form: the initial Hookline schema.
--
-- This is 0001_init.postgres.sql with USING HASH added where keys arrive
-- in time order: a hash-sharded primary key or index spreads sequential
-- inserts over several ranges instead of one hot range at the end. That is
-- the events primary key (ULIDs are time-prefixed), every index keyed by a
-- time (created_at, started_at, received_at, due_at), alone or after a
-- low-cardinality prefix (tenant, subscription, status) whose values each
-- see inserts in time order, and the indexes on event ids. Delivery ids are
-- hashes and subscriptions are few, so those primary keys stay plain. A
-- test keeps the two forms in step.
--
-- Conventions: see the PostgreSQL form.

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
    PRIMARY KEY (id) USING HASH
);
CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at) USING HASH;

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
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries (created_at, id) USING HASH;
CREATE INDEX IF NOT EXISTS deliveries_tenant_created ON deliveries (tenant, created_at, id) USING HASH;
CREATE INDEX IF NOT EXISTS deliveries_subscription_created ON deliveries (subscription_id, created_at, id) USING HASH;
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id) USING HASH;
CREATE INDEX IF NOT EXISTS deliveries_status_created ON deliveries (status, created_at, id) USING HASH;

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
CREATE INDEX IF NOT EXISTS attempts_started ON attempts (started_at, delivery_id, number) USING HASH;
CREATE INDEX IF NOT EXISTS attempts_tenant_started ON attempts (tenant, started_at, delivery_id, number) USING HASH;
CREATE INDEX IF NOT EXISTS attempts_subscription_started ON attempts (subscription_id, started_at, delivery_id, number) USING HASH;
CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_id) USING HASH;

CREATE TABLE IF NOT EXISTS scheduled_retries (
    delivery_id   TEXT NOT NULL,
    attempt       INT8 NOT NULL,
    due_at        INT8 NOT NULL,
    claimed_until INT8,                        -- lease end; NULL = never claimed
    PRIMARY KEY (delivery_id)
);
CREATE INDEX IF NOT EXISTS scheduled_retries_due ON scheduled_retries (due_at, delivery_id) USING HASH;

CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    created_at      INT8 NOT NULL,
    PRIMARY KEY (tenant, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at) USING HASH;
