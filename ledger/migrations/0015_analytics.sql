-- Recovery analytics (package analytics) group runs by what started them and
-- how they were dunned. The ledger kept the policy (name@version#hash) but
-- not the decline, the gateway, the card network or the experiment arm, so
-- runs gain them here. The run's opener fills them when it records the run;
-- runs recorded before keep '' except where the attempts tell (below), and
-- analytics report them under the group ''.
ALTER TABLE runs
    ADD COLUMN decline_code     text NOT NULL DEFAULT '', -- the gateway's code of the decline that started the run
    ADD COLUMN decline_category text NOT NULL DEFAULT '', -- decline.Category: hard, soft, customer_action, unknown
    ADD COLUMN gateway          text NOT NULL DEFAULT '',
    ADD COLUMN card_network     text NOT NULL DEFAULT '', -- lower case: visa, mastercard, or '' when unknown
    ADD COLUMN experiment       text NOT NULL DEFAULT '', -- the policy experiment that chose the policy, if any
    ADD COLUMN variant          text NOT NULL DEFAULT ''; -- its arm (the variant's policy name)

-- What the ledger already knows of earlier runs: the gateway of their first
-- attempt and the network of the card it reserved.
UPDATE runs r SET gateway = a.gateway
FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.attempt = 1;
UPDATE runs r SET card_network = c.network
FROM (SELECT DISTINCT ON (workflow_id) workflow_id, network FROM card_attempts
      WHERE network <> '' ORDER BY workflow_id, reserved_at) c
WHERE c.workflow_id = r.workflow_id;

-- Every analytics query reads one tenant's runs in one currency whose
-- decline falls in a period; the included columns let the outcome counts
-- and sums come from the index alone.
CREATE INDEX runs_analytics_idx ON runs (tenant, currency, opened_at)
    INCLUDE (status, amount, closed_at);
-- Aging reads only the open runs.
CREATE INDEX runs_open_analytics_idx ON runs (tenant, currency, opened_at)
    INCLUDE (amount) WHERE status = 'open';
-- The summary joins the period's runs to their answered attempts and sent
-- messages; these cover those joins without reading the tables' rows.
CREATE INDEX attempts_analytics_idx ON attempts (workflow_id) INCLUDE (status, amount, attempt, reason);
CREATE INDEX messages_analytics_idx ON messages (workflow_id) INCLUDE (status);

-- Series group runs by the day, week or month of the decline, and
-- breakdowns by policy name@version and by experiment arm: expressions the
-- planner cannot count the values of without these statistics, so it would
-- sort every run (on disk, at a million) instead of hashing a few groups.
CREATE STATISTICS runs_decline_day_stats ON (date_trunc('day', opened_at AT TIME ZONE 'UTC')) FROM runs;
CREATE STATISTICS runs_decline_week_stats ON (date_trunc('week', opened_at AT TIME ZONE 'UTC')) FROM runs;
CREATE STATISTICS runs_decline_month_stats ON (date_trunc('month', opened_at AT TIME ZONE 'UTC')) FROM runs;
CREATE STATISTICS runs_policy_version_stats ON (split_part(policy, '#', 1)) FROM runs;
CREATE STATISTICS runs_variant_stats ON ((CASE WHEN experiment = '' THEN '' ELSE experiment || '/' || variant END)) FROM runs;
