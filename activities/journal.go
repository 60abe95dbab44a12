package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/policy"
)

// JournalEntry is one entry of a run's audit trail as the workflow makes
// it: an input it heard, a decision it made, or a charge a rule refused.
// The workflow carries the entries made since its last step in the input
// of the activity that runs for the next step, which records them in the
// ledger (table decisions); no activity runs only to record them.
type JournalEntry struct {
	// Key is unique within the ledger: <workflow id>/journal-<n>.
	Key    string    `json:"key"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`   // input, decision, refusal
	Action string    `json:"action"` // e.g. retry, notify, expedite, payment-method-updated
	Words  string    `json:"words"`
	By     string    `json:"by,omitempty"`
	Rule   string    `json:"rule,omitempty"`
	// Card is the card a charge decision or refusal concerns.
	Card string `json:"card,omitempty"`
	// AttemptKey is the charge's idempotency key (retry decisions).
	AttemptKey string        `json:"attempt_key,omitempty"`
	Facts      *policy.Facts `json:"facts,omitempty"`
}

// decisions converts entries for the ledger.
func decisions(workflowID string, entries []JournalEntry) ([]ledger.Decision, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	out := make([]ledger.Decision, len(entries))
	for i, e := range entries {
		d := ledger.Decision{Key: e.Key, WorkflowID: workflowID, At: e.At, Kind: e.Kind, Action: e.Action, Words: e.Words,
			By: e.By, Rule: e.Rule, CardKey: e.Card, AttemptKey: e.AttemptKey}
		if e.Facts != nil && !e.Facts.IsZero() {
			raw, err := json.Marshal(e.Facts)
			if err != nil {
				return nil, permanent(ErrTypeInvalidInput, fmt.Errorf("journal entry %s: %w", e.Key, err))
			}
			d.Facts = raw
		}
		out[i] = d
	}
	return out, nil
}

// recordJournal writes entries on their own (steps whose ledger rows are
// written message by message); a retry writes nothing twice.
func recordJournal(ctx context.Context, l Ledger, workflowID string, entries []JournalEntry) error {
	ds, err := decisions(workflowID, entries)
	if err != nil || len(ds) == 0 {
		return err
	}
	if err := l.RecordDecisions(ctx, ds); err != nil {
		return ledgerErr(err, "run %s: record the audit trail", workflowID)
	}
	return nil
}
