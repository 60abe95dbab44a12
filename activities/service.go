package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
)

// ServiceInput moves a customer's service to State.
type ServiceInput struct {
	WorkflowID     string `json:"workflow_id"`
	IdempotencyKey string `json:"idempotency_key"`
	Tenant         string `json:"tenant"`
	InvoiceID      string `json:"invoice_id"`
	CustomerID     string `json:"customer_id"`
	State          string `json:"state"` // active (restore), paused, suspended, cancelled
	Reason         string `json:"reason"`
	CallbackURL    string `json:"callback_url,omitempty"`
}

// ServiceOutput says whether the billing system heard about the change.
type ServiceOutput struct {
	Callback string `json:"callback"` // none, delivered
}

// ServiceEvent is the JSON body POSTed to the billing system.
type ServiceEvent struct {
	Type           string    `json:"type"` // "service.state_changed"
	IdempotencyKey string    `json:"idempotency_key"`
	WorkflowID     string    `json:"workflow_id"`
	Tenant         string    `json:"tenant"`
	InvoiceID      string    `json:"invoice_id"`
	CustomerID     string    `json:"customer_id"`
	State          string    `json:"state"`
	Reason         string    `json:"reason"`
	At             time.Time `json:"at"`
}

// ServiceActions pauses, suspends, restores and cancels service through the
// billing system's callback, recording each change in the ledger.
type ServiceActions struct {
	Ledger   Ledger
	Callback billing.Callback
	// DefaultCallbackURL is used when the run names none; empty means the
	// change is only recorded.
	DefaultCallbackURL string
}

// SetServiceState records the change once and delivers it to the billing
// system (with the same Idempotency-Key on every retry).
func (a *ServiceActions) SetServiceState(ctx context.Context, in ServiceInput) (ServiceOutput, error) {
	switch in.State {
	case "active", "paused", "suspended", "cancelled":
	default:
		return ServiceOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("service change %s: unknown state %q", in.IdempotencyKey, in.State))
	}
	row, err := a.Ledger.RecordServiceChange(ctx, ledger.ServiceChange{
		IdempotencyKey: in.IdempotencyKey,
		WorkflowID:     in.WorkflowID,
		State:          in.State,
		Reason:         in.Reason,
		CallbackStatus: "pending",
		CreatedAt:      time.Now().UTC(),
	})
	if err != nil {
		return ServiceOutput{}, ledgerErr(err, "service change %s: record", in.IdempotencyKey)
	}
	switch row.CallbackStatus {
	case "delivered", "none":
		return ServiceOutput{Callback: row.CallbackStatus}, nil
	case "failed":
		// The billing system refused it once; posting again would not help.
		return ServiceOutput{}, permanent(ErrTypeCallbackRejected, fmt.Errorf("service change %s: billing system rejected it earlier: %s", in.IdempotencyKey, row.CallbackDetail))
	}
	url := in.CallbackURL
	if url == "" {
		url = a.DefaultCallbackURL
	}
	if url == "" {
		if err := a.Ledger.MarkServiceCallback(ctx, in.IdempotencyKey, "none", "no billing callback configured"); err != nil {
			return ServiceOutput{}, ledgerErr(err, "service change %s", in.IdempotencyKey)
		}
		return ServiceOutput{Callback: "none"}, nil
	}
	err = a.Callback.Post(ctx, url, in.IdempotencyKey, ServiceEvent{
		Type: "service.state_changed", IdempotencyKey: in.IdempotencyKey, WorkflowID: in.WorkflowID,
		Tenant: in.Tenant, InvoiceID: in.InvoiceID, CustomerID: in.CustomerID,
		State: in.State, Reason: in.Reason, At: row.CreatedAt,
	})
	if err != nil {
		if errors.Is(err, billing.ErrRejected) {
			if merr := a.Ledger.MarkServiceCallback(ctx, in.IdempotencyKey, "failed", err.Error()); merr != nil {
				return ServiceOutput{}, ledgerErr(merr, "service change %s", in.IdempotencyKey)
			}
			return ServiceOutput{}, permanent(ErrTypeCallbackRejected, fmt.Errorf("service change %s: %w", in.IdempotencyKey, err))
		}
		return ServiceOutput{}, fmt.Errorf("service change %s: %w", in.IdempotencyKey, err)
	}
	if err := a.Ledger.MarkServiceCallback(ctx, in.IdempotencyKey, "delivered", ""); err != nil {
		return ServiceOutput{}, ledgerErr(err, "service change %s", in.IdempotencyKey)
	}
	return ServiceOutput{Callback: "delivered"}, nil
}
