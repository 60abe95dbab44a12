-- Attempts a card-network rule stopped before any charge: which rule, and
-- when it would allow one. One row per attempt key and rule.
CREATE TABLE card_denials (
    idempotency_key text NOT NULL,
    rule            text NOT NULL,
    card_key        text NOT NULL,
    network         text NOT NULL,
    workflow_id     text NOT NULL,
    not_before      timestamptz,
    denied_at       timestamptz NOT NULL,
    PRIMARY KEY (idempotency_key, rule)
);
CREATE INDEX card_denials_workflow_idx ON card_denials (workflow_id);
