package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func failed(n int, at time.Duration, reason Reason) Attempt {
	return Attempt{Number: n, At: t0.Add(at), Reason: reason}
}

// allSent marks every message due so far as sent, so a test can look past
// the messages at the schedule.
func allSent(p Policy, s State) []string {
	var keys []string
	for _, m := range p.dueMessages(s) {
		for _, ch := range []Channel{Email, SMS} {
			keys = append(keys, m.key+"/"+string(ch))
		}
	}
	return keys
}

func TestNextSchedule(t *testing.T) {
	p := Default()
	tests := []struct {
		name        string
		now         time.Duration
		attempts    []Attempt
		changes     []ServiceChange
		cardUpdated time.Duration
		paid        bool
		want        Step
	}{
		{name: "first retry 3 days after the decline", now: 0,
			want: Step{Action: ActionRetry, At: t0.Add(3 * day), Attempt: 1, Reason: ReasonScheduled}},
		{name: "second retry at day 7", now: 3 * day, attempts: []Attempt{failed(1, 3*day, ReasonScheduled)},
			want: Step{Action: ActionRetry, At: t0.Add(7 * day), Attempt: 2, Reason: ReasonScheduled}},
		{name: "third retry at day 14", now: 7 * day, attempts: []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 7*day, ReasonScheduled)},
			want: Step{Action: ActionRetry, At: t0.Add(14 * day), Attempt: 3, Reason: ReasonScheduled}},
		{name: "overdue retry runs now", now: 9 * day, attempts: []Attempt{failed(1, 3*day, ReasonScheduled)},
			want: Step{Action: ActionRetry, At: t0.Add(9 * day), Attempt: 2, Reason: ReasonScheduled}},
		{name: "expedite uses a slot", now: day, attempts: []Attempt{failed(1, day, ReasonExpedite)},
			want: Step{Action: ActionRetry, At: t0.Add(7 * day), Attempt: 2, Reason: ReasonScheduled}},
		{name: "cap: three attempts then pause", now: 14 * day,
			attempts: []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 7*day, ReasonScheduled), failed(3, 14*day, ReasonScheduled)},
			want:     Step{Action: ActionService, At: t0.Add(14 * day), State: ServicePaused, Key: "service-paused"}},
		{name: "suspend after a week's grace", now: 15 * day,
			attempts: []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 7*day, ReasonScheduled), failed(3, 14*day, ReasonScheduled)},
			changes:  []ServiceChange{{ServicePaused, t0.Add(14 * day)}},
			want:     Step{Action: ActionService, At: t0.Add(21 * day), State: ServiceSuspended, Key: "service-suspended"}},
		{name: "close exhausted a week after suspension", now: 21 * day,
			attempts: []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 7*day, ReasonScheduled), failed(3, 14*day, ReasonScheduled)},
			changes:  []ServiceChange{{ServicePaused, t0.Add(14 * day)}, {ServiceSuspended, t0.Add(21 * day)}},
			want:     Step{Action: ActionClose, At: t0.Add(28 * day), Outcome: Exhausted}},
		{name: "card update retries soon", now: 4 * day, cardUpdated: 4 * day, attempts: []Attempt{failed(1, 3*day, ReasonScheduled)},
			want: Step{Action: ActionRetry, At: t0.Add(4*day + 15*time.Minute), Attempt: 2, Reason: ReasonCardUpdated}},
		{name: "card update consumed by the next attempt", now: 5 * day, cardUpdated: 4 * day,
			attempts: []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 4*day+15*time.Minute, ReasonCardUpdated)},
			want:     Step{Action: ActionRetry, At: t0.Add(7 * day), Attempt: 3, Reason: ReasonScheduled}},
		{name: "card update after exhaustion earns one more attempt", now: 16 * day, cardUpdated: 16 * day,
			attempts: []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 7*day, ReasonScheduled), failed(3, 14*day, ReasonScheduled)},
			changes:  []ServiceChange{{ServicePaused, t0.Add(14 * day)}},
			want:     Step{Action: ActionRetry, At: t0.Add(16*day + 15*time.Minute), Attempt: 4, Reason: ReasonCardUpdated}},
		{name: "recovered closes", now: 3 * day, attempts: []Attempt{{Number: 1, At: t0.Add(3 * day), Reason: ReasonScheduled, Succeeded: true}},
			want: Step{Action: ActionClose, At: t0.Add(3 * day), Outcome: Recovered}},
		{name: "recovered while paused restores first", now: 16 * day,
			attempts: []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 7*day, ReasonScheduled), failed(3, 14*day, ReasonScheduled),
				{Number: 4, At: t0.Add(16 * day), Reason: ReasonCardUpdated, Succeeded: true}},
			changes: []ServiceChange{{ServicePaused, t0.Add(14 * day)}},
			want:    Step{Action: ActionService, At: t0.Add(16 * day), State: ServiceActive, Key: "service-restored"}},
		{name: "paid out of band closes without a charge", now: 5 * day, paid: true, attempts: []Attempt{failed(1, 3*day, ReasonScheduled)},
			want: Step{Action: ActionClose, At: t0.Add(5 * day), Outcome: Recovered}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := State{DeclinedAt: t0, Now: t0.Add(tt.now), Attempts: tt.attempts, ServiceChanges: tt.changes,
				PaidOutOfBand: tt.paid, Reachable: []Channel{Email, SMS}}
			if tt.cardUpdated > 0 {
				s.CardUpdatedAt = t0.Add(tt.cardUpdated)
			}
			s.Sent = allSent(p, s)
			got := p.Next(s)
			if got.Action != tt.want.Action || !got.At.Equal(tt.want.At) || got.Attempt != tt.want.Attempt ||
				got.Reason != tt.want.Reason || got.State != tt.want.State || got.Outcome != tt.want.Outcome ||
				(tt.want.Key != "" && got.Key != tt.want.Key) {
				t.Fatalf("Next() = %+v\nwant      %+v", got, tt.want)
			}
			if got.Why == "" {
				t.Error("step has no explanation")
			}
		})
	}
}

func TestNextMessages(t *testing.T) {
	p := Default()
	three := []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 7*day, ReasonScheduled), failed(3, 14*day, ReasonScheduled)}
	tests := []struct {
		name      string
		attempts  []Attempt
		changes   []ServiceChange
		sent      []string
		reachable []Channel
		wantKey   string // "" means no message is due
	}{
		{name: "first notice at the decline", reachable: []Channel{Email}, wantKey: "payment-failed/email"},
		{name: "no address, no message", reachable: nil},
		{name: "retry failure reminder", attempts: three[:1], sent: []string{"payment-failed/email"}, reachable: []Channel{Email, SMS}, wantKey: "attempt-1-failed/email"},
		{name: "reminders are email only by default", attempts: three[:1], sent: []string{"payment-failed/email", "attempt-1-failed/email"}, reachable: []Channel{Email, SMS}},
		{name: "last failure is followed by the pause notice, not a reminder", attempts: three,
			sent: []string{"payment-failed/email", "attempt-1-failed/email", "attempt-2-failed/email"}, reachable: []Channel{Email}},
		{name: "pause notice by email then SMS", attempts: three, changes: []ServiceChange{{ServicePaused, t0.Add(14 * day)}},
			sent: []string{"payment-failed/email", "attempt-1-failed/email", "attempt-2-failed/email", "service-paused/email"}, reachable: []Channel{Email, SMS}, wantKey: "service-paused/sms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			if n := len(tt.attempts); n > 0 {
				now = tt.attempts[n-1].At
			}
			got := p.Next(State{DeclinedAt: t0, Now: now, Attempts: tt.attempts, ServiceChanges: tt.changes, Sent: tt.sent, Reachable: tt.reachable})
			if tt.wantKey == "" {
				if got.Action == ActionNotify {
					t.Fatalf("unexpected message %q", got.Key)
				}
				return
			}
			if got.Action != ActionNotify || got.Key != tt.wantKey || !got.At.Equal(now) {
				t.Fatalf("Next() = %+v, want message %s now", got, tt.wantKey)
			}
		})
	}
}

// TestRunToCompletion walks whole runs through the engine as the workflow
// does and checks the invariants: at most MaxAttempts scheduled attempts,
// all inside the window, time never goes backwards, and every run ends.
func TestRunToCompletion(t *testing.T) {
	for _, p := range []Policy{Default(), Demo()} {
		for succeedOn := 0; succeedOn <= 4; succeedOn++ {
			s := State{DeclinedAt: t0, Now: t0, Reachable: []Channel{Email, SMS}}
			var outcome Outcome
			for i := 0; i < 100 && outcome == ""; i++ {
				step := p.Next(s)
				if step.At.Before(s.Now) {
					t.Fatalf("%s: step %+v is in the past (now %s)", p.Name, step, s.Now)
				}
				s.Now = step.At
				switch step.Action {
				case ActionNotify:
					s.Sent = append(s.Sent, step.Key)
				case ActionRetry:
					if step.At.After(t0.Add(p.Window.D())) {
						t.Fatalf("%s: retry at %s outside the window", p.Name, step.At)
					}
					s.Attempts = append(s.Attempts, Attempt{Number: step.Attempt, At: step.At, Reason: step.Reason, Succeeded: step.Attempt == succeedOn})
				case ActionService:
					s.ServiceChanges = append(s.ServiceChanges, ServiceChange{State: step.State, At: step.At})
				case ActionClose:
					outcome = step.Outcome
				}
			}
			wantAttempts, wantOutcome := succeedOn, Recovered
			if succeedOn == 0 || succeedOn > p.MaxAttempts {
				wantAttempts, wantOutcome = p.MaxAttempts, Exhausted
			}
			if outcome != wantOutcome || len(s.Attempts) != wantAttempts {
				t.Errorf("%s succeed on %d: outcome %q after %d attempts, want %q after %d", p.Name, succeedOn, outcome, len(s.Attempts), wantOutcome, wantAttempts)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Policy)
		want   string
	}{
		{"default is valid", func(*Policy) {}, ""},
		{"empty name", func(p *Policy) { p.Name = "" }, "name is empty"},
		{"no retries", func(p *Policy) { p.RetryAfter = nil }, "retry_after is empty"},
		{"more retries than the cap", func(p *Policy) { p.RetryAfter = append(p.RetryAfter, Duration(20*day)) }, "max_attempts is 3"},
		{"retries out of order", func(p *Policy) { p.RetryAfter = durations(7*day, 3*day) }, "after the previous retry"},
		{"retry outside the window", func(p *Policy) { p.Window = Duration(10 * day) }, "outside the 10d window"},
		{"ladder that de-escalates", func(p *Policy) {
			p.Ladder = []LadderStep{{0, ServiceSuspended}, {Duration(day), ServicePaused}}
		}, "does not escalate"},
		{"unknown ladder state", func(p *Policy) { p.Ladder = []LadderStep{{0, "frozen"}} }, `"frozen" is not paused`},
		{"unknown channel", func(p *Policy) { p.Messages = []MessageRule{{PaymentFailed, []Channel{"fax"}}} }, `"fax" is not email or sms`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Default()
			tt.modify(&p)
			err := p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestBuiltinCatalog(t *testing.T) {
	c := Builtin()
	for _, name := range []string{"default", "demo"} {
		if _, ok := c.Lookup(name); !ok {
			t.Errorf("built-in policy %q missing", name)
		}
	}
	if _, ok := c.Lookup("nope"); ok {
		t.Error("unknown policy found")
	}
	if _, err := NewCatalog(Default(), Default()); err == nil {
		t.Error("duplicate policy names accepted")
	}
}

func BenchmarkNext(b *testing.B) {
	p := Default()
	s := State{DeclinedAt: t0, Now: t0.Add(15 * day), Reachable: []Channel{Email, SMS},
		Attempts:       []Attempt{failed(1, 3*day, ReasonScheduled), failed(2, 7*day, ReasonScheduled), failed(3, 14*day, ReasonScheduled)},
		ServiceChanges: []ServiceChange{{ServicePaused, t0.Add(14 * day)}}}
	s.Sent = allSent(p, s)
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Next(s)
	}
}
