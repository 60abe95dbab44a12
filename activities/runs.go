package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
)

// OpenRunInput registers a run in the ledger.
type OpenRunInput struct {
	WorkflowID string    `json:"workflow_id"`
	Tenant     string    `json:"tenant"`
	InvoiceID  string    `json:"invoice_id"`
	CustomerID string    `json:"customer_id"`
	Amount     string    `json:"amount"`
	Currency   string    `json:"currency"`
	Policy     string    `json:"policy"`
	OpenedAt   time.Time `json:"opened_at"`
	// Block, when set, blocks the run's card for every run: the decline
	// reported at intake says never to retry it.
	Block *BlockInput `json:"block,omitempty"`
	// Journal is the run's first audit-trail entries (the decline reported
	// at intake).
	Journal []JournalEntry `json:"journal,omitempty"`
	// Origin groups the run for recovery analytics: the decline that
	// started it, the gateway, the card network, the experiment arm.
	Origin RunOrigin `json:"origin,omitempty"`
}

// RunOrigin is what started a run and how it is dunned (ledger.RunOrigin).
type RunOrigin struct {
	DeclineCode     string `json:"decline_code,omitempty"`
	DeclineCategory string `json:"decline_category,omitempty"`
	Gateway         string `json:"gateway,omitempty"`
	CardNetwork     string `json:"card_network,omitempty"`
	Experiment      string `json:"experiment,omitempty"`
	Variant         string `json:"variant,omitempty"`
}

// CloseRunInput records how a run ended and tells the billing system.
type CloseRunInput struct {
	WorkflowID string    `json:"workflow_id"`
	Tenant     string    `json:"tenant"`
	InvoiceID  string    `json:"invoice_id"`
	CustomerID string    `json:"customer_id"`
	Outcome    string    `json:"outcome"` // recovered, exhausted, cancelled
	Reason     string    `json:"reason"`
	Amount     string    `json:"amount"`
	Currency   string    `json:"currency"`
	Attempts   int       `json:"attempts"`
	ClosedAt   time.Time `json:"closed_at"`
	// CallbackURL is ignored, as ServiceInput.CallbackURL is.
	CallbackURL string `json:"callback_url,omitempty"`
	// Journal is the run's last audit-trail entries, recorded with the
	// close.
	Journal []JournalEntry `json:"journal,omitempty"`
}

// RunClosedEvent is the data of the run.closed event sent when a run ends.
type RunClosedEvent struct {
	Type       string    `json:"type"` // "run.closed"
	WorkflowID string    `json:"workflow_id"`
	Tenant     string    `json:"tenant"`
	InvoiceID  string    `json:"invoice_id"`
	CustomerID string    `json:"customer_id"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason"`
	Amount     string    `json:"amount"`
	Currency   string    `json:"currency"`
	Attempts   int       `json:"attempts"`
	ClosedAt   time.Time `json:"closed_at"`
}

// Runs keeps the run rows of the ledger and reports outcomes. It only
// writes the ledger (run.closed events go out through the outbox), so its
// activities can run as local activities.
type Runs struct {
	Ledger Ledger
}

// OpenRun records the run. An invoice whose run already closed is never
// dunned again, even after Temporal has forgotten the closed workflow. A
// run the sweeper aborted (its workflow ended without closing it) is
// reopened for this execution, and the tenant gets a run.started event of
// its own for each reopening.
func (a *Runs) OpenRun(ctx context.Context, in OpenRunInput) error {
	amount, err := money.Parse(in.Amount, in.Currency)
	if err != nil {
		return permanent(ErrTypeInvalidInput, fmt.Errorf("open run %s: %w", in.WorkflowID, err))
	}
	// The execution holding the run, so the sweeper can tell it from the
	// one that ended (package sweeper).
	var execution string
	if activity.IsActivity(ctx) {
		execution = activity.GetInfo(ctx).WorkflowExecution.RunID
	}
	stored, err := a.Ledger.OpenRun(ctx, ledger.Run{
		WorkflowID: in.WorkflowID, Tenant: in.Tenant, InvoiceID: in.InvoiceID, CustomerID: in.CustomerID,
		Amount: amount.Value, Currency: amount.Currency.Code, Policy: in.Policy, Status: "open", OpenedAt: in.OpenedAt,
		ExecutionRunID: execution, Origin: ledger.RunOrigin(in.Origin),
	})
	if err != nil {
		// An invoice whose run closed, or that belongs to another run, stays shut.
		return ledgerErr(err, "open run %s", in.WorkflowID)
	}
	if in.Block != nil {
		if err := blockCard(ctx, a.Ledger, *in.Block); err != nil {
			return err
		}
	}
	key := in.WorkflowID + "/started"
	if stored.Aborts > 0 {
		key = fmt.Sprintf("%s/started-%d", in.WorkflowID, stored.Aborts)
	}
	if err := recordJournal(ctx, a.Ledger, in.WorkflowID, in.Journal); err != nil {
		return err
	}
	return enqueueEvent(ctx, a.Ledger, EventRunStarted, in.Tenant, key, in.WorkflowID, RunStartedEvent{
		Type: EventRunStarted, WorkflowID: in.WorkflowID, Tenant: in.Tenant, InvoiceID: in.InvoiceID, CustomerID: in.CustomerID,
		Amount: amount.Decimal(), Currency: amount.Currency.Code, Policy: in.Policy, OpenedAt: in.OpenedAt,
	})
}

// CloseRun records the outcome and enqueues the run.closed event (key
// <workflow id>/closed) for the run's tenant in the same transaction. It
// never calls the billing system; a repeated call changes nothing.
func (a *Runs) CloseRun(ctx context.Context, in CloseRunInput) error {
	var ev *ledger.OutboxEvent
	if in.Tenant != "" {
		var err error
		ev, err = newEvent(EventRunClosed, in.Tenant, in.WorkflowID+"/closed", in.WorkflowID, RunClosedEvent{
			Type: EventRunClosed, WorkflowID: in.WorkflowID, Tenant: in.Tenant, InvoiceID: in.InvoiceID, CustomerID: in.CustomerID,
			Outcome: in.Outcome, Reason: in.Reason, Amount: in.Amount, Currency: in.Currency, Attempts: in.Attempts, ClosedAt: in.ClosedAt,
		})
		if err != nil {
			return permanent(ErrTypeInvalidInput, fmt.Errorf("close run %s: %w", in.WorkflowID, err))
		}
	}
	ds, err := decisions(in.WorkflowID, in.Journal)
	if err != nil {
		return err
	}
	if err := a.Ledger.CloseRunRecording(ctx, in.WorkflowID, in.Outcome, in.Reason, in.ClosedAt, ev, ds); err != nil {
		return ledgerErr(err, "close run %s", in.WorkflowID)
	}
	return nil
}

// StatusReport is where a run stands when it parks, for the read model that
// answers status and lists without a worker.
type StatusReport struct {
	WorkflowID   string    `json:"workflow_id"`
	Phase        string    `json:"phase"`
	ServiceState string    `json:"service_state"`
	Attempts     int       `json:"attempts"`
	NextAction   string    `json:"next_action,omitempty"`
	NextAt       time.Time `json:"next_at,omitzero"`
	// The hold's cause, detail and start while the run needs attention.
	AttentionCause  string    `json:"attention_cause,omitempty"`
	AttentionDetail string    `json:"attention_detail,omitempty"`
	AttentionSince  time.Time `json:"attention_since,omitzero"`
	// At is the workflow's clock when it reported; a report older than the
	// stored one is ignored, so a retried report that lands late cannot
	// undo a newer one.
	At time.Time `json:"at"`
}

// ReportStatus records the run's state in the ledger's read model. It only
// writes the ledger, so it can run as a local activity; repeating it (or
// delivering an older report late) changes nothing, and a run that has
// closed keeps the final state CloseRun gave it.
func (a *Runs) ReportStatus(ctx context.Context, in StatusReport) error {
	err := a.Ledger.ReportStatus(ctx, ledger.RunStatus{
		WorkflowID: in.WorkflowID, Phase: in.Phase, ServiceState: in.ServiceState, Attempts: in.Attempts,
		NextAction: in.NextAction, NextAt: in.NextAt,
		AttentionCause: in.AttentionCause, AttentionDetail: in.AttentionDetail, AttentionSince: in.AttentionSince,
		UpdatedAt: in.At,
	})
	if err != nil {
		return ledgerErr(err, "report status of %s", in.WorkflowID)
	}
	return nil
}
