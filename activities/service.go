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
	CallbackURL    string `json:"callback_url,omitempty"`
}

// ServiceOutput says how far the billing system's copy of the change got
// when the activity returned.
type ServiceOutput struct {
	// Callback is "queued" when the change's event was enqueued for the
	// outbox dispatcher (new changes), "none" when no callback URL applies,
	// and, on a repeated call, "delivered" or "failed" once the dispatcher
	// recorded the billing system's answer.
	Callback string `json:"callback"`
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

// Event types, as the billing system receives them in "type" and the outbox
// records them in its kind column.
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
	// DefaultCallbackURL is used when the run names none; empty means the
	// change is only recorded.
	DefaultCallbackURL string
}

// SetServiceState records the change once, with its service.state_changed
// event when a callback URL applies. It never calls the billing system: a
// refusal (4xx) is the dispatcher's to record, as callback status "failed"
// on the change, for ops to see; it is not an error of this activity.
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
		CallbackDetail: "no billing callback configured",
		CreatedAt:      eventTime(),
	}
	var ev *ledger.OutboxEvent
	if url := callbackURL(in.CallbackURL, a.DefaultCallbackURL); url != "" {
		var err error
		ev, err = newEvent(EventServiceStateChanged, url, in.IdempotencyKey, in.WorkflowID, ServiceEvent{
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

// callbackURL is the run's callback URL, else the worker's default; empty
// means the billing system is not told.
func callbackURL(run, def string) string {
	if run != "" {
		return run
	}
	return def
}

// eventTime is the time an event reports, cut to PostgreSQL's microseconds
// so the body's timestamp equals the one the ledger row keeps.
func eventTime() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// newEvent builds the outbox row for event, of type kind: its JSON body is
// encoded here, once, and the dispatcher sends exactly that on every attempt.
func newEvent(kind, url, key, workflowID string, event any) (*ledger.OutboxEvent, error) {
	body, err := json.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", kind, err)
	}
	return &ledger.OutboxEvent{IdempotencyKey: key, WorkflowID: workflowID, Kind: kind, URL: url, Body: body}, nil
}
