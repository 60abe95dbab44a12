-- Transactional outbox for the events we POST to the billing system
-- (service.state_changed, run.closed, service.credited).
--
-- Why: the activities used to write the ledger and then POST in the same
-- activity, so a crash between the two, or a billing system that was down,
-- either lost the event or kept the workflow's activity retrying for hours.
-- Now the event row is written in the same transaction as the ledger row it
-- reports, so one never exists without the other, and a dispatcher delivers
-- it at least once, with the same Idempotency-Key and the same body on every
-- attempt, retrying with backoff until the billing system answers 2xx.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    -- The event's key, sent as the Idempotency-Key header: the service
    -- change's or credit's key, or <workflow_id>/closed. Unique, so
    -- enqueueing again (a retried activity) adds nothing.
    idempotency_key text NOT NULL UNIQUE,
    workflow_id     text NOT NULL,
    kind            text NOT NULL,             -- the event's type field, e.g. run.closed
    url             text NOT NULL,
    -- The JSON the billing system receives, built once when the event is
    -- enqueued: every retry sends these bytes (jsonb's canonical text).
    body            jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0), -- answers recorded so far
    -- When a dispatcher may take the row next. Claiming it pushes this
    -- forward by a lease, so two dispatchers never send it at once.
    next_attempt_at timestamptz NOT NULL,
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    last_attempt_at timestamptz NULL,          -- when the last answer (or error) was recorded
    delivered_at    timestamptz NULL,
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);

-- Dispatchers poll "pending and due, oldest first"; ops list failed rows and
-- pending rows that have waited too long. Both read this index.
CREATE INDEX outbox_status_due_idx ON outbox (status, next_attempt_at);

-- Events of one run are delivered in order (paused before suspended before
-- closed): a row is due only when no older row of its run is still pending.
-- This partial index keeps that check cheap.
CREATE INDEX outbox_pending_workflow_idx ON outbox (workflow_id, id) WHERE status = 'pending';
