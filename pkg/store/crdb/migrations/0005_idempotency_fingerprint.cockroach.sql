-- 0005_idempotency_fingerprint: each idempotency key keeps the fingerprint
-- of the request it was first used with (the ingest service's hash of event
-- type and payload), so that a reuse of the key with another request can be
-- refused rather than answered as a duplicate. NULL on keys recorded before
-- this migration and on records written without one: such a record matches
-- any request. The PostgreSQL and CockroachDB forms are the same; adding a
-- nullable column without a default rewrites no rows in either.

ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS fingerprint BYTEA;
