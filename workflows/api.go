package workflows

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/policy"
)

// Names that are part of the public API: starters, the CLI and the Web UI use
// them, so they never change.
const (
	WorkflowName = "DunningWorkflow"
	TaskQueue    = "dunning"

	SignalDecline              = "decline"
	SignalCancel               = "cancel"
	SignalPaymentMethodUpdated = "payment-method-updated"
	SignalPaidOutOfBand        = "paid-out-of-band"
	// SignalResume puts a run that needs attention back on schedule once
	// ops fixed the cause.
	SignalResume   = "resume"
	UpdateExpedite = "expedite"
	QueryStatus    = "status"
)

// Customer is who owes the invoice and how to reach them.
type Customer struct {
	ID       string `json:"id"`
	Email    string `json:"email,omitempty"`
	Phone    string `json:"phone,omitempty"`     // E.164
	Locale   string `json:"locale,omitempty"`    // BCP 47, e.g. "fr-FR"
	TimeZone string `json:"time_zone,omitempty"` // IANA, e.g. "Europe/Warsaw"
	// Country (ISO 3166 alpha-2) picks the holiday calendar; the locale's
	// region is used when it is empty.
	Country string `json:"country,omitempty"`
}

// Decline is one failed charge as the billing system reports it.
type Decline struct {
	// ID is the billing system's or gateway's reference for the failed
	// charge; a repeated decline with the same ID is recorded once.
	ID         string `json:"id,omitempty"`
	Gateway    string `json:"gateway"`
	Code       string `json:"code"`
	AdviceCode string `json:"advice_code,omitempty"`
	// NetworkDeclineCode is the card network's response code (ISO 8583,
	// e.g. "51") and NetworkAdviceCode its advice (Mastercard MAC, e.g. "03").
	NetworkDeclineCode string `json:"network_decline_code,omitempty"`
	NetworkAdviceCode  string `json:"network_advice_code,omitempty"`
	Message            string `json:"message,omitempty"`
	// Source is where the report came from: api, stripe-webhook, client,
	// cli, ... (set by the starter that received it).
	Source     string    `json:"source,omitempty"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
	ReceivedAt time.Time `json:"received_at,omitzero"` // set by the workflow
}

// Credit is money owed back for days the service was suspended.
type Credit struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	Days     int    `json:"days"`
}

// Card is what the card-network rules need to know about a card.
type Card struct {
	// Network is "visa", "mastercard", "amex", ... ("" when unknown).
	Network string `json:"network,omitempty"`
	// Fingerprint identifies the card across payment methods and runs
	// (e.g. Stripe's card fingerprint); the retry budget is kept per card.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Input starts a run for one failed invoice.
type Input struct {
	Tenant    string   `json:"tenant"`
	InvoiceID string   `json:"invoice_id"`
	Customer  Customer `json:"customer"`
	// Amount is a decimal string in Currency, e.g. "49.90".
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	// PaymentMethod is the gateway's reference to the saved payment method
	// to retry (e.g. a Stripe pm_ ID or a simulator script).
	PaymentMethod string `json:"payment_method,omitempty"`
	// PeriodDays is the length of the billing period the invoice pays for;
	// when set, days of suspended service are credited pro rata on recovery.
	PeriodDays int `json:"period_days,omitempty"`
	// Card identifies the card behind PaymentMethod for card-network rules.
	Card    Card    `json:"card,omitzero"`
	Decline Decline `json:"decline"`
	// PolicyName picks a catalog policy; empty means "default".
	PolicyName string `json:"policy,omitempty"`
	// Policy, when set, is used as is (tests and custom tooling); the
	// workflow otherwise resolves PolicyName once and pins it.
	Policy *policy.Policy `json:"policy_inline,omitempty"`
	// Plan and Segment describe the customer for policy selection (see
	// policy.Selection) when PolicyName is empty.
	Plan    string `json:"plan,omitempty"`
	Segment string `json:"segment,omitempty"`
	// Experiment and Variant record the policy experiment the run was
	// assigned to at start, if any; the starter sets them.
	Experiment string `json:"experiment,omitempty"`
	Variant    string `json:"variant,omitempty"`
	// BillingCallbackURL overrides the worker's callback for this run.
	BillingCallbackURL string `json:"billing_callback_url,omitempty"`
	// Resume is set only when a run continues as new: the state the previous
	// run of this workflow handed over.
	Resume *Carried `json:"resume,omitempty"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

// ErrInvalidInput marks input that can never start a run.
var ErrInvalidInput = errors.New("invalid input")

// Validate checks the input without I/O; a run never starts on bad input.
func (in Input) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !idPattern.MatchString(in.Tenant) {
		add("tenant must be 1-128 characters of letters, digits and . _ : @ -")
	}
	if !idPattern.MatchString(in.InvoiceID) {
		add("invoice_id must be 1-128 characters of letters, digits and . _ : @ -")
	}
	if strings.TrimSpace(in.Customer.ID) == "" {
		add("customer.id is required")
	}
	problems = append(problems, in.Customer.contactProblems()...)
	if in.Amount == "" {
		add("amount is required")
	} else if in.Currency == "" {
		add("currency is required")
	} else if _, err := money.Parse(in.Amount, in.Currency); err != nil {
		add("%v", err)
	}
	if in.PeriodDays < 0 || in.PeriodDays > 366 {
		add("period_days must be between 0 and 366")
	}
	if strings.TrimSpace(in.Decline.Gateway) == "" {
		add("decline.gateway is required")
	}
	if strings.TrimSpace(in.Decline.Code) == "" {
		add("decline.code is required")
	}
	if in.Policy != nil {
		if err := in.Policy.Validate(); err != nil {
			add("%v", err)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidInput, strings.Join(problems, "; "))
	}
	return nil
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// contactProblems checks how the customer is reached: address shapes and
// time zone. Both run kinds validate customers with it.
func (c Customer) contactProblems() []string {
	var problems []string
	if c.Email != "" && !strings.Contains(c.Email, "@") {
		problems = append(problems, fmt.Sprintf("customer.email %q is not an email address", c.Email))
	}
	if c.Phone != "" && !e164.MatchString(c.Phone) {
		problems = append(problems, fmt.Sprintf("customer.phone %q is not an E.164 number such as +48123456789", c.Phone))
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			problems = append(problems, fmt.Sprintf("customer.time_zone %q is not an IANA time zone", c.TimeZone))
		}
	}
	return problems
}

// location is the customer's time zone, UTC when unset or unknown. tzdata
// is embedded (see dunning.go), so every worker resolves the same rules.
func (c Customer) location() *time.Location {
	if c.TimeZone == "" {
		return time.UTC
	}
	// Loaded once per zone and shared by every run: the rules come from
	// the embedded tzdata, so the cache cannot make two workers disagree.
	if loc, ok := locations.Load(c.TimeZone); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	actual, _ := locations.LoadOrStore(c.TimeZone, loc)
	return actual.(*time.Location)
}

// locations caches time zones by name.
var locations sync.Map

// WorkflowID is the run's stable, readable ID: one run per failed invoice.
func WorkflowID(tenant, invoiceID string) string {
	return "dunning/" + tenant + "/" + invoiceID
}

// CancelRequest is the cancel signal's payload.
type CancelRequest struct {
	Reason string `json:"reason"`
	By     string `json:"by,omitempty"`
}

// ResumeRequest is the resume signal's payload: who fixed what.
type ResumeRequest struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// PaymentMethodUpdate is the payment-method-updated signal's payload.
type PaymentMethodUpdate struct {
	// PaymentMethod replaces the one retried; empty keeps it (the gateway's
	// customer default changed).
	PaymentMethod string `json:"payment_method,omitempty"`
	// Card describes the new card, when known.
	Card *Card `json:"card,omitempty"`
}

// PaidOutOfBand is the paid-out-of-band signal's payload.
type PaidOutOfBand struct {
	Reference string `json:"reference,omitempty"`
	Note      string `json:"note,omitempty"`
}

// ExpediteRequest is the expedite update's argument.
type ExpediteRequest struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// Phase is where a run stands.
type Phase string

// Phases; the last three are final.
const (
	PhaseRecovering Phase = "recovering"
	// PhaseActionRequired: the latest decline rules out retrying the card;
	// the run waits for a new payment method (or the customer's action).
	PhaseActionRequired Phase = "action_required"
	PhasePaused         Phase = "paused"
	PhaseSuspended      Phase = "suspended"
	// PhaseNeedsAttention: our side failed (an unknown gateway, credentials
	// the gateway refused, the ledger or gateway unreachable past a short
	// retry). The run holds: no attempt is burnt, no message sent, the
	// service ladder does not move, until a resume signal (or, for an
	// outage, its own hourly retry).
	PhaseNeedsAttention Phase = "needs_attention"
	PhaseRecovered      Phase = "recovered"
	PhaseExhausted      Phase = "exhausted"
	PhaseCancelled      Phase = "cancelled"
)

// AttemptRecord is one charge attempt in the status.
type AttemptRecord struct {
	Number         int             `json:"number"`
	Reason         policy.Reason   `json:"reason"`
	IdempotencyKey string          `json:"idempotency_key"`
	StartedAt      time.Time       `json:"started_at"`
	FinishedAt     time.Time       `json:"finished_at"`
	Outcome        gateway.Outcome `json:"outcome"`
	DeclineCode    string          `json:"decline_code,omitempty"`
	AdviceCode     string          `json:"advice_code,omitempty"`
	Message        string          `json:"message,omitempty"`
	GatewayRef     string          `json:"gateway_ref,omitempty"`
	// Category and Advice are how the platform read the decline.
	Category string `json:"category,omitempty"`
	Advice   string `json:"advice,omitempty"`
	// Card-network details from the gateway, where it reports them.
	NetworkDeclineCode string `json:"network_decline_code,omitempty"`
	NetworkAdviceCode  string `json:"network_advice_code,omitempty"`
	RequiresAction     bool   `json:"requires_action,omitempty"`
	// Card is the card the attempt charged (fingerprint or payment method).
	Card string `json:"card,omitempty"`
	// Held marks a try our side failed (see Status.Attention): it is kept
	// for the record but is not an attempt and counts toward no cap.
	Held bool `json:"held,omitempty"`
}

// MessageRecord is one customer message in the status.
type MessageRecord struct {
	Key     string             `json:"key"`
	Kind    policy.MessageKind `json:"kind"`
	Channel policy.Channel     `json:"channel"`
	At      time.Time          `json:"at"`
	Status  string             `json:"status"` // sent, skipped, failed
	Detail  string             `json:"detail,omitempty"`
}

// Status is the status query's answer.
type Status struct {
	WorkflowID   string                 `json:"workflow_id"`
	Tenant       string                 `json:"tenant"`
	InvoiceID    string                 `json:"invoice_id"`
	CustomerID   string                 `json:"customer_id"`
	Phase        Phase                  `json:"phase"`
	Amount       string                 `json:"amount"`
	Currency     string                 `json:"currency"`
	Policy       string                 `json:"policy"`
	ServiceState policy.ServiceState    `json:"service_state"`
	Declines     []Decline              `json:"declines"`
	Attempts     []AttemptRecord        `json:"attempts"`
	Messages     []MessageRecord        `json:"messages"`
	ServiceLog   []policy.ServiceChange `json:"service_changes"`
	NextStep     *policy.Step           `json:"next_step,omitempty"`
	// UnknownDeclineCodes counts declines whose codes no mapping knew; they
	// were handled with the safe default (soft, conservative).
	UnknownDeclineCodes int `json:"unknown_decline_codes,omitempty"`
	// Experiment and Variant record the A/B assignment that chose the policy.
	Experiment string `json:"experiment,omitempty"`
	Variant    string `json:"variant,omitempty"`
	// Credit is the service credit for suspended days, once recorded.
	Credit *Credit `json:"credit,omitempty"`
	// Decline is how the latest decline on the current card reads.
	Decline       *decline.Decline `json:"decline,omitempty"`
	StartedAt     time.Time        `json:"started_at"`
	ClosedAt      time.Time        `json:"closed_at,omitzero"`
	ClosingReason string           `json:"closing_reason,omitempty"`
	// Refusals lists charges the gate turned down (policy.MayCharge), with
	// the rule in words.
	Refusals []Refusal `json:"refusals,omitempty"`
	// LateSignals lists signals recorded without effect: after the run
	// decided to close, or repeating what it already knew.
	LateSignals []LateSignal `json:"late_signals,omitempty"`
	// DeclinesNotListed, LateSignalsNotListed and RefusalsNotListed count
	// what arrived past the 50 each list keeps.
	DeclinesNotListed    int `json:"declines_not_listed,omitempty"`
	LateSignalsNotListed int `json:"late_signals_not_listed,omitempty"`
	RefusalsNotListed    int `json:"refusals_not_listed,omitempty"`
	// Attention is why the run holds for ops, while it does.
	Attention *Attention `json:"attention,omitempty"`
	// Holds lists every hold and how it ended; the schedule was extended
	// by their length.
	Holds []Hold `json:"holds,omitempty"`
	// WhatIfs says what would change the next step if it happened now (a
	// card update, an expedite, a payment elsewhere), as of when the run
	// last planned.
	WhatIfs []policy.WhatIf `json:"what_would_change_it,omitempty"`
	// Unrecorded lists audit-trail entries the run has made but not yet
	// recorded in the ledger; its next step's activity records them.
	Unrecorded []activities.JournalEntry `json:"unrecorded,omitempty"`
}

// Result is what the workflow returns when the run ends.
type Result struct {
	Outcome  policy.Outcome `json:"outcome"`
	Reason   string         `json:"reason"`
	Attempts int            `json:"attempts"`
	Amount   string         `json:"amount"`
	Currency string         `json:"currency"`
	ClosedAt time.Time      `json:"closed_at"`
}
