-- 0004_sealed_secrets_api_keys: signing secrets sealed at rest, and API
-- keys. The PostgreSQL and CockroachDB forms are the same (nothing here is
-- keyed by time).
--
-- Each subscription's signing secrets (the JSON array of the secrets
-- column) are sealed with the store's keyring (package keyring:
-- AES-256-GCM, bound to the subscription's id) into secrets_sealed, with
-- the id of the sealing key in secrets_key_id; '' while a row still holds
-- plaintext. The plaintext column becomes nullable: after these statements
-- the migration's Go step (sealLegacySecrets) seals each row still holding
-- plaintext and sets its secrets to NULL in one conditional UPDATE, and
-- runs again whenever migrations run, so an interrupted migration
-- finishes on the next run. New rows never hold plaintext. The index
-- makes the distinct key ids, checked at every Open, and the rows to
-- reseal after a key rotation cheap to find.

ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS secrets_sealed BYTEA;

ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS secrets_key_id TEXT NOT NULL DEFAULT '';

ALTER TABLE subscriptions ALTER COLUMN secrets DROP NOT NULL;

CREATE INDEX IF NOT EXISTS subscriptions_secrets_key_id ON subscriptions (secrets_key_id);

-- API keys: the key itself is shown once; only its SHA-256 is kept. id is
-- the key's public prefix (random, not time-ordered); tenant is '' for an
-- operator key.
CREATE TABLE IF NOT EXISTS api_keys (
    id           TEXT  NOT NULL,
    tenant       TEXT  NOT NULL,
    name         TEXT  NOT NULL DEFAULT '',
    scopes       JSONB NOT NULL,               -- array of strings
    hash         BYTEA NOT NULL,
    created_at   INT8  NOT NULL,
    expires_at   INT8,
    revoked_at   INT8,
    last_used_at INT8,
    PRIMARY KEY (id)
);

CREATE INDEX IF NOT EXISTS api_keys_tenant_id ON api_keys (tenant, id);
