package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/pii"
)

// Inbound SMS keywords (STOP, START) are written to the ledger by the API as
// they arrive. While PostgreSQL is down the API hands them to Temporal
// instead (workflows.SMSConsentWorkflow), which holds them durably and
// applies them here once the ledger is back; until then the SMS send path
// treats a number with a pending opt-out as opted out (PendingConsents).

// SMSConsent is one keyword reply to record: a number opting out (STOP and
// the other opt-out keywords) or back in (START), as received.
type SMSConsent struct {
	Phone    string `json:"phone"`
	OptedOut bool   `json:"opted_out"`
	Keyword  string `json:"keyword"`
	Source   string `json:"source"`
	// At is when the API received the message. The ledger keeps the
	// newest word per number, so a STOP applied late never undoes a START
	// received after it.
	At time.Time `json:"at"`
	// MessageSid and AccountSid identify the provider's message: each
	// acts once, however often it is delivered or handed over.
	MessageSid string `json:"message_sid,omitempty"`
	AccountSid string `json:"account_sid,omitempty"`
}

// WebhookEvent is the record that makes the message act once, shared with
// the API's own handling of inbound messages.
func (c SMSConsent) WebhookEvent() ledger.WebhookEvent {
	account := c.AccountSid
	if account == "" {
		account = "twilio"
	}
	return ledger.WebhookEvent{Source: "twilio-sms", Tenant: account, EventID: c.MessageSid, Type: "inbound"}
}

// ConsentLedger is what applying consents needs; *ledger.Store has it.
type ConsentLedger interface {
	SetSMSOptOut(ctx context.Context, phone string, optedOut bool, keyword, source string, at time.Time) error
	ClaimWebhookEvent(ctx context.Context, e ledger.WebhookEvent, lease time.Duration) (ledger.WebhookClaim, error)
	CompleteWebhookEvent(ctx context.Context, e ledger.WebhookEvent, outcome string) error
	ReleaseWebhookEvent(ctx context.Context, e ledger.WebhookEvent) error
}

// PendingConsents tells whether Temporal holds a consent for a number that
// the ledger does not have yet.
type PendingConsents interface {
	// PendingSMSOptOut reports the newest pending consent of phone:
	// found is false when none is pending.
	PendingSMSOptOut(ctx context.Context, phone string) (optedOut, found bool, err error)
}

// Consents applies the consents the API handed to Temporal.
type Consents struct {
	Ledger ConsentLedger
}

// ApplySMSConsentsInput is a batch of consents in the order received.
type ApplySMSConsentsInput struct {
	Consents []SMSConsent `json:"consents"`
}

// ApplySMSConsents writes each consent to the ledger, once per MessageSid.
// A ledger that is unavailable fails the activity, which is retried until
// it is back; a consent that can never be recorded (a sender that is not a
// phone number) is dropped.
func (a *Consents) ApplySMSConsents(ctx context.Context, in ApplySMSConsentsInput) error {
	for _, c := range in.Consents {
		if err := a.apply(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (a *Consents) apply(ctx context.Context, c SMSConsent) error {
	if c.MessageSid == "" {
		return a.set(ctx, c)
	}
	ev := c.WebhookEvent()
	claim, err := a.Ledger.ClaimWebhookEvent(ctx, ev, time.Minute)
	switch {
	case errors.Is(err, ledger.ErrInvalid):
		// A message ID the ledger cannot key on: record the consent
		// without the once-only guard rather than lose it.
		return a.set(ctx, c)
	case err != nil:
		return fmt.Errorf("sms consent %s: claim the message: %w", c.MessageSid, err)
	case claim == ledger.WebhookProcessed:
		return nil // recorded before: a replay or a second hand-over
	case claim == ledger.WebhookBusy:
		// The API is recording it right now, or a claim outlived its
		// holder; its lease decides, and the retry asks again.
		return fmt.Errorf("sms consent %s: the message is being handled elsewhere", c.MessageSid)
	}
	if err := a.set(ctx, c); err != nil {
		_ = a.Ledger.ReleaseWebhookEvent(context.WithoutCancel(ctx), ev)
		return err
	}
	if err := a.Ledger.CompleteWebhookEvent(ctx, ev, "consent recorded"); err != nil {
		// Recorded; a second application changes nothing (same time).
		return fmt.Errorf("sms consent %s: mark the message done: %w", c.MessageSid, err)
	}
	return nil
}

func (a *Consents) set(ctx context.Context, c SMSConsent) error {
	err := a.Ledger.SetSMSOptOut(ctx, c.Phone, c.OptedOut, c.Keyword, c.Source, c.At)
	if errors.Is(err, ledger.ErrInvalid) {
		return nil // no consent of ours to record; the API logged it
	}
	if err != nil {
		return fmt.Errorf("sms consent from %s: %w", pii.MaskPhone(c.Phone), err)
	}
	return nil
}
