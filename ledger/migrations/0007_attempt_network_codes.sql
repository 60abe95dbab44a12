-- A retried charge activity returns what the ledger holds instead of calling
-- the gateway again, so the ledger keeps every field the decline
-- classification reads: without the network codes a Mastercard MAC 03 or a
-- Visa category 1 decline seen before a crash would no longer block the card.
ALTER TABLE attempts
    ADD COLUMN network_decline_code text NOT NULL DEFAULT '',
    ADD COLUMN network_advice_code  text NOT NULL DEFAULT '',
    ADD COLUMN requires_action      boolean NOT NULL DEFAULT false;
