package workflows

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/policy"
)

// An error that is ours (an unknown gateway, credentials the gateway
// refuses) holds the run: no attempt is burnt, nothing more is sent, the
// service ladder stays put, and a resume continues the schedule without a
// burst.
func TestOurFailuresHoldTheRunUntilResumed(t *testing.T) {
	for _, tt := range []struct {
		name, errType, cause string
	}{
		{"unknown gateway", activities.ErrTypeUnknownGateway, CauseUnknownGateway},
		{"gateway refuses our key", activities.ErrTypeGatewayAuth, CauseGatewayAuth},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 0)
			broken := true
			h.chargeErr = func(activities.ChargeInput) error {
				if broken {
					return temporal.NewNonRetryableApplicationError("charge: HTTP 401: invalid API key", tt.errType, nil)
				}
				return nil
			}
			var held Status
			// The first retry is due on day 3; ops fix the key on day 10.
			h.at(9*day, func() { held = h.query() })
			h.at(10*day, func() {
				broken = false
				h.env.SignalWorkflow(SignalResume, ResumeRequest{By: "ops", Reason: "rotated the key"})
			})
			res := h.run(input())

			if held.Phase != PhaseNeedsAttention || held.Attention == nil || held.Attention.Cause != tt.cause {
				t.Fatalf("status on day 9 = phase %s, attention %+v; want needs_attention (%s)", held.Phase, held.Attention, tt.cause)
			}
			if len(held.Messages) != 1 || held.Messages[0].Kind != policy.PaymentFailed {
				t.Errorf("messages while held = %+v, want only the first notice", held.Messages)
			}
			if len(held.ServiceLog) != 0 || held.ServiceState != policy.ServiceActive {
				t.Errorf("service moved while held: %+v", held.ServiceLog)
			}
			if len(held.Attempts) != 1 || !held.Attempts[0].Held {
				t.Errorf("attempts while held = %+v, want one held try", held.Attempts)
			}
			// Three real attempts after the held try: it burnt none.
			if len(h.charges) != 4 || res.Attempts != 3 || res.Outcome != policy.Exhausted {
				t.Fatalf("charges = %d, result = %+v; want 1 held + 3 attempts, exhausted", len(h.charges), res)
			}
			resumedAt := t0.Add(10 * day)
			for i := 1; i < len(h.chargeAt); i++ {
				if h.chargeAt[i].Before(resumedAt) {
					t.Errorf("charge %d at %s, before the resume", i+1, h.chargeAt[i])
				}
				if i > 1 && h.chargeAt[i].Sub(h.chargeAt[i-1]) < 20*time.Hour {
					t.Errorf("charges %d and %d only %s apart after the resume: a burst", i, i+1, h.chargeAt[i].Sub(h.chargeAt[i-1]))
				}
			}
			keys := map[string]bool{}
			for _, c := range h.charges {
				if keys[c.IdempotencyKey] {
					t.Errorf("key %s used twice after a permanent failure", c.IdempotencyKey)
				}
				keys[c.IdempotencyKey] = true
			}
			st := h.query()
			if len(st.Holds) != 1 || st.Holds[0].Cause != tt.cause || !strings.Contains(st.Holds[0].Ended, "resumed by ops") {
				t.Errorf("holds = %+v", st.Holds)
			}
			// The tenant heard of the hold and of its end.
			if len(h.events) != 2 || h.events[0].Kind != activities.EventNeedsAttention || h.events[1].Kind != activities.EventResumed ||
				h.events[0].Key == h.events[1].Key {
				t.Errorf("run events = %+v", h.events)
			}
			// The read model heard of the hold and of its end.
			if len(h.reports) != 2 || h.reports[0].Phase != string(PhaseNeedsAttention) || h.reports[0].AttentionCause != tt.cause ||
				h.reports[1].Phase != string(PhaseRecovering) || h.reports[1].AttentionCause != "" {
				t.Errorf("read-model reports = %+v", h.reports)
			}
		})
	}
}

// A ledger or gateway outage past the attempt's retry budget holds the run
// instead of ending the schedule; the run retries the same attempt, with
// the same key, once the outage is over.
func TestOutageHoldsAndRetriesTheSameAttempt(t *testing.T) {
	h := newHarness(t, 1)
	var outageEnds time.Time
	h.chargeErr = func(in activities.ChargeInput) error {
		if outageEnds.IsZero() {
			outageEnds = h.env.Now().Add(3 * time.Hour)
		}
		if h.env.Now().Before(outageEnds) {
			return errors.New("ledger: connection refused")
		}
		return nil
	}
	var held Status
	// The attempt starts at 09:00 on day 3 and gives up after its 30-minute
	// retry budget; the run holds and plans again by itself an hour later.
	h.at(3*day+40*time.Minute, func() { held = h.query() })
	res := h.run(input())
	if held.Phase != PhaseNeedsAttention || held.Attention == nil || held.Attention.Cause != CauseUnavailable {
		t.Fatalf("status during the outage = %s %+v, want needs_attention (unavailable)", held.Phase, held.Attention)
	}
	if res.Outcome != policy.Recovered || res.Attempts != 1 {
		t.Fatalf("result = %+v, want recovered on the one attempt", res)
	}
	first := h.charges[0].IdempotencyKey
	for _, c := range h.charges {
		if c.IdempotencyKey != first {
			t.Fatalf("the retry after the outage used key %s, want %s again", c.IdempotencyKey, first)
		}
	}
	if last := h.charges[len(h.charges)-1]; h.chargeAt[len(h.chargeAt)-1].Before(outageEnds) {
		t.Errorf("recovered by %s before the outage ended", last.IdempotencyKey)
	}
}

// A resume for a run that does not hold is recorded, not acted on.
func TestResumeWithoutHoldIsRecorded(t *testing.T) {
	h := newHarness(t, 2)
	h.at(time.Hour, func() { h.env.SignalWorkflow(SignalResume, ResumeRequest{By: "ops"}) })
	h.run(input())
	st := h.query()
	if len(st.LateSignals) != 1 || st.LateSignals[0].Signal != SignalResume {
		t.Errorf("late signals = %+v, want the resume recorded", st.LateSignals)
	}
}

// A text the send-time check defers (its activity was retried past the
// window) is sent once, when the check's window opens, and recorded once.
func TestDeferredTextWaitsForItsWindow(t *testing.T) {
	h := newHarness(t, 0)
	var deferredAt, notBefore time.Time
	h.notifyResult = func(in activities.NotifyInput) (activities.NotifyOutput, error) {
		if strings.HasSuffix(in.IdempotencyKey, "service-paused/sms") && deferredAt.IsZero() {
			deferredAt, notBefore = h.env.Now(), h.env.Now().Add(5*time.Hour)
			return activities.NotifyOutput{Status: "deferred", NotBefore: notBefore, Detail: "outside the SMS window"}, nil
		}
		return activities.NotifyOutput{Status: "sent", Provider: "test"}, nil
	}
	h.run(input())
	if deferredAt.IsZero() {
		t.Fatal("the pause text was never tried")
	}
	var tries []time.Time
	for i, m := range h.messages {
		if strings.HasSuffix(m.IdempotencyKey, "service-paused/sms") {
			tries = append(tries, h.notifyAt[i])
		}
	}
	if len(tries) != 2 || tries[1].Before(notBefore) {
		t.Fatalf("pause text tried at %v, want twice, the second at or after %s", tries, notBefore)
	}
	var recorded int
	for _, m := range h.query().Messages {
		if m.Key == "service-paused/sms" {
			recorded++
			if m.Status != "sent" {
				t.Errorf("pause text recorded as %s", m.Status)
			}
		}
	}
	if recorded != 1 {
		t.Errorf("pause text recorded %d times, want once", recorded)
	}
}

// While a run holds, an expedite is refused and a cancel still ends it.
func TestHeldRunRefusesExpediteAndTakesCancel(t *testing.T) {
	h := newHarness(t, 0)
	h.chargeErr = func(activities.ChargeInput) error {
		return temporal.NewNonRetryableApplicationError("no gateway \"paypal\" is configured", activities.ErrTypeUnknownGateway, nil)
	}
	var exp expediteCall
	h.expedite(5*day, &exp)
	h.at(6*day, func() { h.env.SignalWorkflow(SignalCancel, CancelRequest{Reason: "invoice voided", By: "ops"}) })
	res := h.run(input())
	if !exp.rejected || !errors.Is(exp.err, errHeld) && !strings.Contains(exp.err.Error(), "needs attention") {
		t.Errorf("expedite while held: rejected %v, err %v; want refused", exp.rejected, exp.err)
	}
	if res.Outcome != policy.Cancelled || len(h.charges) != 1 {
		t.Errorf("result %+v after %d charges, want cancelled after the one held try", res, len(h.charges))
	}
	if st := h.query(); len(st.Holds) != 1 || st.Holds[0].Ended != "cancelled" {
		t.Errorf("holds = %+v, want one ended by the cancel", st.Holds)
	}
}

// Money already in never fails the run: a ledger that cannot record the
// close for hours is waited out and the run still closes recovered.
func TestRecoveredRunWaitsOutALedgerOutageAtClose(t *testing.T) {
	h := newHarness(t, 1)
	// Local activities measure their deadline on the real clock; a test
	// clock set months back would time every failed try out at once.
	h.env.SetStartTime(time.Now())
	var failures int
	h.closeErr = func() error {
		if failures < 8 {
			failures++
			return errors.New("ledger: connection refused")
		}
		return nil
	}
	res := h.run(input())
	if res.Outcome != policy.Recovered || h.closed == nil || failures != 8 {
		t.Fatalf("result %+v, closed %v after %d failures; want recovered once the ledger is back", res, h.closed != nil, failures)
	}
}

// A flood of distinct decline reports is absorbed: each is read, the list in
// the status stays bounded and the rest is counted.
func TestDeclineFloodKeepsTheStatusBounded(t *testing.T) {
	h := newHarness(t, 0)
	h.at(time.Hour, func() {
		for i := range 200 {
			h.env.SignalWorkflow(SignalDecline, Decline{ID: fmt.Sprintf("flood-%d", i), Gateway: "simulator", Code: "insufficient_funds"})
		}
	})
	h.run(input())
	st := h.query()
	if len(st.Declines) != maxListed || st.DeclinesNotListed != 201-maxListed {
		t.Errorf("declines listed %d, not listed %d; want %d and %d", len(st.Declines), st.DeclinesNotListed, maxListed, 201-maxListed)
	}
}

// Downtime never spends the customer's schedule: after the platform was
// down past the whole retry window, the first retry still comes, and the
// window is extended by the delay.
func TestLateWakeExtendsTheSchedule(t *testing.T) {
	r := &run{id: "dunning/acme/inv-1", in: input(), pol: policy.Default(), gated: true, lean: true, loc: time.UTC,
		paymentMethod: "pm_old"}
	r.status.Declines = []Decline{{ReceivedAt: t0}}
	r.sent = []string{"payment-failed/email"}
	down := t0.Add(3 * day)  // the first retry was due
	back := t0.Add(30 * day) // past the 21-day window and its 6-day shift
	if step := r.pol.Next(r.engineState(back)); step.Action == policy.ActionRetry {
		t.Fatalf("without the delay recorded the schedule would still retry: %+v", step)
	}
	r.status.Holds = append(r.status.Holds, Hold{Cause: CauseLate, From: down, To: back})
	step := r.pol.Next(r.engineState(back))
	if step.Action != policy.ActionRetry || step.Attempt != 1 || step.At.Before(back) || step.At.After(back.Add(2*day)) {
		t.Fatalf("after the outage: %+v, want retry 1 soon after the platform is back", step)
	}
}

// A payment-method update is told to the tenant once, saying whether it
// named the card already on file.
func TestCardUpdateIsARunEvent(t *testing.T) {
	h := newHarness(t, 0)
	in := input()
	in.Card = Card{Fingerprint: "fp_1", Network: "visa"}
	h.at(time.Hour, func() {
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{Card: &Card{Fingerprint: "fp_1", Network: "visa"}})
	})
	h.at(2*time.Hour, func() {
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{PaymentMethod: "pm_new", Card: &Card{Fingerprint: "fp_2", Network: "mastercard"}})
	})
	h.run(in)
	var got []activities.CardUpdatedEvent
	keys := map[string]bool{}
	for _, e := range h.events {
		if e.Kind == activities.EventCardUpdated {
			got = append(got, e.Data.(activities.CardUpdatedEvent))
			keys[e.Key] = true
		}
	}
	if len(got) != 2 || len(keys) != 2 || !got[0].SameCard || got[1].SameCard || got[1].Network != "mastercard" {
		t.Errorf("card.updated events = %+v", got)
	}
}
