package stripe

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	stripeapi "github.com/stripe/stripe-go/v85"

	"github.com/dunningco/dunning/gateway"
)

// codeAuthenticationRequired is the DeclineCode for payments the customer
// has to authenticate on session (3-D Secure).
const codeAuthenticationRequired = "authentication_required"

// Result is a charge result with the Stripe details that
// gateway.ChargeResult has no fields for.
type Result struct {
	gateway.ChargeResult
	// NetworkDeclineCode is the card network's own decline code, e.g. "51"
	// (insufficient funds) or "05" (do not honor).
	NetworkDeclineCode string
	// NetworkAdviceCode is the card network's advice to the merchant on
	// retrying. For Mastercard it is the Merchant Advice Code (MAC), e.g.
	// "03" (do not try again) or "02" (try again later).
	NetworkAdviceCode string
	// RequiresAction is true when the customer has to authenticate the
	// payment on session. An off-session retry cannot succeed.
	RequiresAction bool
	// PaymentIntentID and ChargeID identify the payment when Stripe reports it.
	PaymentIntentID string
	ChargeID        string
}

// APIError is an error answer from Stripe for a request it did not process
// as a charge. It keeps only the fields worth recording, never the response
// payload.
type APIError struct {
	HTTPStatus int
	Type       string
	Code       string
	Message    string
	RequestID  string
	// Permanent is true when retrying cannot help; the error then wraps
	// gateway.ErrPermanent.
	Permanent bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	if e.Permanent {
		b.WriteString(gateway.ErrPermanent.Error())
		b.WriteString(": ")
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d ", e.HTTPStatus)
	}
	b.WriteString(e.Type)
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.RequestID)
	}
	return b.String()
}

// Unwrap returns gateway.ErrInProgress for a concurrent request with the
// same key (409), gateway.ErrNotAuthorized for a refused API key (401, 403)
// and gateway.ErrPermanent for other permanent errors.
func (e *APIError) Unwrap() error {
	switch {
	case !e.Permanent && e.HTTPStatus == http.StatusConflict:
		// A concurrent request with the same key: its outcome is unknown.
		return gateway.ErrInProgress
	case e.Permanent && (e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden):
		return gateway.ErrNotAuthorized
	case e.Permanent:
		return gateway.ErrPermanent
	}
	return nil
}

// MapError maps the error from a Stripe request that tried to charge, such as
// POST /v1/invoices/{id}/pay.
//
// A decline is a result, not an error. For card errors, and for payments
// that need customer authentication, MapError returns the Declined Result
// and a nil error. For error answers from Stripe it returns an *APIError,
// which wraps gateway.ErrPermanent when retrying cannot help. Other errors
// (network, timeouts, an unreadable response) are returned unchanged, and
// the caller retries them.
func MapError(err error) (Result, error) {
	if err == nil {
		return Result{}, errors.New("stripe: no error to map")
	}
	var se *stripeapi.Error
	if !errors.As(err, &se) {
		return Result{}, err
	}
	if isDecline(se) {
		return declined(se, errorDetails(rawJSON(se.LastResponse), "error")), nil
	}
	return Result{}, classifyAPIError(se)
}

func isDecline(se *stripeapi.Error) bool {
	return se.Type == stripeapi.ErrorTypeCard || needsAuthenticationCode(se.Code)
}

func needsAuthenticationCode(c stripeapi.ErrorCode) bool {
	switch c {
	case stripeapi.ErrorCodeAuthenticationRequired,
		stripeapi.ErrorCodeInvoicePaymentIntentRequiresAction,
		stripeapi.ErrorCodePaymentIntentActionRequired:
		return true
	}
	return false
}

// declined builds the Declined result for a card error (or a
// PaymentIntent's last_payment_error).
func declined(se *stripeapi.Error, d details) Result {
	code := string(se.DeclineCode)
	if code == "" && se.PaymentIntent != nil && se.PaymentIntent.LastPaymentError != nil {
		code = string(se.PaymentIntent.LastPaymentError.DeclineCode)
	}
	if code == "" {
		code = string(se.Code)
	}
	if code == "" {
		code = string(stripeapi.ErrorCodeCardDeclined)
	}
	res := Result{
		ChargeResult: gateway.ChargeResult{
			Outcome:     gateway.Declined,
			DeclineCode: code,
			AdviceCode:  d.AdviceCode,
			Message:     se.Msg,
		},
		NetworkDeclineCode: d.NetworkDeclineCode,
		NetworkAdviceCode:  d.NetworkAdviceCode,
		ChargeID:           se.ChargeID,
	}
	if pi := se.PaymentIntent; pi != nil {
		res.PaymentIntentID = pi.ID
		if res.ChargeID == "" && pi.LatestCharge != nil {
			res.ChargeID = pi.LatestCharge.ID
		}
	}
	if needsAuthenticationCode(se.Code) || code == codeAuthenticationRequired ||
		(se.PaymentIntent != nil && se.PaymentIntent.Status == stripeapi.PaymentIntentStatusRequiresAction) {
		res.RequiresAction = true
		res.DeclineCode = codeAuthenticationRequired
	}
	return res
}

// classifyAPIError decides whether an error answer is worth retrying with the
// same idempotency key.
func classifyAPIError(se *stripeapi.Error) *APIError {
	ae := &APIError{
		HTTPStatus: se.HTTPStatusCode,
		Type:       string(se.Type),
		Code:       string(se.Code),
		Message:    se.Msg,
		RequestID:  se.RequestID,
	}
	if ae.RequestID == "" && se.LastResponse != nil {
		ae.RequestID = se.LastResponse.RequestID
	}
	ae.Permanent = isPermanent(se)
	return ae
}

func isPermanent(se *stripeapi.Error) bool {
	status := se.HTTPStatusCode
	if se.LastResponse != nil && se.LastResponse.Header.Get("Stripe-Should-Retry") == "true" {
		return false
	}
	switch {
	case status == http.StatusConflict, // a concurrent request with the same key
		status == http.StatusRequestTimeout,
		status == http.StatusTooManyRequests, // rate limits and lock timeouts
		status >= 500,
		se.Type == stripeapi.ErrorTypeAPI:
		return false
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		// A wrong, revoked or restricted key: only configuration fixes it.
		return true
	case se.Type == stripeapi.ErrorTypeIdempotency:
		// Not a concurrent request (409, above): the key was first used with
		// other parameters, and the same key is refused the same way forever.
		return true
	case status >= 400 && status < 500:
		return true
	case status == 0 && se.Type == stripeapi.ErrorTypeInvalidRequest:
		return true
	}
	return false
}

// details are the decline fields stripe-go does not decode into
// stripe.Error: advice_code, network_advice_code and network_decline_code.
type details struct {
	AdviceCode         string `json:"advice_code"`
	NetworkAdviceCode  string `json:"network_advice_code"`
	NetworkDeclineCode string `json:"network_decline_code"`
}

func (d *details) fill(o details) {
	if d.AdviceCode == "" {
		d.AdviceCode = o.AdviceCode
	}
	if d.NetworkAdviceCode == "" {
		d.NetworkAdviceCode = o.NetworkAdviceCode
	}
	if d.NetworkDeclineCode == "" {
		d.NetworkDeclineCode = o.NetworkDeclineCode
	}
}

// errorDetails reads details from the error object found at path in a raw
// response body. Fields the error object lacks are taken from its
// payment_intent's last_payment_error, then from the outcome of that
// PaymentIntent's latest_charge when it is expanded.
func errorDetails(raw []byte, path ...string) details {
	obj := json.RawMessage(raw)
	for _, key := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(obj, &m); err != nil {
			return details{}
		}
		obj = m[key]
	}
	var e struct {
		details
		PaymentIntent json.RawMessage `json:"payment_intent"`
	}
	if err := json.Unmarshal(obj, &e); err != nil {
		return details{}
	}
	var pi struct {
		LastPaymentError *details        `json:"last_payment_error"`
		LatestCharge     json.RawMessage `json:"latest_charge"`
	}
	if len(e.PaymentIntent) > 0 && json.Unmarshal(e.PaymentIntent, &pi) == nil {
		if pi.LastPaymentError != nil {
			e.fill(*pi.LastPaymentError)
		}
		var charge struct {
			Outcome *details `json:"outcome"`
		}
		if len(pi.LatestCharge) > 0 && json.Unmarshal(pi.LatestCharge, &charge) == nil && charge.Outcome != nil {
			e.fill(*charge.Outcome)
		}
	}
	return e.details
}

func rawJSON(r *stripeapi.APIResponse) []byte {
	if r == nil {
		return nil
	}
	return r.RawJSON
}
