-- 0002_subscription_revision: one counter that every subscription write
-- increments in its own transaction, so subscription caches can tell with
-- one point read whether anything changed since they loaded. Subscription
-- writes are rare (operators, and endpoints turning healthy or failing),
-- so the single row is not a point of contention.

CREATE TABLE IF NOT EXISTS subscription_revision (
    id       INT8 NOT NULL PRIMARY KEY CHECK (id = 1),
    revision INT8 NOT NULL
);

INSERT INTO subscription_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
