// Package activities holds the dunning workflow's side effects: charging,
// messaging, changing service state and keeping the ledger. Each capability
// is a struct holding its dependencies; its methods are the activities.
package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/ledger"
)

// Ledger is what the activities need from the PostgreSQL ledger.
type Ledger interface {
	OpenRun(ctx context.Context, r ledger.Run) (ledger.Run, error)
	// CloseRunWithEvent closes the run and enqueues its run.closed event
	// (when ev is not nil) in one transaction.
	CloseRunWithEvent(ctx context.Context, workflowID, status, reason string, at time.Time, ev *ledger.OutboxEvent) error
	// CloseRunRecording is CloseRunWithEvent that also records audit-trail
	// entries in the same transaction.
	CloseRunRecording(ctx context.Context, workflowID, status, reason string, at time.Time, ev *ledger.OutboxEvent, ds []ledger.Decision) error
	// RecordDecisions records audit-trail entries; a key already recorded
	// changes nothing.
	RecordDecisions(ctx context.Context, ds []ledger.Decision) error
	// ReportStatus records where an open run stands in the read model; an
	// older report than the stored one changes nothing.
	ReportStatus(ctx context.Context, st ledger.RunStatus) error
	// Enqueue records a run event in the outbox; a key already taken
	// changes nothing.
	Enqueue(ctx context.Context, e ledger.OutboxEvent) (ledger.OutboxEvent, error)
	BeginAttempt(ctx context.Context, a ledger.Attempt) (ledger.Attempt, error)
	FinishAttempt(ctx context.Context, key string, o ledger.AttemptOutcome) error
	Attempts(ctx context.Context, workflowID string) ([]ledger.Attempt, error)
	BeginMessage(ctx context.Context, m ledger.Message) (ledger.Message, error)
	FinishMessage(ctx context.Context, key, status, provider, providerRef, detail string, at time.Time) error
	// StartMessageSend marks a provider call as starting (outcome unknown
	// until recorded) and returns the row as it was before.
	StartMessageSend(ctx context.Context, key string, at time.Time) (ledger.Message, error)
	// MessageSendNotAccepted records that the provider answered without
	// taking the message, so the outcome is known again.
	MessageSendNotAccepted(ctx context.Context, key string) error
	// RecordServiceChangeWithEvent and RecordServiceCreditWithEvent record
	// the row and its event for the billing system (when ev is not nil) in
	// one transaction; repeating a call changes nothing.
	RecordServiceChangeWithEvent(ctx context.Context, c ledger.ServiceChange, ev *ledger.OutboxEvent) (ledger.ServiceChange, error)
	RecordServiceCreditWithEvent(ctx context.Context, c ledger.ServiceCredit, ev *ledger.OutboxEvent) (ledger.ServiceCredit, error)
	SMSOptOut(ctx context.Context, phone string) (optedOut bool, keyword string, err error)
	EmailSuppressed(ctx context.Context, email string) (suppressed bool, reason string, err error)
	ReserveCardAttempt(ctx context.Context, r ledger.Reservation, lim ledger.Limits) (ledger.Verdict, error)
	FinishCardAttempt(ctx context.Context, key, outcome string, at time.Time) error
	BlockCard(ctx context.Context, cardKey, network, reason, sourceKey string, until, at time.Time) error
}

// Error types the workflow and retry policies branch on. They are part of
// the activities' contract: retry policies list them as non-retryable.
const (
	ErrTypeInvalidInput     = "InvalidInput"
	ErrTypeUnknownGateway   = "UnknownGateway"
	ErrTypeGatewayPermanent = "GatewayPermanent"
	// ErrTypeGatewayAuth: the gateway refused our credentials; ops must
	// fix the configuration, the customer's card is not at fault.
	ErrTypeGatewayAuth = "GatewayAuth"
	// ErrTypeGatewayBusy: the outcome is unknown and the gateway asked us to
	// wait (in progress, rate limited); retried with the same key.
	ErrTypeGatewayBusy     = "GatewayBusy"
	ErrTypeMessageRejected = "MessageRejected"
	// ErrTypeMessageOutcomeUnknown: an earlier send may have reached the
	// provider and the provider's listing has not settled yet; retried
	// (after the delay the error carries) with the same key.
	ErrTypeMessageOutcomeUnknown = "MessageOutcomeUnknown"
	// ErrTypeCallbackRejected is no longer returned: billing callbacks go
	// through the outbox, which records a refusal in the ledger. It stays
	// so that workflow code and histories that name it keep working.
	ErrTypeCallbackRejected = "CallbackRejected"
	ErrTypeRunClosed        = "RunClosed"
)

// NonRetryable lists the error types no retry can fix.
var NonRetryable = []string{
	ErrTypeInvalidInput, ErrTypeUnknownGateway, ErrTypeGatewayPermanent, ErrTypeGatewayAuth,
	ErrTypeMessageRejected, ErrTypeCallbackRejected, ErrTypeRunClosed,
}

// ledgerErr classifies a ledger failure: a record that can never be written
// (invalid, conflicting, unknown or closed run) is permanent, so it is not
// retried for hours; anything else, such as a lost connection, is retried.
func ledgerErr(err error, format string, args ...any) error {
	wrapped := fmt.Errorf(format+": %w", append(args, err)...)
	switch {
	case errors.Is(err, ledger.ErrRunClosed):
		return permanent(ErrTypeRunClosed, wrapped)
	case errors.Is(err, ledger.ErrInvalid), errors.Is(err, ledger.ErrConflict), errors.Is(err, ledger.ErrNotFound):
		return permanent(ErrTypeInvalidInput, wrapped)
	}
	return wrapped
}

func permanent(errType string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), errType, err)
}

// IsType reports whether err is (or wraps) an application error of errType,
// as activities return them and the workflow receives them.
func IsType(err error, errType string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == errType
}
