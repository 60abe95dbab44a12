package gateway

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Names of the gateways the platform ships; each adapter's Name returns one.
const (
	NameSimulator = "simulator"
	NameStripe    = "stripe"
	NameHTTP      = "http"
)

// MaxPaymentMethodLen bounds a payment-method reference for every gateway:
// Stripe's object IDs are at most 255 characters, and the reference is
// stored in the ledger, sent in provider requests and shown in the status.
const MaxPaymentMethodLen = 255

// MethodFormat checks a payment-method reference (the saved payment method
// a retry charges) the way one gateway reads it, before any run exists. An
// empty reference is allowed by every shipped format: the gateway then uses
// the customer's default.
type MethodFormat func(paymentMethod string) error

// Formats maps each gateway the platform ships to its payment-method format.
// A deployment configures a subset (see worker.Providers.GatewayNames).
func Formats() map[string]MethodFormat {
	return map[string]MethodFormat{
		NameSimulator: ValidateScript,
		NameStripe:    StripePaymentMethod,
		NameHTTP:      OpaquePaymentMethod,
	}
}

// FormatsFor is Formats restricted to names; a name the platform does not
// ship is an error, so a typo in configuration fails at start-up.
func FormatsFor(names []string) (map[string]MethodFormat, error) {
	all := Formats()
	out := make(map[string]MethodFormat, len(names))
	for _, name := range names {
		f, ok := all[name]
		if !ok {
			known := make([]string, 0, len(all))
			for k := range all {
				known = append(known, k)
			}
			slices.Sort(known)
			return nil, fmt.Errorf("gateway %q is not one the platform ships (%s)", name, strings.Join(known, ", "))
		}
		out[name] = f
	}
	return out, nil
}

// stripeMethod is a Stripe PaymentMethod (pm_), Card (card_) or Source
// (src_) ID. Stripe's IDs are a prefix and letters, digits and underscores
// (test-mode aliases such as pm_card_visa included).
var stripeMethod = regexp.MustCompile(`^(pm|card|src)_[A-Za-z0-9_]+$`)

// StripePaymentMethod is Stripe's format: empty (the invoice's, the
// subscription's or the customer's default) or a pm_, card_ or src_ ID of
// at most 255 characters.
func StripePaymentMethod(pm string) error {
	switch {
	case pm == "":
		return nil
	case len(pm) > MaxPaymentMethodLen:
		return fmt.Errorf("a Stripe payment method ID is at most %d characters, this one is %d", MaxPaymentMethodLen, len(pm))
	case !stripeMethod.MatchString(pm):
		return fmt.Errorf("%q is not a Stripe payment method ID (pm_..., card_... or src_..., letters, digits and _)", truncate(pm))
	}
	return nil
}

// OpaquePaymentMethod is the format of gateways whose references we pass on
// unread (the in-house HTTP gateway): printable ASCII without spaces, at
// most 255 characters, so it travels safely in JSON, headers and logs.
func OpaquePaymentMethod(pm string) error {
	if len(pm) > MaxPaymentMethodLen {
		return fmt.Errorf("a payment method reference is at most %d characters, this one is %d", MaxPaymentMethodLen, len(pm))
	}
	for _, r := range pm {
		if r <= ' ' || r > '~' {
			return fmt.Errorf("a payment method reference is printable ASCII without spaces; %q is not", truncate(pm))
		}
	}
	return nil
}

// truncate keeps error messages short whatever the sender sent.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
