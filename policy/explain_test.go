package policy

import (
	"strings"
	"testing"
	"time"
)

// A retry the payday rule moved carries the move, the decline and the
// customer's zone, in words and as facts.
func TestRetryExplainsItsPlacement(t *testing.T) {
	warsaw, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	p := Default()
	// Wednesday 25 November 2026, 10:00 in Warsaw: the first retry is due
	// Saturday the 28th; the next payday that is a business day is Monday
	// the 30th, the month's last business day.
	declined := time.Date(2026, 11, 25, 10, 0, 0, 0, warsaw)
	s := State{DeclinedAt: declined, Now: declined, Location: warsaw, Gated: true, Card: "fp:1",
		DeclineReason: "insufficient_funds", DeclineCategory: "soft", Sent: []string{"payment-failed/email"}, Reachable: []Channel{Email}}
	step := p.Next(s)
	planned := declined.Add(3 * 24 * time.Hour)
	want := time.Date(2026, 11, 30, 9, 0, 0, 0, warsaw) // the window opens at 09:00
	if step.Action != ActionRetry || !step.At.Equal(want) || step.Explain == nil {
		t.Fatalf("step = %+v, want a retry at %s with an explanation", step, want)
	}
	f := step.Explain.Facts
	if len(f.Moves) != 1 || f.Moves[0].Rule != RulePayday || !f.Moves[0].From.Equal(planned) || !f.Moves[0].To.Equal(want) {
		t.Fatalf("moves = %+v", f.Moves)
	}
	if f.DeclineReason != "insufficient_funds" || f.DeclineCategory != "soft" || f.TimeZone != "Europe/Warsaw" || f.Slot != "1 of 3" || !f.Planned.Equal(planned) {
		t.Fatalf("facts = %+v", f)
	}
	for _, words := range []string{
		"scheduled retry 1 of 3",
		"insufficient funds (soft decline)",
		"payday rule (the 1st, the 15th, the last business day or a Friday) moved it from 2026-11-28 10:00:00 Europe/Warsaw to 2026-11-30 09:00:00 Europe/Warsaw",
	} {
		if !strings.Contains(step.Explain.Words, words) {
			t.Errorf("words %q lack %q", step.Explain.Words, words)
		}
	}
}

// What would change the next step: right after a failed attempt the
// minimum gap refuses an expedite, and a card update earns an attempt
// after the card-update delay.
func TestWhatIfs(t *testing.T) {
	p := Default()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	s := State{DeclinedAt: now.Add(-3 * 24 * time.Hour), Now: now, Gated: true, Card: "fp:1", Location: time.UTC,
		Attempts: []Attempt{{Number: 1, At: now.Add(-time.Hour), Reason: ReasonScheduled, Card: "fp:1"}}}
	got := p.WhatIfs(s)
	if len(got) != 3 {
		t.Fatalf("what-ifs = %+v", got)
	}
	if got[0].If != IfCardUpdate || !got[0].At.Equal(now.Add(15*time.Minute)) || got[0].Then != "a card update now would retry at 2026-11-30 09:15:00 UTC" {
		t.Errorf("card update: %+v", got[0])
	}
	if got[1].If != IfExpedite || !strings.HasPrefix(got[1].Then, "an expedite now would be refused: minimum gap of 20h") {
		t.Errorf("expedite: %+v", got[1])
	}
	if got[2].If != IfPaid {
		t.Errorf("paid: %+v", got[2])
	}
	s.PaidOutOfBand = true
	if w := p.WhatIfs(s); w != nil {
		t.Errorf("what-ifs of a paid run = %+v", w)
	}
}
