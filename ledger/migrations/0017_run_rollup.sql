-- A per-run rollup of its attempts and messages, so recovery analytics read
-- one row per run instead of joining a period's runs to millions of
-- attempts and messages. The ledger keeps it in the same statement as the
-- write that changes it (FinishAttempt, FinishMessage), and only a first
-- finish (pending -> final) counts, so a retried write never counts twice.
ALTER TABLE runs
    ADD COLUMN answered_attempts int     NOT NULL DEFAULT 0, -- attempts the gateway answered: succeeded or declined
    ADD COLUMN charged_attempts  int     NOT NULL DEFAULT 0, -- succeeded attempts
    ADD COLUMN charged_amount    numeric NOT NULL DEFAULT 0, -- their amounts' sum
    ADD COLUMN win_attempt       int     NOT NULL DEFAULT 0, -- the lowest succeeded attempt's number, 0 without one
    ADD COLUMN win_reason        text    NOT NULL DEFAULT '', -- its reason: scheduled, card_updated, expedite
    ADD COLUMN sent_messages     int     NOT NULL DEFAULT 0; -- messages sent or dry-run

-- Backfill from the detail tables (ledger.RecountRunRollups runs the same
-- statement).
UPDATE runs r SET answered_attempts = x.answered, charged_attempts = x.charged, charged_amount = x.charged_amount,
       win_attempt = x.win_attempt, win_reason = x.win_reason, sent_messages = x.sent
FROM (SELECT r0.workflow_id,
             COALESCE(a.answered, 0) AS answered, COALESCE(a.charged, 0) AS charged,
             COALESCE(a.charged_amount, 0) AS charged_amount, COALESCE(a.win_attempt, 0) AS win_attempt,
             COALESCE(a.win_reason, '') AS win_reason, COALESCE(m.sent, 0) AS sent
      FROM runs r0
      LEFT JOIN (SELECT workflow_id,
                        count(*) FILTER (WHERE status IN ('succeeded', 'declined')) AS answered,
                        count(*) FILTER (WHERE status = 'succeeded') AS charged,
                        sum(amount) FILTER (WHERE status = 'succeeded') AS charged_amount,
                        min(attempt) FILTER (WHERE status = 'succeeded') AS win_attempt,
                        (array_agg(reason ORDER BY attempt) FILTER (WHERE status = 'succeeded'))[1] AS win_reason
                 FROM attempts GROUP BY workflow_id) a ON a.workflow_id = r0.workflow_id
      LEFT JOIN (SELECT workflow_id, count(*) AS sent FROM messages
                 WHERE status IN ('sent', 'dry-run') GROUP BY workflow_id) m ON m.workflow_id = r0.workflow_id) x
WHERE r.workflow_id = x.workflow_id
  AND (r.answered_attempts, r.charged_attempts, r.charged_amount, r.win_attempt, r.win_reason, r.sent_messages)
      IS DISTINCT FROM (x.answered, x.charged, x.charged_amount, x.win_attempt, x.win_reason, x.sent);

-- The summary and the recovery methods read the period's runs with their
-- rollup from this index alone (a month's runs, not the whole table).
CREATE INDEX runs_rollup_analytics_idx ON runs (tenant, currency, opened_at)
    INCLUDE (status, amount, closed_at, closing_reason, answered_attempts, charged_attempts, charged_amount,
             win_attempt, win_reason, sent_messages);
