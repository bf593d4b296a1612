-- 0003_sealed_secrets_api_keys: signing secrets sealed at rest, and API
-- keys.
--
-- Each subscription's signing secrets (the JSON array that was the
-- secrets column) are sealed with the store's keyring (package keyring:
-- AES-256-GCM, bound to the subscription's id) into secrets_sealed, with
-- the id of the key that sealed them in secrets_key_id. The migration's Go
-- step (migrate.go, sealLegacySecrets) runs after these statements in the
-- same transaction: it seals every row's plaintext secrets and then drops
-- the secrets column, so the migration is applied whole or not at all.

ALTER TABLE subscriptions ADD COLUMN secrets_sealed BLOB NOT NULL DEFAULT x'';
ALTER TABLE subscriptions ADD COLUMN secrets_key_id TEXT NOT NULL DEFAULT '';
CREATE INDEX subscriptions_secrets_key_id ON subscriptions (secrets_key_id);

-- API keys: the key itself is shown once; only its SHA-256 is kept. id is
-- the key's public prefix; tenant is '' for an operator key.
CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    scopes       TEXT    NOT NULL,           -- JSON array of strings
    hash         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX api_keys_tenant_id ON api_keys (tenant, id);
