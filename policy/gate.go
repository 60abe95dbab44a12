package policy

import (
	"fmt"
	"time"

	"github.com/dunningco/dunning/decline"
)

// Verdict is the gate's answer to "may this card be charged now?".
type Verdict struct {
	Allowed bool `json:"allowed"`
	// Rule says in words why the charge may not go ahead.
	Rule string `json:"rule,omitempty"`
	// Until is the earliest moment the rule allows the charge; zero with
	// Allowed false means not on this card (a new payment method is needed)
	// or not in this run.
	Until time.Time `json:"until,omitzero"`
}

func refuse(until time.Time, format string, args ...any) Verdict {
	return Verdict{Rule: fmt.Sprintf(format, args...), Until: until}
}

// MayCharge is the one gate every charge passes, whatever asks for it: the
// schedule, an expedite, a payment-method update. It answers for s.Now and
// s.Card, in this order:
//
//  1. the invoice is already paid: never;
//  2. the latest decline on this card rules it out (hard, customer action,
//     do not try again, Visa category 1, Mastercard MAC 03/21): not until
//     the payment method changes;
//  3. a card-network no-retry window (NoRetryUntil) or the shared card
//     budget (NotBefore): not before it ends;
//  4. the policy's caps: scheduled and expedited attempts share
//     MaxAttempts; attempts after payment-method updates are capped by
//     MaxCardUpdateAttempts;
//  5. the issuer's own wait (RetryAfter, e.g. MAC 25 = 24 hours) and the
//     minimum gap between two attempts on one card (MinAttemptGap; a
//     shorter issuer wait such as MAC 24's hour replaces it).
func (p Policy) MayCharge(s State, reason Reason) Verdict {
	if s.recovered() {
		return refuse(time.Time{}, "the invoice is already paid")
	}
	if s.CardBlocked() {
		why := s.DeclineReason
		if why == "" {
			why = string(s.Advice)
		}
		return refuse(time.Time{}, "the card's latest decline (%s, advice %s) rules out charging it again; a new payment method is needed", why, s.Advice)
	}
	if s.Now.Before(s.NoRetryUntil) {
		return refuse(s.NoRetryUntil, "the card network forbids retrying this card until %s", s.NoRetryUntil.UTC().Format(time.RFC3339))
	}
	if s.Now.Before(s.NotBefore) {
		return refuse(s.NotBefore, "the card-network budget for this card allows no attempt until %s", s.NotBefore.UTC().Format(time.RFC3339))
	}
	switch reason {
	case ReasonCardUpdated:
		if n := s.cardUpdateAttempts(); p.MaxCardUpdateAttempts > 0 && n >= p.MaxCardUpdateAttempts {
			return refuse(time.Time{}, "policy cap: %d of %d attempts after payment-method updates used", n, p.MaxCardUpdateAttempts)
		}
	default:
		if n := s.slotsUsed(); n >= p.MaxAttempts {
			return refuse(time.Time{}, "policy cap: %d of %d scheduled and expedited attempts used", n, p.MaxAttempts)
		}
	}
	if at, rule := p.cardReadyAt(s); s.Now.Before(at) {
		return refuse(at, "%s: not before %s", rule, at.UTC().Format(time.RFC3339))
	}
	return Verdict{Allowed: true}
}

// cardReadyAt is the earliest moment the current card may be tried again
// after its last attempt (or the decline, for the issuer's wait), and the
// rule that sets it. Zero when nothing holds it back.
func (p Policy) cardReadyAt(s State) (time.Time, string) {
	var (
		at   time.Time
		rule string
	)
	last := s.lastOnCard()
	if s.RetryAfter > 0 {
		from := s.DeclinedAt
		if last != nil {
			from = last.At
		}
		at, rule = from.Add(s.RetryAfter), fmt.Sprintf("the issuer asked to wait %s before the next attempt", Duration(s.RetryAfter))
	}
	if last != nil && p.MinAttemptGap > 0 {
		gap := p.MinAttemptGap.D()
		if s.Advice == decline.RetryLater && s.RetryAfter > 0 && s.RetryAfter < gap {
			// The issuer named a shorter wait (MAC 24: one hour): it rules.
			gap = s.RetryAfter
		}
		if g := last.At.Add(gap); g.After(at) {
			at, rule = g, fmt.Sprintf("minimum gap of %s between attempts on one card", Duration(gap))
		}
	}
	return at, rule
}

// lastOnCard is the latest attempt made on the current card. Attempts that
// name no card (runs from before cards were tracked) count as on it.
func (s State) lastOnCard() *Attempt {
	for i := len(s.Attempts) - 1; i >= 0; i-- {
		if a := &s.Attempts[i]; a.Card == "" || s.Card == "" || a.Card == s.Card {
			return a
		}
	}
	return nil
}

func (s State) cardUpdateAttempts() int {
	n := 0
	for _, a := range s.Attempts {
		if a.Reason == ReasonCardUpdated {
			n++
		}
	}
	return n
}
