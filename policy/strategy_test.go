package policy

import (
	"testing"
	"time"

	"github.com/dunningco/dunning/decline"
)

func TestDeclineStrategies(t *testing.T) {
	p := Default()
	p.Timing = Timing{} // exact instants; timing has its own tests
	tests := []struct {
		name       string
		in         decline.Input
		attempts   []Attempt
		card       time.Duration
		notBefore  time.Duration
		wantAction Action
		wantAt     time.Duration
		wantState  ServiceState
	}{
		{name: "soft decline retries on schedule", in: decline.Input{DeclineCode: "insufficient_funds"},
			wantAction: ActionRetry, wantAt: 3 * day},
		{name: "hard decline stops retries; ladder waits for the schedule's end", in: decline.Input{DeclineCode: "stolen_card"},
			wantAction: ActionService, wantAt: 14 * day, wantState: ServicePaused},
		{name: "Visa category 1 never retried", in: decline.Input{NetworkDeclineCode: "14", Network: "visa"},
			wantAction: ActionService, wantAt: 14 * day, wantState: ServicePaused},
		{name: "MAC 03 never retried", in: decline.Input{DeclineCode: "insufficient_funds", NetworkAdviceCode: "03", Network: "mastercard"},
			wantAction: ActionService, wantAt: 14 * day, wantState: ServicePaused},
		{name: "MAC 21 never retried", in: decline.Input{DeclineCode: "do_not_honor", NetworkAdviceCode: "21", Network: "mastercard"},
			wantAction: ActionService, wantAt: 14 * day, wantState: ServicePaused},
		{name: "Stripe do_not_try_again overrides a soft code", in: decline.Input{DeclineCode: "generic_decline", AdviceCode: "do_not_try_again"},
			wantAction: ActionService, wantAt: 14 * day, wantState: ServicePaused},
		{name: "authentication required asks the customer", in: decline.Input{DeclineCode: "authentication_required"},
			wantAction: ActionService, wantAt: 14 * day, wantState: ServicePaused},
		{name: "card update resumes a hard-declined run", in: decline.Input{DeclineCode: "lost_card"}, card: 2 * day,
			wantAction: ActionRetry, wantAt: 2*day + 15*time.Minute},
		{name: "MAC 26 waits two days after the last attempt", in: decline.Input{DeclineCode: "do_not_honor", NetworkAdviceCode: "26", Network: "mastercard"},
			attempts: []Attempt{failed(1, 6*day, ReasonScheduled)}, wantAction: ActionRetry, wantAt: 8 * day},
		{name: "MAC 24 retry after one hour when the schedule is later anyway", in: decline.Input{NetworkAdviceCode: "24", Network: "mastercard"},
			wantAction: ActionRetry, wantAt: 3 * day},
		{name: "network budget pushes the retry", in: decline.Input{DeclineCode: "insufficient_funds"}, notBefore: 5 * day,
			wantAction: ActionRetry, wantAt: 5 * day},
		{name: "a wait beyond the schedule's window exhausts it", in: decline.Input{DeclineCode: "insufficient_funds"}, notBefore: 30 * day,
			wantAction: ActionService, wantAt: 14 * day, wantState: ServicePaused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decline.Classify(tt.in)
			s := State{DeclinedAt: t0, Now: t0, Attempts: tt.attempts, Advice: d.Advice, RetryAfter: d.RetryAfter, DeclineReason: d.Reason}
			if n := len(tt.attempts); n > 0 {
				s.Now = tt.attempts[n-1].At
			}
			if tt.card > 0 {
				s.CardUpdatedAt = t0.Add(tt.card)
				s.Now = s.CardUpdatedAt
				s.Advice, s.RetryAfter = "", 0 // a new payment method starts clean
			}
			if tt.notBefore > 0 {
				s.NotBefore = t0.Add(tt.notBefore)
			}
			got := p.Next(s)
			wantAt := t0.Add(tt.wantAt)
			if tt.wantAt == 0 {
				wantAt = s.Now
			}
			if got.Action != tt.wantAction || !got.At.Equal(wantAt) || got.State != tt.wantState {
				t.Fatalf("Next() = %s at +%s state %q (%s); want %s at +%s state %q", got.Action, got.At.Sub(t0), got.State, got.Why, tt.wantAction, wantAt.Sub(t0), tt.wantState)
			}
		})
	}
}

func TestInvisibleRecovery(t *testing.T) {
	p := Default()
	p.Timing = Timing{}
	p.SilentAttempts = 1
	run := func(succeedOn int, firstDecline decline.Input) []string {
		d := decline.Classify(firstDecline)
		s := State{DeclinedAt: t0, Now: t0, Reachable: []Channel{Email}, Advice: d.Advice}
		for i := 0; i < 50; i++ {
			step := p.Next(s)
			s.Now = step.At
			switch step.Action {
			case ActionNotify:
				s.Sent = append(s.Sent, step.Key)
			case ActionRetry:
				s.Attempts = append(s.Attempts, Attempt{Number: step.Attempt, At: step.At, Reason: step.Reason, Succeeded: step.Attempt == succeedOn})
			case ActionService:
				s.ServiceChanges = append(s.ServiceChanges, ServiceChange{State: step.State, At: step.At})
			case ActionClose:
				return s.Sent
			}
		}
		t.Fatal("run did not end")
		return nil
	}
	tests := []struct {
		name      string
		succeedOn int
		decline   decline.Input
		want      []string
	}{
		{"recovered silently: no message at all", 1, decline.Input{DeclineCode: "do_not_honor"}, nil},
		{"first notice after the silent attempt fails", 2, decline.Input{DeclineCode: "do_not_honor"},
			[]string{"payment-failed/email", "payment-recovered/email"}},
		{"a hard decline is told at once", 0, decline.Input{DeclineCode: "stolen_card"},
			[]string{"payment-failed/email", "service-paused/email", "service-suspended/email"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(tt.succeedOn, tt.decline)
			if len(got) != len(tt.want) {
				t.Fatalf("messages = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("messages = %v, want %v", got, tt.want)
				}
			}
		})
	}
}
