-- Runs whose workflow ended without closing them.
--
-- A workflow that is terminated (by ops, or by the server when its history
-- grew past the limit), fails, times out or is cancelled before its close
-- leaves its run "open" here for ever: the API then refuses new declines
-- for the invoice and the read model shows a run nobody works on. The
-- sweeper (package sweeper) finds such runs by asking Temporal about each
-- open run's workflow and closes them as "aborted", with a run.aborted
-- event for the billing system. An aborted run decided nothing (neither
-- recovered, exhausted nor cancelled), so unlike the other final statuses
-- it may be opened again: the next decline for the invoice starts a fresh
-- workflow, which reopens this row.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('open', 'recovered', 'exhausted', 'cancelled', 'aborted'));

-- The Temporal run ID of the workflow execution that opened (or reopened)
-- the run: the first run of its continue-as-new chain. The sweeper closes
-- a run only while this still names the execution Temporal reported
-- ended, so a fresh execution that reopened the run in the meantime is
-- never closed by mistake. Empty for runs opened before this migration.
ALTER TABLE runs ADD COLUMN execution_run_id text NOT NULL DEFAULT '';

-- How many times the run was aborted (and so possibly reopened); it keys
-- the events of each reopening.
ALTER TABLE runs ADD COLUMN aborts integer NOT NULL DEFAULT 0 CHECK (aborts >= 0);

-- The sweeper pages through open runs by workflow ID.
CREATE INDEX runs_open_idx ON runs (workflow_id) WHERE status = 'open';
