package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
)

// ChargeInput asks for one dunning attempt.
type ChargeInput struct {
	WorkflowID string `json:"workflow_id"`
	Tenant     string `json:"tenant"`
	InvoiceID  string `json:"invoice_id"`
	CustomerID string `json:"customer_id"`
	Attempt    int    `json:"attempt"`
	Reason     string `json:"reason"`
	// IdempotencyKey is computed by the workflow from its ID and Attempt,
	// never from the activity's own retry count.
	IdempotencyKey string `json:"idempotency_key"`
	Amount         string `json:"amount"`
	Currency       string `json:"currency"`
	Gateway        string `json:"gateway"`
	PaymentMethod  string `json:"payment_method"`
}

// ChargeOutput is the attempt's outcome.
type ChargeOutput struct {
	Outcome     gateway.Outcome `json:"outcome"`
	DeclineCode string          `json:"decline_code,omitempty"`
	AdviceCode  string          `json:"advice_code,omitempty"`
	Message     string          `json:"message,omitempty"`
	GatewayRef  string          `json:"gateway_ref,omitempty"`
	// Card-network details, where the gateway reports them.
	NetworkDeclineCode string    `json:"network_decline_code,omitempty"`
	NetworkAdviceCode  string    `json:"network_advice_code,omitempty"`
	RequiresAction     bool      `json:"requires_action,omitempty"`
	At                 time.Time `json:"at"`
	// Replayed is true when the ledger already held the outcome and the
	// gateway was not called again.
	Replayed bool `json:"replayed,omitempty"`
}

// Charges retries payments at the gateways.
type Charges struct {
	Gateways map[string]gateway.Gateway
	Ledger   Ledger
	Logger   *slog.Logger
	// Limits are the card networks' rules Attempt reserves against; the
	// zero value means ledger.DefaultLimits().
	Limits ledger.Limits
}

// Charge makes one dunning attempt exactly once: the attempt is written to
// the ledger before the gateway call and finished after it; a retried
// activity finds the finished row and returns it, or repeats the call with
// the same idempotency key so the gateway returns its first answer.
func (a *Charges) Charge(ctx context.Context, in ChargeInput) (ChargeOutput, error) {
	amount, err := money.Parse(in.Amount, in.Currency)
	if err != nil {
		return ChargeOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("charge %s: %w", in.IdempotencyKey, err))
	}
	amountMinor, err := amount.MinorUnits()
	if err != nil {
		return ChargeOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("charge %s: %w", in.IdempotencyKey, err))
	}
	if in.IdempotencyKey == "" || in.Attempt < 1 {
		return ChargeOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("charge for %s: idempotency key and attempt number are required", in.WorkflowID))
	}
	gw, ok := a.Gateways[in.Gateway]
	if !ok {
		return ChargeOutput{}, permanent(ErrTypeUnknownGateway, fmt.Errorf("charge %s: no gateway %q is configured", in.IdempotencyKey, in.Gateway))
	}
	row, err := a.Ledger.BeginAttempt(ctx, ledger.Attempt{
		IdempotencyKey: in.IdempotencyKey,
		WorkflowID:     in.WorkflowID,
		Number:         in.Attempt,
		Reason:         in.Reason,
		Amount:         amount.Value,
		Currency:       amount.Currency.Code,
		Gateway:        in.Gateway,
		PaymentMethod:  in.PaymentMethod,
		Status:         "pending",
		StartedAt:      time.Now().UTC(),
	})
	if err != nil {
		// A closed run or a conflicting record is never charged.
		return ChargeOutput{}, ledgerErr(err, "charge %s: record attempt", in.IdempotencyKey)
	}
	if row.Status != "pending" {
		// Every field the classification reads comes back, so a replayed
		// MAC 03 or Visa category 1 decline still blocks the card.
		return ChargeOutput{Outcome: gateway.Outcome(row.Status), DeclineCode: row.DeclineCode, AdviceCode: row.AdviceCode,
			Message: row.Message, GatewayRef: row.GatewayRef, NetworkDeclineCode: row.NetworkDeclineCode,
			NetworkAdviceCode: row.NetworkAdviceCode, RequiresAction: row.RequiresAction, At: row.FinishedAt, Replayed: true}, nil
	}
	res, err := gw.Charge(ctx, gateway.ChargeRequest{
		IdempotencyKey: in.IdempotencyKey,
		Attempt:        in.Attempt,
		Tenant:         in.Tenant,
		InvoiceID:      in.InvoiceID,
		CustomerID:     in.CustomerID,
		PaymentMethod:  in.PaymentMethod,
		AmountMinor:    amountMinor,
		Currency:       amount.Currency.Code,
	})
	if err != nil {
		if errors.Is(err, gateway.ErrPermanent) {
			if ferr := a.Ledger.FinishAttempt(ctx, in.IdempotencyKey, ledger.AttemptOutcome{Status: string(gateway.Failed), Message: err.Error(), At: time.Now().UTC()}); ferr != nil {
				return ChargeOutput{}, ledgerErr(ferr, "charge %s: record failure", in.IdempotencyKey)
			}
			errType := ErrTypeGatewayPermanent
			if errors.Is(err, gateway.ErrNotAuthorized) {
				errType = ErrTypeGatewayAuth
			}
			return ChargeOutput{}, permanent(errType, fmt.Errorf("charge %s: %w", in.IdempotencyKey, err))
		}
		// The row stays pending: the retry repeats the call under the same
		// key, after the gateway's own Retry-After when it named one.
		a.logger().WarnContext(ctx, "gateway outcome unknown; will ask again with the same idempotency key",
			"key", in.IdempotencyKey, "gateway", in.Gateway, "activity_attempt", activity.GetInfo(ctx).Attempt, "error", err)
		if later, ok := errors.AsType[*gateway.RetryLater](err); ok {
			return ChargeOutput{}, temporal.NewApplicationErrorWithOptions(fmt.Sprintf("charge %s: %v", in.IdempotencyKey, err), ErrTypeGatewayBusy,
				temporal.ApplicationErrorOptions{NextRetryDelay: later.Wait, Cause: err})
		}
		return ChargeOutput{}, fmt.Errorf("charge %s: %w", in.IdempotencyKey, err)
	}
	if res.At.IsZero() {
		res.At = time.Now().UTC()
	}
	if err := a.Ledger.FinishAttempt(ctx, in.IdempotencyKey, ledger.AttemptOutcome{Status: string(res.Outcome),
		DeclineCode: res.DeclineCode, AdviceCode: res.AdviceCode, Message: res.Message, GatewayRef: res.Ref,
		NetworkDeclineCode: res.NetworkDeclineCode, NetworkAdviceCode: res.NetworkAdviceCode,
		RequiresAction: res.RequiresAction, At: res.At}); err != nil {
		return ChargeOutput{}, ledgerErr(err, "charge %s: record outcome", in.IdempotencyKey)
	}
	a.logger().InfoContext(ctx, "charge attempt finished", "key", in.IdempotencyKey, "outcome", res.Outcome, "decline_code", res.DeclineCode)
	return ChargeOutput{Outcome: res.Outcome, DeclineCode: res.DeclineCode, AdviceCode: res.AdviceCode,
		Message: res.Message, GatewayRef: res.Ref, NetworkDeclineCode: res.NetworkDeclineCode,
		NetworkAdviceCode: res.NetworkAdviceCode, RequiresAction: res.RequiresAction, At: res.At}, nil
}

func (a *Charges) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}
