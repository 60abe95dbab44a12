package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
)

// CardSnapshot is the card one attempt charges, taken once by the workflow
// so the reservation, the charge and the settlement all name the same card
// even if the customer updates it while the attempt is in flight.
type CardSnapshot struct {
	// Key identifies the card for the shared budget and blocks: "fp:" and
	// the fingerprint, else "pm:" and the payment method.
	Key           string `json:"key"`
	Network       string `json:"network,omitempty"`
	PaymentMethod string `json:"payment_method,omitempty"`
}

// AttemptInput asks for one gated charge attempt.
type AttemptInput struct {
	ChargeInput
	Card CardSnapshot `json:"card"`
	// At is when the workflow started the attempt (its clock).
	At time.Time `json:"at"`
	// Journal is the run's audit-trail entries since its last step, the
	// decision to charge among them; they are recorded in the reservation's
	// transaction with the card's network budget as it counted it.
	Journal []JournalEntry `json:"journal,omitempty"`
}

// AttemptOutput is the attempt's outcome, or the budget's refusal.
type AttemptOutput struct {
	ChargeOutput
	// Denied is set when the card-network budget or a block refused the
	// attempt: the gateway was not called.
	Denied    bool      `json:"denied,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	// Decline is how the platform reads a declined attempt.
	Decline *decline.Decline `json:"decline,omitempty"`
	// BlockedUntil is set when the decline blocked the card for every run.
	BlockedUntil time.Time `json:"blocked_until,omitzero"`
}

// Attempt makes one charge attempt in one activity: it reserves the
// attempt against the card's shared network budget, charges through Charge
// (ledger row before, outcome after, same idempotency key on every retry),
// and settles the reservation, blocking the card for every run when the
// decline says so. Each ledger write is its own transaction and each is
// idempotent, so a retried activity repeats none of them twice and never
// calls the gateway under a new key.
func (a *Charges) Attempt(ctx context.Context, in AttemptInput) (AttemptOutput, error) {
	if in.Card.Key == "" {
		return AttemptOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("attempt %s: a card key is required", in.IdempotencyKey))
	}
	amount, err := money.Parse(in.Amount, in.Currency)
	if err != nil {
		return AttemptOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("attempt %s: %w", in.IdempotencyKey, err))
	}
	amountMinor, err := amount.MinorUnits()
	if err != nil {
		return AttemptOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("attempt %s: %w", in.IdempotencyKey, err))
	}
	ds, err := decisions(in.WorkflowID, in.Journal)
	if err != nil {
		return AttemptOutput{}, err
	}
	v, err := a.Ledger.ReserveCardAttempt(ctx, ledger.Reservation{
		IdempotencyKey: in.IdempotencyKey, CardKey: in.Card.Key, Network: in.Card.Network, Merchant: in.Tenant,
		AmountMinor: amountMinor, Currency: amount.Currency.Code, WorkflowID: in.WorkflowID, At: in.At, Decisions: ds,
	}, limitsOrDefault(a.Limits))
	if err != nil {
		return AttemptOutput{}, ledgerErr(err, "attempt %s: reserve the card budget", in.IdempotencyKey)
	}
	if !v.Allowed {
		return AttemptOutput{Denied: true, Rule: v.Rule, NotBefore: v.NotBefore,
			ChargeOutput: ChargeOutput{Outcome: gateway.Skipped, Message: v.Rule, At: in.At}}, nil
	}
	in.PaymentMethod = in.Card.PaymentMethod
	out, err := a.Charge(ctx, in.ChargeInput)
	if err != nil {
		if isPermanent(err) {
			// A permanent error (gateway refusal, unknown gateway, closed
			// run): nothing was charged and no retry follows, so the
			// reservation is released as failed rather than left pending,
			// where it would count against the card forever.
			if serr := a.Ledger.FinishCardAttempt(ctx, in.IdempotencyKey, string(gateway.Failed), time.Now().UTC()); serr != nil {
				return AttemptOutput{}, ledgerErr(serr, "attempt %s: settle the card budget", in.IdempotencyKey)
			}
		}
		return AttemptOutput{}, err
	}
	res := AttemptOutput{ChargeOutput: out}
	var blockFor time.Duration
	if out.Outcome == gateway.Declined {
		d := decline.Classify(decline.Input{
			Gateway: in.Gateway, DeclineCode: out.DeclineCode, AdviceCode: out.AdviceCode,
			NetworkDeclineCode: out.NetworkDeclineCode, NetworkAdviceCode: out.NetworkAdviceCode,
			Network: in.Card.Network, RequiresAction: out.RequiresAction,
		})
		res.Decline, blockFor = &d, d.BlockFor()
	}
	at := out.At
	if at.IsZero() {
		at = time.Now().UTC()
	}
	// PostgreSQL keeps microseconds: a replayed attempt must give the same
	// block end as the first call.
	at = at.Truncate(time.Microsecond)
	if err := a.Ledger.FinishCardAttempt(ctx, in.IdempotencyKey, string(out.Outcome), at); err != nil {
		return AttemptOutput{}, ledgerErr(err, "attempt %s: settle the card budget", in.IdempotencyKey)
	}
	if blockFor > 0 {
		res.BlockedUntil = at.Add(blockFor)
		if err := blockCard(ctx, a.Ledger, BlockInput{CardKey: in.Card.Key, Network: in.Card.Network,
			Reason: blockReason(in.Card.Network, out.NetworkAdviceCode), SourceKey: in.IdempotencyKey,
			Until: res.BlockedUntil, At: at}); err != nil {
			return AttemptOutput{}, err
		}
	}
	if d := res.Decline; d != nil {
		if err := enqueueEvent(ctx, a.Ledger, EventAttemptFailed, in.Tenant, in.IdempotencyKey+"/failed", in.WorkflowID, AttemptFailedEvent{
			Type: EventAttemptFailed, WorkflowID: in.WorkflowID, Tenant: in.Tenant, InvoiceID: in.InvoiceID,
			Attempt: in.Attempt, Reason: in.Reason, DeclineCode: out.DeclineCode, AdviceCode: out.AdviceCode,
			NetworkDeclineCode: out.NetworkDeclineCode, NetworkAdviceCode: out.NetworkAdviceCode,
			Category: string(d.Category), Advice: string(d.Advice), BlockedUntil: res.BlockedUntil, At: at,
		}); err != nil {
			return AttemptOutput{}, err
		}
	}
	return res, nil
}
