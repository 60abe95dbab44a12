package activities

import (
	"context"
	"time"
)

// Run events the tenant's endpoint receives besides service changes and the
// close (service.go): each is recorded in the outbox by the activity that
// saw it happen, under a key of its own, so a retried activity records it
// once and the dispatcher delivers it at least once with one webhook-id.
const (
	EventRunStarted     = "run.started"
	EventAttemptFailed  = "attempt.failed"
	EventNeedsAttention = "run.needs_attention"
	EventResumed        = "run.resumed"
	EventCardUpdated    = "card.updated"
)

// RunStartedEvent is the data of run.started.
type RunStartedEvent struct {
	Type       string    `json:"type"`
	WorkflowID string    `json:"workflow_id"`
	Tenant     string    `json:"tenant"`
	InvoiceID  string    `json:"invoice_id"`
	CustomerID string    `json:"customer_id"`
	Amount     string    `json:"amount"`
	Currency   string    `json:"currency"`
	Policy     string    `json:"policy"`
	OpenedAt   time.Time `json:"opened_at"`
}

// AttemptFailedEvent is the data of attempt.failed: a declined charge and
// how the platform reads it.
type AttemptFailedEvent struct {
	Type               string    `json:"type"`
	WorkflowID         string    `json:"workflow_id"`
	Tenant             string    `json:"tenant"`
	InvoiceID          string    `json:"invoice_id"`
	Attempt            int       `json:"attempt"`
	Reason             string    `json:"reason"`
	DeclineCode        string    `json:"decline_code,omitempty"`
	AdviceCode         string    `json:"advice_code,omitempty"`
	NetworkDeclineCode string    `json:"network_decline_code,omitempty"`
	NetworkAdviceCode  string    `json:"network_advice_code,omitempty"`
	Category           string    `json:"category,omitempty"`
	Advice             string    `json:"advice,omitempty"`
	BlockedUntil       time.Time `json:"card_blocked_until,omitzero"`
	At                 time.Time `json:"at"`
}

// AttentionEvent is the data of run.needs_attention and run.resumed.
type AttentionEvent struct {
	Type       string    `json:"type"`
	WorkflowID string    `json:"workflow_id"`
	Tenant     string    `json:"tenant"`
	Cause      string    `json:"cause,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	At         time.Time `json:"at"`
}

// CardUpdatedEvent is the data of card.updated.
type CardUpdatedEvent struct {
	Type       string    `json:"type"`
	WorkflowID string    `json:"workflow_id"`
	Tenant     string    `json:"tenant"`
	Network    string    `json:"network,omitempty"`
	SameCard   bool      `json:"same_card"`
	At         time.Time `json:"at"`
}

// EventInput asks Runs.Event to record a run event the workflow saw (a
// card update, a hold and its end); Data is the event's data, one of the
// event types above.
type EventInput struct {
	Kind       string `json:"kind"`
	Key        string `json:"key"`
	WorkflowID string `json:"workflow_id"`
	Tenant     string `json:"tenant"`
	Data       any    `json:"data"`
}

// Event records a run event in the outbox. It only writes the ledger, so
// the workflow runs it as a local activity.
func (a *Runs) Event(ctx context.Context, in EventInput) error {
	return enqueueEvent(ctx, a.Ledger, in.Kind, in.Tenant, in.Key, in.WorkflowID, in.Data)
}

// enqueueEvent records one event; a repeated call changes nothing.
func enqueueEvent(ctx context.Context, l Ledger, kind, tenant, key, workflowID string, data any) error {
	if tenant == "" {
		return nil // events go to a tenant's endpoint; none without one
	}
	ev, err := newEvent(kind, tenant, key, workflowID, data)
	if err != nil {
		return permanent(ErrTypeInvalidInput, err)
	}
	if _, err := l.Enqueue(ctx, *ev); err != nil {
		return ledgerErr(err, "record %s event %s", kind, key)
	}
	return nil
}
