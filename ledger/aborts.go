package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file serves the sweeper (package sweeper): it lists the runs still
// open and closes, as aborted, those whose workflow ended without closing
// them.

// OpenRunsPage returns up to limit open runs opened before before, in
// workflow ID order after the ID after (empty for the first page).
func (s *Store) OpenRunsPage(ctx context.Context, before time.Time, after string, limit int) ([]Run, error) {
	if limit <= 0 || limit > MaxListLimit {
		return nil, invalid("open runs: limit %d is not between 1 and %d", limit, MaxListLimit)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs
		WHERE status = 'open' AND opened_at < $1 AND workflow_id > $2
		ORDER BY workflow_id LIMIT $3`, before, after, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: open runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("ledger: open runs: %w", err)
	}
	return runs, nil
}

// Abort closes a run whose workflow execution ended without closing it.
type Abort struct {
	WorkflowID string
	// ExecutionRunID and Aborts are the run row's as the sweeper read it
	// before it found the workflow ended: the run is aborted only while
	// the row still says so, so an execution that reopened or took over
	// the run since is never closed by mistake.
	ExecutionRunID string
	Aborts         int
	Reason         string
	At             time.Time // zero means now
	// Event, when not nil, is enqueued in the same transaction.
	Event *OutboxEvent
}

// AbortRun closes the open run as aborted, gives its read-model row the
// phase "aborted" and enqueues the abort's event, all in one transaction.
// It reports false, changing nothing, when the run is no longer open or
// has changed hands since it was read (a.ExecutionRunID, a.Aborts): a
// fresh execution that took the run over since the sweeper looked is never
// closed by mistake. Nothing
// else is touched: attempts, messages and service changes stay as the
// ended execution recorded them.
func (s *Store) AbortRun(ctx context.Context, a Abort) (bool, error) {
	switch {
	case a.WorkflowID == "":
		return false, invalid("abort run: workflow ID is required")
	case a.Aborts < 0:
		return false, invalid("abort run %s: aborts %d must not be negative", a.WorkflowID, a.Aborts)
	}
	if a.Event != nil {
		e := *a.Event
		if e.WorkflowID == "" {
			e.WorkflowID = a.WorkflowID
		}
		if e.WorkflowID != a.WorkflowID {
			return false, invalid("outbox event %s of run %s: it reports the abort of run %s", e.IdempotencyKey, e.WorkflowID, a.WorkflowID)
		}
		if err := validateOutboxEvent(e); err != nil {
			return false, err
		}
		a.Event = &e
	}
	var aborted bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET status = 'aborted', closed_at = $3, closing_reason = $4, aborts = aborts + 1
			WHERE workflow_id = $1 AND status = 'open' AND execution_run_id = $2 AND aborts = $5`,
			a.WorkflowID, a.ExecutionRunID, orNow(a.At), a.Reason, a.Aborts)
		if err != nil {
			return fmt.Errorf("ledger: abort run %s: %w", a.WorkflowID, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		aborted = true
		if err := closeRunStatus(ctx, tx, a.WorkflowID); err != nil {
			return err
		}
		if a.Event != nil {
			if _, err := enqueue(ctx, tx, *a.Event); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return aborted, nil
}
