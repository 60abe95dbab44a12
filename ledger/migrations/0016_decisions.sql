-- The run's audit trail: every input the workflow heard (a decline report,
-- a signal, an update, with who and why), every decision the policy made
-- (with its reason in words and the facts it used) and every refusal of a
-- charge by a rule. The workflow carries each entry in the input of the
-- activity that already runs for its step, and the activity writes it here,
-- so decisions are recorded as they are made, never reconstructed.
CREATE TABLE decisions (
    key            text PRIMARY KEY,          -- <workflow_id>/journal-<n>: a retried activity writes nothing twice
    workflow_id    text NOT NULL,
    at             timestamptz NOT NULL,      -- the workflow's clock when it heard or decided
    kind           text NOT NULL CHECK (kind IN ('input', 'decision', 'refusal')),
    action         text NOT NULL,             -- e.g. retry, notify, service, close, expedite, payment-method-updated
    words          text NOT NULL,
    by_whom        text NOT NULL DEFAULT '',
    rule           text NOT NULL DEFAULT '',  -- refusals: the rule that refused
    card_key       text NOT NULL DEFAULT '',  -- the card a charge decision or refusal concerns
    attempt_key    text NOT NULL DEFAULT '',  -- retries: the charge's idempotency key
    facts          jsonb NOT NULL DEFAULT '{}',
    -- The card-network budget when the charge was reserved, counted in the
    -- reservation's own transaction.
    budget_network text NOT NULL DEFAULT '',
    budget_used    integer NULL,
    budget_limit   integer NULL,
    budget_window  text NOT NULL DEFAULT '',
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_workflow_idx ON decisions (workflow_id, at);
CREATE INDEX decisions_card_idx ON decisions (card_key, at) WHERE card_key <> '';
