-- 0002_subscription_revision: one counter that every subscription write
-- increments in its own transaction, so caches can tell with one point read
-- whether anything changed since they loaded.

CREATE TABLE subscription_revision (
    id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO subscription_revision (id, revision) VALUES (1, 0);
