-- Events received from providers' webhooks (Stripe first), so that each is
-- acted on at most once: providers deliver at least once and resend an
-- event until it is acknowledged, and ops can resend one by hand.
--
-- A delivery claims the event (status processing, with a lease), acts on
-- it, and marks it processed. A delivery that fails hands the claim back
-- (the row is deleted), so the provider's retry acts on it again; a claim
-- whose delivery died (a crashed API process) expires with its lease.
CREATE TABLE webhook_events (
    source        text NOT NULL,                -- the provider, e.g. 'stripe'
    tenant        text NOT NULL,                -- from the endpoint's path, never from the event
    event_id      text NOT NULL,                -- the provider's event ID, e.g. evt_...
    type          text NOT NULL,                -- e.g. invoice.payment_failed
    status        text NOT NULL CHECK (status IN ('processing', 'processed')),
    claimed_until timestamptz NULL,             -- the lease of the delivery processing it
    outcome       text NOT NULL DEFAULT '',     -- what was done, for ops
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz NULL,
    PRIMARY KEY (source, tenant, event_id),
    CHECK ((status = 'processing') = (claimed_until IS NOT NULL)),
    CHECK ((status = 'processed') = (processed_at IS NOT NULL))
);

-- Pruning deletes what no provider can send again (Stripe resends events
-- for at most 30 days), oldest first.
CREATE INDEX webhook_events_received_idx ON webhook_events (received_at);
