package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Card networks the retry limits know. Other networks, or none, are recorded
// but not limited.
const (
	NetworkVisa       = "visa"
	NetworkMastercard = "mastercard"
)

const day = 24 * time.Hour

// mastercardDeclineWindow is the period of Mastercard's per-card decline
// limit (Limits.MastercardMaxDeclinesPerDay). Source: Mastercard excessive
// authorization attempts rules, as summarised in DESIGN.md §3 ("10 declines
// of one card within 24 hours"); the window is part of the rule's
// definition, the count is the setting.
const mastercardDeclineWindow = day

// Limits are the card networks' retry limits. They are policy data: the
// numbers change with the networks' rules, so they are settings, not code.
type Limits struct {
	// VisaMaxReattempts is how many attempts one Visa card may see within
	// VisaWindow. Source: Visa Core Rules, excessive reattempts of declined
	// transactions: at most 15 reattempts per card within 30 days. Some
	// sources cite 20 under the April 2026 rules (DESIGN.md §3).
	VisaMaxReattempts int
	// VisaWindow is the trailing period VisaMaxReattempts counts over.
	// Source: as VisaMaxReattempts, 30 days.
	VisaWindow time.Duration
	// MastercardMaxDeclinesPerDay is how many declines one Mastercard card
	// may see within 24 hours. Source: Mastercard excessive attempts rules,
	// 10 declines of one card within 24 hours (DESIGN.md §3).
	MastercardMaxDeclinesPerDay int
	// MastercardMaxSameAmount is how many declines one Mastercard card may
	// see for the same merchant and amount within MastercardSameAmountWindow.
	// Source: Mastercard excessive attempts rules, 35 declines of the same
	// card, merchant and amount within 30 days (DESIGN.md §3).
	MastercardMaxSameAmount int
	// MastercardSameAmountWindow is the trailing period
	// MastercardMaxSameAmount counts over. Source: as MastercardMaxSameAmount,
	// 30 days.
	MastercardSameAmountWindow time.Duration
}

// DefaultLimits are the limits the networks publish today: Visa 15 attempts
// per card in 30 days; Mastercard 10 declines per card in 24 hours and 35
// declines of one card, merchant and amount in 30 days.
func DefaultLimits() Limits {
	return Limits{
		VisaMaxReattempts:           15,
		VisaWindow:                  30 * day,
		MastercardMaxDeclinesPerDay: 10,
		MastercardMaxSameAmount:     35,
		MastercardSameAmountWindow:  30 * day,
	}
}

// Validate reports ErrInvalid unless every count is at least one and every
// window is positive.
func (l Limits) Validate() error {
	switch {
	case l.VisaMaxReattempts < 1:
		return invalid("limits: Visa reattempts %d must be at least 1", l.VisaMaxReattempts)
	case l.VisaWindow <= 0:
		return invalid("limits: Visa window %s must be positive", l.VisaWindow)
	case l.MastercardMaxDeclinesPerDay < 1:
		return invalid("limits: Mastercard declines per day %d must be at least 1", l.MastercardMaxDeclinesPerDay)
	case l.MastercardMaxSameAmount < 1:
		return invalid("limits: Mastercard same-amount declines %d must be at least 1", l.MastercardMaxSameAmount)
	case l.MastercardSameAmountWindow <= 0:
		return invalid("limits: Mastercard same-amount window %s must be positive", l.MastercardSameAmountWindow)
	}
	return nil
}

// Reservation asks to charge a card once. IdempotencyKey is the charge's
// key, so an activity retry finds its own reservation. CardKey identifies the
// card (a gateway fingerprint, never a card number); Merchant is the tenant.
// Network is matched case-insensitively; a zero At is recorded as now.
type Reservation struct {
	IdempotencyKey, CardKey, Network, Merchant string
	AmountMinor                                int64
	Currency, WorkflowID                       string
	At                                         time.Time
	// Decisions are the audit-trail entries that led to this charge (the
	// decision to charge, and what the run heard since its last step). They
	// are recorded in the reservation's transaction, with the card's
	// network budget as this reservation counted it.
	Decisions []Decision
}

// Verdict is the answer to a Reservation.
type Verdict struct {
	// Allowed is true when the charge may go ahead; its reservation is then
	// recorded and counts against the card's budget.
	Allowed bool
	// Rule names the limit that denied the charge, e.g.
	// "visa: 15 reattempts per card in 30 days"; empty when allowed.
	Rule string
	// NotBefore is the earliest time the rule would allow a charge again,
	// zero when allowed.
	NotBefore time.Time
	// Replayed is true when the key was already reserved: the earlier
	// reservation stands and nothing new was recorded.
	Replayed bool
}

// Card attempt outcomes. A reservation begins pending.
const cardAttemptPending = "pending"

var finalCardOutcomes = []string{"succeeded", "declined", "failed"}

func normalizeNetwork(n string) string { return strings.ToLower(strings.TrimSpace(n)) }

func validateReservation(r Reservation) error {
	switch {
	case r.IdempotencyKey == "":
		return invalid("card reservation for %s: idempotency key is required", r.WorkflowID)
	case r.CardKey == "":
		return invalid("card reservation %s: card key is required", r.IdempotencyKey)
	case r.Merchant == "":
		return invalid("card reservation %s: merchant is required", r.IdempotencyKey)
	case r.WorkflowID == "":
		return invalid("card reservation %s: workflow ID is required", r.IdempotencyKey)
	case r.AmountMinor <= 0:
		return invalid("card reservation %s: amount %d must be greater than zero", r.IdempotencyKey, r.AmountMinor)
	case !validCurrency(r.Currency):
		return invalid("card reservation %s: currency %q is not a three-letter ISO 4217 code", r.IdempotencyKey, r.Currency)
	}
	return nil
}

// ReserveCardAttempt checks the card-network limits for one charge and, if
// they allow it, records a pending reservation, all in one transaction that
// holds a lock on the card: concurrent reservations for the same card, from
// any run or worker, are decided one after the other, so the budget is never
// overdrawn.
//
// In order:
//   - a key already reserved is allowed again with Replayed set, so a
//     retried activity gets the same answer (the same key reserved for
//     another card, merchant, amount or run is ErrConflict);
//   - an active block on the card (see BlockCard) denies until it ends;
//   - Visa: VisaMaxReattempts reservations of the card within VisaWindow,
//     whatever their outcome, deny;
//   - Mastercard: MastercardMaxDeclinesPerDay declines of the card within 24
//     hours deny, as do MastercardMaxSameAmount declines of the card for the
//     same merchant, amount and currency within MastercardSameAmountWindow;
//     a pending reservation counts as a decline until it is finished, so
//     concurrent charges cannot overshoot;
//   - other networks are not limited.
//
// A denial records nothing and reports the rule and when it would allow the
// charge. Windows trail At: a reservation counts while it is younger than
// the window.
func (s *Store) ReserveCardAttempt(ctx context.Context, r Reservation, lim Limits) (Verdict, error) {
	if err := validateReservation(r); err != nil {
		return Verdict{}, err
	}
	if err := lim.Validate(); err != nil {
		return Verdict{}, fmt.Errorf("card reservation %s: %w", r.IdempotencyKey, err)
	}
	r.Network = normalizeNetwork(r.Network)
	r.At = orNow(r.At).UTC()

	var (
		v Verdict
		// denied is the denial this call recorded first, for the observer.
		denied *CardDenial
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, r.CardKey); err != nil {
			return fmt.Errorf("lock card: %w", err)
		}
		var err error
		if v, err = checkReservation(ctx, tx, r, lim); err != nil {
			return err
		}
		if len(r.Decisions) > 0 {
			b, err := budgetOf(ctx, tx, r, lim, v)
			if err != nil {
				return err
			}
			if err := recordDecisions(ctx, tx, r.Decisions, func(d Decision) *Budget {
				if d.AttemptKey == r.IdempotencyKey {
					return b
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if v.Replayed {
			return nil
		}
		if !v.Allowed {
			// The denial is kept so the ledger shows which rule stopped it.
			var notBefore *time.Time
			if !v.NotBefore.IsZero() {
				notBefore = &v.NotBefore
			}
			tag, err := tx.Exec(ctx, `INSERT INTO card_denials
				(idempotency_key, rule, card_key, network, workflow_id, not_before, denied_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
				r.IdempotencyKey, v.Rule, r.CardKey, r.Network, r.WorkflowID, notBefore, r.At)
			if err != nil {
				return fmt.Errorf("record denial: %w", err)
			}
			if tag.RowsAffected() == 1 {
				denied = &CardDenial{IdempotencyKey: r.IdempotencyKey, Rule: v.Rule, CardKey: r.CardKey, Network: r.Network,
					WorkflowID: r.WorkflowID, NotBefore: v.NotBefore, DeniedAt: r.At}
			}
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO card_attempts
			(idempotency_key, card_key, network, merchant, amount_minor, currency, workflow_id, reserved_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			r.IdempotencyKey, r.CardKey, r.Network, r.Merchant, r.AmountMinor, r.Currency, r.WorkflowID, r.At)
		if pgCode(err) == codeUniqueViolation {
			// Reserved at the same moment under another card's lock.
			return fmt.Errorf("the key is reserved for another card: %w", ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("record reservation: %w", err)
		}
		return nil
	})
	if err != nil {
		return Verdict{}, fmt.Errorf("ledger: reserve card attempt %s: %w", r.IdempotencyKey, err)
	}
	if denied != nil {
		s.observe(func(o Observer) { o.CardDenied(ctx, *denied) })
	}
	return v, nil
}

// checkReservation applies the rules of ReserveCardAttempt inside its
// transaction, with the card locked.
func checkReservation(ctx context.Context, tx pgx.Tx, r Reservation, lim Limits) (Verdict, error) {
	replayed, err := replayReservation(ctx, tx, r)
	if err != nil {
		return Verdict{}, err
	}
	if replayed {
		return Verdict{Allowed: true, Replayed: true}, nil
	}

	var (
		network, reason string
		until           time.Time
	)
	err = tx.QueryRow(ctx, `SELECT network, reason, blocked_until FROM card_blocks
		WHERE card_key = $1 AND blocked_until > $2
		ORDER BY blocked_until DESC LIMIT 1`, r.CardKey, r.At).Scan(&network, &reason, &until)
	switch {
	case err == nil:
		if network == "" {
			network = "card"
		}
		until = until.UTC()
		return Verdict{Rule: fmt.Sprintf("%s: blocked until %s (%s)", network, until.Format(time.RFC3339), reason), NotBefore: until}, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return Verdict{}, fmt.Errorf("check card blocks: %w", err)
	}

	type rule struct {
		name   string
		max    int
		window time.Duration
		filter string // SQL conditions after card_key and reserved_at; $4.. are args
		args   []any
	}
	var rules []rule
	switch r.Network {
	case NetworkVisa:
		rules = []rule{{
			name: fmt.Sprintf("visa: %d reattempts per card in %s", lim.VisaMaxReattempts, window(lim.VisaWindow)),
			max:  lim.VisaMaxReattempts, window: lim.VisaWindow,
		}}
	case NetworkMastercard:
		rules = []rule{{
			name: fmt.Sprintf("mastercard: %d declines per card in %s", lim.MastercardMaxDeclinesPerDay, window(mastercardDeclineWindow)),
			max:  lim.MastercardMaxDeclinesPerDay, window: mastercardDeclineWindow,
			filter: ` AND outcome IN ('pending', 'declined')`,
		}, {
			name: fmt.Sprintf("mastercard: %d declines per card, merchant and amount in %s",
				lim.MastercardMaxSameAmount, window(lim.MastercardSameAmountWindow)),
			max: lim.MastercardMaxSameAmount, window: lim.MastercardSameAmountWindow,
			filter: ` AND outcome IN ('pending', 'declined') AND merchant = $4 AND amount_minor = $5 AND currency = $6`,
			args:   []any{r.Merchant, r.AmountMinor, r.Currency},
		}}
	}
	for _, ru := range rules {
		// The max-th newest counted reservation is the one that has to leave
		// the window before the count drops below max.
		var oldest time.Time
		args := append([]any{r.CardKey, r.At.Add(-ru.window), ru.max - 1}, ru.args...)
		err := tx.QueryRow(ctx, `SELECT reserved_at FROM card_attempts
			WHERE card_key = $1 AND reserved_at > $2`+ru.filter+`
			ORDER BY reserved_at DESC OFFSET $3 LIMIT 1`, args...).Scan(&oldest)
		switch {
		case err == nil:
			return Verdict{Rule: ru.name, NotBefore: oldest.Add(ru.window).UTC()}, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return Verdict{}, fmt.Errorf("check %q: %w", ru.name, err)
		}
	}
	return Verdict{Allowed: true}, nil
}

// budgetOf is the card's network budget as reservation r sees it, counting
// r itself when it is allowed: Visa's reattempts in its window, Mastercard's
// declines in 24 hours. Nil for networks without a budget.
func budgetOf(ctx context.Context, tx pgx.Tx, r Reservation, lim Limits, v Verdict) (*Budget, error) {
	var (
		b      Budget
		filter string
		win    time.Duration
	)
	switch r.Network {
	case NetworkVisa:
		b, win = Budget{Network: NetworkVisa, Limit: lim.VisaMaxReattempts, Window: window(lim.VisaWindow)}, lim.VisaWindow
	case NetworkMastercard:
		b, win = Budget{Network: NetworkMastercard, Limit: lim.MastercardMaxDeclinesPerDay, Window: window(mastercardDeclineWindow)}, mastercardDeclineWindow
		filter = ` AND outcome IN ('pending', 'declined')`
	default:
		return nil, nil
	}
	err := tx.QueryRow(ctx, `SELECT count(*) FROM card_attempts
		WHERE card_key = $1 AND reserved_at > $2 AND reserved_at <= $3 AND idempotency_key <> $4`+filter,
		r.CardKey, r.At.Add(-win), r.At, r.IdempotencyKey).Scan(&b.Used)
	if err != nil {
		return nil, fmt.Errorf("count the card's budget: %w", err)
	}
	if v.Allowed {
		b.Used++
	}
	return &b, nil
}

// replayReservation reports whether r's key is already reserved, and
// ErrConflict if it was reserved for a different charge.
func replayReservation(ctx context.Context, tx pgx.Tx, r Reservation) (bool, error) {
	var stored Reservation
	err := tx.QueryRow(ctx, `SELECT card_key, network, merchant, amount_minor, currency, workflow_id
		FROM card_attempts WHERE idempotency_key = $1`, r.IdempotencyKey).
		Scan(&stored.CardKey, &stored.Network, &stored.Merchant, &stored.AmountMinor, &stored.Currency, &stored.WorkflowID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up key: %w", err)
	}
	if stored.CardKey != r.CardKey || stored.Network != r.Network || stored.Merchant != r.Merchant ||
		stored.AmountMinor != r.AmountMinor || stored.Currency != r.Currency || stored.WorkflowID != r.WorkflowID {
		return false, fmt.Errorf("the key holds a reservation of %d %s by %s for run %s on another card or terms: %w",
			stored.AmountMinor, stored.Currency, stored.Merchant, stored.WorkflowID, ErrConflict)
	}
	return true, nil
}

// window renders a rule's period for people: "30 days", "24 hours".
func window(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d%day == 0 && d > day:
		return plural(int64(d/day), "day")
	case d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	}
	return d.String()
}

// FinishCardAttempt records the outcome of a reserved charge: succeeded,
// declined or failed. Finishing it again with the same outcome is a no-op; a
// different outcome is ErrConflict and an unknown key ErrNotFound. A zero at
// is recorded as now.
func (s *Store) FinishCardAttempt(ctx context.Context, key, outcome string, at time.Time) error {
	if key == "" {
		return invalid("finish card attempt: idempotency key is required")
	}
	if !slices.Contains(finalCardOutcomes, outcome) {
		return invalid("finish card attempt %s: outcome %q is not one of %v", key, outcome, finalCardOutcomes)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE card_attempts SET outcome = $2, finished_at = $3
		WHERE idempotency_key = $1 AND outcome = 'pending'`, key, outcome, orNow(at))
	if err != nil {
		return fmt.Errorf("ledger: finish card attempt %s: %w", key, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var current string
	err = s.pool.QueryRow(ctx, `SELECT outcome FROM card_attempts WHERE idempotency_key = $1`, key).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("ledger: finish card attempt %s: %w", key, ErrNotFound)
	case err != nil:
		return fmt.Errorf("ledger: finish card attempt %s: %w", key, err)
	case current == outcome:
		return nil
	case current == cardAttemptPending:
		// Only reachable if the row changed between the two statements.
		return fmt.Errorf("ledger: finish card attempt %s: still pending after update: %w", key, ErrConflict)
	default:
		return fmt.Errorf("ledger: finish card attempt %s as %s: already %s: %w", key, outcome, current, ErrConflict)
	}
}

// BlockCard forbids charging the card until the given time, for the given
// reason (e.g. "mastercard advice 03"). sourceKey is the charge whose answer
// set the block: blocking again under the same card and source key is a
// no-op that keeps the first block. A zero at is recorded as now.
func (s *Store) BlockCard(ctx context.Context, cardKey, network, reason, sourceKey string, until, at time.Time) error {
	at = orNow(at)
	switch {
	case cardKey == "":
		return invalid("block card: card key is required")
	case reason == "":
		return invalid("block card for %s: reason is required", sourceKey)
	case sourceKey == "":
		return invalid("block card: source key is required")
	case !until.After(at):
		return invalid("block card for %s: until %s is not after %s", sourceKey, until.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO card_blocks (card_key, network, reason, blocked_until, created_at, source_key)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (card_key, source_key) DO NOTHING`,
		cardKey, normalizeNetwork(network), reason, until, at, sourceKey)
	if err != nil {
		return fmt.Errorf("ledger: block card for %s: %w", sourceKey, err)
	}
	return nil
}

// CardDenial is an attempt a card-network rule stopped before any charge.
type CardDenial struct {
	IdempotencyKey, Rule, CardKey, Network, WorkflowID string
	NotBefore, DeniedAt                                time.Time
}

// CardDenials lists a run's denied attempts, oldest first.
func (s *Store) CardDenials(ctx context.Context, workflowID string) ([]CardDenial, error) {
	rows, err := s.pool.Query(ctx, `SELECT idempotency_key, rule, card_key, network, workflow_id, not_before, denied_at
		FROM card_denials WHERE workflow_id = $1 ORDER BY denied_at, idempotency_key`, workflowID)
	if err != nil {
		return nil, fmt.Errorf("ledger: card denials of %s: %w", workflowID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CardDenial, error) {
		var (
			d         CardDenial
			notBefore *time.Time
		)
		err := row.Scan(&d.IdempotencyKey, &d.Rule, &d.CardKey, &d.Network, &d.WorkflowID, &notBefore, &d.DeniedAt)
		d.NotBefore, d.DeniedAt = nullTime(notBefore), d.DeniedAt.UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: card denials of %s: %w", workflowID, err)
	}
	return out, nil
}
