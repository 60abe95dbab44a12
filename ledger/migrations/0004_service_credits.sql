-- Service credits for days the customer could not use (suspended service),
-- computed by the proration rule and recorded once per run and reason.
CREATE TABLE service_credits (
    idempotency_key text PRIMARY KEY,
    workflow_id     text NOT NULL REFERENCES runs (workflow_id),
    amount          numeric NOT NULL CHECK (amount >= 0),
    currency        char(3) NOT NULL,
    days            integer NOT NULL CHECK (days >= 0),
    period_days     integer NOT NULL CHECK (period_days > 0 AND days <= period_days),
    period_charge   numeric NOT NULL CHECK (period_charge > 0),
    reason          text NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX service_credits_workflow_idx ON service_credits (workflow_id);
