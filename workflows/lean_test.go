package workflows

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/policy"
)

// continuedInput runs the harness until the workflow continues as new and
// returns the input it handed over.
func (h *harness) continuedInput(in Input) Input {
	h.t.Helper()
	h.env.ExecuteWorkflow(WorkflowName, in)
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		h.t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var next Input
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		h.t.Fatal(err)
	}
	return next
}

func TestContinueAsNewKeepsEveryFieldOfTheStatus(t *testing.T) {
	h := newHarness(t, 0)
	in := input()
	in.Card = Card{Fingerprint: "fp_1", Network: "visa"}
	// An expedite, a second decline, an update naming the same card (kept
	// as a late signal) and a new card all leave marks in the status that
	// must survive the hand-over.
	var exp expediteCall
	h.expedite(time.Hour, &exp)
	h.at(2*time.Hour, func() {
		h.env.SignalWorkflow(SignalDecline, Decline{ID: "d-2", Gateway: "simulator", Code: "insufficient_funds"})
	})
	h.at(3*time.Hour, func() {
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{Card: &Card{Fingerprint: "fp_1", Network: "visa"}})
	})
	h.at(4*day, func() {
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{PaymentMethod: "pm_new", Card: &Card{Fingerprint: "fp_2", Network: "visa"}})
	})
	// The history passes the bound after the new card's attempt; the test
	// server does not count events, so the test says how long it is.
	h.at(5*day, func() { h.env.SetCurrentHistoryLength(continueAsNewAfter + 1) })
	next := h.continuedInput(in)
	if next.Resume == nil {
		t.Fatal("continue-as-new carried no state")
	}
	before := h.query()
	if !reflect.DeepEqual(next.Resume.Status, before) {
		t.Fatalf("carried status differs from the status at hand-over:\ncarried %+v\nstatus  %+v", next.Resume.Status, before)
	}
	if len(before.Attempts) == 0 || len(before.Messages) == 0 || len(before.Declines) < 2 || len(before.LateSignals) == 0 {
		t.Fatalf("status at hand-over has too little in it to prove anything: %+v", before)
	}
	if next.Policy == nil || next.Resume.PaymentMethod != "pm_new" || next.Resume.Card.Fingerprint != "fp_2" || next.Resume.Runs != 1 {
		t.Fatalf("carried input = policy %v, method %q, card %+v, runs %d", next.Policy != nil, next.Resume.PaymentMethod, next.Resume.Card, next.Resume.Runs)
	}

	// The next run starts from exactly that status and finishes the
	// schedule without repeating a charge or a message.
	h2 := newHarness(t, 0)
	h2.env.SetStartTime(h.env.Now())
	var resumed Status
	h2.at(time.Millisecond, func() { resumed = h2.query() })
	res := h2.run(next)
	if !reflect.DeepEqual(resumed.Attempts, before.Attempts) || !reflect.DeepEqual(resumed.Messages, before.Messages) ||
		!reflect.DeepEqual(resumed.Declines, before.Declines) || !reflect.DeepEqual(resumed.LateSignals, before.LateSignals) ||
		resumed.Phase != before.Phase || resumed.ServiceState != before.ServiceState || !resumed.StartedAt.Equal(before.StartedAt) {
		t.Fatalf("resumed status differs:\nresumed %+v\nbefore  %+v", resumed, before)
	}
	if h2.opened != nil {
		t.Error("the continued run opened the ledger row again")
	}
	keys := map[string]bool{}
	for _, m := range append(h.messages, h2.messages...) {
		if keys[m.IdempotencyKey] {
			t.Errorf("message %s sent twice across the hand-over", m.IdempotencyKey)
		}
		keys[m.IdempotencyKey] = true
	}
	charged := map[string]bool{}
	for _, c := range append(h.charges, h2.charges...) {
		if charged[c.IdempotencyKey] {
			t.Errorf("attempt %s made twice across the hand-over", c.IdempotencyKey)
		}
		charged[c.IdempotencyKey] = true
	}
	if res.Attempts != len(h.charges)+len(h2.charges) {
		t.Errorf("result counts %d attempts, the gateway saw %d", res.Attempts, len(h.charges)+len(h2.charges))
	}
	if res.Outcome != policy.Exhausted {
		t.Errorf("outcome = %s, want exhausted", res.Outcome)
	}
}

func TestMessageStepSendsAllChannelsInOneActivity(t *testing.T) {
	h := newHarness(t, 0)
	h.run(input())
	var paused []string
	for _, s := range h.notifySteps {
		if strings.Contains(s[0], "service-paused") {
			paused = s
		}
	}
	if len(paused) != 2 {
		t.Fatalf("service-paused step sent %v, want email and text in one activity (steps: %v)", paused, h.notifySteps)
	}
}
