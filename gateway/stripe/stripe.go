// Package stripe collects unpaid Stripe invoices again, off-session, through
// the official stripe-go client.
//
// # How a charge is made
//
// Each Charge makes two requests, plus a read of the invoice or its
// PaymentIntent when the pay call leaves the outcome unclear:
//
//  1. GET /v1/invoices/{id}. The invoice must be open (or uncollectible,
//     which Stripe still lets you pay), and its amount_remaining and currency
//     must equal the request's AmountMinor and Currency. Otherwise the charge
//     fails with a permanent error and nothing is charged. A paid invoice
//     skips the amount check because nothing is left to collect. The pay call
//     below then either replays the first answer for this idempotency key or
//     is refused as already paid.
//  2. POST /v1/invoices/{id}/pay with off_session=true, payment_method when
//     the request names one (otherwise Stripe uses the invoice's, the
//     subscription's or the customer's default), expand[]=payments, and the
//     request's IdempotencyKey as the Idempotency-Key header.
//
// The pay endpoint is used rather than creating or confirming a
// PaymentIntent: Stripe charges exactly the invoice's remaining amount,
// attaches the payment to the invoice and drives its PaymentIntent. If the
// invoice is already paid, the call fails instead of charging twice. That
// protection belongs to the invoice, so it still holds after Stripe has
// forgotten an idempotency key (24 hours).
//
// The pay endpoint takes no amount, so it cannot refuse to charge an amount
// the platform did not expect. The amount can only be checked before paying,
// so it is checked on the GET. That costs one read per attempt. It also
// leaves a short window between the read and the pay. A finalized invoice's
// total cannot change, and amount_remaining only goes down (partial payments,
// credit notes), so anything that happens in that window can make Stripe
// charge less than was checked, never more. Checking amount_remaining in the
// pay response instead would catch a mismatch only after the money had moved.
//
// # How answers map to results
//
//   - Invoice paid: Succeeded, Ref is the invoice ID. The PaymentIntent and
//     charge IDs are in Result when Stripe returns them.
//   - "Invoice is already paid" (HTTP 400) once a read confirms the invoice
//     is paid: Succeeded. The money is in, whether from this key's earlier
//     call whose answer was lost or from another payment. Reporting an error
//     would make the platform keep dunning a customer who has paid.
//   - card_error (card_declined with any decline_code, expired_card,
//     incorrect_cvc, incorrect_number, processing_error, ...): Declined.
//     DeclineCode is decline_code, or code when there is none. AdviceCode is
//     advice_code, and Message is Stripe's message.
//   - authentication_required and invoice_payment_intent_requires_action:
//     Declined with DeclineCode "authentication_required" and
//     Result.RequiresAction. The customer has to complete 3-D Secure on
//     session. Retrying off-session cannot succeed.
//   - PaymentIntent processing (bank debits and other asynchronous methods):
//     a retryable error. The payment may still succeed, so it is neither a
//     decline nor permanent. A retry with the same key reads the invoice
//     again and reports Succeeded once it is paid.
//   - HTTP 409 (a concurrent request with the same key), 429, 5xx, api_error,
//     network errors and a Stripe-Should-Retry: true header: retryable
//     errors. The caller repeats the call with the same idempotency key.
//   - HTTP 401 (bad API key), 403 (key lacks permission), 404 (no such
//     invoice), other 400s, and idempotency_error with a status other than
//     409 (the key was reused with different parameters): errors wrapping
//     gateway.ErrPermanent.
//
// stripe-go's own network retries are turned off. The caller's retry policy
// already repeats a failed charge with the same idempotency key, with its
// own backoff and a record in the workflow history. Retrying inside the
// client as well would multiply the attempts.
//
// Errors for Stripe's error answers carry the status, type, code, message
// and request ID. They never carry the JSON payload, which can hold payment
// method details, or the API key.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"

	"github.com/dunningco/dunning/gateway"
)

// Config configures a Stripe gateway.
type Config struct {
	// APIKey is a secret (sk_...) or restricted (rk_...) key. A restricted key
	// needs write access to invoices and read access to payment intents.
	APIKey string
	// BaseURL overrides https://api.stripe.com, e.g. for stripe-mock.
	BaseURL string
	// HTTPClient defaults to stripe-go's client (80 second timeout).
	HTTPClient *http.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Gateway charges unpaid Stripe invoices. It implements gateway.Gateway.
type Gateway struct {
	client *stripeapi.Client
	apiKey string // kept only to scrub it from error messages
	log    *slog.Logger
	now    func() time.Time
}

var _ gateway.Gateway = (*Gateway)(nil)

// New returns a Stripe gateway.
func New(cfg Config) (*Gateway, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, errors.New("stripe: an API key is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	backend := &stripeapi.BackendConfig{
		HTTPClient:        cfg.HTTPClient,
		LeveledLogger:     sdkLogger{log: logger, apiKey: cfg.APIKey},
		MaxNetworkRetries: stripeapi.Int64(0),
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("stripe: base URL %q must be an absolute http or https URL", cfg.BaseURL)
		}
		backend.URL = stripeapi.String(strings.TrimRight(cfg.BaseURL, "/"))
	}
	client := stripeapi.NewClient(cfg.APIKey, stripeapi.WithBackends(stripeapi.NewBackendsWithConfig(backend)))
	return &Gateway{client: client, apiKey: cfg.APIKey, log: logger, now: time.Now}, nil
}

// Name implements gateway.Gateway.
func (g *Gateway) Name() string { return "stripe" }

// Charge implements gateway.Gateway; see ChargeDetailed.
func (g *Gateway) Charge(ctx context.Context, req gateway.ChargeRequest) (gateway.ChargeResult, error) {
	res, err := g.ChargeDetailed(ctx, req)
	out := res.ChargeResult
	out.NetworkDeclineCode, out.NetworkAdviceCode, out.RequiresAction = res.NetworkDeclineCode, res.NetworkAdviceCode, res.RequiresAction
	return out, err
}

// ChargeDetailed pays the unpaid invoice req.InvoiceID off-session, as the
// package documentation describes. It is Charge with the Stripe details that
// gateway.ChargeResult has no fields for.
func (g *Gateway) ChargeDetailed(ctx context.Context, req gateway.ChargeRequest) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, fmt.Errorf("stripe: %w: %v", gateway.ErrPermanent, err)
	}
	inv, err := g.client.V1Invoices.Retrieve(ctx, req.InvoiceID, &stripeapi.InvoiceRetrieveParams{})
	if err != nil {
		return Result{}, fmt.Errorf("stripe: retrieve invoice %s: %w", req.InvoiceID, g.classify(err))
	}
	if err := checkCollectable(inv, req); err != nil {
		return Result{}, err
	}

	params := &stripeapi.InvoicePayParams{OffSession: stripeapi.Bool(true)}
	params.IdempotencyKey = stripeapi.String(req.IdempotencyKey)
	if req.PaymentMethod != "" {
		params.PaymentMethod = stripeapi.String(req.PaymentMethod)
	}
	params.AddExpand("payments")
	paid, err := g.client.V1Invoices.Pay(ctx, req.InvoiceID, params)
	if err != nil {
		return g.payFailed(ctx, req, inv.Status == stripeapi.InvoiceStatusPaid, err)
	}
	return g.afterPay(ctx, req, paid)
}

// payFailed maps an error answer to the pay call.
func (g *Gateway) payFailed(ctx context.Context, req gateway.ChargeRequest, wasPaid bool, payErr error) (Result, error) {
	var se *stripeapi.Error
	if errors.As(payErr, &se) && se.HTTPStatusCode == http.StatusBadRequest && se.Type == stripeapi.ErrorTypeInvalidRequest {
		// Stripe refuses to pay a paid invoice ("Invoice is already paid").
		// The message is not a stable contract, so a read decides.
		paid := wasPaid
		if !paid {
			inv, err := g.client.V1Invoices.Retrieve(ctx, req.InvoiceID, &stripeapi.InvoiceRetrieveParams{})
			if err != nil {
				// Whether the money is in is unknown; the read's own error
				// decides whether the caller retries (same key, safe).
				return Result{}, fmt.Errorf("stripe: pay invoice %s was refused (%s); re-reading the invoice failed: %w",
					req.InvoiceID, g.scrub(se.Msg), g.classify(err))
			}
			paid = inv.Status == stripeapi.InvoiceStatusPaid
		}
		if paid {
			res := Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Succeeded, Ref: req.InvoiceID,
				Message: "invoice is already paid", At: g.now().UTC()}}
			g.log.InfoContext(ctx, "stripe invoice already paid", "invoice", req.InvoiceID, "key", req.IdempotencyKey)
			return res, nil
		}
	}
	res, err := MapError(payErr)
	if err != nil {
		return Result{}, fmt.Errorf("stripe: pay invoice %s: %w", req.InvoiceID, g.scrubErr(err))
	}
	res.Ref = req.InvoiceID
	res.Message = g.scrub(res.Message)
	res.At = g.now().UTC()
	g.log.InfoContext(ctx, "stripe charge declined", "invoice", req.InvoiceID, "key", req.IdempotencyKey,
		"decline_code", res.DeclineCode, "advice_code", res.AdviceCode, "network_decline_code", res.NetworkDeclineCode,
		"network_advice_code", res.NetworkAdviceCode, "requires_action", res.RequiresAction, "payment_intent", res.PaymentIntentID)
	return res, nil
}

// afterPay maps a successful answer to the pay call: usually a paid invoice.
func (g *Gateway) afterPay(ctx context.Context, req gateway.ChargeRequest, inv *stripeapi.Invoice) (Result, error) {
	piID, chargeID := paymentIDs(inv)
	succeeded := Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Succeeded, Ref: inv.ID, Message: "invoice paid",
		At: g.now().UTC()}, PaymentIntentID: piID, ChargeID: chargeID}
	if succeeded.Ref == "" {
		succeeded.Ref = req.InvoiceID
	}
	switch inv.Status {
	case stripeapi.InvoiceStatusPaid:
		return succeeded, nil
	case stripeapi.InvoiceStatusOpen, stripeapi.InvoiceStatusUncollectible:
	default:
		return Result{}, fmt.Errorf("stripe: %w: invoice %s is %s after paying it", gateway.ErrPermanent, req.InvoiceID, statusText(inv.Status))
	}

	// Still open: the payment did not complete synchronously. Its
	// PaymentIntent says why.
	if piID == "" {
		return Result{}, fmt.Errorf("stripe: invoice %s is still %s after paying it and names no payment intent", req.InvoiceID, inv.Status)
	}
	pi, err := g.client.V1PaymentIntents.Retrieve(ctx, piID, &stripeapi.PaymentIntentRetrieveParams{})
	if err != nil {
		return Result{}, fmt.Errorf("stripe: retrieve payment intent %s of invoice %s: %w", piID, req.InvoiceID, g.classify(err))
	}
	switch pi.Status {
	case stripeapi.PaymentIntentStatusSucceeded:
		// The invoice catches up with its payment asynchronously.
		return succeeded, nil
	case stripeapi.PaymentIntentStatusProcessing:
		// Bank debits and other asynchronous methods settle later and may
		// still fail. Not a decline and not permanent: the caller retries
		// with the same key, which re-reads the invoice first and reports
		// Succeeded once it is paid.
		g.log.InfoContext(ctx, "stripe payment processing", "invoice", req.InvoiceID, "payment_intent", piID, "key", req.IdempotencyKey)
		return Result{}, fmt.Errorf("stripe: payment intent %s of invoice %s is processing; the outcome is not known yet", piID, req.InvoiceID)
	case stripeapi.PaymentIntentStatusRequiresAction:
		res := Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: codeAuthenticationRequired,
			Message: "the payment requires customer authentication", Ref: req.InvoiceID, At: g.now().UTC()},
			RequiresAction: true, PaymentIntentID: piID, ChargeID: chargeID}
		return res, nil
	case stripeapi.PaymentIntentStatusRequiresPaymentMethod, stripeapi.PaymentIntentStatusCanceled:
		if pi.LastPaymentError == nil {
			break
		}
		res := declined(pi.LastPaymentError, errorDetails(rawJSON(pi.LastResponse), "last_payment_error"))
		res.Ref = req.InvoiceID
		res.Message = g.scrub(res.Message)
		res.At = g.now().UTC()
		if res.PaymentIntentID == "" {
			res.PaymentIntentID = piID
		}
		return res, nil
	}
	return Result{}, fmt.Errorf("stripe: invoice %s is still %s after paying it; payment intent %s is %s",
		req.InvoiceID, inv.Status, piID, pi.Status)
}

func validate(req gateway.ChargeRequest) error {
	switch {
	case req.IdempotencyKey == "":
		return errors.New("idempotency key is required")
	case !strings.HasPrefix(req.InvoiceID, "in_"):
		return fmt.Errorf("invoice ID %q is not a Stripe invoice ID (in_...)", req.InvoiceID)
	case req.Currency == "":
		return errors.New("currency is required")
	}
	return nil
}

// checkCollectable refuses invoices that must not be paid for this request.
func checkCollectable(inv *stripeapi.Invoice, req gateway.ChargeRequest) error {
	switch inv.Status {
	case stripeapi.InvoiceStatusPaid:
		return nil
	case stripeapi.InvoiceStatusOpen, stripeapi.InvoiceStatusUncollectible:
	default:
		// Paying a draft would finalize it first; a void invoice cannot be paid.
		return fmt.Errorf("stripe: %w: invoice %s is %s, not open", gateway.ErrPermanent, req.InvoiceID, statusText(inv.Status))
	}
	if !strings.EqualFold(string(inv.Currency), req.Currency) || inv.AmountRemaining != req.AmountMinor {
		return fmt.Errorf("stripe: %w: invoice %s has %d %s remaining, the request is for %d %s; not charging",
			gateway.ErrPermanent, req.InvoiceID, inv.AmountRemaining, strings.ToUpper(string(inv.Currency)),
			req.AmountMinor, strings.ToUpper(req.Currency))
	}
	return nil
}

func statusText(s stripeapi.InvoiceStatus) string {
	if s == "" {
		return "in no known status"
	}
	return string(s)
}

// paymentIDs returns the PaymentIntent and charge of the invoice's default
// payment (or its latest one) when the payments list was expanded.
func paymentIDs(inv *stripeapi.Invoice) (paymentIntent, charge string) {
	if inv.Payments == nil || len(inv.Payments.Data) == 0 {
		return "", ""
	}
	p := inv.Payments.Data[len(inv.Payments.Data)-1]
	for _, d := range inv.Payments.Data {
		if d != nil && d.IsDefault {
			p = d
			break
		}
	}
	if p == nil || p.Payment == nil {
		return "", ""
	}
	if p.Payment.PaymentIntent != nil {
		paymentIntent = p.Payment.PaymentIntent.ID
		if p.Payment.PaymentIntent.LatestCharge != nil {
			charge = p.Payment.PaymentIntent.LatestCharge.ID
		}
	}
	if p.Payment.Charge != nil {
		charge = p.Payment.Charge.ID
	}
	return paymentIntent, charge
}

// classify turns an error from a request other than pay into a retryable or
// permanent error. A card error there is not a decline of this charge.
func (g *Gateway) classify(err error) error {
	var se *stripeapi.Error
	if !errors.As(err, &se) {
		return err
	}
	return g.scrubErr(classifyAPIError(se))
}

// scrub removes the API key from text that came from the API.
func (g *Gateway) scrub(s string) string {
	if g.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, g.apiKey, "[redacted]")
}

func (g *Gateway) scrubErr(err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		ae.Message = g.scrub(ae.Message)
	}
	return err
}

// sdkLogger sends stripe-go's own log lines to slog at debug level: the
// gateway logs and returns everything that matters itself. Lines carrying
// response bodies are dropped (they hold customer and payment method
// details), and the API key is scrubbed from the rest.
type sdkLogger struct {
	log    *slog.Logger
	apiKey string
}

func (l sdkLogger) Debugf(ctx context.Context, format string, v ...any) { l.emit(ctx, format, v) }
func (l sdkLogger) Infof(ctx context.Context, format string, v ...any)  { l.emit(ctx, format, v) }
func (l sdkLogger) Warnf(ctx context.Context, format string, v ...any)  { l.emit(ctx, format, v) }
func (l sdkLogger) Errorf(ctx context.Context, format string, v ...any) { l.emit(ctx, format, v) }

func (l sdkLogger) emit(ctx context.Context, format string, v []any) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Response:") || strings.HasPrefix(msg, "Couldn't deserialize JSON") ||
		strings.Contains(strings.ToLower(msg), "request error from stripe") {
		return
	}
	if l.apiKey != "" {
		msg = strings.ReplaceAll(msg, l.apiKey, "[redacted]")
	}
	l.log.DebugContext(ctx, msg, "component", "stripe-go")
}
