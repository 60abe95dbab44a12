package workflows

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
)

// The consent workflow keeps a message handed over twice once, answers the
// newest pending consent per number while the ledger is down, applies
// everything once it is back, and ends.
func TestSMSConsentWorkflowHoldsUntilApplied(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(SMSConsentWorkflow, workflow.RegisterOptions{Name: SMSConsentWorkflowName})
	var consents *activities.Consents
	env.RegisterActivity(consents)

	const phone, other = "+48600100200", "+48600100201"
	stop := activities.SMSConsent{Phone: phone, OptedOut: true, Keyword: "STOP", Source: "twilio-inbound", At: t0, MessageSid: "SM1"}
	start := activities.SMSConsent{Phone: phone, Keyword: "START", Source: "twilio-inbound", At: t0.Add(time.Minute), MessageSid: "SM2"}
	otherStop := activities.SMSConsent{Phone: other, OptedOut: true, Keyword: "STOP", Source: "twilio-inbound", At: t0, MessageSid: "SM3"}

	// The ledger is down for the first three minutes (the test
	// environment stops retrying after ten attempts; the server does not).
	var applied [][]activities.SMSConsent
	env.OnActivity(consents.ApplySMSConsents, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ApplySMSConsentsInput) error {
		if env.Now().Before(t0.Add(3 * time.Minute)) {
			return errors.New("connection refused")
		}
		applied = append(applied, in.Consents)
		return nil
	})
	env.SetStartTime(t0)
	query := func(p string) *activities.SMSConsent {
		t.Helper()
		v, err := env.QueryWorkflow(QueryPendingSMSConsent, p)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		var c *activities.SMSConsent
		if err := v.Get(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalSMSConsent, stop)
		env.SignalWorkflow(SignalSMSConsent, stop) // Twilio's retry
		env.SignalWorkflow(SignalSMSConsent, otherStop)
	}, 0)
	env.RegisterDelayedCallback(func() {
		if c := query(phone); c == nil || !c.OptedOut || c.MessageSid != "SM1" {
			t.Errorf("pending for the number = %+v, want the STOP", c)
		}
		env.SignalWorkflow(SignalSMSConsent, start)
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		if c := query(phone); c == nil || c.OptedOut || c.MessageSid != "SM2" {
			t.Errorf("pending for the number = %+v, want the newer START", c)
		}
		if c := query("+48600100299"); c != nil {
			t.Errorf("pending for a number that sent nothing = %+v", c)
		}
	}, 2*time.Minute)
	env.ExecuteWorkflow(SMSConsentWorkflowName, SMSConsentInput{})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	var sids []string
	for _, batch := range applied {
		for _, c := range batch {
			sids = append(sids, c.MessageSid)
		}
	}
	if len(sids) != 3 || sids[0] != "SM1" || sids[1] != "SM3" || sids[2] != "SM2" {
		t.Errorf("applied %v, want SM1, SM3, SM2 once each in the order received", sids)
	}
}
