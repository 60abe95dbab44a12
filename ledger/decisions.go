package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Kinds of audit-trail entries.
const (
	DecisionInput    = "input"    // something the run was told: a decline report, a signal, an update
	DecisionDecision = "decision" // a step the policy chose
	DecisionRefusal  = "refusal"  // a charge a rule turned down
)

var decisionKinds = []string{DecisionInput, DecisionDecision, DecisionRefusal}

// Decision is one entry of a run's audit trail (table decisions): what the
// run heard, decided or refused, when, why in words, and the facts used.
type Decision struct {
	Key, WorkflowID string
	At              time.Time
	Kind, Action    string
	Words           string
	By              string
	// Rule is the rule that refused a charge (refusals).
	Rule string
	// CardKey is the card a charge decision or refusal concerns.
	CardKey string
	// AttemptKey is the charge's idempotency key (retry decisions).
	AttemptKey string
	// Facts are the facts the decision used, as the policy reported them
	// (JSON object; empty means none).
	Facts json.RawMessage
	// Budget is the card-network budget when the charge was reserved.
	Budget *Budget
}

// Budget is a card's network budget as a reservation saw it: Used attempts
// (counting the one being reserved) of Limit within Window.
type Budget struct {
	Network string `json:"network"`
	Used    int    `json:"used"`
	Limit   int    `json:"limit"`
	Window  string `json:"window"`
}

func validateDecision(d Decision) error {
	switch {
	case d.Key == "":
		return invalid("decision of %s: key is required", d.WorkflowID)
	case d.WorkflowID == "":
		return invalid("decision %s: workflow ID is required", d.Key)
	case !slices.Contains(decisionKinds, d.Kind):
		return invalid("decision %s: kind %q is not one of %v", d.Key, d.Kind, decisionKinds)
	case d.Action == "":
		return invalid("decision %s: action is required", d.Key)
	case d.Words == "":
		return invalid("decision %s: words are required", d.Key)
	case len(d.Facts) > 0 && !json.Valid(d.Facts):
		return invalid("decision %s: facts are not JSON", d.Key)
	}
	return nil
}

// RecordDecisions writes audit-trail entries; an entry whose key is already
// recorded is kept as first written, so a retried activity adds nothing.
func (s *Store) RecordDecisions(ctx context.Context, ds []Decision) error {
	if len(ds) == 0 {
		return nil
	}
	for _, d := range ds {
		if err := validateDecision(d); err != nil {
			return err
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return recordDecisions(ctx, tx, ds, nil) })
	if err != nil {
		return fmt.Errorf("ledger: record decisions of %s: %w", ds[0].WorkflowID, err)
	}
	return nil
}

// recordDecisions writes ds in the caller's transaction; budget, when set,
// is attached to the entries about the charge it was counted for.
func recordDecisions(ctx context.Context, q querier, ds []Decision, budget func(Decision) *Budget) error {
	for _, d := range ds {
		if err := validateDecision(d); err != nil {
			return err
		}
		b := d.Budget
		if budget != nil && b == nil {
			b = budget(d)
		}
		facts := d.Facts
		if len(facts) == 0 {
			facts = json.RawMessage("{}")
		}
		var (
			network, win string
			used, limit  *int
		)
		if b != nil {
			network, win, used, limit = b.Network, b.Window, &b.Used, &b.Limit
		}
		_, err := q.Exec(ctx, `INSERT INTO decisions
			(key, workflow_id, at, kind, action, words, by_whom, rule, card_key, attempt_key, facts,
			 budget_network, budget_used, budget_limit, budget_window)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (key) DO NOTHING`,
			d.Key, d.WorkflowID, orNow(d.At), d.Kind, d.Action, d.Words, d.By, d.Rule, d.CardKey, d.AttemptKey,
			string(facts), network, used, limit, win)
		if err != nil {
			return fmt.Errorf("record decision %s: %w", d.Key, err)
		}
	}
	return nil
}

const decisionColumns = `key, workflow_id, at, kind, action, words, by_whom, rule, card_key, attempt_key, facts::text,
	budget_network, budget_used, budget_limit, budget_window`

func scanDecision(row pgx.CollectableRow) (Decision, error) {
	var (
		d            Decision
		facts        string
		network, win string
		used, limit  *int
	)
	if err := row.Scan(&d.Key, &d.WorkflowID, &d.At, &d.Kind, &d.Action, &d.Words, &d.By, &d.Rule, &d.CardKey, &d.AttemptKey,
		&facts, &network, &used, &limit, &win); err != nil {
		return Decision{}, err
	}
	d.At = d.At.UTC()
	if facts != "{}" {
		d.Facts = json.RawMessage(facts)
	}
	if used != nil && limit != nil {
		d.Budget = &Budget{Network: network, Used: *used, Limit: *limit, Window: win}
	}
	return d, nil
}

// Decisions lists a run's audit-trail entries in the order they happened.
func (s *Store) Decisions(ctx context.Context, workflowID string) ([]Decision, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+decisionColumns+` FROM decisions WHERE workflow_id = $1 ORDER BY at, key`, workflowID)
	if err != nil {
		return nil, fmt.Errorf("ledger: decisions of %s: %w", workflowID, err)
	}
	out, err := pgx.CollectRows(rows, scanDecision)
	if err != nil {
		return nil, fmt.Errorf("ledger: decisions of %s: %w", workflowID, err)
	}
	return out, nil
}

// TenantRuns lists a tenant's runs that were open at any moment of
// [from, to), oldest first: the runs an audit export of that period covers.
func (s *Store) TenantRuns(ctx context.Context, tenant string, from, to time.Time) ([]Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs
		WHERE tenant = $1 AND opened_at < $3 AND (closed_at IS NULL OR closed_at >= $2)
		ORDER BY opened_at, workflow_id`, tenant, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger: runs of %s: %w", tenant, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("ledger: runs of %s: %w", tenant, err)
	}
	return out, nil
}

// CardAttempt is one reservation against a card's network budget, with
// where the charge came from (the attempt's reason).
type CardAttempt struct {
	IdempotencyKey, CardKey, Network, Merchant, WorkflowID string
	AmountMinor                                            int64
	Currency                                               string
	ReservedAt                                             time.Time
	Outcome                                                string
	// Source is the attempt's reason: scheduled, expedite, card_updated;
	// empty when the ledger has no attempt row for it.
	Source string
}

// CardBlock is a card-network block on a card.
type CardBlock struct {
	CardKey, Network, Reason, SourceKey string
	BlockedUntil, CreatedAt             time.Time
}

// CardActivity is what the card-network compliance report reads: every
// card the tenant reserved an attempt on in [from, to), with all of those
// cards' reservations (of any merchant) since lookback before from, their
// blocks, and the tenant's refusals of charges on them in the period.
type CardActivity struct {
	Attempts []CardAttempt
	Denials  []CardDenial
	// Refusals are the policy gate's refusals the runs recorded (decisions
	// of kind refusal), with the card they concern.
	Refusals []Decision
	Blocks   []CardBlock
}

// CardActivity reads the tenant's card activity for the compliance report.
func (s *Store) CardActivity(ctx context.Context, tenant string, from, to time.Time, lookback time.Duration) (CardActivity, error) {
	var out CardActivity
	cards := `SELECT DISTINCT card_key FROM card_attempts WHERE merchant = $1 AND reserved_at >= $2 AND reserved_at < $3
		UNION SELECT DISTINCT d.card_key FROM card_denials d JOIN runs r ON r.workflow_id = d.workflow_id
		WHERE r.tenant = $1 AND d.denied_at >= $2 AND d.denied_at < $3
		UNION SELECT DISTINCT d.card_key FROM decisions d JOIN runs r ON r.workflow_id = d.workflow_id
		WHERE r.tenant = $1 AND d.kind = 'refusal' AND d.card_key <> '' AND d.at >= $2 AND d.at < $3`
	rows, err := s.pool.Query(ctx, `SELECT ca.idempotency_key, ca.card_key, ca.network, ca.merchant, ca.workflow_id,
			ca.amount_minor, ca.currency, ca.reserved_at, ca.outcome, COALESCE(a.reason, '')
		FROM card_attempts ca LEFT JOIN attempts a ON a.idempotency_key = ca.idempotency_key
		WHERE ca.card_key IN (`+cards+`) AND ca.reserved_at >= $4 AND ca.reserved_at < $3
		ORDER BY ca.reserved_at, ca.idempotency_key`, tenant, from, to, from.Add(-lookback))
	if err != nil {
		return out, fmt.Errorf("ledger: card activity of %s: %w", tenant, err)
	}
	out.Attempts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (CardAttempt, error) {
		var a CardAttempt
		err := row.Scan(&a.IdempotencyKey, &a.CardKey, &a.Network, &a.Merchant, &a.WorkflowID, &a.AmountMinor, &a.Currency,
			&a.ReservedAt, &a.Outcome, &a.Source)
		a.ReservedAt = a.ReservedAt.UTC()
		return a, err
	})
	if err != nil {
		return out, fmt.Errorf("ledger: card attempts of %s: %w", tenant, err)
	}
	rows, err = s.pool.Query(ctx, `SELECT d.idempotency_key, d.rule, d.card_key, d.network, d.workflow_id, d.not_before, d.denied_at
		FROM card_denials d JOIN runs r ON r.workflow_id = d.workflow_id
		WHERE r.tenant = $1 AND d.denied_at >= $2 AND d.denied_at < $3 ORDER BY d.denied_at, d.idempotency_key`, tenant, from, to)
	if err != nil {
		return out, fmt.Errorf("ledger: card denials of %s: %w", tenant, err)
	}
	out.Denials, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (CardDenial, error) {
		var (
			d         CardDenial
			notBefore *time.Time
		)
		err := row.Scan(&d.IdempotencyKey, &d.Rule, &d.CardKey, &d.Network, &d.WorkflowID, &notBefore, &d.DeniedAt)
		d.NotBefore, d.DeniedAt = nullTime(notBefore), d.DeniedAt.UTC()
		return d, err
	})
	if err != nil {
		return out, fmt.Errorf("ledger: card denials of %s: %w", tenant, err)
	}
	rows, err = s.pool.Query(ctx, `SELECT `+prefixed("d.", decisionColumns)+` FROM decisions d JOIN runs r ON r.workflow_id = d.workflow_id
		WHERE r.tenant = $1 AND d.kind = 'refusal' AND d.card_key <> '' AND d.at >= $2 AND d.at < $3
		ORDER BY d.at, d.key`, tenant, from, to)
	if err != nil {
		return out, fmt.Errorf("ledger: refusals of %s: %w", tenant, err)
	}
	if out.Refusals, err = pgx.CollectRows(rows, scanDecision); err != nil {
		return out, fmt.Errorf("ledger: refusals of %s: %w", tenant, err)
	}
	rows, err = s.pool.Query(ctx, `SELECT card_key, network, reason, source_key, blocked_until, created_at FROM card_blocks
		WHERE card_key IN (`+cards+`) AND created_at < $3 AND blocked_until > $4 ORDER BY created_at, source_key`,
		tenant, from, to, from.Add(-lookback))
	if err != nil {
		return out, fmt.Errorf("ledger: card blocks of %s: %w", tenant, err)
	}
	out.Blocks, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (CardBlock, error) {
		var b CardBlock
		err := row.Scan(&b.CardKey, &b.Network, &b.Reason, &b.SourceKey, &b.BlockedUntil, &b.CreatedAt)
		b.BlockedUntil, b.CreatedAt = b.BlockedUntil.UTC(), b.CreatedAt.UTC()
		return b, err
	})
	if err != nil {
		return out, fmt.Errorf("ledger: card blocks of %s: %w", tenant, err)
	}
	return out, nil
}

// prefixed qualifies each column of a column list with p.
func prefixed(p, columns string) string {
	parts := strings.Split(columns, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}
