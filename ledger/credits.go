package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// ServiceCredit is money owed back to the customer for days of a billing
// period they could not use.
type ServiceCredit struct {
	IdempotencyKey, WorkflowID string
	Amount                     decimal.Decimal
	Currency                   string
	Days, PeriodDays           int
	PeriodCharge               decimal.Decimal
	Reason                     string
	CreatedAt                  time.Time
}

const creditColumns = `idempotency_key, workflow_id, amount::text, currency, days, period_days, period_charge::text, reason, created_at`

func scanCredit(row pgx.Row) (ServiceCredit, error) {
	var (
		c              ServiceCredit
		amount, charge string
	)
	if err := row.Scan(&c.IdempotencyKey, &c.WorkflowID, &amount, &c.Currency, &c.Days, &c.PeriodDays, &charge, &c.Reason, &c.CreatedAt); err != nil {
		return ServiceCredit{}, err
	}
	var err error
	if c.Amount, err = decimal.NewFromString(amount); err != nil {
		return ServiceCredit{}, fmt.Errorf("ledger: credit %s: amount %q: %w", c.IdempotencyKey, amount, err)
	}
	if c.PeriodCharge, err = decimal.NewFromString(charge); err != nil {
		return ServiceCredit{}, fmt.Errorf("ledger: credit %s: period charge %q: %w", c.IdempotencyKey, charge, err)
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// RecordServiceCredit records the credit if its key is new and returns the
// stored row either way; a key holding a different amount is ErrConflict,
// an unknown run ErrNotFound.
func (s *Store) RecordServiceCredit(ctx context.Context, c ServiceCredit) (ServiceCredit, error) {
	if err := validateCredit(c); err != nil {
		return ServiceCredit{}, err
	}
	return recordServiceCredit(ctx, s.pool, c)
}

func validateCredit(c ServiceCredit) error {
	switch {
	case c.IdempotencyKey == "" || c.WorkflowID == "":
		return invalid("service credit: idempotency key and workflow ID are required")
	case c.Amount.IsNegative() || !c.PeriodCharge.IsPositive():
		return invalid("service credit %s: amount must be >= 0 and the period charge > 0", c.IdempotencyKey)
	case len(c.Currency) != 3 || c.PeriodDays < 1 || c.Days < 0 || c.Days > c.PeriodDays:
		return invalid("service credit %s: currency, days (%d) or period days (%d) out of range", c.IdempotencyKey, c.Days, c.PeriodDays)
	}
	return nil
}

// recordServiceCredit is RecordServiceCredit on q (the pool or a
// transaction), after validation.
func recordServiceCredit(ctx context.Context, q querier, c ServiceCredit) (ServiceCredit, error) {
	_, err := q.Exec(ctx, `INSERT INTO service_credits
		(idempotency_key, workflow_id, amount, currency, days, period_days, period_charge, reason, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (idempotency_key) DO NOTHING`,
		c.IdempotencyKey, c.WorkflowID, numericText(c.Amount), c.Currency, c.Days, c.PeriodDays, numericText(c.PeriodCharge), c.Reason, orNow(c.CreatedAt))
	if pgCode(err) == codeForeignKeyViolation {
		return ServiceCredit{}, fmt.Errorf("ledger: record credit %s: run %s: %w", c.IdempotencyKey, c.WorkflowID, ErrNotFound)
	}
	if err != nil {
		return ServiceCredit{}, fmt.Errorf("ledger: record credit %s: %w", c.IdempotencyKey, err)
	}
	stored, err := scanCredit(q.QueryRow(ctx, `SELECT `+creditColumns+` FROM service_credits WHERE idempotency_key = $1`, c.IdempotencyKey))
	if err != nil {
		return ServiceCredit{}, fmt.Errorf("ledger: record credit %s: %w", c.IdempotencyKey, err)
	}
	if stored.WorkflowID != c.WorkflowID || !stored.Amount.Equal(c.Amount) {
		return stored, fmt.Errorf("ledger: record credit %s: the key holds %s for run %s: %w", c.IdempotencyKey, stored.Amount, stored.WorkflowID, ErrConflict)
	}
	return stored, nil
}

// ServiceCredits lists a run's credits, oldest first.
func (s *Store) ServiceCredits(ctx context.Context, workflowID string) ([]ServiceCredit, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+creditColumns+` FROM service_credits WHERE workflow_id = $1 ORDER BY created_at, idempotency_key`, workflowID)
	if err != nil {
		return nil, fmt.Errorf("ledger: credits of %s: %w", workflowID, err)
	}
	credits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ServiceCredit, error) { return scanCredit(r) })
	if err != nil {
		return nil, fmt.Errorf("ledger: credits of %s: %w", workflowID, err)
	}
	return credits, nil
}
