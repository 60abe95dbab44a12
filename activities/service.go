package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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
	// CallbackURL is ignored. Runs started before tenant configuration
	// still pass the URL their decline named; events now go only to the
	// tenant's configured endpoint, so a request can never pick where the
	// workers send them.
	CallbackURL string `json:"callback_url,omitempty"`
	// Journal is the run's audit-trail entries since its last step,
	// recorded with the change.
	Journal []JournalEntry `json:"journal,omitempty"`
}

// ServiceOutput says how far the billing system's copy of the change got
// when the activity returned.
type ServiceOutput struct {
	// Callback is "queued" when the change's event was enqueued for the
	// outbox dispatcher (new changes), "none" when the run has no tenant,
	// and, on a repeated call, "delivered" or "failed" once the dispatcher
	// recorded the billing system's answer, or "none" once it found the
	// tenant has no event endpoint.
	Callback string `json:"callback"`
}

// ServiceEvent is the data of a service.state_changed event (the "data" of
// its envelope, see billing.Envelope).
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

// Event types, as the billing system receives them in the envelope's "type"
// and the outbox records them in its kind column.
const (
	EventServiceStateChanged = "service.state_changed"
	EventRunClosed           = "run.closed"
	EventServiceCredited     = "service.credited"
)

// ServiceActions pauses, suspends, restores and cancels service, and records
// service credits. It only writes the ledger: each change and its event for
// the billing system commit together, and the outbox dispatcher (package
// outbox) delivers the event. So the activities make no outside call and can
// run as local activities.
type ServiceActions struct {
	Ledger Ledger
}

// SetServiceState records the change once, with its service.state_changed
// event for the run's tenant. It never calls the billing system, nor
// decides where the event goes: the dispatcher looks up the tenant's
// endpoint when it sends, and records a refusal as callback status
// "failed" on the change, for ops to see; it is not an error of this
// activity.
func (a *ServiceActions) SetServiceState(ctx context.Context, in ServiceInput) (ServiceOutput, error) {
	switch in.State {
	case "active", "paused", "suspended", "cancelled":
	default:
		return ServiceOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("service change %s: unknown state %q", in.IdempotencyKey, in.State))
	}
	change := ledger.ServiceChange{
		IdempotencyKey: in.IdempotencyKey,
		WorkflowID:     in.WorkflowID,
		State:          in.State,
		Reason:         in.Reason,
		CallbackStatus: "none",
		CallbackDetail: "the run has no tenant to send the event to",
		CreatedAt:      eventTime(),
	}
	ds, err := decisions(in.WorkflowID, in.Journal)
	if err != nil {
		return ServiceOutput{}, err
	}
	change.Decisions = ds
	var ev *ledger.OutboxEvent
	if in.Tenant != "" {
		var err error
		ev, err = newEvent(EventServiceStateChanged, in.Tenant, in.IdempotencyKey, in.WorkflowID, ServiceEvent{
			Type: EventServiceStateChanged, IdempotencyKey: in.IdempotencyKey, WorkflowID: in.WorkflowID,
			Tenant: in.Tenant, InvoiceID: in.InvoiceID, CustomerID: in.CustomerID,
			State: in.State, Reason: in.Reason, At: change.CreatedAt,
		})
		if err != nil {
			return ServiceOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("service change %s: %w", in.IdempotencyKey, err))
		}
	}
	row, err := a.Ledger.RecordServiceChangeWithEvent(ctx, change, ev)
	if err != nil {
		return ServiceOutput{}, ledgerErr(err, "service change %s: record", in.IdempotencyKey)
	}
	if row.CallbackStatus == "pending" {
		return ServiceOutput{Callback: "queued"}, nil
	}
	return ServiceOutput{Callback: row.CallbackStatus}, nil
}

// eventTime is the time an event reports, cut to PostgreSQL's microseconds
// so the body's timestamp equals the one the ledger row keeps.
func eventTime() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// newEvent builds the outbox row for event, of type kind, for tenant: its
// data is encoded here, once, and the dispatcher sends exactly that, in
// its envelope, on every attempt.
func newEvent(kind, tenant, key, workflowID string, event any) (*ledger.OutboxEvent, error) {
	body, err := json.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", kind, err)
	}
	return &ledger.OutboxEvent{IdempotencyKey: key, WorkflowID: workflowID, Tenant: tenant, Kind: kind, Body: body}, nil
}
