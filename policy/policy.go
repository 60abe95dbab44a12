// Package policy is the dunning policy engine: given what has happened in a
// run so far, it says what to do next and when. It is pure Go (no I/O, no
// clock, no Temporal) so the workflow, tests and simulators all get the same
// answer for the same state.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ServiceState is what the customer's service looks like to the billing system.
type ServiceState string

// Service states, in escalating order for the ladder.
const (
	ServiceActive    ServiceState = "active"
	ServicePaused    ServiceState = "paused"
	ServiceSuspended ServiceState = "suspended"
	ServiceCancelled ServiceState = "cancelled"
)

// severity orders ladder states so a policy cannot de-escalate.
func (s ServiceState) severity() int {
	switch s {
	case ServicePaused:
		return 1
	case ServiceSuspended:
		return 2
	case ServiceCancelled:
		return 3
	}
	return 0
}

// Channel is how a message reaches the customer.
type Channel string

// Channels.
const (
	Email Channel = "email"
	SMS   Channel = "sms"
)

// MessageKind names a customer message template.
type MessageKind string

// Message kinds.
const (
	PaymentFailed    MessageKind = "payment_failed"
	RetryFailed      MessageKind = "retry_failed"
	ServicePausedMsg MessageKind = "service_paused"
	ServiceSuspMsg   MessageKind = "service_suspended"
	ServiceCancelMsg MessageKind = "service_cancelled"
	PaymentRecovered MessageKind = "payment_recovered"
	// UpdateCardReminder reminds a customer whose card may not be charged
	// again (hard or customer-action decline) to update it.
	UpdateCardReminder MessageKind = "update_card_reminder"
)

// Reason says why a charge attempt was made.
type Reason string

// Attempt reasons. Scheduled and expedited attempts use the schedule's slots;
// an attempt after a payment-method update is extra, one per update.
const (
	ReasonScheduled   Reason = "scheduled"
	ReasonExpedite    Reason = "expedite"
	ReasonCardUpdated Reason = "card_updated"
)

// LadderStep moves the service to State, After the previous step (the first
// step counts from the last failed attempt).
type LadderStep struct {
	After Duration     `json:"after"`
	State ServiceState `json:"state"`
}

// MessageRule sends Kind over Channels.
type MessageRule struct {
	Kind     MessageKind `json:"kind"`
	Channels []Channel   `json:"channels"`
}

// Policy is one named, versioned dunning policy. It is data: the engine has
// no schedule of its own.
type Policy struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// RetryAfter lists when to retry, counted from the decline.
	RetryAfter []Duration `json:"retry_after"`
	// MaxAttempts caps the scheduled (and expedited) attempts.
	MaxAttempts int `json:"max_attempts"`
	// Window bounds the schedule: no scheduled retry after decline + Window.
	Window Duration `json:"window"`
	// CardUpdateRetryDelay is how soon a new payment method is tried.
	CardUpdateRetryDelay Duration `json:"card_update_retry_delay"`
	// Ladder degrades service once the schedule is exhausted.
	Ladder []LadderStep `json:"ladder"`
	// CloseAfter ends the run as exhausted this long after the last ladder step.
	CloseAfter Duration `json:"close_after"`
	// SilentAttempts is the invisible-recovery phase: this many attempts
	// fail before the customer hears anything (hard declines are told at
	// once). A run recovered silently sends no receipt either.
	SilentAttempts int `json:"silent_attempts,omitempty"`
	// Messages says which messages go out and on which channels.
	Messages []MessageRule `json:"messages"`
	// SMSWindow is when texts may reach the customer, in their time zone.
	SMSWindow Window `json:"sms_window,omitzero"`
	// Timing places scheduled retries in the customer's local morning, on
	// business days, near paydays.
	Timing Timing `json:"timing,omitzero"`
	// Reminders are sent before a payment fails (see Reminders).
	Reminders Reminders `json:"reminders,omitzero"`
	// MinAttemptGap is the least time between two attempts on one card,
	// whatever asks for them (schedule, expedite, card update). A shorter
	// wait the issuer names (Mastercard MAC 24: one hour) replaces it. Zero
	// means no gap (policies pinned before the gate existed).
	MinAttemptGap Duration `json:"min_attempt_gap,omitempty"`
	// MaxCardUpdateAttempts caps the extra attempts payment-method updates
	// grant (one per update) over the whole run. Zero means no cap.
	MaxCardUpdateAttempts int `json:"max_card_update_attempts,omitempty"`
	// ActionReminders remind the customer to update their card, counted
	// from the moment a decline ruled out charging it, while it stays so.
	ActionReminders []Duration `json:"action_reminders,omitempty"`
}

// Ref is how runs and ops see the policy: name, version and content hash,
// e.g. "default@1#3f9a0c12b4e7". Two policies with the same name and
// version but different content never share a Ref.
func (p Policy) Ref() string { return fmt.Sprintf("%s@%d#%s", p.Name, p.Version, p.Hash()) }

// Hash is the first 12 hex digits of the SHA-256 of the policy's canonical
// JSON (fields in declaration order, map keys sorted, durations in their
// compact string form), so it does not depend on how the file was written.
func (p Policy) Hash() string {
	// encoding/json is deterministic for one value (fields in declaration
	// order, map keys sorted); the checker only sees its reflection caches.
	b, err := json.Marshal(p) //workflowcheck:ignore
	if err != nil {
		return "unhashable" // cannot happen: every field marshals
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

// ErrInvalid marks a policy that must not be used.
var ErrInvalid = errors.New("invalid policy")

// Card-network retry limits a policy's schedule must stay within.
const (
	// VisaMaxReattempts is how many times Visa lets a merchant reattempt a
	// declined transaction on one card within VisaWindow.
	VisaMaxReattempts = 15
	VisaWindow        = 30 * day
	// MastercardMaxDeclines is how many declines Mastercard tolerates on
	// one card within MastercardWindow (excessive-retry program).
	MastercardMaxDeclines = 10
	MastercardWindow      = 24 * time.Hour
)

// Validate rejects a policy the engine cannot follow safely. Every problem
// names the field it is about.
func (p Policy) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if p.Name == "" {
		add("name is empty")
	}
	if p.Version < 1 {
		add("version must be at least 1")
	}
	if len(p.RetryAfter) == 0 {
		add("retry_after is empty")
	}
	if p.MaxAttempts < 1 {
		add("max_attempts must be at least 1")
	}
	if p.MaxAttempts > VisaMaxReattempts {
		add("max_attempts %d exceeds Visa's %d reattempts per card in %s", p.MaxAttempts, VisaMaxReattempts, Duration(VisaWindow))
	}
	if len(p.RetryAfter) > p.MaxAttempts {
		add("retry_after lists %d retries but max_attempts is %d", len(p.RetryAfter), p.MaxAttempts)
	}
	if p.Window <= 0 {
		add("window must be positive")
	}
	var prev Duration
	for i, d := range p.RetryAfter {
		if d <= prev {
			add("retry_after[%d] (%s) must be after the decline and after the previous retry", i, d)
		}
		if d > p.Window {
			add("retry_after[%d] (%s) falls outside the %s window", i, d, p.Window)
		}
		prev = d
	}
	p.checkCardNetworks(add)
	if p.SilentAttempts < 0 || p.SilentAttempts > p.MaxAttempts {
		add("silent_attempts must be between 0 and max_attempts (%d)", p.MaxAttempts)
	}
	if p.CardUpdateRetryDelay < 0 {
		add("card_update_retry_delay is negative")
	}
	severity := 0
	for i, s := range p.Ladder {
		if s.After < 0 {
			add("ladder[%d].after is negative", i)
		}
		if s.State.severity() == 0 {
			add("ladder[%d].state %q is not paused, suspended or cancelled", i, s.State)
		} else if s.State.severity() <= severity {
			add("ladder[%d].state %q does not escalate", i, s.State)
		}
		severity = s.State.severity()
	}
	if p.CloseAfter < 0 {
		add("close_after is negative")
	}
	if p.MinAttemptGap < 0 {
		add("min_attempt_gap is negative")
	}
	if p.MinAttemptGap > Duration(7*day) {
		add("min_attempt_gap (%s) is over 7d: the schedule could never use its slots", p.MinAttemptGap)
	}
	if p.MaxCardUpdateAttempts < 0 {
		add("max_card_update_attempts is negative")
	}
	prev = 0
	for i, d := range p.ActionReminders {
		if d <= prev {
			add("action_reminders[%d] (%s) must be after the block and after the previous reminder", i, d)
		}
		prev = d
	}
	for i, m := range p.Messages {
		if !knownKind(m.Kind) {
			add("messages[%d].kind %q is unknown", i, m.Kind)
		}
		for j, c := range m.Channels {
			if c != Email && c != SMS {
				add("messages[%d].channels[%d] %q is not email or sms", i, j, c)
			}
		}
	}
	if !p.Timing.IsZero() {
		if err := p.Timing.Window.validate(); err != nil {
			add("timing.window %v", err)
		}
		if p.Timing.MaxShift < Duration(day) {
			add("timing.max_shift must be at least 24h so a retry can reach a business day")
		}
		if n := len(p.RetryAfter); n > 0 && p.RetryAfter[n-1]+p.Timing.MaxShift > p.Window {
			add("the last retry (%s) plus timing.max_shift (%s) falls outside the %s window", p.RetryAfter[n-1], p.Timing.MaxShift, p.Window)
		}
		// Sorted, so the error lists problems in the same order every time.
		//workflowcheck:ignore
		countries := slices.Sorted(maps.Keys(p.Timing.Holidays))
		for _, country := range countries {
			for _, d := range p.Timing.Holidays[country] {
				if _, err := time.Parse(time.DateOnly, d); err != nil {
					add("timing.holidays[%s] %q is not a date (YYYY-MM-DD)", country, d)
				}
			}
		}
	}
	if !p.SMSWindow.IsZero() {
		if err := p.SMSWindow.validate(); err != nil {
			add("sms_window %v", err)
		}
	}
	if err := p.Reminders.Validate(); err != nil {
		add("%v", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w %q: %s", ErrInvalid, p.Name, strings.Join(problems, "; "))
	}
	return nil
}

// checkCardNetworks rejects a schedule that could break a card network's
// retry rules. It is pessimistic: timing may move each retry up to
// timing.max_shift later, so retries that far apart may still bunch up; the
// original decline counts towards Mastercard's limit, which counts declines.
// Attempts after a payment-method update are on a new card and are not
// scheduled here; the worker's card budget bounds them at run time.
func (p Policy) checkCardNetworks(add func(string, ...any)) {
	slack := Duration(0)
	if !p.Timing.IsZero() && p.Timing.MaxShift > 0 {
		slack = p.Timing.MaxShift
	}
	retries := p.RetryAfter[:min(len(p.RetryAfter), max(p.MaxAttempts, 0))]
	if n, at := busiest(retries, Duration(VisaWindow)+slack); n > VisaMaxReattempts {
		add("retry_after schedules %d retries within %s of retry_after[%d], over Visa's %d reattempts per card in %s",
			n, Duration(VisaWindow)+slack, at, VisaMaxReattempts, Duration(VisaWindow))
	}
	declines := append([]Duration{0}, retries...)
	if n, at := busiest(declines, Duration(MastercardWindow)+slack); n > MastercardMaxDeclines {
		from := "the decline"
		if at > 0 {
			from = fmt.Sprintf("retry_after[%d]", at-1)
		}
		add("retry_after can put %d declines (counting the first) within %s of %s, over Mastercard's %d declines per card in %s",
			n, Duration(MastercardWindow)+slack, from, MastercardMaxDeclines, Duration(MastercardWindow))
	}
}

// busiest returns the largest number of offsets (sorted ascending) that fall
// in a span shorter than span, and the index the span starts at.
func busiest(offsets []Duration, span Duration) (count, start int) {
	offsets = sortedCopy(offsets)
	for i := range offsets {
		n := 0
		for j := i; j < len(offsets) && offsets[j]-offsets[i] < span; j++ {
			n++
		}
		if n > count {
			count, start = n, i
		}
	}
	return count, start
}

func knownKind(k MessageKind) bool {
	switch k {
	case PaymentFailed, RetryFailed, ServicePausedMsg, ServiceSuspMsg, ServiceCancelMsg, PaymentRecovered, UpdateCardReminder:
		return true
	}
	return false
}

func (p Policy) channels(kind MessageKind) []Channel {
	for _, m := range p.Messages {
		if m.Kind == kind {
			return m.Channels
		}
	}
	return nil
}

// scheduledAttempts is how many attempts the schedule allows.
func (p Policy) scheduledAttempts() int {
	return min(p.MaxAttempts, len(p.RetryAfter))
}
