-- The read model of runs: where each run stands, one row per run, so the
-- API can answer a run's status and list runs without a worker. Temporal
-- answers the status query only while a worker polls the run's task queue;
-- during a deploy or an outage of the workers this table still answers.
--
-- The workflow reports its state when it parks (ReportStatus); OpenRun and
-- CloseRun keep the row right where the ledger itself knows the answer, in
-- the same transaction as the run row. A report never moves the row back in
-- time: an older updated_at than the stored one is ignored (local
-- activities can be retried and arrive late).
CREATE TABLE run_status (
    workflow_id      text PRIMARY KEY REFERENCES runs (workflow_id),
    tenant           text NOT NULL,
    invoice_id       text NOT NULL,
    customer_id      text NOT NULL,
    -- The workflow's phase (recovering, action_required, paused, suspended,
    -- needs_attention, recovered, exhausted, cancelled). Not checked here,
    -- so a new phase needs no migration.
    phase            text NOT NULL,
    service_state    text NOT NULL DEFAULT 'active' CHECK (service_state IN ('active', 'paused', 'suspended', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_action      text NOT NULL DEFAULT '',
    next_at          timestamptz NULL,
    attention_cause  text NOT NULL DEFAULT '',
    attention_detail text NOT NULL DEFAULT '',
    attention_since  timestamptz NULL,
    updated_at       timestamptz NOT NULL
);

-- Listing pages through one tenant's runs, least recently updated first,
-- optionally in one phase or for one customer: keyset pagination on
-- (updated_at, workflow_id) reads each of these indexes in order.
CREATE INDEX run_status_tenant_idx ON run_status (tenant, updated_at, workflow_id);
CREATE INDEX run_status_tenant_phase_idx ON run_status (tenant, phase, updated_at, workflow_id);
CREATE INDEX run_status_tenant_customer_idx ON run_status (tenant, customer_id, updated_at, workflow_id);

-- Runs opened before this table existed: closed ones are final; open ones
-- start as recovering until their workflow next reports.
INSERT INTO run_status (workflow_id, tenant, invoice_id, customer_id, phase, service_state, attempts, updated_at)
SELECT r.workflow_id, r.tenant, r.invoice_id, r.customer_id,
       CASE r.status WHEN 'open' THEN 'recovering' ELSE r.status END,
       COALESCE((SELECT c.state FROM service_changes c WHERE c.workflow_id = r.workflow_id
                 ORDER BY c.created_at DESC, c.idempotency_key DESC LIMIT 1), 'active'),
       (SELECT count(*) FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.status IN ('succeeded', 'declined')),
       COALESCE(r.closed_at, r.opened_at)
FROM runs r;

-- A message rendered and recorded while no provider was configured (dry-run
-- mode) was not sent, and says so.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('pending', 'sent', 'dry-run', 'skipped', 'failed'));
