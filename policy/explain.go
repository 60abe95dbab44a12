package policy

import (
	"fmt"
	"strings"
	"time"
)

// Explanation is why the engine chose a step, made with the step: the
// reason in words and the facts it used. The workflow records it in the
// ledger when the step runs, so the audit trail shows the decision as it
// was made, not as it would be reconstructed later.
type Explanation struct {
	Words string `json:"words"`
	Facts Facts  `json:"facts,omitzero"`
}

// Facts are what a decision looked at. Empty fields did not matter.
type Facts struct {
	// DeclineReason and DeclineCategory are how the latest decline on the
	// current card reads (e.g. insufficient_funds, soft); Advice is what it
	// says about retrying.
	DeclineReason   string `json:"decline_reason,omitempty"`
	DeclineCategory string `json:"decline_category,omitempty"`
	Advice          string `json:"advice,omitempty"`
	// TimeZone is the customer's, in which the schedule was placed.
	TimeZone string `json:"time_zone,omitempty"`
	// Planned is when the schedule put the step before any rule moved it.
	Planned time.Time `json:"planned,omitzero"`
	// Moves are the rules that moved the step, in the order they applied.
	Moves []Move `json:"moves,omitempty"`
	// Slot is the scheduled retry's place in the schedule, e.g. "2 of 3".
	Slot string `json:"slot,omitempty"`
}

// IsZero reports whether no fact was used.
func (f Facts) IsZero() bool {
	return f.DeclineReason == "" && f.DeclineCategory == "" && f.Advice == "" && f.TimeZone == "" &&
		f.Planned.IsZero() && len(f.Moves) == 0 && f.Slot == ""
}

// Move is one rule moving a step later: a placement rule (payday, business
// day, retry window) or a gate rule (minimum gap, no-retry window, budget).
type Move struct {
	Rule string    `json:"rule"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// explain attaches the step's explanation, built from its Why and the
// facts of s (moves are added where the step is placed).
func explain(s State, step Step, moves []Move, planned time.Time, slot string) Step {
	f := Facts{Moves: moves, Slot: slot, Planned: planned}
	if step.Action == ActionRetry || step.Action == ActionClose || step.Action == ActionService {
		f.DeclineReason, f.DeclineCategory, f.Advice = s.DeclineReason, s.DeclineCategory, string(s.Advice)
	}
	if len(moves) > 0 && s.Location != nil {
		f.TimeZone = s.Location.String()
	}
	var b string
	b = step.Why
	if f.DeclineReason != "" && step.Action == ActionRetry {
		b += fmt.Sprintf(": %s", strings.ReplaceAll(f.DeclineReason, "_", " "))
		if f.DeclineCategory != "" {
			b += fmt.Sprintf(" (%s decline)", f.DeclineCategory)
		}
	}
	for _, m := range moves {
		b += fmt.Sprintf("; %s moved it from %s to %s", m.Rule, localTime(m.From, s.Location), localTime(m.To, s.Location))
	}
	if step.Action != ActionNotify || !step.At.Equal(s.Now) {
		b += fmt.Sprintf("; at %s", localTime(step.At, s.Location))
	}
	step.Explain = &Explanation{Words: b, Facts: f}
	return step
}

// localTime is t as the customer reads it, with the zone's name.
func localTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04:05") + " " + loc.String()
}

// WhatIf is one thing that would change the next step, and how.
type WhatIf struct {
	// If names the event: card_update, expedite, paid_out_of_band.
	If string `json:"if"`
	// Then says in words what the run would do.
	Then string `json:"then"`
	// At is when a charge would follow, when one would.
	At time.Time `json:"at,omitzero"`
	// Rule is the rule that would refuse it, when one would.
	Rule string `json:"rule,omitempty"`
}

// Events a WhatIf names.
const (
	IfCardUpdate = "card_update"
	IfExpedite   = "expedite"
	IfPaid       = "paid_out_of_band"
)

// WhatIfs says what would change the run's next step if it happened at
// s.Now: a card update (a new card), an expedite, a payment elsewhere. Only
// for gated runs that have not recovered.
func (p Policy) WhatIfs(s State) []WhatIf {
	if !s.Gated || s.recovered() {
		return nil
	}
	var out []WhatIf
	// A new card starts clean: its predecessor's decline and waits no longer
	// apply (the workflow does the same on a payment-method update).
	card := s
	card.CardUpdatedAt, card.Card = s.Now, "\x00new card"
	card.DeclineReason, card.DeclineCategory, card.Advice, card.RetryAfter = "", "", "", 0
	card.NoRetryUntil, card.NotBefore, card.BlockedAt = time.Time{}, time.Time{}, time.Time{}
	if step, ok := p.NextRetry(card); ok && step.Reason == ReasonCardUpdated {
		out = append(out, WhatIf{If: IfCardUpdate, At: step.At,
			Then: "a card update now would retry at " + localTime(step.At, s.Location)})
	} else {
		probe := card
		probe.Now = later(s.Now, s.Now.Add(p.CardUpdateRetryDelay.D()))
		v := p.MayCharge(probe, ReasonCardUpdated)
		w := WhatIf{If: IfCardUpdate, Rule: v.Rule, Then: "a card update now would earn no extra attempt"}
		if v.Rule != "" {
			w.Then += " (" + v.Rule + ")"
		}
		if ok {
			w.At = step.At
			w.Then += "; the next retry would be at " + localTime(step.At, s.Location)
		}
		out = append(out, w)
	}
	if v := p.MayCharge(s, ReasonExpedite); v.Allowed {
		out = append(out, WhatIf{If: IfExpedite, At: s.Now, Then: "an expedite now would charge at once"})
	} else {
		out = append(out, WhatIf{If: IfExpedite, Rule: v.Rule, Then: "an expedite now would be refused: " + v.Rule})
	}
	out = append(out, WhatIf{If: IfPaid, Then: "a payment made elsewhere would close the run as recovered"})
	return out
}
