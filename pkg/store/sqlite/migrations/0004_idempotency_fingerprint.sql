-- 0004_idempotency_fingerprint: each idempotency key keeps the fingerprint
-- of the request it was first used with (the ingest service's hash of event
-- type and payload), so that a reuse of the key with another request can be
-- refused rather than answered as a duplicate. NULL on keys recorded before
-- this migration and on records written without one: such a record matches
-- any request.

ALTER TABLE idempotency_keys ADD COLUMN fingerprint BLOB;
