package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
)

// CreditInput asks for the service credit of days the customer could not use.
type CreditInput struct {
	WorkflowID     string `json:"workflow_id"`
	IdempotencyKey string `json:"idempotency_key"`
	Tenant         string `json:"tenant"`
	InvoiceID      string `json:"invoice_id"`
	CustomerID     string `json:"customer_id"`
	// PeriodCharge (decimal string in Currency) covers PeriodDays days.
	PeriodCharge string `json:"period_charge"`
	Currency     string `json:"currency"`
	PeriodDays   int    `json:"period_days"`
	Days         int    `json:"days"`
	Reason       string `json:"reason"`
	CallbackURL  string `json:"callback_url,omitempty"`
}

// CreditOutput is the recorded credit.
type CreditOutput struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// CreditEvent is the JSON body POSTed to the billing system for a credit.
type CreditEvent struct {
	Type           string    `json:"type"` // "service.credited"
	IdempotencyKey string    `json:"idempotency_key"`
	WorkflowID     string    `json:"workflow_id"`
	Tenant         string    `json:"tenant"`
	InvoiceID      string    `json:"invoice_id"`
	CustomerID     string    `json:"customer_id"`
	Amount         string    `json:"amount"`
	Currency       string    `json:"currency"`
	Days           int       `json:"days"`
	Reason         string    `json:"reason"`
	At             time.Time `json:"at"`
}

// RecordCredit prorates the period charge (money.Prorate: half-even to the
// currency's minor unit), records the credit once in the ledger and tells
// the billing system, which applies it to the next invoice.
func (a *ServiceActions) RecordCredit(ctx context.Context, in CreditInput) (CreditOutput, error) {
	charge, err := money.Parse(in.PeriodCharge, in.Currency)
	if err != nil {
		return CreditOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("credit %s: %w", in.IdempotencyKey, err))
	}
	credit, err := money.Prorate(charge, in.PeriodDays, in.Days)
	if err != nil {
		return CreditOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("credit %s: %w", in.IdempotencyKey, err))
	}
	row, err := a.Ledger.RecordServiceCredit(ctx, ledger.ServiceCredit{
		IdempotencyKey: in.IdempotencyKey, WorkflowID: in.WorkflowID, Amount: credit.Value, Currency: credit.Currency.Code,
		Days: in.Days, PeriodDays: in.PeriodDays, PeriodCharge: charge.Value, Reason: in.Reason, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		return CreditOutput{}, ledgerErr(err, "credit %s: record", in.IdempotencyKey)
	}
	out := CreditOutput{Amount: credit.Decimal(), Currency: credit.Currency.Code}
	url := in.CallbackURL
	if url == "" {
		url = a.DefaultCallbackURL
	}
	if url == "" || credit.Value.IsZero() {
		return out, nil
	}
	err = a.Callback.Post(ctx, url, in.IdempotencyKey, CreditEvent{
		Type: "service.credited", IdempotencyKey: in.IdempotencyKey, WorkflowID: in.WorkflowID, Tenant: in.Tenant,
		InvoiceID: in.InvoiceID, CustomerID: in.CustomerID, Amount: out.Amount, Currency: out.Currency,
		Days: in.Days, Reason: in.Reason, At: row.CreatedAt,
	})
	if errors.Is(err, billing.ErrRejected) {
		return out, permanent(ErrTypeCallbackRejected, fmt.Errorf("credit %s: %w", in.IdempotencyKey, err))
	}
	if err != nil {
		return CreditOutput{}, fmt.Errorf("credit %s: %w", in.IdempotencyKey, err)
	}
	return out, nil
}
