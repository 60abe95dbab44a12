-- Tenant API keys for the private HTTP API (package apikeys). A key reads
-- dk_live_<id>_<secret>: id is public (it names the key in the CLI and the
-- logs), the secret is shown once and never stored. secret_hash is
-- HMAC-SHA-256 of the whole key under the server's pepper
-- (DUNNING_KEY_PEPPER), so a copy of this table alone cannot be used to
-- guess keys offline.
CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    prefix       text NOT NULL CHECK (prefix IN ('dk_live', 'dk_test')),
    tenant       text NOT NULL CHECK (tenant <> ''),
    scopes       text[] NOT NULL
        CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['runs:read', 'runs:write', 'admin']::text[]),
    name         text NOT NULL DEFAULT '',
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL,
    -- Written at most once a minute per key, so requests do not each write.
    last_used_at timestamptz,
    -- A rotated key keeps working until expires_at, so clients can switch
    -- to replaced_by without an outage.
    expires_at   timestamptz,
    replaced_by  text REFERENCES api_keys (id),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant, created_at);

-- HTTP idempotency (IETF httpapi Idempotency-Key draft): the first answer
-- to a POST carrying Idempotency-Key, replayed to retries with the same key
-- and the same request. scope is the API key's tenant, so one tenant's keys
-- never meet another's. fingerprint is SHA-256 of the method, path and body:
-- the same key with another request is refused.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    fingerprint  bytea NOT NULL,
    state        text NOT NULL CHECK (state IN ('in_progress', 'done')),
    -- While in progress: past this time the request that took the key is
    -- presumed dead (its process crashed) and a retry may take it over.
    locked_until timestamptz NOT NULL,
    status       integer,
    headers      jsonb,
    body         bytea,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key),
    CHECK (state = 'in_progress' OR status IS NOT NULL)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
