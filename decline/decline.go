// Package decline turns the codes a payment gateway and the card networks
// return for a declined charge into one normalized model: how serious the
// decline is (Category), what to do about the card (Advice), how long to wait
// or stay away, and which input codes led there (Sources).
//
// It is pure Go: no I/O, no clock, no Temporal. The dunning workflow calls
// Classify directly; the same input always gives the same answer.
//
// # Inputs
//
//   - Stripe decline_code (DeclineCode) and advice_code (AdviceCode). Every
//     gateway adapter speaks Stripe's vocabulary (the HTTP billing callback
//     and the simulator use the same names), so the codes are read the same
//     way whatever Input.Gateway says.
//   - The card network's raw response code (NetworkDeclineCode), read as an
//     ISO 8583 field 39 response code on every network, and additionally
//     placed in Visa's decline categories when Network is "visa".
//   - The network's advice (NetworkAdviceCode), read as a Mastercard Merchant
//     Advice Code only when Network is "mastercard": the same two digits mean
//     other things elsewhere, so they are ignored for other networks.
//   - RequiresAction, the gateway's flag for a charge waiting on the customer
//     (3-D Secure).
//
// # Precedence
//
// Every recognised code contributes an outcome; they are combined so that
// the more conservative outcome wins whenever codes disagree about retrying:
//
//  1. "Never retry" is sticky. Mastercard MAC 03 or 21 and a Visa category 1
//     response code (which also carry a 30-day no-retry window), then Stripe
//     advice_code do_not_try_again, then any hard decline code: if any
//     recognised code says stop, the outcome is stop, whatever else says
//     retry.
//  2. Otherwise the highest layer present decides the advice: other
//     Mastercard Merchant Advice Codes, then the Stripe advice_code, then the
//     decline code / ISO response code / Visa category. Within one layer the
//     most conservative advice wins (stop > update_payment_method >
//     authenticate > retry_later > retry).
//
// Category always follows the final advice (stop is hard,
// update_payment_method and authenticate are customer_action, retry and
// retry_later are soft), so the two never contradict each other. Reason says
// why the charge failed and comes from the decline code when one is
// recognised; when the outcome is stop but the decline code alone would have
// retried (insufficient_funds with MAC 03), Reason names the code that
// forbade retrying instead.
//
// # Unknown codes
//
// When no input code is recognised, Classify returns the safe default:
// Category "unknown", Advice "retry", Known false. Callers count these and
// apply a conservative schedule; Unrecognized lists the codes that were
// present but not in the mapping, so new codes surface in logs.
package decline

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Category is how serious a decline is.
type Category string

// Categories.
const (
	// Hard: the card will not be charged again; ask for a new payment method.
	Hard Category = "hard"
	// Soft: the issuer may approve later; retry on the schedule.
	Soft Category = "soft"
	// CustomerAction: the customer must act first (authenticate, fix or
	// replace the card details).
	CustomerAction Category = "customer_action"
	// Unknown: no input code was recognised; treated as soft (see Known).
	Unknown Category = "unknown"
)

// Advice says what to do about the card.
type Advice string

// Advice values, from least to most conservative.
const (
	// Retry on the normal schedule.
	Retry Advice = "retry"
	// RetryLater: the issuer cannot approve now; wait at least RetryAfter
	// (when set) before the next attempt on this card.
	RetryLater Advice = "retry_later"
	// Authenticate: the customer must complete authentication (3-D Secure)
	// on-session; off-session retries will keep failing.
	Authenticate Advice = "authenticate"
	// UpdatePaymentMethod: ask the customer to update or replace the card;
	// retry once they have.
	UpdatePaymentMethod Advice = "update_payment_method"
	// Stop: never retry this card. A new payment method may be charged.
	Stop Advice = "stop"
)

// severity orders advice from least (retry) to most (stop) conservative.
func (a Advice) severity() int {
	switch a {
	case RetryLater:
		return 1
	case Authenticate:
		return 2
	case UpdatePaymentMethod:
		return 3
	case Stop:
		return 4
	}
	return 0
}

// RulesOutCard reports whether the advice forbids charging the card again
// until the payment method changes or the customer acts: stop, update the
// payment method, authenticate.
func (a Advice) RulesOutCard() bool {
	switch a {
	case Stop, UpdatePaymentMethod, Authenticate:
		return true
	}
	return false
}

// categoryOf is the category that goes with an advice.
func categoryOf(a Advice) Category {
	switch a {
	case Stop:
		return Hard
	case UpdatePaymentMethod, Authenticate:
		return CustomerAction
	}
	return Soft
}

// Source kinds name where an input code came from.
const (
	KindStripeDecline = "stripe_decline_code"
	KindStripeAdvice  = "stripe_advice_code"
	KindGateway       = "gateway"
	KindISO8583       = "iso8583"
	KindVisa          = "visa"
	KindMastercardMAC = "mastercard_mac"
)

// Networks Classify treats specially; any other value (including "amex" and
// "") gets the network-neutral ISO 8583 reading only.
const (
	NetworkVisa       = "visa"
	NetworkMastercard = "mastercard"
	NetworkAmex       = "amex"
)

// Source is one input code, normalized, with the kind of code it is.
type Source struct {
	Kind string `json:"kind"`
	Code string `json:"code"`
}

// String renders "kind:code".
func (s Source) String() string { return s.Kind + ":" + s.Code }

// Decline is the normalized reading of one declined charge.
type Decline struct {
	Category Category `json:"category"`
	// Reason is the normalized reason, e.g. "insufficient_funds",
	// "lost_card", "do_not_honor", "expired_card", "authentication_required";
	// "unknown" when nothing was recognised.
	Reason string `json:"reason"`
	Advice Advice `json:"advice"`
	// RetryAfter is the minimum wait before the next attempt on this card
	// when Advice is retry_later (Mastercard MAC 24 = 1 hour ... MAC 30 = 10
	// days); 0 otherwise, and 0 when the advice names no wait.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// VisaCategory is Visa's decline category (1-4) when the network is Visa
	// and a response code is known; 0 otherwise.
	VisaCategory int `json:"visa_category,omitempty"`
	// NoRetryWindow is how long the card networks forbid any retry on this
	// card (30 days for Mastercard MAC 03/21 and Visa category 1), even if
	// the customer says they fixed the card; 0 when no network rule applies.
	NoRetryWindow time.Duration `json:"no_retry_window,omitempty"`
	// Sources lists every recognised input code, in input order:
	// Stripe decline code, Stripe advice code, gateway flag, ISO response
	// code, its Visa category, Mastercard advice code.
	Sources []Source `json:"sources,omitempty"`
	// Unrecognized lists input codes that were present but are not in the
	// mapping; they did not affect the outcome.
	Unrecognized []Source `json:"unrecognized,omitempty"`
	// Known is false when no input code was recognised and the safe default
	// (unknown, retry) was applied.
	Known bool `json:"known"`
}

// Retryable reports whether the card may be charged again without the
// customer acting first.
func (d Decline) Retryable() bool { return d.Advice == Retry || d.Advice == RetryLater }

// String is a one-line summary for logs, e.g.
// "soft/retry_later reason=insufficient_funds after=1h0m0s visa_category=2 sources=[...]".
func (d Decline) String() string {
	var b strings.Builder
	b.WriteString(string(d.Category))
	b.WriteByte('/')
	b.WriteString(string(d.Advice))
	b.WriteString(" reason=")
	b.WriteString(d.Reason)
	if d.RetryAfter > 0 {
		b.WriteString(" after=")
		b.WriteString(d.RetryAfter.String())
	}
	if d.NoRetryWindow > 0 {
		b.WriteString(" no_retry_window=")
		b.WriteString(d.NoRetryWindow.String())
	}
	if d.VisaCategory > 0 {
		fmt.Fprintf(&b, " visa_category=%d", d.VisaCategory)
	}
	writeSources(&b, " sources=", d.Sources)
	writeSources(&b, " unrecognized=", d.Unrecognized)
	if !d.Known {
		b.WriteString(" known=false")
	}
	return b.String()
}

func writeSources(b *strings.Builder, label string, ss []Source) {
	if len(ss) == 0 {
		return
	}
	b.WriteString(label)
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.String())
	}
	b.WriteByte(']')
}

// LogValue renders the decline as a slog group.
func (d Decline) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("category", string(d.Category)),
		slog.String("advice", string(d.Advice)),
		slog.String("reason", d.Reason),
		slog.Bool("known", d.Known),
	}
	if d.RetryAfter > 0 {
		attrs = append(attrs, slog.Duration("retry_after", d.RetryAfter))
	}
	if d.NoRetryWindow > 0 {
		attrs = append(attrs, slog.Duration("no_retry_window", d.NoRetryWindow))
	}
	if d.VisaCategory > 0 {
		attrs = append(attrs, slog.Int("visa_category", d.VisaCategory))
	}
	if len(d.Sources) > 0 {
		attrs = append(attrs, slog.String("sources", sourceList(d.Sources)))
	}
	if len(d.Unrecognized) > 0 {
		attrs = append(attrs, slog.String("unrecognized", sourceList(d.Unrecognized)))
	}
	return slog.GroupValue(attrs...)
}

func sourceList(ss []Source) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.String())
	}
	return b.String()
}

// Input is what the gateway reported for one declined charge.
type Input struct {
	// Gateway names the gateway that reported the decline. The codes are
	// read the same way for every gateway; it is carried for callers.
	Gateway string
	// DeclineCode is Stripe's decline_code (or the same vocabulary from
	// another adapter).
	DeclineCode string
	// AdviceCode is Stripe's advice_code.
	AdviceCode string
	// NetworkDeclineCode is the network's raw response code, e.g. "51".
	NetworkDeclineCode string
	// NetworkAdviceCode is the network's advice; for Mastercard the Merchant
	// Advice Code, e.g. "03".
	NetworkAdviceCode string
	// Network is the card network: "visa", "mastercard", "amex" or "".
	Network string
	// RequiresAction is set when the gateway says the customer must act
	// (3-D Secure) before the charge can succeed.
	RequiresAction bool
}

// reasonUnknown is the Reason of the safe default.
const reasonUnknown = "unknown"

// tier is a contribution's place in the precedence order.
type tier int

const (
	tierCode         tier = iota + 1 // decline code, ISO code, Visa category 2-4, gateway flag
	tierStripeAdvice                 // Stripe advice_code try_again_later / confirm_card_data
	tierMAC                          // Mastercard MAC other than 03/21
	tierStripeStop                   // Stripe advice_code do_not_try_again
	tierNetworkNever                 // Mastercard MAC 03/21, Visa category 1
)

func tierOf(e *Entry) tier {
	switch e.Kind {
	case KindMastercardMAC:
		if e.Advice == Stop {
			return tierNetworkNever
		}
		return tierMAC
	case KindVisa:
		if e.VisaCategory == 1 {
			return tierNetworkNever
		}
	case KindStripeAdvice:
		if e.Advice == Stop {
			return tierStripeStop
		}
		return tierStripeAdvice
	}
	return tierCode
}

// maxContrib bounds the contributions one input can make: Stripe decline
// code, Stripe advice code, gateway flag, ISO code, Visa category, MAC.
const maxContrib = 6

// Classify reads one declined charge. It is total: every input, however
// malformed, gets an answer (the safe default when nothing is recognised).
func Classify(in Input) Decline {
	var (
		cs           [maxContrib]*Entry
		n            int
		unrecognized []Source
		visaCategory int
	)
	add := func(e *Entry) {
		cs[n] = e
		n++
	}
	miss := func(kind, code string) {
		unrecognized = append(unrecognized, Source{Kind: kind, Code: code})
	}
	network := strings.ToLower(strings.TrimSpace(in.Network))

	if code := normStripe(in.DeclineCode); code != "" {
		if e, ok := stripeDeclineIndex[code]; ok {
			add(e)
		} else {
			miss(KindStripeDecline, code)
		}
	}
	if code := normStripe(in.AdviceCode); code != "" {
		if e, ok := stripeAdviceIndex[code]; ok {
			add(e)
		} else {
			miss(KindStripeAdvice, code)
		}
	}
	if in.RequiresAction {
		add(&requiresActionEntry)
	}
	if code := normNetworkCode(in.NetworkDeclineCode); code != "" && code != isoApproved {
		isoEntry, isoKnown := isoIndex[code]
		if isoKnown {
			add(isoEntry)
		} else {
			miss(KindISO8583, code)
		}
		if network == NetworkVisa {
			visaCategory = 4 // Visa's "everything else"
			if e, ok := visaIndex[code]; ok {
				add(e)
				visaCategory = e.VisaCategory
			} else if e, ok := visaGenericIndex[code]; ok {
				add(e)
			}
		}
	}
	if network == NetworkMastercard {
		if code := normNetworkCode(in.NetworkAdviceCode); code != "" {
			if e, ok := macIndex[code]; ok {
				add(e)
			} else {
				miss(KindMastercardMAC, code)
			}
		}
	}

	d := resolve(cs[:n])
	d.VisaCategory = visaCategory
	d.Unrecognized = unrecognized
	if n > 0 {
		d.Sources = make([]Source, n)
		for i, e := range cs[:n] {
			d.Sources[i] = Source{Kind: e.Kind, Code: e.Code}
		}
	}
	return d
}

// resolve combines the recognised contributions (see the package comment).
func resolve(cs []*Entry) Decline {
	if len(cs) == 0 {
		return Decline{Category: Unknown, Advice: Retry, Reason: reasonUnknown}
	}
	var (
		decisive *Entry // highest tier, then most conservative, then first
		topStop  *Entry // highest-tier stop
		bestCode *Entry // most conservative decline-code contribution
		window   time.Duration
	)
	for _, e := range cs {
		t := tierOf(e)
		if decisive == nil || t > tierOf(decisive) ||
			(t == tierOf(decisive) && e.Advice.severity() > decisive.Advice.severity()) {
			decisive = e
		}
		if e.Advice == Stop && (topStop == nil || t > tierOf(topStop)) {
			topStop = e
		}
		if t == tierCode && (bestCode == nil || e.Advice.severity() > bestCode.Advice.severity()) {
			bestCode = e
		}
		window = max(window, e.NoRetryWindow)
	}

	d := Decline{Known: true, Advice: decisive.Advice, Reason: decisive.Reason}
	if topStop != nil {
		d.Advice = Stop
	}
	switch {
	case d.Advice == Stop && (bestCode == nil || bestCode.Advice != Stop):
		d.Reason = topStop.Reason
	case bestCode != nil:
		d.Reason = bestCode.Reason
	}
	d.Category = categoryOf(d.Advice)
	if d.Advice == Stop {
		d.NoRetryWindow = window
	}
	if d.Advice == RetryLater {
		for _, e := range cs {
			if e.Advice == RetryLater {
				d.RetryAfter = max(d.RetryAfter, e.RetryAfter)
			}
		}
	}
	return d
}

// isoApproved is ISO 8583 "approved": not a decline, so it contributes
// nothing (a gateway may report it with a decline it made itself, e.g. a
// charge blocked after the issuer approved it).
const isoApproved = "00"

// normStripe normalizes a Stripe code: trimmed, lower-case.
func normStripe(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

// normNetworkCode normalizes an ISO 8583 / Visa / MAC code: trimmed,
// upper-case ("r0" -> "R0"), a lone digit padded to two ("5" -> "05").
func normNetworkCode(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) == 1 && s[0] >= '0' && s[0] <= '9' {
		return "0" + s
	}
	return s
}

// NeverAgain is how long a card stays blocked after a decline that says
// never to retry it (hard declines, do_not_try_again): for good, in
// practice, while keeping the ledger's timestamps finite.
const NeverAgain = 10 * 365 * 24 * time.Hour

// BlockFor is how long every run must stay away from the card after this
// decline: NeverAgain when the advice is stop, the networks' no-retry
// window when one applies, else 0 (the card may be retried).
func (d Decline) BlockFor() time.Duration {
	if d.Advice == Stop {
		return max(NeverAgain, d.NoRetryWindow)
	}
	return d.NoRetryWindow
}
