package policy

import (
	"testing"
	"time"
)

// BenchmarkSchedule plans a realistic run end to end with the default
// policy: first notice, three declined retries placed in the Warsaw
// morning, reminders, pause and suspend with their texts, close. One
// iteration is one whole schedule.
func BenchmarkSchedule(b *testing.B) {
	p := Default()
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 9, 30, 0, 0, loc)
	b.ReportAllocs()
	for b.Loop() {
		s := State{DeclinedAt: start, Now: start, Location: loc, Country: "PL", Reachable: []Channel{Email, SMS}, DeclineReason: "insufficient_funds"}
		for done := false; !done; {
			step := p.Next(s)
			s.Now = step.At
			switch step.Action {
			case ActionNotify:
				s.Sent = append(s.Sent, step.Key)
			case ActionRetry:
				s.Attempts = append(s.Attempts, Attempt{Number: step.Attempt, At: step.At, Reason: step.Reason})
			case ActionService:
				s.ServiceChanges = append(s.ServiceChanges, ServiceChange{State: step.State, At: step.At})
			case ActionClose:
				done = true
			}
		}
	}
}
