package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dunningco/dunning/decline"
)

// Action is the kind of step the engine asks for.
type Action string

// Actions.
const (
	ActionNotify  Action = "notify"  // send Message on Channel
	ActionRetry   Action = "retry"   // charge again
	ActionService Action = "service" // move the service to State
	ActionClose   Action = "close"   // end the run with Outcome
)

// Outcome is how a run ended.
type Outcome string

// Outcomes.
const (
	Recovered Outcome = "recovered"
	Exhausted Outcome = "exhausted"
	Cancelled Outcome = "cancelled"
)

// Attempt is one charge attempt as the engine needs to know it.
type Attempt struct {
	Number    int       `json:"number"`
	At        time.Time `json:"at"`
	Reason    Reason    `json:"reason"`
	Succeeded bool      `json:"succeeded"`
	// Card is the card the attempt charged (fingerprint or payment
	// method); the minimum gap is kept per card.
	Card string `json:"card,omitempty"`
}

// ServiceChange is one service-state change the run has made.
type ServiceChange struct {
	State ServiceState `json:"state"`
	At    time.Time    `json:"at"`
}

// State is everything the engine looks at. The workflow builds it from its
// own history; nothing here reads a clock.
type State struct {
	DeclinedAt time.Time
	Now        time.Time
	Attempts   []Attempt
	// CardUpdatedAt is the latest payment-method update; the next attempt
	// after it consumes it.
	CardUpdatedAt time.Time
	// PaidOutOfBand is set when the invoice was settled elsewhere.
	PaidOutOfBand bool
	// Sent holds the keys of messages already handled (sent or skipped).
	Sent []string
	// ServiceChanges in the order they were made.
	ServiceChanges []ServiceChange
	// Reachable lists the channels the customer has an address for.
	Reachable []Channel
	// Location is the customer's time zone; nil means UTC.
	Location *time.Location
	// Country is the customer's ISO 3166 country, for holidays.
	Country string
	// DeclineReason is the latest decline's normalized reason.
	DeclineReason string
	// DeclineCategory is the latest decline's category (hard, soft, ...),
	// for explanations only.
	DeclineCategory string
	// Advice is what the latest decline on the current payment method says
	// about retrying it ("" = retry). Stop, update_payment_method and
	// authenticate halt scheduled retries until the payment method changes.
	Advice decline.Advice
	// RetryAfter is the wait the latest decline asks for (e.g. Mastercard
	// MAC 24 = 1 hour), counted from the latest attempt or the decline.
	RetryAfter time.Duration
	// NotBefore is when the card-network budget allows the next attempt on
	// this card (zero = now).
	NotBefore time.Time

	// Gated runs pass every attempt through MayCharge, including the ones
	// the schedule plans. Runs recorded before the gate existed leave it
	// false so they replay exactly.
	Gated bool
	// Card identifies the current card (fingerprint, else payment method).
	Card string
	// NoRetryUntil is the end of a card-network no-retry window on the
	// current card (Visa category 1, Mastercard MAC 03/21).
	NoRetryUntil time.Time
	// BlockedAt is when a decline ruled out the current card; action
	// reminders count from it.
	BlockedAt time.Time
}

// CardBlocked reports whether the latest decline rules out retrying the
// current payment method: a new one (or customer action) is needed.
func (s State) CardBlocked() bool { return s.Advice.RulesOutCard() }

// Step is what to do next and when. At is never before State.Now.
type Step struct {
	Action  Action       `json:"action"`
	At      time.Time    `json:"at"`
	Attempt int          `json:"attempt,omitempty"` // retry: attempt number
	Reason  Reason       `json:"reason,omitempty"`  // retry: why
	Message MessageKind  `json:"message,omitempty"` // notify
	Channel Channel      `json:"channel,omitempty"` // notify
	Key     string       `json:"key,omitempty"`     // notify/service: unique within the run
	State   ServiceState `json:"state,omitempty"`   // service
	Outcome Outcome      `json:"outcome,omitempty"` // close
	Why     string       `json:"why"`
	// Explain is the reason in words and the facts the engine used, made
	// with the step.
	Explain *Explanation `json:"explain,omitempty"`
}

// Next returns the run's next step. Messages that are due go first, except
// texts outside the SMS window, which wait for it without holding up the
// rest; then a recovered run restores service and closes; otherwise the next
// retry, then the service ladder, then closing as exhausted.
func (p Policy) Next(s State) Step {
	var deferred *Step
	for _, m := range p.dueMessages(s) {
		for _, ch := range p.channels(m.kind) {
			key := m.key + "/" + string(ch)
			if !slices.Contains(s.Reachable, ch) || slices.Contains(s.Sent, key) {
				continue
			}
			step := Step{Action: ActionNotify, At: s.Now, Message: m.kind, Channel: ch, Key: key, Why: m.why}
			if ch == SMS {
				step.At = p.SMSWindow.NextOpen(s.Now, s.Location)
			}
			if !step.At.After(s.Now) {
				return explain(s, step, nil, time.Time{}, "")
			}
			if deferred == nil {
				step.Why += "; waiting for the SMS window"
				deferred = &step
			}
		}
	}
	next := p.nextAction(s)
	if r, ok := p.nextActionReminder(s); ok && r.At.Before(next.At) {
		next = r
	}
	if deferred != nil && !deferred.At.After(next.At) {
		return explain(s, *deferred, []Move{{Rule: "SMS window", From: s.Now, To: deferred.At}}, time.Time{}, "")
	}
	if next.Explain == nil {
		next = explain(s, next, nil, time.Time{}, "")
	}
	return next
}

// actionReminders lists the reminders to update the card, due or not, while
// the current card may not be charged.
func (p Policy) actionReminders(s State) []dueMessage {
	if !s.CardBlocked() || s.BlockedAt.IsZero() || s.recovered() {
		return nil
	}
	out := make([]dueMessage, len(p.ActionReminders))
	for i, d := range p.ActionReminders {
		out[i] = dueMessage{kind: UpdateCardReminder, at: s.BlockedAt.Add(d.D()),
			key: fmt.Sprintf("update-card-%s-%d", s.BlockedAt.UTC().Format("20060102T150405"), i+1),
			why: fmt.Sprintf("reminder %d of %d to update the card, %s after the decline ruled it out", i+1, len(p.ActionReminders), d)}
	}
	return out
}

// nextActionReminder is the first action reminder not yet due, as a step
// on its first reachable channel.
func (p Policy) nextActionReminder(s State) (Step, bool) {
	for _, m := range p.actionReminders(s) {
		if !m.at.After(s.Now) {
			continue
		}
		for _, ch := range p.channels(m.kind) {
			key := m.key + "/" + string(ch)
			if !slices.Contains(s.Reachable, ch) || slices.Contains(s.Sent, key) {
				continue
			}
			at := m.at
			if ch == SMS {
				at = p.SMSWindow.NextOpen(at, s.Location)
			}
			return Step{Action: ActionNotify, At: at, Message: m.kind, Channel: ch, Key: key, Why: m.why}, true
		}
	}
	return Step{}, false
}

// nextAction is the next step other than a message.
func (p Policy) nextAction(s State) Step {
	if s.recovered() {
		if st := s.serviceState(); st != ServiceActive {
			return Step{Action: ActionService, At: s.Now, State: ServiceActive, Key: "service-restored",
				Why: fmt.Sprintf("payment recovered; restore service from %s", st)}
		}
		return Step{Action: ActionClose, At: s.Now, Outcome: Recovered, Why: "payment recovered"}
	}
	if step, ok := p.NextRetry(s); ok {
		return step
	}
	// Exhausted: walk the ladder from the last failed attempt. A schedule
	// cut short (a card that may not be retried, a wait the networks impose)
	// keeps its timeline, so the customer has as long to act as the retries
	// would have taken.
	last := s.lastAttempt()
	from := s.DeclinedAt
	if last != nil {
		from = last.At
	}
	if (s.CardBlocked() || s.slotsUsed() < p.scheduledAttempts()) && len(p.RetryAfter) > 0 {
		from = later(from, s.DeclinedAt.Add(p.RetryAfter[len(p.RetryAfter)-1].D()))
	}
	done := s.ladderDone()
	if done > 0 {
		from = s.ServiceChanges[len(s.ServiceChanges)-1].At
	}
	if done < len(p.Ladder) {
		step := p.Ladder[done]
		return Step{Action: ActionService, At: later(s.Now, from.Add(step.After.D())), State: step.State,
			Key: "service-" + string(step.State), Why: fmt.Sprintf("retries exhausted; ladder step %d of %d", done+1, len(p.Ladder))}
	}
	return Step{Action: ActionClose, At: later(s.Now, from.Add(p.CloseAfter.D())), Outcome: Exhausted,
		Why: "retries exhausted and the service ladder is complete"}
}

// NextRetry is the next charge attempt the schedule allows, ignoring
// messages still to send; ok is false once the schedule is exhausted or the
// run has recovered. Messages use it to tell the customer when we try again.
func (p Policy) NextRetry(s State) (Step, bool) {
	if s.recovered() {
		return Step{}, false
	}
	if s.Gated {
		return p.nextGatedRetry(s)
	}
	last := s.lastAttempt()
	if !s.CardUpdatedAt.IsZero() && (last == nil || last.At.Before(s.CardUpdatedAt)) {
		return Step{Action: ActionRetry, At: later(s.Now, s.CardUpdatedAt.Add(p.CardUpdateRetryDelay.D())),
			Attempt: len(s.Attempts) + 1, Reason: ReasonCardUpdated, Why: "payment method updated"}, true
	}
	if s.CardBlocked() {
		return Step{}, false
	}
	if used := s.slotsUsed(); used < p.scheduledAttempts() {
		at := later(s.Now, s.DeclinedAt.Add(p.RetryAfter[used].D()))
		if s.RetryAfter > 0 {
			from := s.DeclinedAt
			if last != nil {
				from = last.At
			}
			at = later(at, from.Add(s.RetryAfter))
		}
		at = p.Timing.place(later(at, s.NotBefore), s.Location, s.Country, s.DeclineReason)
		if at.After(s.DeclinedAt.Add((p.Window + p.Timing.MaxShift).D())) {
			// A wait the issuer or the networks ask for outlasts the
			// schedule: it is exhausted, not stretched.
			return Step{}, false
		}
		return Step{Action: ActionRetry, At: at,
			Attempt: len(s.Attempts) + 1, Reason: ReasonScheduled,
			Why: fmt.Sprintf("scheduled retry %d of %d, %s after the decline", used+1, p.scheduledAttempts(), p.RetryAfter[used])}, true
	}
	return Step{}, false
}

// nextGatedRetry is NextRetry for gated runs: every planned attempt is
// moved to the first moment MayCharge allows it, or dropped when the gate
// will not allow it on this card at all.
func (p Policy) nextGatedRetry(s State) (Step, bool) {
	last := s.lastAttempt()
	if !s.CardUpdatedAt.IsZero() && (last == nil || last.At.Before(s.CardUpdatedAt)) {
		planned := later(s.Now, s.CardUpdatedAt.Add(p.CardUpdateRetryDelay.D()))
		if at, moves, ok := p.gateAtWhy(s, planned, ReasonCardUpdated, false); ok {
			step := Step{Action: ActionRetry, At: at, Attempt: len(s.Attempts) + 1, Reason: ReasonCardUpdated,
				Why: "payment method updated"}
			return explain(s, step, moves, planned, ""), true
		}
		// Capped or held: the update grants no attempt; the schedule goes on.
	}
	used := s.slotsUsed()
	if used >= p.scheduledAttempts() {
		return Step{}, false
	}
	planned := later(s.Now, s.DeclinedAt.Add(p.RetryAfter[used].D()))
	var moves []Move
	at, rule := p.Timing.placeWhy(planned, s.Location, s.Country, s.DeclineReason)
	if at.After(planned) {
		moves = append(moves, Move{Rule: rule, From: planned, To: at})
	}
	at, gateMoves, ok := p.gateAtWhy(s, at, ReasonScheduled, true)
	moves = append(moves, gateMoves...)
	if !ok || at.After(s.DeclinedAt.Add((p.Window + p.Timing.MaxShift).D())) {
		// The card may not be charged again, or the waits outlast the
		// schedule: it is exhausted, not stretched.
		return Step{}, false
	}
	slot := fmt.Sprintf("%d of %d", used+1, p.scheduledAttempts())
	step := Step{Action: ActionRetry, At: at, Attempt: len(s.Attempts) + 1, Reason: ReasonScheduled,
		Why: fmt.Sprintf("scheduled retry %s, %s after the decline", slot, p.RetryAfter[used])}
	return explain(s, step, moves, planned, slot), true
}

// gateAt is the first moment from at that MayCharge allows, placed in the
// customer's good hours when place is set; ok is false when the gate does
// not allow the charge at any time on this card.
func (p Policy) gateAt(s State, at time.Time, reason Reason, place bool) (time.Time, bool) {
	at, _, ok := p.gateAtWhy(s, at, reason, place)
	return at, ok
}

// gateAtWhy is gateAt and the rules that moved the charge.
func (p Policy) gateAtWhy(s State, at time.Time, reason Reason, place bool) (time.Time, []Move, bool) {
	var moves []Move
	for range 8 {
		probe := s
		probe.Now = at
		v := p.MayCharge(probe, reason)
		if v.Allowed {
			return at, moves, true
		}
		if v.Until.IsZero() || !v.Until.After(at) {
			return time.Time{}, moves, false
		}
		moves = append(moves, Move{Rule: v.Rule, From: at, To: v.Until})
		at = v.Until
		if place {
			placed, rule := p.Timing.placeWhy(at, s.Location, s.Country, s.DeclineReason)
			if placed.After(at) {
				moves = append(moves, Move{Rule: rule, From: at, To: placed})
			}
			at = placed
		}
	}
	return time.Time{}, moves, false
}

type dueMessage struct {
	kind MessageKind
	key  string
	why  string
	at   time.Time // action reminders only: when it is due
}

// dueMessages lists, in the order they happened, the events that call for a
// customer message.
func (p Policy) dueMessages(s State) []dueMessage {
	if !p.customerTold(s) {
		return nil // invisible recovery: retry silently first
	}
	msgs := []dueMessage{{kind: PaymentFailed, key: "payment-failed", why: "first notice of the failed payment"}}
	slots, failed := 0, 0
	for _, a := range s.Attempts {
		if a.Reason != ReasonCardUpdated {
			slots++
		}
		if a.Succeeded {
			continue
		}
		failed++
		if failed <= p.SilentAttempts {
			continue // the first notice covers the silent attempts
		}
		// The last scheduled failure is followed by a ladder notice instead.
		if a.Reason == ReasonCardUpdated || slots < p.scheduledAttempts() || len(p.Ladder) == 0 {
			msgs = append(msgs, dueMessage{kind: RetryFailed, key: fmt.Sprintf("attempt-%d-failed", a.Number), why: fmt.Sprintf("attempt %d was declined", a.Number)})
		}
	}
	for _, c := range s.ServiceChanges {
		switch c.State {
		case ServicePaused:
			msgs = append(msgs, dueMessage{kind: ServicePausedMsg, key: "service-paused", why: "service paused"})
		case ServiceSuspended:
			msgs = append(msgs, dueMessage{kind: ServiceSuspMsg, key: "service-suspended", why: "service suspended"})
		case ServiceCancelled:
			msgs = append(msgs, dueMessage{kind: ServiceCancelMsg, key: "service-cancelled", why: "service cancelled"})
		}
	}
	for _, m := range p.actionReminders(s) {
		if !m.at.After(s.Now) {
			msgs = append(msgs, m)
		}
	}
	if s.recovered() {
		msgs = append(msgs, dueMessage{kind: PaymentRecovered, key: "payment-recovered", why: "payment recovered"})
	}
	return msgs
}

// customerTold reports whether the run has left invisible recovery: enough
// silent attempts failed, the card needs the customer, service changed, or a
// notice already went out (so a later receipt is owed too).
func (p Policy) customerTold(s State) bool {
	if p.SilentAttempts == 0 || s.CardBlocked() || len(s.ServiceChanges) > 0 {
		return true
	}
	failed := 0
	for _, a := range s.Attempts {
		if !a.Succeeded {
			failed++
		}
	}
	if failed >= p.SilentAttempts {
		return true
	}
	return slices.ContainsFunc(s.Sent, func(k string) bool { return strings.HasPrefix(k, "payment-failed/") })
}

// Recovered reports whether the money is in: an attempt succeeded or the
// invoice was paid elsewhere.
func (s State) Recovered() bool { return s.recovered() }

func (s State) recovered() bool {
	if s.PaidOutOfBand {
		return true
	}
	for _, a := range s.Attempts {
		if a.Succeeded {
			return true
		}
	}
	return false
}

func (s State) lastAttempt() *Attempt {
	if len(s.Attempts) == 0 {
		return nil
	}
	return &s.Attempts[len(s.Attempts)-1]
}

func (s State) slotsUsed() int {
	n := 0
	for _, a := range s.Attempts {
		if a.Reason != ReasonCardUpdated {
			n++
		}
	}
	return n
}

// ladderDone counts ladder steps taken; a restore resets nothing because a
// restored run is closing.
func (s State) ladderDone() int {
	n := 0
	for _, c := range s.ServiceChanges {
		if c.State != ServiceActive {
			n++
		}
	}
	return n
}

func (s State) serviceState() ServiceState {
	if len(s.ServiceChanges) == 0 {
		return ServiceActive
	}
	return s.ServiceChanges[len(s.ServiceChanges)-1].State
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
