package workflows

import (
	"fmt"
	"strconv"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/policy"
)

// This file keeps the run's audit trail (workflow version "charge-gate"
// 4). Every input the run hears, every step the policy chooses (with the
// explanation the step carries) and every charge a rule refuses becomes a
// journal entry. The entries ride in the input of the activity that runs
// for the next step anyway (the charge, the message step, the service
// change, the close), which records them in the ledger; none costs an
// activity, a local activity or a history event of its own. Entries not yet
// recorded are in the status query's answer (Status.Unrecorded).

// Kinds of journal entries.
const (
	journalInput    = "input"
	journalDecision = "decision"
	journalRefusal  = "refusal"
)

// maxJournal bounds the entries a parked run keeps for its next step; a
// flood of signals beyond it is counted in one entry, not listed.
const maxJournal = 100

// note adds a journal entry made now.
func (r *run) note(ctx workflow.Context, kind, action, words, by, rule string) *activities.JournalEntry {
	if !r.explain {
		return nil
	}
	if len(r.journal) >= maxJournal {
		// The last place says how many more there were.
		last := &r.journal[len(r.journal)-1]
		if last.Action != "not-listed" {
			r.journalSeq++
			*last = activities.JournalEntry{Key: fmt.Sprintf("%s/journal-%d", r.id, r.journalSeq), At: workflow.Now(ctx),
				Kind: journalInput, Action: "not-listed", Words: "2 more entries not listed"}
			return nil
		}
		count, _, _ := strings.Cut(last.Words, " ")
		n, _ := strconv.Atoi(count)
		last.Words = strconv.Itoa(n+1) + " more entries not listed"
		return nil
	}
	r.journalSeq++
	r.journal = append(r.journal, activities.JournalEntry{
		Key: fmt.Sprintf("%s/journal-%d", r.id, r.journalSeq), At: workflow.Now(ctx),
		Kind: kind, Action: action, Words: words, By: by, Rule: rule,
	})
	return &r.journal[len(r.journal)-1]
}

// decide journals the step the loop is about to take, with the
// explanation the policy made with it.
func (r *run) decide(ctx workflow.Context, step policy.Step, card, attemptKey string) {
	words := step.Why
	var facts *policy.Facts
	if step.Explain != nil {
		words = step.Explain.Words
		if f := step.Explain.Facts; !f.IsZero() {
			facts = &f
		}
	}
	action := string(step.Action)
	switch step.Action {
	case policy.ActionNotify:
		words = fmt.Sprintf("send %s by %s: %s", step.Message, step.Channel, words)
	case policy.ActionService:
		words = fmt.Sprintf("set the service %s: %s", step.State, words)
	case policy.ActionRetry:
		if step.Reason == policy.ReasonExpedite {
			action = string(policy.ReasonExpedite)
		}
	}
	if e := r.note(ctx, journalDecision, action, words, "", ""); e != nil {
		e.Facts, e.Card, e.AttemptKey = facts, card, attemptKey
	}
}

// takeJournal is the entries the next activity records.
func (r *run) takeJournal() []activities.JournalEntry {
	if len(r.journal) == 0 {
		return nil
	}
	return append([]activities.JournalEntry(nil), r.journal...)
}

// recorded drops the entries an activity recorded; entries made while it
// ran stay for the next step.
func (r *run) recorded(entries []activities.JournalEntry) {
	if len(entries) == 0 {
		return
	}
	last := entries[len(entries)-1].Key
	for i, e := range r.journal {
		if e.Key == last {
			r.journal = append([]activities.JournalEntry(nil), r.journal[i+1:]...)
			return
		}
	}
}

// declineWords describes a reported decline: its codes and where it came
// from.
func declineWords(prefix string, d Decline) string {
	var b string
	b += fmt.Sprintf("%s: %s via %s", prefix, d.Code, d.Gateway)
	if d.AdviceCode != "" {
		b += fmt.Sprintf(", advice %s", d.AdviceCode)
	}
	if d.NetworkDeclineCode != "" {
		b += fmt.Sprintf(", network code %s", d.NetworkDeclineCode)
	}
	if d.NetworkAdviceCode != "" {
		b += fmt.Sprintf(", network advice %s", d.NetworkAdviceCode)
	}
	if d.ID != "" {
		b += fmt.Sprintf(" (ref %s)", d.ID)
	}
	if d.Source != "" {
		b += fmt.Sprintf("; source %s", d.Source)
	}
	return b
}
