package activities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
)

// NetworkLimits keeps charges within the card networks' retry limits. The
// budget is per card and shared by every run charging that card, so it is
// kept in the ledger: the workflow reserves an attempt before each charge and
// settles it with the charge's outcome.
type NetworkLimits struct {
	Ledger Ledger
	// Limits are the networks' rules; the zero value means
	// ledger.DefaultLimits().
	Limits ledger.Limits
}

// ReserveInput asks whether a charge may go ahead.
type ReserveInput struct {
	WorkflowID string `json:"workflow_id"`
	// IdempotencyKey is the charge's key, so a retried activity finds its
	// own reservation.
	IdempotencyKey string `json:"idempotency_key"`
	// CardKey identifies the card, e.g. the gateway's card fingerprint;
	// never a card number.
	CardKey string `json:"card_key"`
	// Network is the card's network: visa, mastercard, or another or none,
	// which are not limited.
	Network string `json:"network"`
	// Merchant is the tenant charging the card.
	Merchant string `json:"merchant"`
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	// At is when the charge would be made, from the workflow's clock; zero
	// means now.
	At time.Time `json:"at"`
}

// ReserveOutput is the verdict. A denial is an answer, not an error: the
// workflow may wait until NotBefore or stop retrying the card.
type ReserveOutput struct {
	Allowed bool `json:"allowed"`
	// Rule names the limit that denied the charge, e.g.
	// "visa: 15 reattempts per card in 30 days".
	Rule string `json:"rule,omitempty"`
	// NotBefore is the earliest time the rule would allow the charge.
	NotBefore time.Time `json:"not_before,omitzero"`
}

// SettleInput records how a reserved charge ended.
type SettleInput struct {
	IdempotencyKey string `json:"idempotency_key"`
	CardKey        string `json:"card_key"`
	Network        string `json:"network"`
	// Outcome is succeeded, declined or failed.
	Outcome string `json:"outcome"`
	// MerchantAdviceCode is the network's advice with a decline, e.g. "03".
	MerchantAdviceCode string `json:"merchant_advice_code,omitempty"`
	// NeverRetryFor blocks the card for this long when positive. The caller
	// sets it from the decline: 30 days after Mastercard Merchant Advice
	// Code 03 or 21, or for good after a Visa category 1 decline.
	NeverRetryFor time.Duration `json:"never_retry_for,omitempty"`
	// At is when the charge ended; zero means now.
	At time.Time `json:"at"`
}

// Reserve checks the card-network limits for one charge and, if they allow
// it, reserves the attempt against the card's budget. Reserving the same
// key again returns the first answer's allowance without drawing twice.
func (a *NetworkLimits) Reserve(ctx context.Context, in ReserveInput) (ReserveOutput, error) {
	amount, err := money.Parse(in.Amount, in.Currency)
	if err != nil {
		return ReserveOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("reserve %s: %w", in.IdempotencyKey, err))
	}
	amountMinor, err := amount.MinorUnits()
	if err != nil {
		return ReserveOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("reserve %s: %w", in.IdempotencyKey, err))
	}
	v, err := a.Ledger.ReserveCardAttempt(ctx, ledger.Reservation{
		IdempotencyKey: in.IdempotencyKey,
		CardKey:        in.CardKey,
		Network:        in.Network,
		Merchant:       in.Merchant,
		AmountMinor:    amountMinor,
		Currency:       amount.Currency.Code,
		WorkflowID:     in.WorkflowID,
		At:             in.At,
	}, limitsOrDefault(a.Limits))
	if err != nil {
		return ReserveOutput{}, ledgerErr(err, "reserve %s", in.IdempotencyKey)
	}
	return ReserveOutput{Allowed: v.Allowed, Rule: v.Rule, NotBefore: v.NotBefore}, nil
}

// Settle records the outcome of a reserved charge and, when the decline
// forbids retrying the card (NeverRetryFor > 0), blocks the card until
// At+NeverRetryFor for every run. Settling again is a no-op.
func (a *NetworkLimits) Settle(ctx context.Context, in SettleInput) error {
	at := in.At
	if at.IsZero() {
		at = time.Now().UTC()
	}
	switch {
	case in.NeverRetryFor < 0:
		return permanent(ErrTypeInvalidInput, fmt.Errorf("settle %s: never-retry period %s is negative", in.IdempotencyKey, in.NeverRetryFor))
	case in.NeverRetryFor > 0 && in.CardKey == "":
		return permanent(ErrTypeInvalidInput, fmt.Errorf("settle %s: a card key is required to block the card", in.IdempotencyKey))
	}
	if err := a.Ledger.FinishCardAttempt(ctx, in.IdempotencyKey, in.Outcome, at); err != nil {
		return ledgerErr(err, "settle %s", in.IdempotencyKey)
	}
	if in.NeverRetryFor == 0 {
		return nil
	}
	reason := blockReason(in.Network, in.MerchantAdviceCode)
	if err := a.Ledger.BlockCard(ctx, in.CardKey, in.Network, reason, in.IdempotencyKey, at.Add(in.NeverRetryFor), at); err != nil {
		return ledgerErr(err, "settle %s: block card", in.IdempotencyKey)
	}
	return nil
}

// blockReason describes a block for people reading the ledger and the
// verdicts it causes, e.g. "mastercard advice 03".
func blockReason(network, adviceCode string) string {
	network = strings.ToLower(strings.TrimSpace(network))
	if network == "" {
		network = "card"
	}
	if adviceCode == "" {
		return network + " decline: do not retry"
	}
	return network + " advice " + adviceCode
}

// limitsOrDefault is l, or ledger.DefaultLimits() when l is the zero value.
func limitsOrDefault(l ledger.Limits) ledger.Limits {
	if l == (ledger.Limits{}) {
		return ledger.DefaultLimits()
	}
	return l
}

// BlockInput blocks a card for every run, after a decline that says never to
// retry it was reported rather than seen on our own charge (at intake, or
// by the billing system later).
type BlockInput struct {
	CardKey string `json:"card_key"`
	Network string `json:"network,omitempty"`
	// Reason is what people reading the ledger see, e.g. "stolen_card".
	Reason string `json:"reason"`
	// SourceKey names the report (run and decline), so recording it again
	// is a no-op.
	SourceKey string    `json:"source_key"`
	Until     time.Time `json:"until"`
	At        time.Time `json:"at"`
}

// Block writes a card block to the shared card ledger.
func (a *NetworkLimits) Block(ctx context.Context, in BlockInput) error {
	return blockCard(ctx, a.Ledger, in)
}

func blockCard(ctx context.Context, l Ledger, in BlockInput) error {
	if in.CardKey == "" || in.SourceKey == "" || !in.Until.After(in.At) {
		return permanent(ErrTypeInvalidInput, fmt.Errorf("block card: card key, source key and an end after the start are required (%q, %q)", in.CardKey, in.SourceKey))
	}
	if err := l.BlockCard(ctx, in.CardKey, in.Network, in.Reason, in.SourceKey, in.Until, in.At); err != nil {
		return ledgerErr(err, "block card for %s", in.SourceKey)
	}
	return nil
}
