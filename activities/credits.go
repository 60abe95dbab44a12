package activities

import (
	"context"
	"fmt"
	"time"

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
	// CallbackURL is ignored, as ServiceInput.CallbackURL is.
	CallbackURL string `json:"callback_url,omitempty"`
}

// CreditOutput is the recorded credit.
type CreditOutput struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// CreditEvent is the data of a service.credited event.
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
// currency's minor unit) and records the credit once in the ledger, with its
// service.credited event for the run's tenant (whose billing system applies
// it to the next invoice) in the same transaction when the credit is not
// zero. It never calls the billing system.
func (a *ServiceActions) RecordCredit(ctx context.Context, in CreditInput) (CreditOutput, error) {
	charge, err := money.Parse(in.PeriodCharge, in.Currency)
	if err != nil {
		return CreditOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("credit %s: %w", in.IdempotencyKey, err))
	}
	credit, err := money.Prorate(charge, in.PeriodDays, in.Days)
	if err != nil {
		return CreditOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("credit %s: %w", in.IdempotencyKey, err))
	}
	out := CreditOutput{Amount: credit.Decimal(), Currency: credit.Currency.Code}
	row := ledger.ServiceCredit{
		IdempotencyKey: in.IdempotencyKey, WorkflowID: in.WorkflowID, Amount: credit.Value, Currency: credit.Currency.Code,
		Days: in.Days, PeriodDays: in.PeriodDays, PeriodCharge: charge.Value, Reason: in.Reason, CreatedAt: eventTime(),
	}
	var ev *ledger.OutboxEvent
	if in.Tenant != "" && !credit.Value.IsZero() {
		ev, err = newEvent(EventServiceCredited, in.Tenant, in.IdempotencyKey, in.WorkflowID, CreditEvent{
			Type: EventServiceCredited, IdempotencyKey: in.IdempotencyKey, WorkflowID: in.WorkflowID, Tenant: in.Tenant,
			InvoiceID: in.InvoiceID, CustomerID: in.CustomerID, Amount: out.Amount, Currency: out.Currency,
			Days: in.Days, Reason: in.Reason, At: row.CreatedAt,
		})
		if err != nil {
			return CreditOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("credit %s: %w", in.IdempotencyKey, err))
		}
	}
	if _, err := a.Ledger.RecordServiceCreditWithEvent(ctx, row, ev); err != nil {
		return CreditOutput{}, ledgerErr(err, "credit %s: record", in.IdempotencyKey)
	}
	return out, nil
}
