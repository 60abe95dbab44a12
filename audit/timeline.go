// Package audit answers "why": a run's timeline (every input, decision,
// charge, message, service change, billing event and refusal, in time
// order, from the ledger plus the live run where it knows more), audit
// exports of a tenant's runs for finance and disputes, and the card-network
// compliance report.
package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/workflows"
)

// Ledger is what a timeline is read from; *ledger.Store implements it.
type Ledger interface {
	GetRun(ctx context.Context, workflowID string) (ledger.Run, error)
	Decisions(ctx context.Context, workflowID string) ([]ledger.Decision, error)
	Attempts(ctx context.Context, workflowID string) ([]ledger.Attempt, error)
	CardDenials(ctx context.Context, workflowID string) ([]ledger.CardDenial, error)
	Messages(ctx context.Context, workflowID string) ([]ledger.Message, error)
	ServiceChanges(ctx context.Context, workflowID string) ([]ledger.ServiceChange, error)
	OutboxEvents(ctx context.Context, workflowID string) ([]ledger.OutboxEvent, error)
}

var _ Ledger = (*ledger.Store)(nil)

// Kinds of timeline entries.
const (
	KindRun          = "run"           // opened or closed
	KindInput        = "input"         // a decline report, a signal or an update
	KindDecision     = "decision"      // a step the policy chose
	KindRefusal      = "refusal"       // a charge a rule turned down
	KindCharge       = "charge"        // a charge at the gateway
	KindMessage      = "message"       // a customer message
	KindService      = "service"       // a service change
	KindBillingEvent = "billing_event" // an event delivered to the billing system
)

// rank orders entries of the same moment: what the run heard, then what
// it decided or refused, then what it did.
var rank = map[string]int{KindRun: 0, KindInput: 1, KindRefusal: 2, KindDecision: 3, KindCharge: 4,
	KindMessage: 5, KindService: 6, KindBillingEvent: 7}

// Entry is one line of a run's timeline.
type Entry struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Action string    `json:"action,omitempty"`
	Words  string    `json:"words"`
	By     string    `json:"by,omitempty"`
	Rule   string    `json:"rule,omitempty"`
	// Key is the ledger row's key (journal entry, idempotency key, event key).
	Key  string `json:"key"`
	Card string `json:"card,omitempty"`
	// Facts are the facts the policy used for a decision.
	Facts  *policy.Facts  `json:"facts,omitempty"`
	Budget *ledger.Budget `json:"budget,omitempty"`
	// AttemptKey links a charge decision to its charge.
	AttemptKey string        `json:"attempt_key,omitempty"`
	Charge     *Charge       `json:"charge,omitempty"`
	Message    *Message      `json:"message,omitempty"`
	Service    *Service      `json:"service,omitempty"`
	Event      *BillingEvent `json:"billing_event,omitempty"`
	// Unrecorded marks an entry the live run holds that its next step has
	// not yet recorded in the ledger.
	Unrecorded bool `json:"unrecorded,omitempty"`
}

// Charge is a charge entry's ledger row.
type Charge struct {
	IdempotencyKey     string    `json:"idempotency_key"`
	Attempt            int       `json:"attempt"`
	Reason             string    `json:"reason"`
	Status             string    `json:"status"`
	Amount             string    `json:"amount"`
	Currency           string    `json:"currency"`
	Gateway            string    `json:"gateway"`
	GatewayRef         string    `json:"gateway_ref,omitempty"`
	DeclineCode        string    `json:"decline_code,omitempty"`
	AdviceCode         string    `json:"advice_code,omitempty"`
	NetworkDeclineCode string    `json:"network_decline_code,omitempty"`
	NetworkAdviceCode  string    `json:"network_advice_code,omitempty"`
	RequiresAction     bool      `json:"requires_action,omitempty"`
	Message            string    `json:"message,omitempty"`
	FinishedAt         time.Time `json:"finished_at,omitzero"`
}

// Message is a message entry's ledger row (without its body or recipient).
type Message struct {
	Kind        string `json:"kind"`
	Channel     string `json:"channel"`
	Status      string `json:"status"`
	Provider    string `json:"provider,omitempty"`
	ProviderRef string `json:"provider_id,omitempty"`
	// Detail says why a message was skipped or failed.
	Detail string `json:"detail,omitempty"`
}

// Service is a service change's ledger row.
type Service struct {
	State          string `json:"state"`
	Reason         string `json:"reason"`
	CallbackStatus string `json:"callback_status"`
	CallbackDetail string `json:"callback_detail,omitempty"`
}

// BillingEvent is an outbox row: an event for the tenant's endpoint.
type BillingEvent struct {
	Type        string    `json:"type"`
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
}

// Next is the run's next step as the live run planned it, and what would
// change it.
type Next struct {
	Action  string              `json:"action"`
	At      time.Time           `json:"at"`
	Why     string              `json:"why"`
	Explain *policy.Explanation `json:"explain,omitempty"`
	WhatIfs []policy.WhatIf     `json:"what_would_change_it,omitempty"`
}

// Timeline is a run's audit trail.
type Timeline struct {
	WorkflowID    string    `json:"workflow_id"`
	Tenant        string    `json:"tenant"`
	InvoiceID     string    `json:"invoice_id"`
	CustomerID    string    `json:"customer_id"`
	Amount        string    `json:"amount"`
	Currency      string    `json:"currency"`
	Policy        string    `json:"policy"`
	Status        string    `json:"status"`          // the ledger's: open, recovered, exhausted, cancelled
	Phase         string    `json:"phase,omitempty"` // the live run's, when it answered
	OpenedAt      time.Time `json:"opened_at"`
	ClosedAt      time.Time `json:"closed_at,omitzero"`
	ClosingReason string    `json:"closing_reason,omitempty"`
	// Live says whether the running workflow answered; without it the
	// timeline is the ledger's alone and Next is empty.
	Live    bool    `json:"live"`
	Next    *Next   `json:"next,omitempty"`
	Entries []Entry `json:"entries"`
}

// ErrNotFound means the ledger holds no such run.
var ErrNotFound = ledger.ErrNotFound

// Build reads a run's timeline from the ledger and, when live is not nil,
// adds what the running workflow knows and the ledger does not yet: its
// next step with what would change it, and entries its next step will
// record.
func Build(ctx context.Context, l Ledger, workflowID string, live *workflows.Status) (Timeline, error) {
	run, err := l.GetRun(ctx, workflowID)
	if err != nil {
		return Timeline{}, fmt.Errorf("timeline of %s: %w", workflowID, err)
	}
	t := Timeline{WorkflowID: run.WorkflowID, Tenant: run.Tenant, InvoiceID: run.InvoiceID, CustomerID: run.CustomerID,
		Amount: amountText(run.Amount, run.Currency), Currency: run.Currency, Policy: run.Policy, Status: run.Status,
		OpenedAt: run.OpenedAt.UTC(), ClosedAt: run.ClosedAt, ClosingReason: run.ClosingReason, Entries: []Entry{}}
	add := func(e Entry) { t.Entries = append(t.Entries, e) }
	add(Entry{At: t.OpenedAt, Kind: KindRun, Action: "opened", Key: run.WorkflowID,
		Words: fmt.Sprintf("run opened for %s %s on policy %s", t.Amount, t.Currency, t.Policy)})

	decisions, err := l.Decisions(ctx, workflowID)
	if err != nil {
		return Timeline{}, fmt.Errorf("timeline of %s: %w", workflowID, err)
	}
	seen := map[string]bool{}
	for _, d := range decisions {
		seen[d.Key] = true
		e := Entry{At: d.At, Kind: d.Kind, Action: d.Action, Words: d.Words, By: d.By, Rule: d.Rule, Key: d.Key,
			Card: d.CardKey, AttemptKey: d.AttemptKey, Budget: d.Budget}
		if len(d.Facts) > 0 {
			var f policy.Facts
			if err := json.Unmarshal(d.Facts, &f); err == nil {
				e.Facts = &f
			}
		}
		if e.Budget != nil {
			e.Words += fmt.Sprintf("; %s budget %d of %d used in %s", e.Budget.Network, e.Budget.Used, e.Budget.Limit, e.Budget.Window)
		}
		add(e)
	}
	attempts, err := l.Attempts(ctx, workflowID)
	if err != nil {
		return Timeline{}, fmt.Errorf("timeline of %s: %w", workflowID, err)
	}
	for _, a := range attempts {
		add(chargeEntry(a))
	}
	denials, err := l.CardDenials(ctx, workflowID)
	if err != nil {
		return Timeline{}, fmt.Errorf("timeline of %s: %w", workflowID, err)
	}
	for _, d := range denials {
		words := "card-network rule refused the charge before the gateway: " + d.Rule
		if !d.NotBefore.IsZero() {
			words += "; not before " + d.NotBefore.UTC().Format(time.RFC3339)
		}
		add(Entry{At: d.DeniedAt, Kind: KindRefusal, Action: "network-rule", Words: words, Rule: d.Rule,
			Key: d.IdempotencyKey, Card: d.CardKey, AttemptKey: d.IdempotencyKey})
	}
	messages, err := l.Messages(ctx, workflowID)
	if err != nil {
		return Timeline{}, fmt.Errorf("timeline of %s: %w", workflowID, err)
	}
	for _, m := range messages {
		words := fmt.Sprintf("%s by %s: %s", m.Kind, m.Channel, m.Status)
		if m.Detail != "" {
			words += " (" + m.Detail + ")"
		}
		add(Entry{At: m.CreatedAt, Kind: KindMessage, Action: m.Kind, Words: words, Key: m.IdempotencyKey,
			Message: &Message{Kind: m.Kind, Channel: m.Channel, Status: m.Status, Provider: m.Provider, ProviderRef: m.ProviderRef, Detail: m.Detail}})
	}
	changes, err := l.ServiceChanges(ctx, workflowID)
	if err != nil {
		return Timeline{}, fmt.Errorf("timeline of %s: %w", workflowID, err)
	}
	for _, c := range changes {
		add(Entry{At: c.CreatedAt, Kind: KindService, Action: c.State, Key: c.IdempotencyKey,
			Words:   fmt.Sprintf("service %s: %s", c.State, c.Reason),
			Service: &Service{State: c.State, Reason: c.Reason, CallbackStatus: c.CallbackStatus, CallbackDetail: c.CallbackDetail}})
	}
	events, err := l.OutboxEvents(ctx, workflowID)
	if err != nil {
		return Timeline{}, fmt.Errorf("timeline of %s: %w", workflowID, err)
	}
	for _, ev := range events {
		words := fmt.Sprintf("billing event %s: %s after %d attempt(s)", ev.Kind, ev.Status, ev.Attempts)
		if ev.LastError != "" {
			words += " (" + ev.LastError + ")"
		}
		add(Entry{At: ev.CreatedAt, Kind: KindBillingEvent, Action: ev.Kind, Words: words, Key: ev.IdempotencyKey,
			Event: &BillingEvent{Type: ev.Kind, Status: ev.Status, Attempts: ev.Attempts, LastError: ev.LastError, DeliveredAt: ev.DeliveredAt}})
	}
	if !run.ClosedAt.IsZero() {
		add(Entry{At: run.ClosedAt, Kind: KindRun, Action: "closed", Key: run.WorkflowID + "/closed",
			Words: fmt.Sprintf("run closed as %s: %s", run.Status, run.ClosingReason)})
	}
	if live != nil {
		t.Live, t.Phase = true, string(live.Phase)
		for _, j := range live.Unrecorded {
			if !seen[j.Key] {
				add(Entry{At: j.At, Kind: j.Kind, Action: j.Action, Words: j.Words, By: j.By, Rule: j.Rule, Key: j.Key,
					Card: j.Card, AttemptKey: j.AttemptKey, Facts: j.Facts, Unrecorded: true})
			}
		}
		if len(decisions) == 0 {
			legacy(&t, live)
		}
		if s := live.NextStep; s != nil && live.ClosedAt.IsZero() {
			t.Next = &Next{Action: string(s.Action), At: s.At, Why: s.Why, Explain: s.Explain, WhatIfs: live.WhatIfs}
		}
	}
	order := func(e Entry) int {
		if e.Kind == KindRun && e.Action == "closed" {
			return len(rank) // the close is the last word of its moment
		}
		return rank[e.Kind]
	}
	slices.SortStableFunc(t.Entries, func(a, b Entry) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(order(a), order(b)))
	})
	return t, nil
}

// legacy adds what a run started before the audit trail existed knows
// only in its status: the declines reported and the charges refused.
func legacy(t *Timeline, live *workflows.Status) {
	for i, d := range live.Declines {
		t.Entries = append(t.Entries, Entry{At: d.ReceivedAt, Kind: KindInput, Action: workflows.SignalDecline,
			Key: fmt.Sprintf("%s/decline-%d", t.WorkflowID, i), Unrecorded: true,
			Words: fmt.Sprintf("decline reported: %s via %s", d.Code, d.Gateway)})
	}
	for i, r := range live.Refusals {
		t.Entries = append(t.Entries, Entry{At: r.At, Kind: KindRefusal, Action: string(r.Reason), By: r.By, Rule: r.Rule,
			Key: fmt.Sprintf("%s/refusal-%d", t.WorkflowID, i), Unrecorded: true,
			Words: fmt.Sprintf("%s attempt refused: %s", r.Reason, r.Rule)})
	}
}

func chargeEntry(a ledger.Attempt) Entry {
	words := fmt.Sprintf("charge %d (%s) of %s %s at %s: %s", a.Number, a.Reason, amountText(a.Amount, a.Currency), a.Currency, a.Gateway, a.Status)
	if a.DeclineCode != "" {
		words += ", decline " + a.DeclineCode
	}
	if a.AdviceCode != "" {
		words += ", advice " + a.AdviceCode
	}
	if a.NetworkDeclineCode != "" {
		words += ", network code " + a.NetworkDeclineCode
	}
	if a.NetworkAdviceCode != "" {
		words += ", network advice " + a.NetworkAdviceCode
	}
	if a.GatewayRef != "" {
		words += ", ref " + a.GatewayRef
	}
	return Entry{At: a.StartedAt, Kind: KindCharge, Action: a.Reason, Words: words, Key: a.IdempotencyKey, AttemptKey: a.IdempotencyKey,
		Charge: &Charge{IdempotencyKey: a.IdempotencyKey, Attempt: a.Number, Reason: a.Reason, Status: a.Status,
			Amount: amountText(a.Amount, a.Currency), Currency: a.Currency, Gateway: a.Gateway, GatewayRef: a.GatewayRef,
			DeclineCode: a.DeclineCode, AdviceCode: a.AdviceCode, NetworkDeclineCode: a.NetworkDeclineCode,
			NetworkAdviceCode: a.NetworkAdviceCode, RequiresAction: a.RequiresAction, Message: a.Message, FinishedAt: a.FinishedAt}}
}

// amountText is an amount in its currency's decimals ("49.90").
func amountText(d decimal.Decimal, currency string) string {
	if c, err := money.LookupCurrency(currency); err == nil {
		return d.StringFixed(c.MinorUnits)
	}
	return d.String()
}

// IsNotFound reports whether err means the ledger holds no such run.
func IsNotFound(err error) bool { return errors.Is(err, ledger.ErrNotFound) }
