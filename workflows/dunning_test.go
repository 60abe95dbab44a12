package workflows

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/policy"
)

const day = 24 * time.Hour

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// harness runs DunningWorkflow with time skipping and records what the
// activities were asked to do. succeedOn is the attempt number that
// succeeds (0: every attempt is declined); attempts made with a payment
// method in goodCards always succeed.
type harness struct {
	t         *testing.T
	env       *testsuite.TestWorkflowEnvironment
	succeedOn int
	goodCards []string
	charges   []activities.ChargeInput
	chargeAt  []time.Time
	messages  []activities.NotifyInput
	services  []activities.ServiceInput
	closed    *activities.CloseRunInput
	notifyAt  []time.Time
	budget    *activities.NetworkLimits
	credits   []activities.CreditInput
	// notifyResult, when set, answers Notify instead of "sent".
	notifyResult func(activities.NotifyInput) (activities.NotifyOutput, error)
	// chargeErr, when set, fails a charge with the error it returns.
	chargeErr func(activities.ChargeInput) error
	// chargeResult, when set, answers charges instead of succeedOn.
	chargeResult func(activities.ChargeInput) activities.ChargeOutput
	// beforeCharge runs inside the charge activity, before the gateway.
	beforeCharge func(activities.AttemptInput)
	blocks       []activities.BlockInput
	// chargeHook runs inside every charge activity (old and gated runs).
	chargeHook func()
	// events are the run events the workflow recorded itself.
	events []activities.EventInput
	// journal is the audit trail the activities were given to record.
	journal []activities.JournalEntry
	// reports are the read-model reports the run made.
	reports []activities.StatusReport
	// closeErr, when set, fails CloseRun with the error it returns.
	closeErr func() error
	// closeHook runs inside the CloseRun activity.
	closeHook func()
	opened    *activities.OpenRunInput
	// notifySteps holds the idempotency keys of each NotifyStep activity.
	notifySteps [][]string
}

func (h *harness) charge(in activities.ChargeInput) (activities.ChargeOutput, error) {
	if h.chargeHook != nil {
		h.chargeHook()
	}
	h.charges = append(h.charges, in)
	h.chargeAt = append(h.chargeAt, h.env.Now())
	if h.chargeErr != nil {
		if err := h.chargeErr(in); err != nil {
			return activities.ChargeOutput{}, err
		}
	}
	if h.chargeResult != nil {
		return h.chargeResult(in), nil
	}
	for _, c := range h.goodCards {
		if in.PaymentMethod == c {
			return activities.ChargeOutput{Outcome: gateway.Succeeded, GatewayRef: "ch_" + in.IdempotencyKey}, nil
		}
	}
	if h.succeedOn > 0 && in.Attempt >= h.succeedOn {
		return activities.ChargeOutput{Outcome: gateway.Succeeded, GatewayRef: "ch_" + in.IdempotencyKey}, nil
	}
	return activities.ChargeOutput{Outcome: gateway.Declined, DeclineCode: "do_not_honor"}, nil
}

func newHarness(t *testing.T, succeedOn int) *harness {
	return newHarnessWithBudget(t, succeedOn, nil)
}

// newHarnessWithBudget runs the real retry-budget activities against budget
// (a real ledger) instead of allowing every attempt.
func newHarnessWithBudget(t *testing.T, succeedOn int, budget *activities.NetworkLimits) *harness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	h := &harness{t: t, env: s.NewTestWorkflowEnvironment(), succeedOn: succeedOn, budget: budget}
	h.env.SetStartTime(t0)
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: WorkflowID("acme", "inv-1")})
	h.env.RegisterWorkflowWithOptions(DunningWorkflow, workflow.RegisterOptions{Name: WorkflowName})
	h.env.RegisterActivity(charges)
	h.env.RegisterActivity(notifications)
	h.env.RegisterActivity(services)
	h.env.RegisterActivity(runs)
	if h.budget == nil {
		h.env.RegisterActivity(limits)
		h.env.OnActivity(limits.Reserve, mock.Anything, mock.Anything).Return(activities.ReserveOutput{Allowed: true}, nil)
		h.env.OnActivity(limits.Settle, mock.Anything, mock.Anything).Return(nil)
	} else {
		h.env.RegisterActivity(h.budget)
	}
	h.env.OnActivity(runs.OpenRun, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.OpenRunInput) error {
		h.opened = &in
		h.journal = append(h.journal, in.Journal...)
		return nil
	})
	h.env.OnActivity(runs.Event, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EventInput) error {
		h.events = append(h.events, in)
		return nil
	})
	h.env.OnActivity(runs.ReportStatus, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.StatusReport) error {
		h.reports = append(h.reports, in)
		return nil
	})
	h.env.OnActivity(runs.CloseRun, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CloseRunInput) error {
		if h.closeHook != nil {
			h.closeHook()
		}
		if h.closeErr != nil {
			if err := h.closeErr(); err != nil {
				return err
			}
		}
		h.closed = &in
		h.journal = append(h.journal, in.Journal...)
		return nil
	})
	h.env.OnActivity(charges.Charge, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ChargeInput) (activities.ChargeOutput, error) {
		return h.charge(in)
	})
	// Attempt is Charge with the card budget around it, as the real
	// activity does it: reserve, charge, settle (and block) on one card.
	h.env.OnActivity(charges.Attempt, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptOutput, error) {
		h.journal = append(h.journal, in.Journal...)
		if h.budget != nil {
			v, err := h.budget.Reserve(ctx, activities.ReserveInput{WorkflowID: in.WorkflowID, IdempotencyKey: in.IdempotencyKey,
				CardKey: in.Card.Key, Network: in.Card.Network, Merchant: in.Tenant, Amount: in.Amount, Currency: in.Currency, At: in.At})
			if err != nil {
				return activities.AttemptOutput{}, err
			}
			if !v.Allowed {
				return activities.AttemptOutput{Denied: true, Rule: v.Rule, NotBefore: v.NotBefore,
					ChargeOutput: activities.ChargeOutput{Outcome: gateway.Skipped, Message: v.Rule}}, nil
			}
		}
		if h.beforeCharge != nil {
			h.beforeCharge(in)
		}
		in.PaymentMethod = in.Card.PaymentMethod
		out, err := h.charge(in.ChargeInput)
		if err != nil {
			return activities.AttemptOutput{}, err
		}
		res := activities.AttemptOutput{ChargeOutput: out}
		var blockFor time.Duration
		if out.Outcome == gateway.Declined {
			d := decline.Classify(decline.Input{DeclineCode: out.DeclineCode, AdviceCode: out.AdviceCode,
				NetworkDeclineCode: out.NetworkDeclineCode, NetworkAdviceCode: out.NetworkAdviceCode, Network: in.Card.Network})
			res.Decline, blockFor = &d, d.BlockFor()
		}
		if h.budget != nil {
			if err := h.budget.Settle(ctx, activities.SettleInput{IdempotencyKey: in.IdempotencyKey, CardKey: in.Card.Key,
				Network: in.Card.Network, Outcome: string(out.Outcome), MerchantAdviceCode: out.NetworkAdviceCode,
				NeverRetryFor: blockFor, At: h.env.Now()}); err != nil {
				return activities.AttemptOutput{}, err
			}
		}
		return res, nil
	})
	h.env.OnActivity(limits.Block, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.BlockInput) error {
		h.blocks = append(h.blocks, in)
		return nil
	})
	h.env.OnActivity(notifications.Notify, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotifyInput) (activities.NotifyOutput, error) {
		h.messages = append(h.messages, in)
		h.notifyAt = append(h.notifyAt, h.env.Now())
		if h.notifyResult != nil {
			return h.notifyResult(in)
		}
		return activities.NotifyOutput{Status: "sent", Provider: "test"}, nil
	})
	mockNotifyStep(h.env, func(in activities.NotifyInput) (activities.NotifyOutput, error) {
		h.messages = append(h.messages, in)
		h.notifyAt = append(h.notifyAt, h.env.Now())
		if h.notifyResult != nil {
			return h.notifyResult(in)
		}
		return activities.NotifyOutput{Status: "sent", Provider: "test"}, nil
	}, &h.notifySteps, &h.journal)
	h.env.OnActivity(services.RecordCredit, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CreditInput) (activities.CreditOutput, error) {
		h.credits = append(h.credits, in)
		credit, err := money.Prorate(money.MustParse(in.PeriodCharge, in.Currency), in.PeriodDays, in.Days)
		if err != nil {
			return activities.CreditOutput{}, err
		}
		return activities.CreditOutput{Amount: credit.Decimal(), Currency: in.Currency}, nil
	})
	h.env.OnActivity(services.SetServiceState, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ServiceInput) (activities.ServiceOutput, error) {
		h.services = append(h.services, in)
		h.journal = append(h.journal, in.Journal...)
		return activities.ServiceOutput{Callback: "none"}, nil
	})
	return h
}

func input() Input {
	return Input{
		Tenant:        "acme",
		InvoiceID:     "inv-1",
		Customer:      Customer{ID: "cus-1", Email: "ada@example.com", Phone: "+48123456789", Locale: "en", TimeZone: "Europe/Warsaw"},
		Amount:        "49.90",
		Currency:      "EUR",
		PaymentMethod: "pm_old",
		Decline:       Decline{Gateway: "simulator", Code: "do_not_honor"},
	}
}

// at runs fn at the given workflow time offset from the start.
func (h *harness) at(offset time.Duration, fn func()) {
	h.env.RegisterDelayedCallback(fn, offset)
}

func (h *harness) run(in Input) Result {
	h.t.Helper()
	h.env.ExecuteWorkflow(WorkflowName, in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow failed: %v", err)
	}
	var res Result
	if err := h.env.GetWorkflowResult(&res); err != nil {
		h.t.Fatal(err)
	}
	return res
}

func (h *harness) query() Status {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(QueryStatus)
	if err != nil {
		h.t.Fatalf("query status: %v", err)
	}
	var s Status
	if err := v.Get(&s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) messageKeys() []string {
	var keys []string
	for _, m := range h.messages {
		keys = append(keys, m.IdempotencyKey[len("dunning/acme/inv-1/"):])
	}
	return keys
}

func equal[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}

func TestRecoveredOnAttempt(t *testing.T) {
	tests := []struct {
		attempt      int
		wantAt       []time.Duration
		wantMessages []string
	}{
		{1, []time.Duration{3 * day}, []string{"payment-failed/email", "payment-recovered/email"}},
		{2, []time.Duration{3 * day, 7 * day}, []string{"payment-failed/email", "attempt-1-failed/email", "payment-recovered/email"}},
		{3, []time.Duration{3 * day, 7 * day, 14 * day}, []string{"payment-failed/email", "attempt-1-failed/email", "attempt-2-failed/email", "payment-recovered/email"}},
	}
	for _, tt := range tests {
		t.Run("attempt_"+string(rune('0'+tt.attempt)), func(t *testing.T) {
			h := newHarness(t, tt.attempt)
			res := h.run(input())
			if res.Outcome != policy.Recovered || res.Attempts != tt.attempt {
				t.Fatalf("result = %+v, want recovered after %d attempts", res, tt.attempt)
			}
			var offsets []time.Duration
			for i, at := range h.chargeAt {
				offsets = append(offsets, at.Sub(t0))
				want := "dunning/acme/inv-1/attempt-" + string(rune('1'+i))
				if h.charges[i].IdempotencyKey != want {
					t.Errorf("charge %d key = %q, want %q", i+1, h.charges[i].IdempotencyKey, want)
				}
				if h.charges[i].Amount != "49.90" || h.charges[i].Currency != "EUR" {
					t.Errorf("charge %d amount = %s %s", i+1, h.charges[i].Amount, h.charges[i].Currency)
				}
			}
			equal(t, "charge times", offsets, tt.wantAt)
			equal(t, "messages", h.messageKeys(), tt.wantMessages)
			if len(h.services) != 0 {
				t.Errorf("service changes = %+v, want none (service never degraded)", h.services)
			}
			if h.closed == nil || h.closed.Outcome != "recovered" {
				t.Errorf("ledger close = %+v, want recovered", h.closed)
			}
			if st := h.query(); st.Phase != PhaseRecovered || len(st.Attempts) != tt.attempt {
				t.Errorf("final status phase=%s attempts=%d", st.Phase, len(st.Attempts))
			}
		})
	}
}

func TestExhaustedPausesSuspendsAndCloses(t *testing.T) {
	h := newHarness(t, 0)
	checks := []struct {
		at        time.Duration
		phase     Phase
		service   policy.ServiceState
		attempts  int
		nextDo    policy.Action
		nextAfter time.Duration
	}{
		{1 * day, PhaseRecovering, policy.ServiceActive, 0, policy.ActionRetry, 3 * day},
		{10 * day, PhaseRecovering, policy.ServiceActive, 2, policy.ActionRetry, 14 * day},
		{15 * day, PhasePaused, policy.ServicePaused, 3, policy.ActionService, 21 * day},
		{22 * day, PhaseSuspended, policy.ServiceSuspended, 3, policy.ActionClose, 28 * day},
	}
	for _, c := range checks {
		h.at(c.at, func() {
			st := h.query()
			if st.Phase != c.phase || st.ServiceState != c.service || len(st.Attempts) != c.attempts {
				t.Errorf("at %s: phase=%s service=%s attempts=%d, want %s %s %d", c.at, st.Phase, st.ServiceState, len(st.Attempts), c.phase, c.service, c.attempts)
			}
			if st.NextStep == nil || st.NextStep.Action != c.nextDo || !st.NextStep.At.Equal(t0.Add(c.nextAfter)) {
				t.Errorf("at %s: next step = %+v, want %s at +%s", c.at, st.NextStep, c.nextDo, c.nextAfter)
			}
			if st.Amount != "49.90" || st.Currency != "EUR" || !strings.HasPrefix(st.Policy, "default@2#") {
				t.Errorf("at %s: amount/policy = %s %s %s", c.at, st.Amount, st.Currency, st.Policy)
			}
		})
	}
	res := h.run(input())
	if res.Outcome != policy.Exhausted || res.Attempts != 3 {
		t.Fatalf("result = %+v, want exhausted after 3", res)
	}
	if got := h.env.Now().Sub(t0); got != 28*day {
		t.Errorf("closed at +%s, want +28d (14d last retry, pause, 7d grace to suspend, 7d to close)", got)
	}
	var states []string
	for _, s := range h.services {
		states = append(states, s.State)
	}
	equal(t, "service states", states, []string{"paused", "suspended"})
	equal(t, "messages", h.messageKeys(), []string{
		"payment-failed/email", "attempt-1-failed/email", "attempt-2-failed/email",
		"service-paused/email", "service-paused/sms", "service-suspended/email", "service-suspended/sms",
	})
	if st := h.query(); st.Phase != PhaseExhausted || st.NextStep != nil {
		t.Errorf("final status = %s next=%v", st.Phase, st.NextStep)
	}
}

func TestCancelDuringTimer(t *testing.T) {
	h := newHarness(t, 0)
	h.at(2*day, func() {
		h.env.SignalWorkflow(SignalCancel, CancelRequest{Reason: "invoice voided", By: "ops"})
	})
	res := h.run(input())
	if res.Outcome != policy.Cancelled || res.Attempts != 0 || res.Reason != "cancelled: invoice voided" {
		t.Fatalf("result = %+v", res)
	}
	if got := h.env.Now().Sub(t0); got != 2*day {
		t.Errorf("closed at +%s, want +2d", got)
	}
	if len(h.charges) != 0 {
		t.Errorf("charged %d times after cancel", len(h.charges))
	}
}

func TestExpediteDuringTimerReturnsOutcome(t *testing.T) {
	h := newHarness(t, 1)
	var got AttemptRecord
	var gotErr error
	h.at(1*day, func() {
		h.env.UpdateWorkflow(UpdateExpedite, "expedite-1", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { gotErr = err },
			OnComplete: func(v any, err error) {
				gotErr = err
				if rec, ok := v.(AttemptRecord); ok {
					got = rec
				}
			},
		}, ExpediteRequest{Reason: "customer called", By: "support"})
	})
	res := h.run(input())
	if gotErr != nil {
		t.Fatalf("expedite: %v", gotErr)
	}
	if got.Number != 1 || got.Outcome != gateway.Succeeded || got.Reason != policy.ReasonExpedite || !got.StartedAt.Equal(t0.Add(day)) {
		t.Fatalf("expedite result = %+v", got)
	}
	if res.Outcome != policy.Recovered || res.Attempts != 1 {
		t.Fatalf("result = %+v", res)
	}
}

func TestCardUpdatedRetriesSoonWithNewCard(t *testing.T) {
	h := newHarness(t, 0)
	h.goodCards = []string{"pm_new"}
	h.at(16*day, func() { // paused by now
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{PaymentMethod: "pm_new"})
	})
	res := h.run(input())
	if res.Outcome != policy.Recovered || res.Attempts != 4 {
		t.Fatalf("result = %+v", res)
	}
	last := h.charges[len(h.charges)-1]
	if last.PaymentMethod != "pm_new" || last.Reason != string(policy.ReasonCardUpdated) {
		t.Errorf("last charge = %+v", last)
	}
	if at := h.chargeAt[len(h.chargeAt)-1].Sub(t0); at != 16*day+15*time.Minute {
		t.Errorf("card-update retry at +%s, want +16d15m", at)
	}
	var states []string
	for _, s := range h.services {
		states = append(states, s.State)
	}
	equal(t, "service states", states, []string{"paused", "active"})
}

func TestPaidOutOfBandClosesWithoutCharge(t *testing.T) {
	h := newHarness(t, 0)
	h.at(5*day, func() {
		h.env.SignalWorkflow(SignalPaidOutOfBand, PaidOutOfBand{Reference: "wire-889"})
	})
	res := h.run(input())
	if res.Outcome != policy.Recovered || res.Attempts != 1 || res.Reason != "paid out of band (wire-889)" {
		t.Fatalf("result = %+v", res)
	}
	if len(h.charges) != 1 {
		t.Errorf("charges = %d, want only the day-3 attempt", len(h.charges))
	}
	if got := h.env.Now().Sub(t0); got != 5*day {
		t.Errorf("closed at +%s, want +5d", got)
	}
}

func TestDuplicateDeclineReachesOpenRun(t *testing.T) {
	h := newHarness(t, 1)
	in := input()
	h.at(0, func() { h.env.SignalWorkflow(SignalDecline, in.Decline) })   // signal-with-start's copy
	h.at(day, func() { h.env.SignalWorkflow(SignalDecline, in.Decline) }) // a resend
	h.at(2*day, func() {
		h.env.SignalWorkflow(SignalDecline, Decline{ID: "ch_2", Gateway: "simulator", Code: "do_not_honor"})
	})
	h.at(2*day+time.Hour, func() {
		st := h.query()
		if len(st.Declines) != 2 || st.Declines[1].Code != "do_not_honor" {
			t.Errorf("declines = %+v, want the original and do_not_honor", st.Declines)
		}
	})
	if res := h.run(in); res.Outcome != policy.Recovered {
		t.Fatalf("result = %+v", res)
	}
}

func TestInvalidInputFailsWithoutActivities(t *testing.T) {
	h := newHarness(t, 0)
	in := input()
	in.Amount = "-1"
	h.env.ExecuteWorkflow(WorkflowName, in)
	err := h.env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "must be greater than zero") {
		t.Fatalf("error = %v, want the amount rejected", err)
	}
	if len(h.charges)+len(h.messages)+len(h.services) != 0 {
		t.Error("activities ran for invalid input")
	}
}

func TestSMSAtNightWaitsForMorning(t *testing.T) {
	warsaw, _ := time.LoadLocation("Europe/Warsaw")
	// Declined at 23:00 local: the third retry, the pause and its notices
	// fall at 23:00 two weeks later.
	start := time.Date(2026, 3, 2, 23, 0, 0, 0, warsaw)
	h := newHarness(t, 0)
	h.env.SetStartTime(start)
	in := input()
	p := policy.Default()
	p.Timing = policy.Timing{} // retries at the decline's hour, to land the pause at night
	in.Policy = &p
	res := h.run(in)
	if res.Outcome != policy.Exhausted {
		t.Fatalf("result = %+v", res)
	}
	var sawSMS int
	for i, m := range h.messages {
		local := h.notifyAt[i].In(warsaw)
		if m.Channel == "sms" {
			sawSMS++
			if local.Hour() < 8 || local.Hour() >= 21 {
				t.Errorf("SMS %s sent at %s local", m.IdempotencyKey, local)
			}
		}
		if strings.HasSuffix(m.IdempotencyKey, "service-paused/email") && local.Hour() != 23 {
			t.Errorf("pause email at %s, want at once (23:00)", local)
		}
		if strings.HasSuffix(m.IdempotencyKey, "service-paused/sms") {
			if want := time.Date(2026, 3, 17, 8, 0, 0, 0, warsaw); !h.notifyAt[i].Equal(want) {
				t.Errorf("pause SMS at %s, want %s", local, want)
			}
		}
	}
	if sawSMS != 2 {
		t.Errorf("sent %d texts, want 2 (paused, suspended)", sawSMS)
	}
}

func TestOptedOutCustomerGetsEmailOnly(t *testing.T) {
	h := newHarness(t, 0)
	h.notifyResult = func(in activities.NotifyInput) (activities.NotifyOutput, error) {
		if in.Channel == "sms" {
			return activities.NotifyOutput{Status: "skipped", Detail: "recipient opted out of SMS (STOP)"}, nil
		}
		return activities.NotifyOutput{Status: "sent", Provider: "test"}, nil
	}
	h.run(input())
	st := h.query()
	var emails, skipped int
	for _, m := range st.Messages {
		switch {
		case m.Channel == policy.Email && m.Status == "sent":
			emails++
		case m.Channel == policy.SMS && m.Status == "skipped" && m.Detail == "recipient opted out of SMS (STOP)":
			skipped++
		default:
			t.Errorf("unexpected message record %+v", m)
		}
	}
	if emails != 5 || skipped != 2 {
		t.Errorf("emails sent = %d, texts skipped = %d; want 5 and 2", emails, skipped)
	}
}

func TestProviderRejectionIsRecordedAndRunContinues(t *testing.T) {
	h := newHarness(t, 2)
	h.notifyResult = func(in activities.NotifyInput) (activities.NotifyOutput, error) {
		if strings.HasSuffix(in.IdempotencyKey, "payment-failed/email") {
			return activities.NotifyOutput{}, temporal.NewNonRetryableApplicationError("notify: message rejected: HTTP 400: invalid email", activities.ErrTypeMessageRejected, nil)
		}
		return activities.NotifyOutput{Status: "sent"}, nil
	}
	res := h.run(input())
	if res.Outcome != policy.Recovered || res.Attempts != 2 {
		t.Fatalf("result = %+v, want the run to go on and recover", res)
	}
	st := h.query()
	if m := st.Messages[0]; m.Key != "payment-failed/email" || m.Status != "failed" || !strings.Contains(m.Detail, "invalid email") {
		t.Fatalf("first message = %+v, want the rejection recorded", m)
	}
	if n := len(h.messages); n != 3 {
		t.Errorf("notify calls = %d, want 3 (the rejected one is not retried)", n)
	}
}

func TestRetriesLandInTheLocalMorningOnBusinessDays(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	// Declined on Thursday 2026-03-05 at 22:30 Tokyo time.
	h := newHarness(t, 0)
	h.env.SetStartTime(time.Date(2026, 3, 5, 22, 30, 0, 0, tokyo))
	in := input()
	in.Customer.TimeZone = "Asia/Tokyo"
	h.run(in)
	if len(h.chargeAt) != 3 {
		t.Fatalf("charges = %d", len(h.chargeAt))
	}
	for i, at := range h.chargeAt {
		local := at.In(tokyo)
		if local.Hour() < 9 || local.Hour() >= 11 || local.Weekday() == time.Saturday || local.Weekday() == time.Sunday {
			t.Errorf("attempt %d at %s local, want a weekday 09:00-11:00", i+1, local.Format(time.RFC1123))
		}
	}
	// +3 days is Sunday 22:30: the retry moves to Monday 09:00.
	if want := time.Date(2026, 3, 9, 9, 0, 0, 0, tokyo); !h.chargeAt[0].Equal(want) {
		t.Errorf("first retry at %s, want %s", h.chargeAt[0].In(tokyo), want)
	}
}

func TestHardDeclineWaitsForNewCardThenRecovers(t *testing.T) {
	h := newHarness(t, 0)
	h.goodCards = []string{"pm_new"}
	in := input()
	in.Decline.Code = "stolen_card"
	h.at(day, func() {
		st := h.query()
		if st.Phase != PhaseActionRequired || st.Decline == nil || st.Decline.Advice != "stop" {
			t.Errorf("day 1: phase %s decline %+v, want action_required with advice stop", st.Phase, st.Decline)
		}
		if st.NextStep == nil || st.NextStep.Action == policy.ActionRetry {
			t.Errorf("day 1: next step %+v, want no retry of a stolen card", st.NextStep)
		}
	})
	h.at(5*day, func() {
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{PaymentMethod: "pm_new", Card: &Card{Network: "visa"}})
	})
	res := h.run(in)
	if res.Outcome != policy.Recovered || res.Attempts != 1 {
		t.Fatalf("result = %+v, want recovered by the one attempt on the new card", res)
	}
	if h.charges[0].PaymentMethod != "pm_new" || h.chargeAt[0].Sub(t0) != 5*day+15*time.Minute {
		t.Errorf("charge = %s at +%s", h.charges[0].PaymentMethod, h.chargeAt[0].Sub(t0))
	}
}

func TestMastercardAdvice24RetriesAfterAnHour(t *testing.T) {
	h := newHarness(t, 1)
	in := input()
	in.Card = Card{Network: "mastercard"}
	in.Decline.NetworkAdviceCode = "24"
	p := policy.Default()
	p.Timing = policy.Timing{}
	p.RetryAfter = []policy.Duration{policy.Duration(10 * time.Minute), policy.Duration(2 * time.Hour), policy.Duration(day)}
	in.Policy = &p
	res := h.run(in)
	if res.Outcome != policy.Recovered {
		t.Fatalf("result = %+v", res)
	}
	if got := h.chargeAt[0].Sub(t0); got != time.Hour {
		t.Errorf("first retry at +%s, want +1h (MAC 24 outweighs the 10-minute schedule)", got)
	}
}

func TestTwoRunsShareTheVisaBudget(t *testing.T) {
	store := ledgertest.NewStore(t)
	lim := ledger.DefaultLimits()
	lim.VisaMaxReattempts = 4 // a small budget to reach in two runs
	budget := &activities.NetworkLimits{Ledger: store, Limits: lim}
	card := Card{Network: "visa", Fingerprint: "fp_shared"}

	first := newHarnessWithBudget(t, 0, budget)
	in := input()
	in.Card = card
	first.run(in)
	if len(first.charges) != 3 {
		t.Fatalf("first run charged %d times, want 3", len(first.charges))
	}

	second := newHarnessWithBudget(t, 0, budget)
	second.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: WorkflowID("acme", "inv-2")})
	in2 := input()
	in2.InvoiceID = "inv-2"
	in2.Card = card
	res := second.run(in2)
	if len(second.charges) != 1 {
		t.Fatalf("second run charged %d times, want 1 (the budget of 4 is shared)", len(second.charges))
	}
	if res.Outcome != policy.Exhausted {
		t.Fatalf("second run = %+v, want exhausted", res)
	}
	st := second.query()
	var skipped []AttemptRecord
	for _, a := range st.Attempts {
		if a.Outcome == gateway.Skipped {
			skipped = append(skipped, a)
		}
	}
	if len(skipped) == 0 || !strings.Contains(skipped[0].Message, "visa: 4 reattempts per card in 30 days") {
		t.Fatalf("skipped attempts = %+v, want the Visa rule recorded", skipped)
	}
	denials, err := store.CardDenials(context.Background(), WorkflowID("acme", "inv-2"))
	if err != nil || len(denials) == 0 || denials[0].Rule != skipped[0].Message || denials[0].CardKey != "fp:fp_shared" {
		t.Fatalf("ledger denials = %+v, %v; want the rule recorded for the card", denials, err)
	}
}

func TestInvisiblePhaseSendsNothing(t *testing.T) {
	h := newHarness(t, 1)
	in := input()
	p := policy.Default()
	p.SilentAttempts = 1
	in.Policy = &p
	if res := h.run(in); res.Outcome != policy.Recovered {
		t.Fatalf("result = %+v", res)
	}
	if len(h.messages) != 0 {
		t.Fatalf("sent %d messages during invisible recovery, want none: %v", len(h.messages), h.messageKeys())
	}
}

func TestLadderWithProrationCredit(t *testing.T) {
	h := newHarness(t, 0)
	h.goodCards = []string{"pm_new"}
	in := input()
	in.PeriodDays = 30
	// Suspended at +21d; the customer's new card pays at +24d.
	h.at(24*day, func() {
		h.env.SignalWorkflow(SignalPaymentMethodUpdated, PaymentMethodUpdate{PaymentMethod: "pm_new"})
	})
	res := h.run(in)
	if res.Outcome != policy.Recovered {
		t.Fatalf("result = %+v", res)
	}
	if len(h.credits) != 1 {
		t.Fatalf("credits = %+v, want one", h.credits)
	}
	c := h.credits[0]
	// Suspended from +21d to the restore at +24d15m: 4 started days.
	if c.Days != 4 || c.PeriodDays != 30 || c.PeriodCharge != "49.90" || c.IdempotencyKey != "dunning/acme/inv-1/credit-suspended" {
		t.Fatalf("credit input = %+v", c)
	}
	st := h.query()
	if st.Credit == nil || st.Credit.Amount != "6.65" || st.Credit.Currency != "EUR" {
		t.Fatalf("status credit = %+v, want 6.65 EUR (49.90 / 30 * 4, half-even)", st.Credit)
	}
	var states []string
	for _, s := range h.services {
		states = append(states, s.State)
	}
	equal(t, "service states", states, []string{"paused", "suspended", "active"})
}

func TestUnknownDeclineCodeIsCountedAndRetriedSafely(t *testing.T) {
	h := newHarness(t, 1)
	in := input()
	in.Decline.Code = "zz_new_issuer_code"
	h.at(day, func() {
		st := h.query()
		if st.UnknownDeclineCodes != 1 || st.Decline == nil || st.Decline.Known || st.Phase != PhaseRecovering {
			t.Errorf("status = unknown %d, decline %+v, phase %s; want it counted and retried", st.UnknownDeclineCodes, st.Decline, st.Phase)
		}
	})
	if res := h.run(in); res.Outcome != policy.Recovered || h.chargeAt[0].Sub(t0) != 3*day {
		t.Fatalf("result = %+v, first retry at +%s; want the default schedule", res, h.chargeAt[0].Sub(t0))
	}
}

// mockNotifyStep answers NotifyStep as the real activity does: notify for
// each message, a permanent failure recorded as "failed" without failing the
// others, any other error failing the step (to be retried). steps collects
// each step's idempotency keys.
func mockNotifyStep(env *testsuite.TestWorkflowEnvironment, notify func(activities.NotifyInput) (activities.NotifyOutput, error), steps *[][]string, journal ...*[]activities.JournalEntry) {
	env.OnActivity(notifications.NotifyStep, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotifyStepInput) (activities.NotifyStepOutput, error) {
		for _, j := range journal {
			*j = append(*j, in.Journal...)
		}
		var out activities.NotifyStepOutput
		var keys []string
		for _, m := range in.Messages {
			keys = append(keys, m.IdempotencyKey)
			res, err := notify(m)
			if err != nil {
				var appErr *temporal.ApplicationError
				if !errors.As(err, &appErr) || !appErr.NonRetryable() {
					return activities.NotifyStepOutput{}, err
				}
				res = activities.NotifyOutput{Status: "failed", Detail: err.Error()}
			}
			out.Results = append(out.Results, activities.NotifyStepResult{NotifyOutput: res, Key: m.IdempotencyKey})
		}
		*steps = append(*steps, keys)
		return out, nil
	})
}
