package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	serviceStates    = []string{"active", "paused", "suspended", "cancelled"}
	callbackStatuses = []string{"none", "pending", "delivered", "failed"}
)

// ServiceChange is one change of the customer's service state and the state
// of its delivery to the billing system.
type ServiceChange struct {
	IdempotencyKey, WorkflowID     string
	State, Reason                  string
	CallbackStatus, CallbackDetail string
	CreatedAt                      time.Time
	// Decisions are audit-trail entries recorded in the change's
	// transaction by RecordServiceChangeWithEvent (the decision to change
	// the service, and what the run heard since its last step).
	Decisions []Decision
}

const serviceChangeColumns = `idempotency_key, workflow_id, state, reason, callback_status, callback_detail, created_at`

func scanServiceChange(row pgx.Row) (ServiceChange, error) {
	var c ServiceChange
	err := row.Scan(&c.IdempotencyKey, &c.WorkflowID, &c.State, &c.Reason, &c.CallbackStatus, &c.CallbackDetail, &c.CreatedAt)
	c.CreatedAt = c.CreatedAt.UTC()
	return c, err
}

func validateServiceChange(c ServiceChange) error {
	switch {
	case c.IdempotencyKey == "":
		return invalid("service change for %s: idempotency key is required", c.WorkflowID)
	case c.WorkflowID == "":
		return invalid("service change %s: workflow ID is required", c.IdempotencyKey)
	case !slices.Contains(serviceStates, c.State):
		return invalid("service change %s: state %q is not one of %v", c.IdempotencyKey, c.State, serviceStates)
	case c.CallbackStatus != "" && !slices.Contains(callbackStatuses, c.CallbackStatus):
		return invalid("service change %s: callback status %q is not one of %v", c.IdempotencyKey, c.CallbackStatus, callbackStatuses)
	}
	return nil
}

// RecordServiceChange records the change if its key is new and returns the
// stored row either way. An empty CallbackStatus is recorded as "none". An
// unknown run is ErrNotFound; a key holding a different change is
// ErrConflict. A zero CreatedAt is recorded as now.
func (s *Store) RecordServiceChange(ctx context.Context, c ServiceChange) (ServiceChange, error) {
	if err := validateServiceChange(c); err != nil {
		return ServiceChange{}, err
	}
	return recordServiceChange(ctx, s.pool, c)
}

// recordServiceChange is RecordServiceChange on q (the pool or a
// transaction), after validation.
func recordServiceChange(ctx context.Context, q querier, c ServiceChange) (ServiceChange, error) {
	if c.CallbackStatus == "" {
		c.CallbackStatus = "none"
	}
	_, err := q.Exec(ctx, `INSERT INTO service_changes
		(idempotency_key, workflow_id, state, reason, callback_status, callback_detail, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (idempotency_key) DO NOTHING`,
		c.IdempotencyKey, c.WorkflowID, c.State, c.Reason, c.CallbackStatus, c.CallbackDetail, orNow(c.CreatedAt))
	if pgCode(err) == codeForeignKeyViolation {
		return ServiceChange{}, fmt.Errorf("ledger: record service change %s: run %s: %w", c.IdempotencyKey, c.WorkflowID, ErrNotFound)
	}
	if err != nil {
		return ServiceChange{}, fmt.Errorf("ledger: record service change %s: %w", c.IdempotencyKey, err)
	}
	stored, err := scanServiceChange(q.QueryRow(ctx, `SELECT `+serviceChangeColumns+` FROM service_changes WHERE idempotency_key = $1`, c.IdempotencyKey))
	if err != nil {
		return ServiceChange{}, fmt.Errorf("ledger: record service change %s: %w", c.IdempotencyKey, err)
	}
	if stored.WorkflowID != c.WorkflowID || stored.State != c.State {
		return stored, fmt.Errorf("ledger: record service change %s: the key holds %s for run %s: %w",
			c.IdempotencyKey, stored.State, stored.WorkflowID, ErrConflict)
	}
	if err := noteServiceState(ctx, q, stored); err != nil {
		return ServiceChange{}, err
	}
	return stored, nil
}

// MarkServiceCallback records the delivery state of a change's callback.
// A delivered callback stays delivered: marking it again as delivered is a
// no-op, anything else is ErrConflict. An unknown key is ErrNotFound.
func (s *Store) MarkServiceCallback(ctx context.Context, key, status, detail string) error {
	if key == "" {
		return invalid("mark service callback: idempotency key is required")
	}
	if !slices.Contains(callbackStatuses, status) {
		return invalid("mark service callback %s: status %q is not one of %v", key, status, callbackStatuses)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE service_changes SET callback_status = $2, callback_detail = $3
		WHERE idempotency_key = $1 AND callback_status <> 'delivered'`, key, status, detail)
	if err != nil {
		return fmt.Errorf("ledger: mark service callback %s: %w", key, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var current string
	err = s.pool.QueryRow(ctx, `SELECT callback_status FROM service_changes WHERE idempotency_key = $1`, key).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("ledger: mark service callback %s: %w", key, ErrNotFound)
	case err != nil:
		return fmt.Errorf("ledger: mark service callback %s: %w", key, err)
	case current == status:
		return nil
	default:
		return fmt.Errorf("ledger: mark service callback %s as %s: already %s: %w", key, status, current, ErrConflict)
	}
}

// ServiceChanges returns a run's service changes ordered by creation time.
func (s *Store) ServiceChanges(ctx context.Context, workflowID string) ([]ServiceChange, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+serviceChangeColumns+` FROM service_changes WHERE workflow_id = $1
		ORDER BY created_at, idempotency_key`, workflowID)
	if err != nil {
		return nil, fmt.Errorf("ledger: service changes of %s: %w", workflowID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ServiceChange, error) { return scanServiceChange(row) })
	if err != nil {
		return nil, fmt.Errorf("ledger: service changes of %s: %w", workflowID, err)
	}
	return out, nil
}
