package policy

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dunningco/dunning/decline"
)

// TestDeclineScheduleProperty drives whole runs with random decline
// sequences, start times and zones (fixed seed): a retry never follows a
// never-retry decline on the same card, scheduled retries stay within the
// policy's Visa/Mastercard-safe count and window and in the local morning,
// and every run ends.
func TestDeclineScheduleProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	inputs := []decline.Input{
		{DeclineCode: "insufficient_funds"}, {DeclineCode: "do_not_honor"}, {DeclineCode: "generic_decline"},
		{DeclineCode: "stolen_card"}, {DeclineCode: "expired_card"}, {DeclineCode: "authentication_required"},
		{NetworkDeclineCode: "51", Network: "visa"}, {NetworkDeclineCode: "14", Network: "visa"}, {NetworkDeclineCode: "R1", Network: "visa"},
		{DeclineCode: "do_not_honor", NetworkAdviceCode: "03", Network: "mastercard"},
		{DeclineCode: "do_not_honor", NetworkAdviceCode: "21", Network: "mastercard"},
		{DeclineCode: "do_not_honor", NetworkAdviceCode: "24", Network: "mastercard"},
		{DeclineCode: "do_not_honor", NetworkAdviceCode: "26", Network: "mastercard"},
		{DeclineCode: "generic_decline", AdviceCode: "do_not_try_again"},
		{DeclineCode: "made_up_code"},
	}
	zones := []string{"America/Los_Angeles", "Europe/Warsaw", "Asia/Tokyo", "Australia/Lord_Howe", "UTC"}
	policies := []Policy{Default(), Demo()}
	for i := 0; i < 4000; i++ {
		p := policies[rng.IntN(len(policies))]
		loc := mustLoad(t, zones[rng.IntN(len(zones))])
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(500 * day))))
		first := decline.Classify(inputs[rng.IntN(len(inputs))])
		s := State{DeclinedAt: start, Now: start, Location: loc, Country: "PL", Reachable: []Channel{Email, SMS},
			Advice: first.Advice, RetryAfter: first.RetryAfter, DeclineReason: first.Reason}
		never := first.Advice == decline.Stop
		scheduled := 0
		ended := false
		for step := 0; step < 200 && !ended; step++ {
			next := p.Next(s)
			if next.At.Before(s.Now) {
				t.Fatalf("case %d: step %+v in the past", i, next)
			}
			s.Now = next.At
			switch next.Action {
			case ActionRetry:
				if never {
					t.Fatalf("case %d: retry after a never-retry decline (%v)", i, first)
				}
				scheduled++
				if scheduled > p.MaxAttempts || next.At.After(start.Add(p.Window.D()+p.Timing.MaxShift.D())) {
					t.Fatalf("case %d: retry %d at %s beyond the policy's cap or window", i, scheduled, next.At)
				}
				if !p.Timing.Window.IsZero() {
					local := next.At.In(loc)
					if m := local.Hour()*60 + local.Minute(); m < 9*60 || m >= 11*60 {
						t.Fatalf("case %d: retry at %s local", i, local)
					}
				}
				d := decline.Classify(inputs[rng.IntN(len(inputs))])
				s.Attempts = append(s.Attempts, Attempt{Number: next.Attempt, At: next.At, Reason: next.Reason})
				s.Advice, s.RetryAfter, s.DeclineReason = d.Advice, d.RetryAfter, d.Reason
				never = never || d.Advice == decline.Stop
			case ActionNotify:
				s.Sent = append(s.Sent, next.Key)
			case ActionService:
				s.ServiceChanges = append(s.ServiceChanges, ServiceChange{State: next.State, At: next.At})
			case ActionClose:
				ended = true
			}
		}
		if !ended {
			t.Fatalf("case %d: run did not end", i)
		}
	}
}
