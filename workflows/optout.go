package workflows

import (
	"crypto/sha256"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
)

// SMS consents held for the ledger.
//
// The API records an inbound STOP or START in the ledger as it arrives.
// When PostgreSQL is down it hands the consent to Temporal instead: a
// signal-with-start of SMSConsentWorkflow, answered to Twilio with 200 only
// once Temporal has it. The workflow writes the consents to the ledger
// (ApplySMSConsents) with retries until PostgreSQL is back, then ends.
// Until then the SMS send path asks the workflow (QueryPendingSMSConsent)
// and treats a number with a pending opt-out as opted out, so no text goes
// to a number that said STOP, however long the ledger was away.
//
// Workflow IDs carry no phone number (Temporal keeps IDs in the clear):
// numbers share one of SMSConsentBuckets workflows by a hash, and the
// numbers themselves travel in encrypted payloads.
const (
	SMSConsentWorkflowName = "SMSConsentWorkflow"
	// SignalSMSConsent carries one activities.SMSConsent.
	SignalSMSConsent = "sms-consent"
	// QueryPendingSMSConsent takes a phone number and answers the newest
	// consent of that number not yet in the ledger, or nil.
	QueryPendingSMSConsent = "pending-sms-consent"
	// SMSConsentBuckets is how many consent workflows numbers share.
	SMSConsentBuckets = 64
	// smsConsentHistoryLimit bounds one execution's history; past it the
	// workflow continues as new with what is still pending.
	smsConsentHistoryLimit = 2000
)

// SMSConsentWorkflowID is the workflow holding phone's pending consents.
func SMSConsentWorkflowID(phone string) string {
	h := sha256.Sum256([]byte(phone))
	return fmt.Sprintf("sms-consent/%02d", int(h[0])%SMSConsentBuckets)
}

// SMSConsentInput is what a continued execution carries over.
type SMSConsentInput struct {
	Pending []activities.SMSConsent `json:"pending,omitempty"`
}

// SMSConsentWorkflow holds the consents signalled to it until the ledger
// has them, applying them in the order received; it ends once none is
// pending.
func SMSConsentWorkflow(ctx workflow.Context, in SMSConsentInput) error {
	pending := in.Pending
	seen := make(map[string]bool, len(pending))
	for _, c := range pending {
		if c.MessageSid != "" {
			seen[c.MessageSid] = true
		}
	}
	if err := workflow.SetQueryHandler(ctx, QueryPendingSMSConsent, func(phone string) (*activities.SMSConsent, error) {
		var newest *activities.SMSConsent
		for i := range pending {
			if c := pending[i]; c.Phone == phone && (newest == nil || !c.At.Before(newest.At)) {
				newest = &c
			}
		}
		return newest, nil
	}); err != nil {
		return err
	}
	// Signals are taken as they arrive, so the query sees one while a
	// batch is being applied. A message handed over twice (Twilio's retry
	// during the same outage) is kept once.
	add := func(c activities.SMSConsent) {
		if c.MessageSid != "" {
			if seen[c.MessageSid] {
				return
			}
			seen[c.MessageSid] = true
		}
		pending = append(pending, c)
	}
	signals := workflow.GetSignalChannel(ctx, SignalSMSConsent)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var c activities.SMSConsent
			signals.Receive(ctx, &c)
			add(c)
		}
	})
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// Until the ledger is back, however long that takes (a bound is
		// needed; no outage lasts this long).
		ScheduleToCloseTimeout: 90 * 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	})
	var consents *activities.Consents
	for {
		if err := workflow.Await(ctx, func() bool { return len(pending) > 0 }); err != nil {
			return err
		}
		batch := append([]activities.SMSConsent(nil), pending...)
		if err := workflow.ExecuteActivity(actx, consents.ApplySMSConsents, activities.ApplySMSConsentsInput{Consents: batch}).Get(ctx, nil); err != nil {
			return err
		}
		pending = pending[len(batch):]
		// Signals delivered with this task that the receiver has not run
		// for yet are taken here, before deciding to end.
		for {
			var c activities.SMSConsent
			if !signals.ReceiveAsync(&c) {
				break
			}
			add(c)
		}
		if len(pending) == 0 {
			// Nothing arrived while the batch was applied: done. A signal
			// racing this completion makes the server refuse it and hand
			// the workflow a new task, so none is lost.
			return nil
		}
		if workflow.GetInfo(ctx).GetCurrentHistoryLength() > smsConsentHistoryLimit {
			return workflow.NewContinueAsNewError(ctx, SMSConsentWorkflowName, SMSConsentInput{Pending: pending})
		}
	}
}
