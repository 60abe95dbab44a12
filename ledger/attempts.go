package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

const attemptPending = "pending"

var finalAttemptStatuses = []string{"succeeded", "declined", "failed"}

// Attempt is one charge of a run's amount at a payment gateway.
type Attempt struct {
	IdempotencyKey, WorkflowID                   string
	Number                                       int
	Reason                                       string
	Amount                                       decimal.Decimal
	Currency                                     string
	Gateway                                      string
	PaymentMethod                                string
	Status                                       string // pending, succeeded, declined, failed
	DeclineCode, AdviceCode, Message, GatewayRef string
	// Card-network details of a decline (ISO 8583 response code, Mastercard
	// Merchant Advice Code) and the gateway's 3-D Secure flag.
	NetworkDeclineCode, NetworkAdviceCode string
	RequiresAction                        bool
	StartedAt, FinishedAt                 time.Time
}

// AttemptOutcome is how a pending attempt ended, as the gateway answered.
type AttemptOutcome struct {
	Status                                       string // succeeded, declined or failed
	DeclineCode, AdviceCode, Message, GatewayRef string
	NetworkDeclineCode, NetworkAdviceCode        string
	RequiresAction                               bool
	At                                           time.Time
}

const attemptColumns = `idempotency_key, workflow_id, attempt, reason, amount::text, currency, gateway, payment_method,
	status, decline_code, advice_code, message, gateway_ref, network_decline_code, network_advice_code, requires_action,
	started_at, finished_at`

func scanAttempt(row pgx.Row) (Attempt, error) { return scanAttemptWith(row) }

// scanAttemptWith scans the attempt columns, then extra destinations.
func scanAttemptWith(row pgx.Row, extra ...any) (Attempt, error) {
	var (
		a        Attempt
		amount   string
		started  time.Time
		finished *time.Time
	)
	err := row.Scan(append([]any{&a.IdempotencyKey, &a.WorkflowID, &a.Number, &a.Reason, &amount, &a.Currency, &a.Gateway,
		&a.PaymentMethod, &a.Status, &a.DeclineCode, &a.AdviceCode, &a.Message, &a.GatewayRef,
		&a.NetworkDeclineCode, &a.NetworkAdviceCode, &a.RequiresAction, &started, &finished}, extra...)...)
	if err != nil {
		return Attempt{}, err
	}
	if a.Amount, err = decimal.NewFromString(amount); err != nil {
		return Attempt{}, fmt.Errorf("ledger: attempt %s: amount %q: %w", a.IdempotencyKey, amount, err)
	}
	a.StartedAt, a.FinishedAt = started.UTC(), nullTime(finished)
	return a, nil
}

func validateAttempt(a Attempt) error {
	switch {
	case a.IdempotencyKey == "":
		return invalid("attempt for %s: idempotency key is required", a.WorkflowID)
	case a.WorkflowID == "":
		return invalid("attempt %s: workflow ID is required", a.IdempotencyKey)
	case a.Number < 1:
		return invalid("attempt %s: number %d must be at least 1", a.IdempotencyKey, a.Number)
	case a.Reason == "":
		return invalid("attempt %s: reason is required", a.IdempotencyKey)
	case !a.Amount.IsPositive():
		return invalid("attempt %s: amount %s must be greater than zero", a.IdempotencyKey, a.Amount)
	case !validCurrency(a.Currency):
		return invalid("attempt %s: currency %q is not a three-letter ISO 4217 code", a.IdempotencyKey, a.Currency)
	case a.Gateway == "":
		return invalid("attempt %s: gateway is required", a.IdempotencyKey)
	case a.Status != "" && a.Status != attemptPending:
		return invalid("attempt %s: an attempt begins %q, not %q", a.IdempotencyKey, attemptPending, a.Status)
	}
	return nil
}

// BeginAttempt records a pending attempt if its key is new and returns the
// stored row either way, so a retried activity sees the earlier result.
// A new attempt is only recorded while its run is open (ErrRunClosed
// otherwise, ErrNotFound for an unknown run): no charge starts after the run
// has ended. Another key already holding the run's attempt number, or the
// key holding a different attempt, is ErrConflict. A zero StartedAt is
// recorded as now.
func (s *Store) BeginAttempt(ctx context.Context, a Attempt) (Attempt, error) {
	if err := validateAttempt(a); err != nil {
		return Attempt{}, err
	}
	// FOR SHARE makes a concurrent CloseRun wait for this insert or win
	// before it: an attempt never lands on a run that has just closed.
	_, err := s.pool.Exec(ctx, `INSERT INTO attempts
		(idempotency_key, workflow_id, attempt, reason, amount, currency, gateway, payment_method, status, started_at)
		SELECT $1::text, $2::text, $3::int, $4::text, $5::numeric, $6::text, $7::text, $8::text, 'pending', $9::timestamptz
		WHERE EXISTS (SELECT 1 FROM runs WHERE workflow_id = $2 AND status = 'open' FOR SHARE)
		ON CONFLICT (idempotency_key) DO NOTHING`,
		a.IdempotencyKey, a.WorkflowID, a.Number, a.Reason, numericText(a.Amount), a.Currency, a.Gateway,
		a.PaymentMethod, orNow(a.StartedAt))
	if pgCode(err) == codeUniqueViolation {
		return Attempt{}, fmt.Errorf("ledger: begin attempt %s: run %s already has attempt %d under another key: %w",
			a.IdempotencyKey, a.WorkflowID, a.Number, ErrConflict)
	}
	if err != nil {
		return Attempt{}, fmt.Errorf("ledger: begin attempt %s: %w", a.IdempotencyKey, err)
	}
	stored, err := scanAttempt(s.pool.QueryRow(ctx, `SELECT `+attemptColumns+` FROM attempts WHERE idempotency_key = $1`, a.IdempotencyKey))
	if errors.Is(err, pgx.ErrNoRows) {
		// Nothing was inserted because the run is missing or closed.
		run, err := s.GetRun(ctx, a.WorkflowID)
		if err != nil {
			return Attempt{}, fmt.Errorf("ledger: begin attempt %s: %w", a.IdempotencyKey, err)
		}
		return Attempt{}, fmt.Errorf("ledger: begin attempt %s: %w (run %s is %s)", a.IdempotencyKey, ErrRunClosed, run.WorkflowID, run.Status)
	}
	if err != nil {
		return Attempt{}, fmt.Errorf("ledger: begin attempt %s: %w", a.IdempotencyKey, err)
	}
	if stored.WorkflowID != a.WorkflowID || stored.Number != a.Number || !stored.Amount.Equal(a.Amount) || stored.Currency != a.Currency {
		return stored, fmt.Errorf("ledger: begin attempt %s: the key holds attempt %d of run %s for %s %s: %w",
			a.IdempotencyKey, stored.Number, stored.WorkflowID, stored.Amount, stored.Currency, ErrConflict)
	}
	return stored, nil
}

// FinishAttempt records the outcome of a pending attempt. Finishing it again
// with the same status is a no-op; a different status is ErrConflict, because
// a money outcome never changes once recorded. A zero at is recorded as now.
func (s *Store) FinishAttempt(ctx context.Context, key string, o AttemptOutcome) error {
	if key == "" {
		return invalid("finish attempt: idempotency key is required")
	}
	if !slices.Contains(finalAttemptStatuses, o.Status) {
		return invalid("finish attempt %s: status %q is not one of %v", key, o.Status, finalAttemptStatuses)
	}
	// RETURNING tells a first finish (a row) from a repeated one (none),
	// and gives the observer the attempt and its card's network.
	var network string
	// The run's rollup changes in the same statement, only on that first
	// finish.
	finished, err := scanAttemptWith(s.pool.QueryRow(ctx, `WITH f AS (UPDATE attempts
		SET status = $2, decline_code = $3, advice_code = $4, message = $5, gateway_ref = $6, finished_at = $7,
		    network_decline_code = $8, network_advice_code = $9, requires_action = $10
		WHERE idempotency_key = $1 AND status = 'pending'
		RETURNING *)`+attemptRollup+`
		SELECT `+attemptColumns+`, coalesce((SELECT network FROM card_attempts c WHERE c.idempotency_key = $1), '') FROM f`,
		key, o.Status, o.DeclineCode, o.AdviceCode, o.Message, o.GatewayRef, orNow(o.At),
		o.NetworkDeclineCode, o.NetworkAdviceCode, o.RequiresAction), &network)
	switch {
	case err == nil:
		if err := noteAttempts(ctx, s.pool, key); err != nil {
			return err
		}
		s.observe(func(ob Observer) { ob.AttemptFinished(ctx, finished, network) })
		return nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("ledger: finish attempt %s: %w", key, err)
	}
	if err := s.explainFinish(ctx, "attempts", "attempt", key, o.Status); err != nil {
		return err
	}
	// Finished before (a retried activity): the count may not have been
	// recorded if the first call failed after the update.
	return noteAttempts(ctx, s.pool, key)
}

// Attempts returns a run's attempts ordered by number.
func (s *Store) Attempts(ctx context.Context, workflowID string) ([]Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+attemptColumns+` FROM attempts WHERE workflow_id = $1 ORDER BY attempt`, workflowID)
	if err != nil {
		return nil, fmt.Errorf("ledger: attempts of %s: %w", workflowID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Attempt, error) { return scanAttempt(row) })
	if err != nil {
		return nil, fmt.Errorf("ledger: attempts of %s: %w", workflowID, err)
	}
	return out, nil
}
