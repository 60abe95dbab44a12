package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Run statuses.
const (
	runOpen      = "open"
	runRecovered = "recovered"
	runExhausted = "exhausted"
	runCancelled = "cancelled"
	// RunAborted is the status of a run whose workflow ended without
	// closing it (terminated, failed, timed out, cancelled); see AbortRun.
	// It is final for the workflow that ended, not for the invoice: the
	// next OpenRun reopens the run.
	RunAborted = "aborted"
)

var closedRunStatuses = []string{runRecovered, runExhausted, runCancelled}

// Run is one dunning run: the workflow chasing one failed invoice.
type Run struct {
	WorkflowID, Tenant, InvoiceID, CustomerID string
	Amount                                    decimal.Decimal
	Currency                                  string
	Policy                                    string
	Status                                    string // open, recovered, exhausted, cancelled, aborted
	OpenedAt                                  time.Time
	ClosedAt                                  time.Time // zero while open
	ClosingReason                             string
	// ExecutionRunID is the Temporal run ID of the workflow execution that
	// opened the run (the first of its continue-as-new chain); empty when
	// unknown (runs opened before it was recorded, or outside a workflow).
	ExecutionRunID string
	// Aborts counts how many times the run was aborted (AbortRun) and
	// reopened since.
	Aborts int
	// Origin is what started the run and how it is dunned, for recovery
	// analytics (migration 0015); written when the run is opened.
	Origin RunOrigin
}

// RunOrigin groups a run for analytics: the decline that started it, the
// gateway and card network, and the policy experiment arm, if any. Empty
// fields are reported under the group "".
type RunOrigin struct {
	DeclineCode, DeclineCategory, Gateway, CardNetwork, Experiment, Variant string
}

const runColumns = `workflow_id, tenant, invoice_id, customer_id, amount::text, currency, policy, status, opened_at, closed_at, closing_reason,
	execution_run_id, aborts`

func scanRun(row pgx.Row) (Run, error) {
	var (
		r      Run
		amount string
		opened time.Time
		closed *time.Time
	)
	err := row.Scan(&r.WorkflowID, &r.Tenant, &r.InvoiceID, &r.CustomerID, &amount, &r.Currency,
		&r.Policy, &r.Status, &opened, &closed, &r.ClosingReason, &r.ExecutionRunID, &r.Aborts)
	if err != nil {
		return Run{}, err
	}
	if r.Amount, err = decimal.NewFromString(amount); err != nil {
		return Run{}, fmt.Errorf("ledger: run %s: amount %q: %w", r.WorkflowID, amount, err)
	}
	r.OpenedAt, r.ClosedAt = opened.UTC(), nullTime(closed)
	return r, nil
}

func validateRun(r Run) error {
	switch {
	case r.WorkflowID == "":
		return invalid("run: workflow ID is required")
	case r.Tenant == "" || r.InvoiceID == "" || r.CustomerID == "":
		return invalid("run %s: tenant, invoice ID and customer ID are required", r.WorkflowID)
	case !r.Amount.IsPositive():
		return invalid("run %s: amount %s must be greater than zero", r.WorkflowID, r.Amount)
	case !validCurrency(r.Currency):
		return invalid("run %s: currency %q is not a three-letter ISO 4217 code", r.WorkflowID, r.Currency)
	case r.Policy == "":
		return invalid("run %s: policy is required", r.WorkflowID)
	case r.Status != "" && r.Status != runOpen:
		return invalid("run %s: a run opens with status %q, not %q", r.WorkflowID, runOpen, r.Status)
	}
	return nil
}

// OpenRun inserts the run with status "open" if absent and returns the stored
// row. An existing open run is returned as is, so a retried activity
// succeeds, and so does a new execution of the same workflow ID after the
// previous one failed without closing the run. An existing closed run is
// returned with an error wrapping ErrRunClosed: an invoice whose dunning
// ended is not dunned again. A run for the same tenant and invoice under
// another workflow ID is ErrConflict. A zero OpenedAt is recorded as now.
//
// The run's read-model row (run_status) is written in the same transaction:
// phase "recovering" as of OpenedAt, unless it already describes a later
// moment.
func (s *Store) OpenRun(ctx context.Context, r Run) (Run, error) {
	if err := validateRun(r); err != nil {
		return Run{}, err
	}
	r.OpenedAt = orNow(r.OpenedAt)
	var stored Run
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// DO NOTHING without a target covers both the workflow ID and the
		// (tenant, invoice_id) key; the read below tells them apart.
		_, err := tx.Exec(ctx, `INSERT INTO runs
			(workflow_id, tenant, invoice_id, customer_id, amount, currency, policy, status, opened_at, execution_run_id,
			 decline_code, decline_category, gateway, card_network, experiment, variant)
			VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, 'open', $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT DO NOTHING`,
			r.WorkflowID, r.Tenant, r.InvoiceID, r.CustomerID, numericText(r.Amount), r.Currency, r.Policy, r.OpenedAt, r.ExecutionRunID,
			r.Origin.DeclineCode, r.Origin.DeclineCategory, r.Origin.Gateway, strings.ToLower(r.Origin.CardNetwork), r.Origin.Experiment, r.Origin.Variant)
		if err != nil {
			return fmt.Errorf("ledger: open run %s: %w", r.WorkflowID, err)
		}
		stored, err = getRun(ctx, tx, r.WorkflowID)
		if errors.Is(err, ErrNotFound) {
			var other string
			if err := tx.QueryRow(ctx, `SELECT workflow_id FROM runs WHERE tenant = $1 AND invoice_id = $2`,
				r.Tenant, r.InvoiceID).Scan(&other); err != nil {
				return fmt.Errorf("ledger: open run %s: %w", r.WorkflowID, err)
			}
			return fmt.Errorf("ledger: open run %s: invoice %s of tenant %s belongs to run %s: %w",
				r.WorkflowID, r.InvoiceID, r.Tenant, other, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("ledger: open run %s: %w", r.WorkflowID, err)
		}
		if stored.Tenant != r.Tenant || stored.InvoiceID != r.InvoiceID {
			return fmt.Errorf("ledger: open run %s: it was opened for invoice %s of tenant %s: %w",
				r.WorkflowID, stored.InvoiceID, stored.Tenant, ErrConflict)
		}
		switch {
		case stored.Status == RunAborted:
			if stored, err = reopenRun(ctx, tx, r); err != nil {
				return err
			}
		case stored.Status != runOpen:
			return fmt.Errorf("ledger: open run %s: %w (%s: %s)", r.WorkflowID, ErrRunClosed, stored.Status, stored.ClosingReason)
		case r.ExecutionRunID != "" && stored.ExecutionRunID != r.ExecutionRunID:
			// A new execution took over an open run (its previous one
			// failed before the sweeper saw it): it holds the run now.
			if _, err := tx.Exec(ctx, `UPDATE runs SET execution_run_id = $2 WHERE workflow_id = $1`,
				r.WorkflowID, r.ExecutionRunID); err != nil {
				return fmt.Errorf("ledger: open run %s: record its execution: %w", r.WorkflowID, err)
			}
			stored.ExecutionRunID = r.ExecutionRunID
		}
		return openRunStatus(ctx, tx, stored.withOpenedAt(r.OpenedAt))
	})
	if err != nil {
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrRunClosed) {
			return stored, err
		}
		return Run{}, err
	}
	return stored, nil
}

// reopenRun opens an aborted run again for the execution r describes.
func reopenRun(ctx context.Context, tx pgx.Tx, r Run) (Run, error) {
	_, err := tx.Exec(ctx, `UPDATE runs SET status = 'open', closed_at = NULL, closing_reason = '',
			customer_id = $2, amount = $3::numeric, currency = $4, policy = $5, execution_run_id = $6
		WHERE workflow_id = $1 AND status = 'aborted'`,
		r.WorkflowID, r.CustomerID, numericText(r.Amount), r.Currency, r.Policy, r.ExecutionRunID)
	if err != nil {
		return Run{}, fmt.Errorf("ledger: reopen run %s: %w", r.WorkflowID, err)
	}
	// The read model leaves the final phase the abort gave it, whatever
	// time the abort carried.
	if _, err := tx.Exec(ctx, `UPDATE run_status SET phase = 'recovering', next_action = '', next_at = NULL,
			attention_cause = '', attention_detail = '', attention_since = NULL, updated_at = GREATEST(updated_at, $2)
		WHERE workflow_id = $1`, r.WorkflowID, orNow(r.OpenedAt)); err != nil {
		return Run{}, fmt.Errorf("ledger: reopen run %s: record its status: %w", r.WorkflowID, err)
	}
	stored, err := getRun(ctx, tx, r.WorkflowID)
	if err != nil {
		return Run{}, fmt.Errorf("ledger: reopen run %s: %w", r.WorkflowID, err)
	}
	return stored, nil
}

// withOpenedAt is the run as opened at t: a workflow opening an existing run
// again (a retry, or a new execution after a failed one) reports its own
// start, which dates the read-model row.
func (r Run) withOpenedAt(t time.Time) Run {
	r.OpenedAt = t
	return r
}

// CloseRun records how an open run ended and, in the same transaction, gives
// its read-model row the final phase. Closing it again with the same status
// is a no-op; with another status it is ErrRunClosed. An unknown run is
// ErrNotFound. A zero at is recorded as now.
func (s *Store) CloseRun(ctx context.Context, workflowID, status, reason string, at time.Time) error {
	if err := validateClose(workflowID, status); err != nil {
		return err
	}
	var closed *Run
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		closed, err = closeRun(ctx, tx, workflowID, status, reason, at)
		return err
	})
	if err == nil && closed != nil {
		s.observe(func(o Observer) { o.RunClosed(ctx, *closed) })
	}
	return err
}

func validateClose(workflowID, status string) error {
	if workflowID == "" {
		return invalid("close run: workflow ID is required")
	}
	if !slices.Contains(closedRunStatuses, status) {
		return invalid("close run %s: status %q is not one of %v", workflowID, status, closedRunStatuses)
	}
	return nil
}

// closeRun is CloseRun in the transaction q, after validation. It returns
// the closed run when this call closed it, nil when it was closed before.
func closeRun(ctx context.Context, q querier, workflowID, status, reason string, at time.Time) (*Run, error) {
	r, err := scanRun(q.QueryRow(ctx, `UPDATE runs SET status = $2, closed_at = $3, closing_reason = $4
		WHERE workflow_id = $1 AND status = 'open' RETURNING `+runColumns, workflowID, status, orNow(at), reason))
	if err == nil {
		if err := closeRunStatus(ctx, q, workflowID); err != nil {
			return nil, err
		}
		return &r, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("ledger: close run %s: %w", workflowID, err)
	}
	var current string
	err = q.QueryRow(ctx, `SELECT status FROM runs WHERE workflow_id = $1`, workflowID).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("ledger: close run %s: %w", workflowID, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("ledger: close run %s: %w", workflowID, err)
	case current == status:
		return nil, nil
	default:
		return nil, fmt.Errorf("ledger: close run %s as %s: %w (as %s)", workflowID, status, ErrRunClosed, current)
	}
}

// GetRun returns the run or ErrNotFound.
func (s *Store) GetRun(ctx context.Context, workflowID string) (Run, error) {
	return getRun(ctx, s.pool, workflowID)
}

func getRun(ctx context.Context, q querier, workflowID string) (Run, error) {
	r, err := scanRun(q.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE workflow_id = $1`, workflowID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("ledger: run %s: %w", workflowID, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("ledger: get run %s: %w", workflowID, err)
	}
	return r, nil
}
