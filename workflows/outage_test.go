package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/policy"
)

// shortWindowPolicy is the fault-injection suite's policy: a schedule of
// seconds that a 40-second outage outlasts.
const shortWindowPolicy = `name: short
version: 1
retry_after: [3s, 6s, 9s]
max_attempts: 3
window: 30s
min_attempt_gap: 1s
max_card_update_attempts: 3
action_reminders: [2s]
card_update_retry_delay: 1s
ladder:
  - {after: 0s, state: paused}
  - {after: 1s, state: suspended}
close_after: 1s
messages:
  - {kind: payment_failed, channels: [email, sms]}
  - {kind: retry_failed, channels: [email]}
  - {kind: service_paused, channels: [email, sms]}
  - {kind: service_suspended, channels: [email]}
  - {kind: service_cancelled, channels: [email]}
  - {kind: payment_recovered, channels: [email]}
  - {kind: update_card_reminder, channels: [email]}
`

func shortPolicy(t *testing.T) policy.Policy {
	t.Helper()
	p, err := policy.Parse("short.yaml", []byte(shortWindowPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A charge whose activity retries through a ledger outage longer than the
// policy's whole window finishes late because of us, not the customer: the
// run must not exhaust early. Every planned attempt still happens, and the
// delay is recorded as a late hold that moved the schedule.
func TestChargeLateThroughAnOutageKeepsEveryAttempt(t *testing.T) {
	for _, tt := range []struct {
		name   string
		outage time.Duration
	}{
		{"no outage", 0},
		{"40 s outage during attempt 1", 40 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 0) // every attempt is declined
			var outageEnds time.Time
			tries := map[string]int{}
			h.chargeErr = func(in activities.ChargeInput) error {
				tries[in.IdempotencyKey]++
				if !strings.HasSuffix(in.IdempotencyKey, "/attempt-1") {
					return nil
				}
				if outageEnds.IsZero() {
					outageEnds = h.env.Now().Add(tt.outage)
				}
				if h.env.Now().Before(outageEnds) {
					return errors.New("ledger: connection refused")
				}
				return nil
			}
			in := input()
			p := shortPolicy(t)
			in.Policy = &p
			res := h.run(in)
			st := h.query()

			if res.Attempts != 3 || res.Outcome != policy.Exhausted {
				t.Fatalf("result = %+v, attempts in the status = %+v; want all 3 planned attempts, then exhausted", res, st.Attempts)
			}
			for _, k := range []string{"attempt-1", "attempt-2", "attempt-3"} {
				if tries[WorkflowID("acme", "inv-1")+"/"+k] == 0 {
					t.Errorf("%s never reached the gateway; tries = %v", k, tries)
				}
			}
			var late []Hold
			for _, hd := range st.Holds {
				if hd.Cause == CauseLate {
					late = append(late, hd)
				}
			}
			if tt.outage == 0 {
				if len(late) != 0 || tries[WorkflowID("acme", "inv-1")+"/attempt-1"] != 1 {
					t.Errorf("without an outage: late holds %+v, tries %v; want none and one try", late, tries)
				}
				return
			}
			if tries[WorkflowID("acme", "inv-1")+"/attempt-1"] < 2 {
				t.Errorf("attempt 1 was tried %d times; the outage should have made its activity retry", tries[WorkflowID("acme", "inv-1")+"/attempt-1"])
			}
			if len(late) != 1 || late[0].To.Sub(late[0].From) < tt.outage {
				t.Fatalf("late holds = %+v; want one covering at least the %s outage", late, tt.outage)
			}
			// The retries after the outage keep the policy's spacing rather
			// than bursting to catch up.
			for i := 2; i < len(h.chargeAt); i++ {
				if gap := h.chargeAt[i].Sub(h.chargeAt[i-1]); h.charges[i].IdempotencyKey != h.charges[i-1].IdempotencyKey && gap < time.Second {
					t.Errorf("charges %s and %s only %s apart", h.charges[i-1].IdempotencyKey, h.charges[i].IdempotencyKey, gap)
				}
			}
		})
	}
}

type lateProbeIn struct {
	Explain bool
	Policy  policy.Policy
	Delay   time.Duration
	// Acted probes actedLate (a step that finished late) instead of
	// wokeLate (a timer that fired late).
	Acted bool
}

type lateProbeOut struct {
	Moved bool
	Bound time.Duration
	Holds []Hold
}

// lateProbeWorkflow asks a run of the given charge-gate generation whether
// a step Delay past its moment counts as our downtime.
func lateProbeWorkflow(ctx workflow.Context, in lateProbeIn) (lateProbeOut, error) {
	r := &run{pol: in.Policy, explain: in.Explain}
	planned := workflow.Now(ctx).Add(-in.Delay)
	var out lateProbeOut
	if in.Acted {
		r.actedLate(ctx, planned)
		out.Moved = len(r.status.Holds) > 0
	} else {
		out.Moved = r.wokeLate(ctx, planned)
	}
	out.Bound, out.Holds = r.lateAfter(), r.status.Holds
	return out, nil
}

func probeLate(t *testing.T, in lateProbeIn) lateProbeOut {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.RegisterWorkflow(lateProbeWorkflow)
	env.ExecuteWorkflow(lateProbeWorkflow, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out lateProbeOut
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The bound past which lateness is ours: charge-gate 4 runs scale it to a
// hundredth of the policy's window, between 5 s and 10 minutes; older runs
// keep the fixed 10 minutes whatever the policy. A timer late by more than
// the bound, or a charge that finished that late, moves the schedule; one
// late by less changes nothing.
func TestLatenessBoundFollowsThePolicy(t *testing.T) {
	short := shortPolicy(t)
	hundredMinutes := short
	hundredMinutes.Window = policy.Duration(100 * time.Minute)
	for _, tt := range []struct {
		name      string
		explain   bool
		pol       policy.Policy
		delay     time.Duration
		wantBound time.Duration
		wantMoved bool
	}{
		{"gate 4, 30 s window, 4 s late", true, short, 4 * time.Second, 5 * time.Second, false},
		{"gate 4, 30 s window, exactly the bound", true, short, 5 * time.Second, 5 * time.Second, false},
		{"gate 4, 30 s window, 6 s late", true, short, 6 * time.Second, 5 * time.Second, true},
		{"gate 4, 100 min window, 50 s late", true, hundredMinutes, 50 * time.Second, time.Minute, false},
		{"gate 4, 100 min window, 70 s late", true, hundredMinutes, 70 * time.Second, time.Minute, true},
		{"gate 4, default 21 d window, 9 min late", true, policy.Default(), 9 * time.Minute, 10 * time.Minute, false},
		{"gate 4, default 21 d window, 11 min late", true, policy.Default(), 11 * time.Minute, 10 * time.Minute, true},
		{"gate 3, 30 s window, 6 s late", false, short, 6 * time.Second, 10 * time.Minute, false},
		{"gate 3, 30 s window, 9 min late", false, short, 9 * time.Minute, 10 * time.Minute, false},
		{"gate 3, 30 s window, 11 min late", false, short, 11 * time.Minute, 10 * time.Minute, true},
		{"gate 3, default window, 11 min late", false, policy.Default(), 11 * time.Minute, 10 * time.Minute, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			woke := probeLate(t, lateProbeIn{Explain: tt.explain, Policy: tt.pol, Delay: tt.delay})
			if woke.Bound != tt.wantBound || woke.Moved != tt.wantMoved {
				t.Fatalf("late timer: bound %s, moved %v; want %s, %v", woke.Bound, woke.Moved, tt.wantBound, tt.wantMoved)
			}
			if tt.wantMoved {
				if len(woke.Holds) != 1 || woke.Holds[0].Cause != CauseLate || woke.Holds[0].To.Sub(woke.Holds[0].From) != tt.delay {
					t.Errorf("holds = %+v; want one late hold of %s", woke.Holds, tt.delay)
				}
			} else if len(woke.Holds) != 0 {
				t.Errorf("holds = %+v; want none", woke.Holds)
			}
			// A charge that finished late counts only for charge-gate 4 runs.
			acted := probeLate(t, lateProbeIn{Explain: tt.explain, Policy: tt.pol, Delay: tt.delay, Acted: true})
			if want := tt.wantMoved && tt.explain; acted.Moved != want {
				t.Errorf("late charge: moved %v, want %v (holds %+v)", acted.Moved, want, acted.Holds)
			}
		})
	}
}

// A late timer's hold moves the schedule: with the 30-second window spent
// while the platform was down, the next step is still the first retry,
// soon after the platform is back; a delay under the bound leaves the
// schedule as it was.
func TestLateTimerExtendsTheShortSchedule(t *testing.T) {
	p := shortPolicy(t)
	for _, tt := range []struct {
		name  string
		delay time.Duration // how late the first retry's timer fired
	}{
		{"under the bound", 4 * time.Second},
		{"past the window", 37 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := probeLate(t, lateProbeIn{Explain: true, Policy: p, Delay: tt.delay})
			back := t0
			planned := back.Add(-tt.delay)
			declined := planned.Add(-3 * time.Second) // retry 1 is 3 s after the decline
			r := &run{id: "dunning/acme/inv-1", in: input(), pol: p, gated: true, lean: true, explain: true, loc: time.UTC,
				paymentMethod: "pm_old"}
			r.status.Declines = []Decline{{ReceivedAt: declined}}
			r.sent = []string{"payment-failed/email", "payment-failed/sms"}
			before := r.pol.Next(r.engineState(back))
			r.status.Holds = out.Holds
			after := r.pol.Next(r.engineState(back))
			if !out.Moved {
				if len(out.Holds) != 0 || after.Action != before.Action || !after.At.Equal(before.At) || after.Attempt != before.Attempt {
					t.Fatalf("under the bound the schedule changed: holds %+v, next %+v, was %+v", out.Holds, after, before)
				}
				if after.Action != policy.ActionRetry || after.Attempt != 1 {
					t.Fatalf("next = %+v, want retry 1", after)
				}
				return
			}
			if before.Action == policy.ActionRetry {
				t.Fatalf("without the delay recorded the spent window would still retry: %+v", before)
			}
			if after.Action != policy.ActionRetry || after.Attempt != 1 || after.At.Before(back) || after.At.After(back.Add(5*time.Second)) {
				t.Fatalf("after the late wake: %+v, want retry 1 within seconds of %s", after, back)
			}
		})
	}
}

// A run below charge-gate 4 keeps the fixed 10-minute bound and does not
// count a late charge: the same 40 s outage with the short window still
// exhausts it after one attempt, as it did when it started. Replaying such
// runs must not change what they did.
func TestGateThreeRunKeepsTheFixedBound(t *testing.T) {
	h := newHarness(t, 0)
	h.env.OnGetVersion("charge-gate", workflow.DefaultVersion, 4).Return(workflow.Version(3))
	var outageEnds time.Time
	h.chargeErr = func(in activities.ChargeInput) error {
		if !strings.HasSuffix(in.IdempotencyKey, "/attempt-1") {
			return nil
		}
		if outageEnds.IsZero() {
			outageEnds = h.env.Now().Add(40 * time.Second)
		}
		if h.env.Now().Before(outageEnds) {
			return errors.New("ledger: connection refused")
		}
		return nil
	}
	in := input()
	p := shortPolicy(t)
	in.Policy = &p
	res := h.run(in)
	if res.Attempts != 1 || res.Outcome != policy.Exhausted {
		t.Fatalf("result = %+v; want the gate-3 behaviour: exhausted after one attempt", res)
	}
	for _, hd := range h.query().Holds {
		if hd.Cause == CauseLate {
			t.Errorf("a gate-3 run recorded a late hold: %+v", hd)
		}
	}
}
