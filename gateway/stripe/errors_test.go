package stripe

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	stripeapi "github.com/stripe/stripe-go/v85"

	"github.com/dunningco/dunning/gateway"
)

// Stripe's documented error bodies, as POST /v1/invoices/{id}/pay returns
// them. Card declines come back as HTTP 402 with type card_error.

// insufficientFundsBody is a complete decline of a Mastercard, as Stripe
// sends it.
const insufficientFundsBody = `{
  "error": {
    "advice_code": "try_again_later",
    "charge": "ch_3PgcMastercard0001",
    "code": "card_declined",
    "decline_code": "insufficient_funds",
    "doc_url": "https://docs.stripe.com/error-codes/card-declined",
    "message": "Your card has insufficient funds.",
    "network_advice_code": "02",
    "network_decline_code": "51",
    "payment_intent": {
      "id": "pi_3PgcMastercard0001",
      "object": "payment_intent",
      "amount": 1999,
      "currency": "usd",
      "last_payment_error": {
        "advice_code": "try_again_later",
        "charge": "ch_3PgcMastercard0001",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "doc_url": "https://docs.stripe.com/error-codes/card-declined",
        "message": "Your card has insufficient funds.",
        "network_advice_code": "02",
        "network_decline_code": "51",
        "type": "card_error"
      },
      "latest_charge": "ch_3PgcMastercard0001",
      "status": "requires_payment_method"
    },
    "payment_method": {
      "id": "pm_1PgcMastercard0001",
      "object": "payment_method",
      "card": {"brand": "mastercard", "exp_month": 8, "exp_year": 2030, "last4": "9995"},
      "type": "card"
    },
    "request_log_url": "https://dashboard.stripe.com/test/logs/req_Mastercard0001?t=1721900000",
    "type": "card_error"
  }
}`

// adviceOnLastPaymentErrorBody carries the advice codes only on the
// PaymentIntent's last_payment_error.
const adviceOnLastPaymentErrorBody = `{
  "error": {
    "charge": "ch_3PgcLastError0001",
    "code": "card_declined",
    "decline_code": "do_not_honor",
    "message": "Your card was declined.",
    "payment_intent": {
      "id": "pi_3PgcLastError0001",
      "object": "payment_intent",
      "last_payment_error": {
        "advice_code": "do_not_try_again",
        "code": "card_declined",
        "decline_code": "do_not_honor",
        "network_advice_code": "03",
        "network_decline_code": "05",
        "type": "card_error"
      },
      "status": "requires_payment_method"
    },
    "type": "card_error"
  }
}`

// outcomeOnLatestChargeBody has an expanded latest_charge whose outcome
// carries the network codes.
const outcomeOnLatestChargeBody = `{
  "error": {
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
    "payment_intent": {
      "id": "pi_3PgcOutcome0001",
      "object": "payment_intent",
      "latest_charge": {
        "id": "ch_3PgcOutcome0001",
        "object": "charge",
        "outcome": {
          "advice_code": "confirm_card_data",
          "network_advice_code": "01",
          "network_decline_code": "05",
          "network_status": "declined_by_network",
          "reason": "generic_decline",
          "type": "issuer_declined"
        }
      },
      "status": "requires_payment_method"
    },
    "type": "card_error"
  }
}`

// requiresActionBody is the answer when the issuer asks for 3-D Secure on
// an off-session invoice payment.
const requiresActionBody = `{
  "error": {
    "code": "invoice_payment_intent_requires_action",
    "doc_url": "https://docs.stripe.com/error-codes/invoice-payment-intent-requires-action",
    "message": "This payment requires additional user action before it can be completed successfully. Payment can be completed using the PaymentIntent associated with the invoice. For more details see: https://docs.stripe.com/billing/subscriptions/overview#requires-action",
    "payment_intent": {"id": "pi_3PgcRequiresAction1", "object": "payment_intent", "status": "requires_action"},
    "request_log_url": "https://dashboard.stripe.com/test/logs/req_RequiresAction1?t=1721900000",
    "type": "card_error"
  }
}`

const (
	alreadyPaidBody = `{
  "error": {
    "message": "Invoice is already paid",
    "request_log_url": "https://dashboard.stripe.com/test/logs/req_AlreadyPaid0001?t=1721900000",
    "type": "invalid_request_error"
  }
}`
	invalidKeyBody = `{
  "error": {
    "message": "Invalid API Key provided: sk_test_********************************1234",
    "type": "invalid_request_error"
  }
}`
	permissionBody = `{
  "error": {
    "message": "The provided key 'rk_test_*********************************5678' does not have the required permissions for this endpoint on account 'acct_1PgcTest0001'. Having the 'rak_invoice_write' permission would allow this request to continue.",
    "type": "invalid_request_error"
  }
}`
	noSuchInvoiceBody = `{
  "error": {
    "code": "resource_missing",
    "doc_url": "https://docs.stripe.com/error-codes/resource-missing",
    "message": "No such invoice: 'in_missing'",
    "param": "invoice",
    "request_log_url": "https://dashboard.stripe.com/test/logs/req_Missing0001?t=1721900000",
    "type": "invalid_request_error"
  }
}`
	keyInUseBody = `{
  "error": {
    "code": "idempotency_key_in_use",
    "doc_url": "https://docs.stripe.com/error-codes/idempotency-key-in-use",
    "message": "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): dunning/acme/in_1/attempt-2. Please try again later.",
    "type": "idempotency_error"
  }
}`
	keyReusedBody = `{
  "error": {
    "message": "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'dunning/acme/in_1/attempt-2' if you meant to execute a different request.",
    "type": "idempotency_error"
  }
}`
	rateLimitBody = `{
  "error": {
    "code": "rate_limit",
    "doc_url": "https://docs.stripe.com/error-codes/rate-limit",
    "message": "Request rate limit exceeded. You can learn more about rate limits here https://docs.stripe.com/rate-limits.",
    "type": "invalid_request_error"
  }
}`
	lockTimeoutBody = `{
  "error": {
    "code": "lock_timeout",
    "doc_url": "https://docs.stripe.com/error-codes/lock-timeout",
    "message": "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request.",
    "type": "invalid_request_error"
  }
}`
	apiErrorBody = `{
  "error": {
    "message": "An unknown error occurred",
    "request_log_url": "https://dashboard.stripe.com/test/logs/req_ApiError0001?t=1721900000",
    "type": "api_error"
  }
}`
	badGatewayBody = `<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>`
)

// cardErrorBody renders a card decline in Stripe's shape: the error, its
// PaymentIntent with the same last_payment_error, and the payment method.
func cardErrorBody(code, declineCode, message, advice, networkDecline, networkAdvice, piStatus string) string {
	lastErr := map[string]any{"code": code, "message": message, "type": "card_error", "charge": "ch_3PgcVisa00000001"}
	e := map[string]any{
		"charge":  "ch_3PgcVisa00000001",
		"code":    code,
		"doc_url": "https://docs.stripe.com/error-codes/" + strings.ReplaceAll(code, "_", "-"),
		"message": message,
		"payment_intent": map[string]any{
			"id": "pi_3PgcVisa00000001", "object": "payment_intent", "amount": 1999, "currency": "usd",
			"last_payment_error": lastErr, "latest_charge": "ch_3PgcVisa00000001", "status": piStatus,
		},
		"payment_method": map[string]any{
			"id": "pm_1PgcVisa00000001", "object": "payment_method", "type": "card",
			"card": map[string]any{"brand": "visa", "exp_month": 8, "exp_year": 2030, "last4": "0002"},
		},
		"request_log_url": "https://dashboard.stripe.com/test/logs/req_Visa00000001?t=1721900000",
		"type":            "card_error",
	}
	for k, v := range map[string]string{"decline_code": declineCode, "advice_code": advice,
		"network_decline_code": networkDecline, "network_advice_code": networkAdvice} {
		if v != "" {
			e[k] = v
			lastErr[k] = v
		}
	}
	b, err := json.MarshalIndent(map[string]any{"error": e}, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b)
}

type errorCase struct {
	name   string
	status int
	header http.Header
	body   string

	// For declines.
	want Result
	// For errors.
	wantErr       bool
	wantPermanent bool
	wantInErr     string
}

func declineCase(name, code, declineCode, message, advice, networkDecline, networkAdvice string) errorCase {
	wantCode := declineCode
	if wantCode == "" {
		wantCode = code
	}
	piStatus := "requires_payment_method"
	requiresAction := wantCode == "authentication_required"
	if requiresAction {
		piStatus = "requires_action"
	}
	return errorCase{
		name:   name,
		status: http.StatusPaymentRequired,
		body:   cardErrorBody(code, declineCode, message, advice, networkDecline, networkAdvice, piStatus),
		want: Result{
			ChargeResult:       gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: wantCode, AdviceCode: advice, Message: message},
			NetworkDeclineCode: networkDecline, NetworkAdviceCode: networkAdvice, RequiresAction: requiresAction,
			PaymentIntentID: "pi_3PgcVisa00000001", ChargeID: "ch_3PgcVisa00000001",
		},
	}
}

func declineCases() []errorCase {
	return []errorCase{
		declineCase("generic_decline", "card_declined", "generic_decline", "Your card was declined.", "", "05", ""),
		declineCase("insufficient_funds", "card_declined", "insufficient_funds", "Your card has insufficient funds.", "try_again_later", "51", ""),
		declineCase("lost_card", "card_declined", "lost_card", "Your card was declined.", "do_not_try_again", "41", ""),
		declineCase("stolen_card", "card_declined", "stolen_card", "Your card was declined.", "do_not_try_again", "43", ""),
		declineCase("do_not_honor", "card_declined", "do_not_honor", "Your card was declined.", "", "05", ""),
		declineCase("fraudulent", "card_declined", "fraudulent", "Your card was declined.", "do_not_try_again", "59", ""),
		declineCase("expired_card", "expired_card", "expired_card", "Your card has expired.", "confirm_card_data", "54", ""),
		declineCase("expired_card without decline_code", "expired_card", "", "Your card has expired.", "confirm_card_data", "", ""),
		declineCase("incorrect_number", "incorrect_number", "", "Your card number is incorrect.", "confirm_card_data", "14", ""),
		declineCase("incorrect_cvc", "incorrect_cvc", "", "Your card's security code is incorrect.", "confirm_card_data", "N7", ""),
		declineCase("card_velocity_exceeded", "card_declined", "card_velocity_exceeded",
			"Your card was declined for making repeated attempts too frequently or exceeding its amount limit.", "try_again_later", "65", ""),
		declineCase("try_again_later", "card_declined", "try_again_later", "Your card was declined.", "try_again_later", "91", ""),
		declineCase("processing_error", "processing_error", "processing_error",
			"An error occurred while processing your card. Try again in a little bit.", "try_again_later", "96", ""),
		declineCase("authentication_required", "authentication_required", "authentication_required",
			"Your card was declined. This transaction requires authentication.", "", "1A", ""),
		declineCase("mastercard do_not_try_again", "card_declined", "do_not_honor", "Your card was declined.", "do_not_try_again", "05", "03"),
		declineCase("mastercard try_again_later", "card_declined", "insufficient_funds", "Your card has insufficient funds.", "try_again_later", "51", "02"),
		declineCase("mastercard confirm_card_data", "card_declined", "generic_decline", "Your card was declined.", "confirm_card_data", "05", "01"),
		{
			name: "complete mastercard decline", status: http.StatusPaymentRequired, body: insufficientFundsBody,
			want: Result{
				ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "insufficient_funds",
					AdviceCode: "try_again_later", Message: "Your card has insufficient funds."},
				NetworkDeclineCode: "51", NetworkAdviceCode: "02",
				PaymentIntentID: "pi_3PgcMastercard0001", ChargeID: "ch_3PgcMastercard0001",
			},
		},
		{
			name: "codes on last_payment_error only", status: http.StatusPaymentRequired, body: adviceOnLastPaymentErrorBody,
			want: Result{
				ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "do_not_honor",
					AdviceCode: "do_not_try_again", Message: "Your card was declined."},
				NetworkDeclineCode: "05", NetworkAdviceCode: "03",
				PaymentIntentID: "pi_3PgcLastError0001", ChargeID: "ch_3PgcLastError0001",
			},
		},
		{
			name: "codes on the latest charge's outcome", status: http.StatusPaymentRequired, body: outcomeOnLatestChargeBody,
			want: Result{
				ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "generic_decline",
					AdviceCode: "confirm_card_data", Message: "Your card was declined."},
				NetworkDeclineCode: "05", NetworkAdviceCode: "01",
				PaymentIntentID: "pi_3PgcOutcome0001", ChargeID: "ch_3PgcOutcome0001",
			},
		},
		{
			name: "invoice payment requires action", status: http.StatusPaymentRequired, body: requiresActionBody,
			want: Result{
				ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "authentication_required",
					Message: "This payment requires additional user action before it can be completed successfully. Payment can be completed using the PaymentIntent associated with the invoice. For more details see: https://docs.stripe.com/billing/subscriptions/overview#requires-action"},
				RequiresAction: true, PaymentIntentID: "pi_3PgcRequiresAction1",
			},
		},
	}
}

// apiErrorCases are answers that are errors, not results, for MapError.
func apiErrorCases() []errorCase {
	return []errorCase{
		{name: "400 invoice already paid", status: 400, body: alreadyPaidBody, wantErr: true, wantPermanent: true, wantInErr: "Invoice is already paid"},
		{name: "400 key reused with other parameters", status: 400, body: keyReusedBody, wantErr: true, wantPermanent: true, wantInErr: "idempotency_error"},
		{name: "400 with Stripe-Should-Retry", status: 400, header: http.Header{"Stripe-Should-Retry": {"true"}}, body: lockTimeoutBody, wantErr: true, wantInErr: "lock_timeout"},
		{name: "401 invalid API key", status: 401, body: invalidKeyBody, wantErr: true, wantPermanent: true, wantInErr: "HTTP 401"},
		{name: "403 missing permission", status: 403, body: permissionBody, wantErr: true, wantPermanent: true, wantInErr: "rak_invoice_write"},
		{name: "404 no such invoice", status: 404, body: noSuchInvoiceBody, wantErr: true, wantPermanent: true, wantInErr: "resource_missing"},
		{name: "409 concurrent request with the same key", status: 409, body: keyInUseBody, wantErr: true, wantInErr: "idempotency_key_in_use"},
		{name: "429 rate limit", status: 429, body: rateLimitBody, wantErr: true, wantInErr: "rate_limit"},
		{name: "429 lock timeout", status: 429, body: lockTimeoutBody, wantErr: true, wantInErr: "lock_timeout"},
		{name: "500 api_error", status: 500, body: apiErrorBody, wantErr: true, wantInErr: "HTTP 500 api_error"},
		{name: "503 api_error", status: 503, body: apiErrorBody, wantErr: true, wantInErr: "HTTP 503"},
		{name: "502 without a Stripe body", status: 502, body: badGatewayBody, wantErr: true, wantInErr: "502"},
	}
}

// decode turns an HTTP answer into the error stripe-go returns for it.
func decode(t *testing.T, status int, header http.Header, body string) error {
	t.Helper()
	backend, ok := stripeapi.GetBackendWithConfig(stripeapi.APIBackend, &stripeapi.BackendConfig{
		LeveledLogger: &stripeapi.LeveledLogger{Level: stripeapi.LevelNull},
	}).(*stripeapi.BackendImplementation)
	if !ok {
		t.Fatal("stripe-go API backend is not a *BackendImplementation")
	}
	h := http.Header{"Request-Id": {"req_Test0001"}, "Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	res := &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: h}
	return backend.ResponseToError(res, []byte(body))
}

func TestMapErrorDeclines(t *testing.T) {
	for _, tc := range declineCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MapError(decode(t, tc.status, tc.header, tc.body))
			if err != nil {
				t.Fatalf("MapError: %v; want a decline", err)
			}
			if got != tc.want {
				t.Errorf("MapError =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func TestMapErrorErrors(t *testing.T) {
	for _, tc := range apiErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MapError(decode(t, tc.status, tc.header, tc.body))
			if err == nil {
				t.Fatalf("MapError = %+v, nil; want an error", got)
			}
			if got != (Result{}) {
				t.Errorf("MapError result = %+v; want zero with an error", got)
			}
			if p := errors.Is(err, gateway.ErrPermanent); p != tc.wantPermanent {
				t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v (err: %v)", p, tc.wantPermanent, err)
			}
			if busy, want := errors.Is(err, gateway.ErrInProgress), tc.status == 409; busy != want {
				t.Errorf("errors.Is(err, ErrInProgress) = %v, want %v (err: %v)", busy, want, err)
			}
			// A refused key is ours to fix, not a failed attempt.
			if auth, want := errors.Is(err, gateway.ErrNotAuthorized), tc.status == 401 || tc.status == 403; auth != want {
				t.Errorf("errors.Is(err, ErrNotAuthorized) = %v, want %v (err: %v)", auth, want, err)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantInErr)
			}
			if strings.Contains(err.Error(), "payment_intent") || strings.Contains(err.Error(), "{") {
				t.Errorf("error %q carries the response payload", err)
			}
		})
	}
}

func TestMapErrorBuiltErrors(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		want          Result
		wantErr       bool
		wantPermanent bool
	}{
		{
			name: "card error without codes",
			err:  &stripeapi.Error{Type: stripeapi.ErrorTypeCard, Msg: "Your card was declined."},
			want: Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "card_declined", Message: "Your card was declined."}},
		},
		{
			name: "decline code only on last_payment_error",
			err: &stripeapi.Error{Type: stripeapi.ErrorTypeCard, Code: stripeapi.ErrorCodeCardDeclined, Msg: "Your card was declined.",
				PaymentIntent: &stripeapi.PaymentIntent{ID: "pi_1", LastPaymentError: &stripeapi.Error{DeclineCode: stripeapi.DeclineCodeLostCard}}},
			want: Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "lost_card", Message: "Your card was declined."}, PaymentIntentID: "pi_1"},
		},
		{
			name: "wrapped card error",
			err:  fmt.Errorf("pay: %w", &stripeapi.Error{Type: stripeapi.ErrorTypeCard, Code: stripeapi.ErrorCodeCardDeclined, DeclineCode: stripeapi.DeclineCodeInsufficientFunds}),
			want: Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "insufficient_funds"}},
		},
		{
			name: "action required on a non-card error",
			err:  &stripeapi.Error{Type: stripeapi.ErrorTypeInvalidRequest, HTTPStatusCode: 400, Code: stripeapi.ErrorCodeInvoicePaymentIntentRequiresAction},
			want: Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "authentication_required"}, RequiresAction: true},
		},
		{name: "invalid request without status", err: &stripeapi.Error{Type: stripeapi.ErrorTypeInvalidRequest, Msg: "bad"}, wantErr: true, wantPermanent: true},
		{name: "idempotency error 409", err: &stripeapi.Error{Type: stripeapi.ErrorTypeIdempotency, HTTPStatusCode: 409}, wantErr: true},
		{name: "api error without status", err: &stripeapi.Error{Type: stripeapi.ErrorTypeAPI}, wantErr: true},
		{name: "network error", err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), wantErr: true},
		{name: "no error", err: nil, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MapError(tc.err)
			if (err != nil) != tc.wantErr {
				t.Fatalf("MapError error = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("MapError = %+v, want %+v", got, tc.want)
			}
			if p := errors.Is(err, gateway.ErrPermanent); p != tc.wantPermanent {
				t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v (err: %v)", p, tc.wantPermanent, err)
			}
		})
	}
}
