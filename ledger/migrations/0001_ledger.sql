-- The dunning ledger: one row per run (failed invoice) and the attempts,
-- messages and service changes made for it. Amounts are exact numerics with
-- their ISO 4217 currency; rows are keyed by the idempotency key the workflow
-- derives, so a retried activity finds the row it wrote before.

CREATE TABLE runs (
    workflow_id    text PRIMARY KEY,
    tenant         text NOT NULL,
    invoice_id     text NOT NULL,
    customer_id    text NOT NULL,
    amount         numeric NOT NULL CHECK (amount > 0),
    currency       char(3) NOT NULL,
    policy         text NOT NULL,
    status         text NOT NULL CHECK (status IN ('open', 'recovered', 'exhausted', 'cancelled')),
    opened_at      timestamptz NOT NULL,
    closed_at      timestamptz NULL,
    closing_reason text NOT NULL DEFAULT '',
    -- An invoice is dunned by one workflow only, even after Temporal has
    -- forgotten the workflow.
    UNIQUE (tenant, invoice_id),
    CHECK ((status = 'open') = (closed_at IS NULL))
);

CREATE INDEX runs_status_idx ON runs (status);

CREATE TABLE attempts (
    idempotency_key text PRIMARY KEY,
    workflow_id     text NOT NULL REFERENCES runs (workflow_id),
    attempt         int NOT NULL CHECK (attempt > 0),
    reason          text NOT NULL,
    amount          numeric NOT NULL CHECK (amount > 0),
    currency        char(3) NOT NULL,
    gateway         text NOT NULL,
    payment_method  text NOT NULL DEFAULT '',
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'declined', 'failed')),
    decline_code    text NOT NULL DEFAULT '',
    advice_code     text NOT NULL DEFAULT '',
    message         text NOT NULL DEFAULT '',
    gateway_ref     text NOT NULL DEFAULT '',
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NULL,
    UNIQUE (workflow_id, attempt),
    CHECK ((status = 'pending') = (finished_at IS NULL))
);

-- (workflow_id, attempt) is already indexed by its unique constraint.

CREATE TABLE messages (
    idempotency_key text PRIMARY KEY,
    workflow_id     text NOT NULL REFERENCES runs (workflow_id),
    kind            text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient       text NOT NULL DEFAULT '',
    locale          text NOT NULL DEFAULT '',
    subject         text NOT NULL DEFAULT '',
    body            text NOT NULL DEFAULT '',
    status          text NOT NULL CHECK (status IN ('pending', 'sent', 'skipped', 'failed')),
    provider        text NOT NULL DEFAULT '',
    provider_ref    text NOT NULL DEFAULT '',
    detail          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz NULL,
    CHECK ((status = 'pending') = (finished_at IS NULL))
);

CREATE INDEX messages_workflow_idx ON messages (workflow_id, created_at);

CREATE TABLE service_changes (
    idempotency_key text PRIMARY KEY,
    workflow_id     text NOT NULL REFERENCES runs (workflow_id),
    state           text NOT NULL CHECK (state IN ('active', 'paused', 'suspended', 'cancelled')),
    reason          text NOT NULL DEFAULT '',
    callback_status text NOT NULL DEFAULT 'none' CHECK (callback_status IN ('none', 'pending', 'delivered', 'failed')),
    callback_detail text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL
);

CREATE INDEX service_changes_workflow_idx ON service_changes (workflow_id, created_at);
