-- Recovery analytics at a million runs. Reading a year of runs row by row
-- takes seconds however it is indexed, so the ledger keeps two exact
-- aggregates of its runs, per tenant, currency and UTC day of the decline:
--
--   run_cohorts    the runs' counts and sums by status, once in total and
--                  once per value of each dimension analytics group on
--                  (decline category and code, gateway, card network,
--                  policy, experiment arm, how a recovered run was won):
--                  grouping sets, so a day holds a row per status and
--                  dimension value, however the dimensions combine;
--   run_durations  closed runs by how long they took (a histogram), so an
--                  exact median or p90 reads one bucket of runs, not all.
--
-- Statement triggers on runs keep both in the transaction of every write
-- to a run, so they are never behind and never count a retried write
-- twice: a write moves its runs' old rows out (-1) and their new rows in
-- (+1). Rows are upserted in key order, so two transactions never wait on
-- each other's aggregate rows in opposite orders. Analytics read whole
-- days from here and the partial days at a period's edges from runs.

-- Exhausted runs whose service was cancelled within 30 days of the close
-- (involuntary churn), kept on the run so the aggregates can count them.
ALTER TABLE runs ADD COLUMN churned boolean NOT NULL DEFAULT false;

UPDATE runs r SET churned = true
WHERE r.status = 'exhausted' AND EXISTS (
    SELECT 1 FROM service_changes c WHERE c.workflow_id = r.workflow_id AND c.state = 'cancelled'
    AND c.created_at <= r.closed_at + interval '30 days');

-- A run is churned when it is exhausted and a cancelled service change is
-- recorded no later than 30 days after its close, whichever comes first.
CREATE FUNCTION runs_set_churned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.churned := NEW.status = 'exhausted' AND EXISTS (
        SELECT 1 FROM service_changes c WHERE c.workflow_id = NEW.workflow_id AND c.state = 'cancelled'
        AND c.created_at <= NEW.closed_at + interval '30 days');
    RETURN NEW;
END $$;

CREATE TRIGGER runs_set_churned BEFORE INSERT OR UPDATE OF status, closed_at, churned ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_set_churned();

CREATE FUNCTION service_changes_mark_churned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- runs_set_churned decides; this only asks it to look again.
    UPDATE runs r SET churned = true
    FROM (SELECT DISTINCT workflow_id FROM new_changes WHERE state = 'cancelled') c
    WHERE r.workflow_id = c.workflow_id AND r.status = 'exhausted' AND NOT r.churned;
    RETURN NULL;
END $$;

CREATE TRIGGER service_changes_mark_churned AFTER INSERT ON service_changes
    REFERENCING NEW TABLE AS new_changes FOR EACH STATEMENT EXECUTE FUNCTION service_changes_mark_churned();

-- How a recovered run was won: its winning attempt's reason, or paid out
-- of band when no attempt of ours succeeded; '' for other runs.
CREATE FUNCTION analytics_recovery_method(status text, win_reason text, win_attempt int, closing_reason text)
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN status <> 'recovered' THEN ''
                WHEN win_reason = 'scheduled' THEN 'retry'
                WHEN win_reason = 'card_updated' THEN 'card_update'
                WHEN win_reason = 'expedite' THEN 'expedite'
                WHEN win_attempt = 0 AND closing_reason LIKE 'paid out of band%' THEN 'paid_out_of_band'
                ELSE 'other' END;

-- The histogram bucket of a run's duration: 8 buckets per doubling, so a
-- bucket holds a few percent of a period's runs at most; 0 below a second.
CREATE FUNCTION analytics_duration_bucket(d interval) RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN d < interval '1 second' THEN 0
                ELSE 1 + floor(ln(date_part('epoch', d)) / ln(2) * 8)::int END;

-- One run's rows in run_cohorts, with sign +1 (in) or -1 (out): its total
-- (dimension 'all') and its value in every dimension. key2 is the second
-- part of a two-part value: the variant of an experiment, the winning
-- attempt of a recovery method. Only the total carries the attempts,
-- messages and durations (the summary's); the dimensions' rows count runs
-- and amounts, so a finished attempt or message changes one row, not
-- eight. The triggers, the recount (ledger.RecountRunCohorts) and the
-- analytics queries' period edges all read runs through this one
-- definition.
CREATE FUNCTION run_cohort_rows(r runs, sign int) RETURNS TABLE (
    tenant text, currency char(3), day date, dimension text, key text, key2 text, status text, churned boolean,
    runs bigint, amount numeric, answered_attempts bigint, charged_attempts bigint,
    charged_amount numeric, sent_messages bigint, closed_seconds numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT r.tenant, r.currency, (r.opened_at AT TIME ZONE 'UTC')::date, d.dimension, d.key, d.key2, r.status, r.churned,
           sign::bigint, sign * r.amount,
           CASE WHEN d.total THEN sign * r.answered_attempts ELSE 0 END::bigint,
           CASE WHEN d.total THEN sign * r.charged_attempts ELSE 0 END::bigint,
           CASE WHEN d.total THEN sign * r.charged_amount ELSE 0 END,
           CASE WHEN d.total THEN sign * r.sent_messages ELSE 0 END::bigint,
           CASE WHEN d.total THEN sign * COALESCE(extract(epoch FROM r.closed_at - r.opened_at), 0) ELSE 0 END
    FROM (VALUES
        ('all', '', '', true),
        ('decline_category', r.decline_category, '', false),
        ('decline_code', r.decline_code, '', false),
        ('gateway', r.gateway, '', false),
        ('card_network', r.card_network, '', false),
        ('policy', split_part(r.policy, '#', 1), '', false), -- name@version, without the content hash
        ('variant', r.experiment, r.variant, false),
        ('method', analytics_recovery_method(r.status, r.win_reason, r.win_attempt, r.closing_reason),
                   CASE WHEN r.status = 'recovered' THEN r.win_attempt ELSE 0 END::text, false)
    ) AS d (dimension, key, key2, total)
$$;

CREATE TABLE run_cohorts (
    tenant            text NOT NULL,
    currency          char(3) NOT NULL,
    day               date NOT NULL, -- the UTC day the run was opened (declined)
    dimension         text NOT NULL, -- all, decline_category, decline_code, gateway, card_network, policy, variant, method
    key               text NOT NULL, -- the dimension's value ('' for all); the experiment of variant
    key2              text NOT NULL, -- the variant of an experiment; the winning attempt of a method; else ''
    status            text NOT NULL,
    churned           boolean NOT NULL,
    runs              bigint NOT NULL,
    amount            numeric NOT NULL,
    answered_attempts bigint NOT NULL,
    charged_attempts  bigint NOT NULL,
    charged_amount    numeric NOT NULL,
    sent_messages     bigint NOT NULL,
    closed_seconds    numeric NOT NULL, -- the closed runs' durations summed (means)
    -- answered_attempts to closed_seconds are kept on the rows of 'all'
    -- only, 0 on the others (run_cohort_rows)
    PRIMARY KEY (tenant, currency, dimension, day, key, key2, status, churned)
);

CREATE TABLE run_durations (
    tenant    text NOT NULL,
    currency  char(3) NOT NULL,
    day       date NOT NULL,
    recovered boolean NOT NULL, -- recovered, or closed another way
    bucket    int NOT NULL,     -- analytics_duration_bucket(closed_at - opened_at)
    runs      bigint NOT NULL,
    PRIMARY KEY (tenant, currency, day, recovered, bucket)
);

-- The runs of one duration bucket in duration order, for the rank a
-- percentile falls on.
CREATE INDEX runs_duration_idx ON runs (tenant, currency, analytics_duration_bucket(closed_at - opened_at), (closed_at - opened_at))
    INCLUDE (opened_at, status) WHERE status <> 'open';

-- Moves the written runs' old rows out of the aggregates and their new rows
-- in: d is the statement's transition rows as (sign, run); a transition
-- row is a record, so it is cast back to runs for run_cohort_rows. The
-- statement is written out once per event rather than built as text: only
-- a static statement keeps its plan between calls, and planning it anew
-- on every write tripled what a run's writes cost.
CREATE FUNCTION runs_sync_aggregates() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    emptied_cohorts bigint;
    emptied_durations bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH d AS (SELECT 1 AS sign, ROW(n.*)::runs AS r FROM new_runs n),
        cohorts AS (INSERT INTO run_cohorts
        SELECT c.tenant, c.currency, c.day, c.dimension, c.key, c.key2, c.status, c.churned,
               sum(c.runs), sum(c.amount), sum(c.answered_attempts), sum(c.charged_attempts),
               sum(c.charged_amount), sum(c.sent_messages), sum(c.closed_seconds)
        FROM d, LATERAL run_cohort_rows(d.r, d.sign) c
        GROUP BY c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned
        HAVING sum(c.runs) <> 0 OR sum(c.amount) <> 0 OR sum(c.answered_attempts) <> 0 OR sum(c.charged_attempts) <> 0
            OR sum(c.charged_amount) <> 0 OR sum(c.sent_messages) <> 0 OR sum(c.closed_seconds) <> 0
        ORDER BY c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned
        ON CONFLICT (tenant, currency, dimension, day, key, key2, status, churned) DO UPDATE SET
            runs = run_cohorts.runs + EXCLUDED.runs,
            amount = run_cohorts.amount + EXCLUDED.amount,
            answered_attempts = run_cohorts.answered_attempts + EXCLUDED.answered_attempts,
            charged_attempts = run_cohorts.charged_attempts + EXCLUDED.charged_attempts,
            charged_amount = run_cohorts.charged_amount + EXCLUDED.charged_amount,
            sent_messages = run_cohorts.sent_messages + EXCLUDED.sent_messages,
            closed_seconds = run_cohorts.closed_seconds + EXCLUDED.closed_seconds
        RETURNING runs),
        durations AS (INSERT INTO run_durations
        SELECT (d.r).tenant, (d.r).currency, ((d.r).opened_at AT TIME ZONE 'UTC')::date, (d.r).status = 'recovered',
               analytics_duration_bucket((d.r).closed_at - (d.r).opened_at), sum(d.sign)
        FROM d WHERE (d.r).status <> 'open'
        GROUP BY 1, 2, 3, 4, 5 HAVING sum(d.sign) <> 0 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (tenant, currency, day, recovered, bucket) DO UPDATE SET runs = run_durations.runs + EXCLUDED.runs
        RETURNING runs)
        SELECT (SELECT count(*) FILTER (WHERE runs = 0) FROM cohorts), (SELECT count(*) FILTER (WHERE runs = 0) FROM durations)
        INTO emptied_cohorts, emptied_durations;
    ELSIF TG_OP = 'UPDATE' THEN
        WITH d AS (SELECT 1 AS sign, ROW(n.*)::runs AS r FROM new_runs n UNION ALL SELECT -1, ROW(o.*)::runs FROM old_runs o),
        cohorts AS (INSERT INTO run_cohorts
        SELECT c.tenant, c.currency, c.day, c.dimension, c.key, c.key2, c.status, c.churned,
               sum(c.runs), sum(c.amount), sum(c.answered_attempts), sum(c.charged_attempts),
               sum(c.charged_amount), sum(c.sent_messages), sum(c.closed_seconds)
        FROM d, LATERAL run_cohort_rows(d.r, d.sign) c
        GROUP BY c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned
        HAVING sum(c.runs) <> 0 OR sum(c.amount) <> 0 OR sum(c.answered_attempts) <> 0 OR sum(c.charged_attempts) <> 0
            OR sum(c.charged_amount) <> 0 OR sum(c.sent_messages) <> 0 OR sum(c.closed_seconds) <> 0
        ORDER BY c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned
        ON CONFLICT (tenant, currency, dimension, day, key, key2, status, churned) DO UPDATE SET
            runs = run_cohorts.runs + EXCLUDED.runs,
            amount = run_cohorts.amount + EXCLUDED.amount,
            answered_attempts = run_cohorts.answered_attempts + EXCLUDED.answered_attempts,
            charged_attempts = run_cohorts.charged_attempts + EXCLUDED.charged_attempts,
            charged_amount = run_cohorts.charged_amount + EXCLUDED.charged_amount,
            sent_messages = run_cohorts.sent_messages + EXCLUDED.sent_messages,
            closed_seconds = run_cohorts.closed_seconds + EXCLUDED.closed_seconds
        RETURNING runs),
        durations AS (INSERT INTO run_durations
        SELECT (d.r).tenant, (d.r).currency, ((d.r).opened_at AT TIME ZONE 'UTC')::date, (d.r).status = 'recovered',
               analytics_duration_bucket((d.r).closed_at - (d.r).opened_at), sum(d.sign)
        FROM d WHERE (d.r).status <> 'open'
        GROUP BY 1, 2, 3, 4, 5 HAVING sum(d.sign) <> 0 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (tenant, currency, day, recovered, bucket) DO UPDATE SET runs = run_durations.runs + EXCLUDED.runs
        RETURNING runs)
        SELECT (SELECT count(*) FILTER (WHERE runs = 0) FROM cohorts), (SELECT count(*) FILTER (WHERE runs = 0) FROM durations)
        INTO emptied_cohorts, emptied_durations;
    ELSE
        WITH d AS (SELECT -1 AS sign, ROW(o.*)::runs AS r FROM old_runs o),
        cohorts AS (INSERT INTO run_cohorts
        SELECT c.tenant, c.currency, c.day, c.dimension, c.key, c.key2, c.status, c.churned,
               sum(c.runs), sum(c.amount), sum(c.answered_attempts), sum(c.charged_attempts),
               sum(c.charged_amount), sum(c.sent_messages), sum(c.closed_seconds)
        FROM d, LATERAL run_cohort_rows(d.r, d.sign) c
        GROUP BY c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned
        HAVING sum(c.runs) <> 0 OR sum(c.amount) <> 0 OR sum(c.answered_attempts) <> 0 OR sum(c.charged_attempts) <> 0
            OR sum(c.charged_amount) <> 0 OR sum(c.sent_messages) <> 0 OR sum(c.closed_seconds) <> 0
        ORDER BY c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned
        ON CONFLICT (tenant, currency, dimension, day, key, key2, status, churned) DO UPDATE SET
            runs = run_cohorts.runs + EXCLUDED.runs,
            amount = run_cohorts.amount + EXCLUDED.amount,
            answered_attempts = run_cohorts.answered_attempts + EXCLUDED.answered_attempts,
            charged_attempts = run_cohorts.charged_attempts + EXCLUDED.charged_attempts,
            charged_amount = run_cohorts.charged_amount + EXCLUDED.charged_amount,
            sent_messages = run_cohorts.sent_messages + EXCLUDED.sent_messages,
            closed_seconds = run_cohorts.closed_seconds + EXCLUDED.closed_seconds
        RETURNING runs),
        durations AS (INSERT INTO run_durations
        SELECT (d.r).tenant, (d.r).currency, ((d.r).opened_at AT TIME ZONE 'UTC')::date, (d.r).status = 'recovered',
               analytics_duration_bucket((d.r).closed_at - (d.r).opened_at), sum(d.sign)
        FROM d WHERE (d.r).status <> 'open'
        GROUP BY 1, 2, 3, 4, 5 HAVING sum(d.sign) <> 0 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (tenant, currency, day, recovered, bucket) DO UPDATE SET runs = run_durations.runs + EXCLUDED.runs
        RETURNING runs)
        SELECT (SELECT count(*) FILTER (WHERE runs = 0) FROM cohorts), (SELECT count(*) FILTER (WHERE runs = 0) FROM durations)
        INTO emptied_cohorts, emptied_durations;
    END IF;
    -- A group whose last run moved out is dropped; its sums are 0 with it.
    IF emptied_cohorts > 0 THEN
        DELETE FROM run_cohorts c USING (
            SELECT DISTINCT x.tenant, x.currency, x.dimension, x.day, x.key, x.key2, x.status, x.churned
            FROM old_runs o, LATERAL run_cohort_rows(ROW(o.*)::runs, -1) x) k
        WHERE c.runs = 0 AND (c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned)
            = (k.tenant, k.currency, k.dimension, k.day, k.key, k.key2, k.status, k.churned);
    END IF;
    IF emptied_durations > 0 THEN
        DELETE FROM run_durations WHERE runs = 0 AND (tenant, currency, day) IN (
            SELECT DISTINCT o.tenant, o.currency, (o.opened_at AT TIME ZONE 'UTC')::date FROM old_runs o);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_sync_aggregates_insert AFTER INSERT ON runs
    REFERENCING NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION runs_sync_aggregates();
CREATE TRIGGER runs_sync_aggregates_update AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION runs_sync_aggregates();
CREATE TRIGGER runs_sync_aggregates_delete AFTER DELETE ON runs
    REFERENCING OLD TABLE AS old_runs FOR EACH STATEMENT EXECUTE FUNCTION runs_sync_aggregates();

-- The runs recorded so far.
INSERT INTO run_cohorts
SELECT c.tenant, c.currency, c.day, c.dimension, c.key, c.key2, c.status, c.churned,
       sum(c.runs), sum(c.amount), sum(c.answered_attempts), sum(c.charged_attempts),
       sum(c.charged_amount), sum(c.sent_messages), sum(c.closed_seconds)
FROM runs r, LATERAL run_cohort_rows(r, 1) c
GROUP BY c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned;

INSERT INTO run_durations
SELECT tenant, currency, (opened_at AT TIME ZONE 'UTC')::date, status = 'recovered',
       analytics_duration_bucket(closed_at - opened_at), count(*)
FROM runs WHERE status <> 'open' GROUP BY 1, 2, 3, 4, 5;

-- The summary reads these indexes now; the period's runs at the edges come
-- from runs_rollup_analytics_idx.
DROP INDEX attempts_analytics_idx;
DROP INDEX messages_analytics_idx;

-- Aging joins the open runs to their phase in the read model: both sides
-- from an index alone (open runs are a fraction of the ledger; the phase
-- is not kept in the aggregates because run_status is written apart from
-- runs, and a trigger there would lock runs in the opposite order).
DROP INDEX runs_open_analytics_idx;
CREATE INDEX runs_open_analytics_idx ON runs (tenant, currency, opened_at)
    INCLUDE (amount, workflow_id) WHERE status = 'open';
CREATE INDEX run_status_open_phase_idx ON run_status (workflow_id) INCLUDE (phase)
    WHERE phase NOT IN ('recovered', 'exhausted', 'cancelled', 'aborted');
