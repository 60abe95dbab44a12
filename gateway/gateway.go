// Package gateway is how the platform charges a saved payment method again:
// one small interface, with adapters per payment gateway.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ChargeRequest asks a gateway to collect an unpaid invoice once.
type ChargeRequest struct {
	// IdempotencyKey is derived from the run and the dunning attempt number;
	// the gateway must return the first result for a repeated key rather
	// than charge again.
	IdempotencyKey string
	// Attempt is the dunning attempt number (1-based), for gateways that
	// report it back to the merchant.
	Attempt       int
	Tenant        string
	InvoiceID     string
	CustomerID    string
	PaymentMethod string
	// AmountMinor is the amount in the currency's minor unit.
	AmountMinor int64
	Currency    string
}

// Outcome is how a charge ended at the gateway.
type Outcome string

// Outcomes.
const (
	Succeeded Outcome = "succeeded"
	Declined  Outcome = "declined"
	// Failed means the gateway could not be asked (errors that retries did
	// not overcome); the attempt is recorded, no money moved.
	Failed Outcome = "failed"
	// Skipped means no charge was sent: a rule (e.g. a card-network retry
	// limit) stopped it. Only the workflow records it.
	Skipped Outcome = "skipped"
)

// ChargeResult is the gateway's answer for a charge the gateway processed.
type ChargeResult struct {
	Outcome     Outcome
	DeclineCode string
	AdviceCode  string
	Message     string
	// NetworkDeclineCode is the card network's raw response code (e.g. "51")
	// and NetworkAdviceCode its advice (for Mastercard, the Merchant Advice
	// Code such as "03" or "21"), where the gateway reports them.
	NetworkDeclineCode string
	NetworkAdviceCode  string
	// RequiresAction is set when the customer must act (e.g. 3-D Secure).
	RequiresAction bool
	// Ref is the gateway's reference (charge, payment intent, ...).
	Ref string
	At  time.Time
}

// Gateway charges saved payment methods.
//
// A declined charge is a result, not an error. Errors are for charges the
// gateway did not process: wrap ErrPermanent for those that can never
// succeed (bad credentials, a malformed request); anything else is retried.
type Gateway interface {
	Name() string
	Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error)
}

// ErrPermanent marks gateway errors that retrying cannot fix.
var ErrPermanent = errors.New("permanent gateway error")

// ErrNotAuthorized marks a gateway refusing our credentials (a wrong,
// revoked or restricted API key): our configuration is at fault, not the
// customer's card, so the run holds for ops instead of counting an attempt.
// It is also an ErrPermanent.
var ErrNotAuthorized = fmt.Errorf("%w: the gateway refused our credentials", ErrPermanent)
