package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/policy"
)

// expedite sends the expedite Update at offset and collects its answer.
type expediteCall struct {
	rec      AttemptRecord
	err      error
	rejected bool
	done     bool
}

func (h *harness) expedite(offset time.Duration, c *expediteCall) {
	h.at(offset, func() {
		h.env.UpdateWorkflow(UpdateExpedite, "expedite-"+offset.String(), &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { c.err, c.rejected, c.done = err, true, true },
			OnComplete: func(v any, err error) {
				c.err, c.done = err, true
				if rec, ok := v.(AttemptRecord); ok {
					c.rec = rec
				}
			},
		}, ExpediteRequest{Reason: "customer called", By: "support"})
	})
}

// A cancel that lands while an expedited charge is in flight is decided by
// the charge: money in closes recovered (receipt, billing told), a decline
// closes cancelled; never a cancelled run with money captured.
func TestCancelDuringExpeditedCharge(t *testing.T) {
	for _, tt := range []struct {
		name    string
		succeed int
		want    policy.Outcome
	}{
		{"charge succeeds", 1, policy.Recovered},
		{"charge declines", 0, policy.Cancelled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.succeed)
			h.beforeCharge = func(activities.AttemptInput) {
				h.env.SignalWorkflow(SignalCancel, CancelRequest{Reason: "customer left", By: "ops"})
			}
			var call expediteCall
			h.expedite(day, &call)
			res := h.run(input())
			if res.Outcome != tt.want {
				t.Fatalf("outcome = %s (%s), want %s", res.Outcome, res.Reason, tt.want)
			}
			if !call.done || call.err != nil || call.rec.Number != 1 {
				t.Fatalf("expedite answer = %+v", call)
			}
			if len(h.charges) != 1 {
				t.Fatalf("charges = %d, want 1", len(h.charges))
			}
			if h.closed == nil || h.closed.Outcome != string(tt.want) {
				t.Fatalf("ledger close = %+v", h.closed)
			}
			if tt.want == policy.Recovered && !strings.Contains(strings.Join(h.messageKeys(), ","), "payment-recovered") {
				t.Errorf("no receipt: %v", h.messageKeys())
			}
		})
	}
}

func chargeTimes(h *harness) []time.Duration {
	var out []time.Duration
	for _, at := range h.chargeAt {
		out = append(out, at.Sub(t0))
	}
	return out
}

// The billing system reports stolen_card mid-schedule: the run stops
// retrying, blocks the card for every run, and reminds the customer to
// update it 3, 7 and 14 days later.
func TestStolenCardDeclineSignalStopsRetries(t *testing.T) {
	h := newHarness(t, 0)
	h.at(4*day, func() {
		h.env.SignalWorkflow(SignalDecline, Decline{ID: "ch_2", Gateway: "simulator", Code: "stolen_card"})
	})
	h.at(5*day, func() {
		if st := h.query(); st.Phase != PhaseActionRequired {
			t.Errorf("phase after stolen_card = %s", st.Phase)
		}
	})
	in := input()
	in.Card = Card{Network: "visa", Fingerprint: "fp-1"}
	res := h.run(in)
	if res.Outcome != policy.Exhausted || len(h.charges) != 1 {
		t.Fatalf("outcome %s after %d charges at %v, want exhausted after the day-3 attempt only", res.Outcome, len(h.charges), chargeTimes(h))
	}
	if len(h.blocks) != 1 || h.blocks[0].CardKey != "fp:fp-1" || h.blocks[0].SourceKey != "dunning/acme/inv-1/decline-1" {
		t.Fatalf("shared blocks = %+v", h.blocks)
	}
	var reminders []time.Duration
	for i, m := range h.messages {
		if m.Kind == string(policy.UpdateCardReminder) {
			reminders = append(reminders, h.notifyAt[i].Sub(t0))
		}
	}
	equal(t, "reminders", reminders, []time.Duration{7 * day, 11 * day, 18 * day})
}

// An expedite on a card whose decline rules it out is refused with the
// rule in words, and nothing is charged; the intake decline blocked the
// card in the shared ledger when the run opened. Since charge-gate 4 the
// update is accepted and refused by the loop, so the refusal reaches the
// audit trail (the close carries it to the ledger).
func TestExpediteOnBlockedCardIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    Decline
		card Card
	}{
		{"stolen card", Decline{Gateway: "stripe", Code: "stolen_card"}, Card{Network: "visa", Fingerprint: "fp-1"}},
		{"visa category 1", Decline{Gateway: "stripe", Code: "generic_decline", NetworkDeclineCode: "14"}, Card{Network: "visa", Fingerprint: "fp-1"}},
		{"mastercard MAC 03", Decline{Gateway: "stripe", Code: "do_not_honor", NetworkAdviceCode: "03"}, Card{Network: "mastercard", Fingerprint: "fp-1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1)
			var call expediteCall
			h.expedite(day, &call)
			in := input()
			in.Decline, in.Card = tt.d, tt.card
			h.run(in)
			if call.rejected || call.err == nil || !strings.Contains(call.err.Error(), "refused") {
				t.Fatalf("expedite = %+v, want accepted and refused", call)
			}
			var refusals []activities.JournalEntry
			for _, e := range h.journal {
				if e.Kind == "refusal" {
					refusals = append(refusals, e)
				}
			}
			if len(refusals) != 1 || refusals[0].Action != string(policy.ReasonExpedite) || refusals[0].Card != "fp:fp-1" ||
				!strings.Contains(refusals[0].Rule, "rules out charging it again") {
				t.Fatalf("refusals recorded = %+v", refusals)
			}
			if len(h.charges) != 0 {
				t.Fatalf("charged %d times", len(h.charges))
			}
			if h.opened == nil || h.opened.Block == nil || h.opened.Block.CardKey != "fp:fp-1" || !h.opened.Block.Until.After(t0.Add(29*day)) {
				t.Fatalf("open run block = %+v", h.opened)
			}
		})
	}
}

// A card update that names the same fingerprint does not lift the block.
func TestSameCardUpdateKeepsTheBlock(t *testing.T) {
	h := newHarness(t, 1)
	h.at(2*day, func() {
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{PaymentMethod: "pm_again",
			Card: &Card{Network: "mastercard", Fingerprint: "fp-1"}})
	})
	in := input()
	in.Decline = Decline{Gateway: "stripe", Code: "do_not_honor", NetworkAdviceCode: "21"}
	in.Card = Card{Network: "mastercard", Fingerprint: "fp-1"}
	res := h.run(in)
	if len(h.charges) != 0 || res.Outcome != policy.Exhausted {
		t.Fatalf("outcome %s with charges %v", res.Outcome, chargeTimes(h))
	}
	st := h.query()
	if len(st.LateSignals) != 1 || !strings.Contains(st.LateSignals[0].Note, "same card") {
		t.Fatalf("late signals = %+v", st.LateSignals)
	}
}

// The customer updates the card while an attempt on the old one is in
// flight: the old card's MAC 03 decline is not read onto the new card,
// which is then tried and recovers.
func TestCardUpdateDuringChargeKeepsEachCardsOwnDecline(t *testing.T) {
	h := newHarness(t, 0)
	h.goodCards = []string{"pm_new"}
	first := true
	h.beforeCharge = func(in activities.AttemptInput) {
		if first {
			first = false
			h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{PaymentMethod: "pm_new",
				Card: &Card{Network: "mastercard", Fingerprint: "fp-new"}})
		}
	}
	h.chargeResult = func(in activities.ChargeInput) activities.ChargeOutput {
		if in.PaymentMethod == "pm_new" {
			return activities.ChargeOutput{Outcome: gateway.Succeeded, GatewayRef: "ch_ok"}
		}
		return activities.ChargeOutput{Outcome: gateway.Declined, DeclineCode: "do_not_honor", NetworkAdviceCode: "03"}
	}
	in := input()
	in.Card = Card{Network: "mastercard", Fingerprint: "fp-old"}
	res := h.run(in)
	if res.Outcome != policy.Recovered || len(h.charges) != 2 || h.charges[1].PaymentMethod != "pm_new" {
		t.Fatalf("outcome %s, charges %+v", res.Outcome, h.charges)
	}
	st := h.query()
	if st.Attempts[0].Card != "fp:fp-old" || st.Attempts[0].Advice != "stop" || st.Attempts[1].Card != "fp:fp-new" {
		t.Fatalf("attempts = %+v", st.Attempts)
	}
}

// Signals that arrive after the run decided to close are recorded as late,
// not accepted and dropped.
func TestSignalsAfterCloseAreRecorded(t *testing.T) {
	h := newHarness(t, 1)
	h.closeHook = func() {
		h.env.SignalWorkflow(SignalCancel, CancelRequest{Reason: "too late"})
		h.env.SignalWorkflow(SignalPaidOutOfBand, PaidOutOfBand{Reference: "wire-1"})
	}
	res := h.run(input())
	if res.Outcome != policy.Recovered {
		t.Fatalf("outcome = %s", res.Outcome)
	}
	st := h.query()
	if len(st.LateSignals) != 2 || st.LateSignals[0].Signal != SignalCancel || st.LateSignals[1].Signal != SignalPaidOutOfBand {
		t.Fatalf("late signals = %+v", st.LateSignals)
	}
}

// A new card on a blocked run that also declines does not fire every
// unused slot at once: attempts on it keep the minimum gap.
func TestDecliningNewCardOnBlockedRunDoesNotBurst(t *testing.T) {
	h := newHarness(t, 0)
	h.at(16*day, func() {
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{PaymentMethod: "pm_new"})
	})
	in := input()
	in.Decline = Decline{Gateway: "stripe", Code: "stolen_card"}
	h.run(in)
	if len(h.chargeAt) == 0 {
		t.Fatal("the new card was never tried")
	}
	for i := 1; i < len(h.chargeAt); i++ {
		if gap := h.chargeAt[i].Sub(h.chargeAt[i-1]); gap < 20*time.Hour {
			t.Fatalf("attempts at %v: two %s apart", chargeTimes(h), gap)
		}
	}
	failed := 0
	for _, m := range h.messages {
		if strings.HasPrefix(m.IdempotencyKey, "dunning/acme/inv-1/attempt-") {
			failed++
		}
	}
	if failed > len(h.chargeAt) {
		t.Errorf("%d failure notices for %d attempts", failed, len(h.chargeAt))
	}
}
