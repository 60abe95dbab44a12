-- Card-network retry budget. Visa and Mastercard limit how often a declined
-- card may be retried and charge fees past those limits. The budget belongs
-- to the card, not to a run: two failed invoices charged to one card draw
-- from the same budget, so every charge reserves a row here first.

CREATE TABLE card_attempts (
    idempotency_key text PRIMARY KEY,          -- the charge's key, e.g. <run>/attempt-<n>
    card_key        text NOT NULL,             -- stable card identity from the gateway, never a PAN
    network         text NOT NULL,             -- lower case: visa, mastercard, or '' when unknown
    merchant        text NOT NULL,             -- the tenant charging the card
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        char(3) NOT NULL,
    workflow_id     text NOT NULL,
    reserved_at     timestamptz NOT NULL,
    outcome         text NOT NULL DEFAULT 'pending' CHECK (outcome IN ('pending', 'succeeded', 'declined', 'failed')),
    finished_at     timestamptz NULL,
    CHECK ((outcome = 'pending') = (finished_at IS NULL))
);

-- Every limit counts a card's attempts inside a trailing window.
CREATE INDEX card_attempts_card_idx ON card_attempts (card_key, reserved_at);

-- Cards that may not be retried until blocked_until, e.g. after Mastercard
-- Merchant Advice Code 03 or 21 or a Visa category 1 decline. source_key is
-- the charge whose answer set the block, so recording it again is a no-op.
CREATE TABLE card_blocks (
    card_key      text NOT NULL,
    network       text NOT NULL,
    reason        text NOT NULL,               -- e.g. mastercard advice 03
    blocked_until timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    source_key    text NOT NULL,
    PRIMARY KEY (card_key, source_key)
);
