// Package gateway is how the platform charges a saved payment method again:
// one small interface, with adapters per payment gateway.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
// A declined charge is a result, not an error. Errors are for charges whose
// outcome the gateway did not give:
//   - wrap ErrPermanent for those that can never succeed (a malformed
//     request; ErrNotAuthorized for credentials the gateway refuses), and
//     only when the gateway certainly did not charge;
//   - anything else means "outcome unknown: ask again with the same
//     idempotency key" (timeouts, resets, 429, 5xx, and ErrInProgress for a
//     409 on a key whose first request is still running); return
//     *RetryLater when the gateway named a wait (Retry-After).
//
// The caller never starts the next attempt (a new key) while one is unknown.
type Gateway interface {
	Name() string
	Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error)
}

// ErrPermanent marks gateway errors that retrying cannot fix.
var ErrPermanent = errors.New("permanent gateway error")

// ErrInProgress marks a gateway answering that the first request with this
// idempotency key is still being processed (HTTP 409 on an in-flight key,
// as Stripe and the IETF Idempotency-Key draft answer). The outcome is
// unknown, not failed: ask again later with the same key, never with a new
// one, or the customer may be charged twice.
var ErrInProgress = errors.New("the gateway is still processing this idempotency key")

// RetryLater is an error after which the gateway asked us to wait before
// asking again (a Retry-After header on 409, 429 or 5xx). The outcome is
// unknown; the next call repeats the same idempotency key.
type RetryLater struct {
	Wait time.Duration
	Err  error
}

func (e *RetryLater) Error() string { return fmt.Sprintf("%v (retry after %s)", e.Err, e.Wait) }
func (e *RetryLater) Unwrap() error { return e.Err }

// RetryAfter reads a Retry-After header value (delay seconds or an HTTP
// date) relative to now; false when absent or unreadable. Waits are capped
// at an hour: a gateway cannot park a charge for days.
func RetryAfter(header string, now time.Time) (time.Duration, bool) {
	header = strings.TrimSpace(header)
	if header == "" {
		return 0, false
	}
	var wait time.Duration
	if secs, err := strconv.Atoi(header); err == nil {
		wait = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(header); err == nil {
		wait = at.Sub(now)
	} else {
		return 0, false
	}
	return min(max(wait, 0), time.Hour), true
}

// ErrNotAuthorized marks a gateway refusing our credentials (a wrong,
// revoked or restricted API key): our configuration is at fault, not the
// customer's card, so the run holds for ops instead of counting an attempt.
// It is also an ErrPermanent.
var ErrNotAuthorized = fmt.Errorf("%w: the gateway refused our credentials", ErrPermanent)
