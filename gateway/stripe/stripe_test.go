package stripe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/gateway"
)

const testKey = "sk_test_51DunningTestKeyDoNotLog0000000000000000"

var testNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// answer is one canned HTTP answer.
type answer struct {
	status int
	header http.Header
	body   string
}

func ok(body string) answer { return answer{status: http.StatusOK, body: body} }

// seen is one request the fake Stripe received.
type seen struct {
	method, path string
	header       http.Header
	form         url.Values
}

// fakeStripe answers the three endpoints the gateway uses. Each handler gets
// the number of earlier calls to the same endpoint.
type fakeStripe struct {
	invoice func(id string, n int) answer
	pay     func(id string, r *http.Request, n int) answer
	intent  func(id string, n int) answer

	mu   sync.Mutex
	reqs []seen
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), form: r.PostForm})
	count := func(method, prefix, suffix string) int {
		n := 0
		for _, s := range f.reqs[:len(f.reqs)-1] {
			if s.method == method && strings.HasPrefix(s.path, prefix) && strings.HasSuffix(s.path, suffix) {
				n++
			}
		}
		return n
	}
	var a answer
	switch rest := strings.TrimPrefix(r.URL.Path, "/v1/"); {
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "invoices/") && f.invoice != nil:
		a = f.invoice(strings.TrimPrefix(rest, "invoices/"), count(http.MethodGet, "/v1/invoices/", ""))
	case r.Method == http.MethodPost && strings.HasPrefix(rest, "invoices/") && strings.HasSuffix(rest, "/pay") && f.pay != nil:
		a = f.pay(strings.TrimSuffix(strings.TrimPrefix(rest, "invoices/"), "/pay"), r, count(http.MethodPost, "/v1/invoices/", "/pay"))
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "payment_intents/") && f.intent != nil:
		a = f.intent(strings.TrimPrefix(rest, "payment_intents/"), count(http.MethodGet, "/v1/payment_intents/", ""))
	default:
		a = answer{status: http.StatusNotFound, body: fmt.Sprintf(`{"error":{"message":"Unrecognized request URL (%s: %s).","type":"invalid_request_error"}}`, r.Method, r.URL.Path)}
	}
	f.mu.Unlock()
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_Fake0001")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (f *fakeStripe) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func (f *fakeStripe) pays() []seen {
	var out []seen
	for _, s := range f.requests() {
		if s.method == http.MethodPost {
			out = append(out, s)
		}
	}
	return out
}

// newTestGateway starts f and returns a gateway pointed at it, and its log.
func newTestGateway(t *testing.T, f *fakeStripe) (*Gateway, *bytes.Buffer) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return newTestGatewayAt(t, srv.URL)
}

// newTestGatewayAt returns a gateway for baseURL that logs at debug level,
// and fails the test if the log ever holds the API key.
func newTestGatewayAt(t *testing.T, baseURL string) (*Gateway, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	g, err := New(Config{
		APIKey:     testKey,
		BaseURL:    baseURL,
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		Logger:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	g.now = func() time.Time { return testNow }
	t.Cleanup(func() {
		if strings.Contains(logs.String(), testKey) {
			t.Errorf("the log contains the API key:\n%s", logs.String())
		}
	})
	return g, &logs
}

func invoiceBody(id, status string, remaining int64, currency string) string {
	return fmt.Sprintf(`{
  "id": %q,
  "object": "invoice",
  "amount_due": 1999,
  "amount_paid": %d,
  "amount_remaining": %d,
  "attempt_count": 1,
  "attempted": true,
  "billing_reason": "subscription_cycle",
  "collection_method": "charge_automatically",
  "currency": %q,
  "customer": "cus_PgcTest0001",
  "livemode": false,
  "status": %q
}`, id, 1999-remaining, remaining, currency, status)
}

// payResponseBody is the invoice as the pay call returns it, with payments
// expanded.
func payResponseBody(id, status, paymentIntent string) string {
	remaining := int64(0)
	if status != "paid" {
		remaining = 1999
	}
	inv := strings.TrimSuffix(invoiceBody(id, status, remaining, "usd"), "}")
	return inv + fmt.Sprintf(`,
  "payments": {
    "object": "list",
    "data": [
      {
        "id": "inpay_1PgcTest0001",
        "object": "invoice_payment",
        "amount_paid": %d,
        "amount_requested": 1999,
        "currency": "usd",
        "invoice": %q,
        "is_default": true,
        "payment": {"type": "payment_intent", "payment_intent": %q},
        "status": %q
      }
    ],
    "has_more": false,
    "url": "/v1/invoice_payments"
  }
}`, 1999-remaining, id, paymentIntent, map[bool]string{true: "paid", false: "open"}[status == "paid"])
}

func openInvoice(id string, _ int) answer { return ok(invoiceBody(id, "open", 1999, "usd")) }

func paidInvoice(id string, _ int) answer { return ok(invoiceBody(id, "paid", 0, "usd")) }

func paysInvoice(id string, _ *http.Request, _ int) answer {
	return ok(payResponseBody(id, "paid", "pi_3PgcPaid00000001"))
}

func chargeRequest() gateway.ChargeRequest {
	return gateway.ChargeRequest{
		IdempotencyKey: "dunning/acme/in_1PgcTest0001/attempt-2",
		Attempt:        2,
		Tenant:         "acme",
		InvoiceID:      "in_1PgcTest0001",
		CustomerID:     "cus_PgcTest0001",
		PaymentMethod:  "pm_1PgcVisa00000001",
		AmountMinor:    1999,
		Currency:       "USD",
	}
}

// checkPayRequest asserts what every pay call must carry.
func checkPayRequest(t *testing.T, s seen, req gateway.ChargeRequest) {
	t.Helper()
	if want := "/v1/invoices/" + req.InvoiceID + "/pay"; s.method != http.MethodPost || s.path != want {
		t.Errorf("pay request = %s %s, want POST %s", s.method, s.path, want)
	}
	if got := s.header.Get("Idempotency-Key"); got != req.IdempotencyKey {
		t.Errorf("Idempotency-Key = %q, want %q", got, req.IdempotencyKey)
	}
	if got := s.header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization header does not carry the configured key")
	}
	if got := s.form.Get("off_session"); got != "true" {
		t.Errorf("off_session = %q, want true", got)
	}
	if got, has := s.form["payment_method"]; req.PaymentMethod != "" && (len(got) != 1 || got[0] != req.PaymentMethod) {
		t.Errorf("payment_method = %q, want %q", got, req.PaymentMethod)
	} else if req.PaymentMethod == "" && has {
		t.Errorf("payment_method = %q, want none (the customer's default)", got)
	}
	if got := s.form.Get("expand[0]"); got != "payments" {
		t.Errorf("expand[0] = %q, want payments", got)
	}
	if len(s.form) != 3 && !(req.PaymentMethod == "" && len(s.form) == 2) {
		t.Errorf("pay form = %v, want only off_session, payment_method and expand", s.form)
	}
}

func TestChargeSucceeded(t *testing.T) {
	withPM := chargeRequest()
	defaultPM := chargeRequest()
	defaultPM.PaymentMethod = ""
	lowerCurrency := chargeRequest()
	lowerCurrency.Currency = "usd"
	tests := []struct {
		name string
		req  gateway.ChargeRequest
	}{
		{"saved payment method", withPM},
		{"customer's default payment method", defaultPM},
		{"lower-case currency", lowerCurrency},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStripe{invoice: openInvoice, pay: paysInvoice}
			g, _ := newTestGateway(t, f)
			got, err := g.ChargeDetailed(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			want := Result{
				ChargeResult:    gateway.ChargeResult{Outcome: gateway.Succeeded, Ref: tc.req.InvoiceID, Message: "invoice paid", At: testNow},
				PaymentIntentID: "pi_3PgcPaid00000001",
			}
			if got != want {
				t.Errorf("Charge =\n %+v\nwant\n %+v", got, want)
			}
			reqs := f.requests()
			if len(reqs) != 2 || reqs[0].method != http.MethodGet || reqs[0].path != "/v1/invoices/"+tc.req.InvoiceID {
				t.Fatalf("requests = %+v, want GET the invoice then pay it", reqs)
			}
			checkPayRequest(t, reqs[1], tc.req)
		})
	}
}

func TestChargeImplementsGateway(t *testing.T) {
	f := &fakeStripe{invoice: openInvoice, pay: paysInvoice}
	g, _ := newTestGateway(t, f)
	var gw gateway.Gateway = g
	if gw.Name() != "stripe" {
		t.Errorf("Name = %q, want stripe", gw.Name())
	}
	res, err := gw.Charge(context.Background(), chargeRequest())
	if err != nil || res.Outcome != gateway.Succeeded || res.Ref != "in_1PgcTest0001" {
		t.Errorf("Charge = %+v, %v; want succeeded with the invoice as reference", res, err)
	}
}

func TestChargeDeclined(t *testing.T) {
	for _, tc := range declineCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStripe{
				invoice: openInvoice,
				pay: func(string, *http.Request, int) answer {
					return answer{status: tc.status, header: tc.header, body: tc.body}
				},
			}
			g, logs := newTestGateway(t, f)
			req := chargeRequest()
			got, err := g.ChargeDetailed(context.Background(), req)
			if err != nil {
				t.Fatalf("Charge: %v; a decline is a result", err)
			}
			want := tc.want
			want.Ref, want.At = req.InvoiceID, testNow
			if got != want {
				t.Errorf("Charge =\n %+v\nwant\n %+v", got, want)
			}
			pays := f.pays()
			if len(pays) != 1 {
				t.Fatalf("pay calls = %d, want 1", len(pays))
			}
			checkPayRequest(t, pays[0], req)
			if !strings.Contains(logs.String(), "decline_code="+want.DeclineCode) {
				t.Errorf("the decline is not logged:\n%s", logs)
			}
		})
	}
}

func TestChargeErrors(t *testing.T) {
	for _, tc := range apiErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStripe{
				invoice: openInvoice, // also when re-read after a 400: still open
				pay: func(string, *http.Request, int) answer {
					return answer{status: tc.status, header: tc.header, body: tc.body}
				},
			}
			g, _ := newTestGateway(t, f)
			got, err := g.ChargeDetailed(context.Background(), chargeRequest())
			if err == nil {
				t.Fatalf("Charge = %+v, nil; want an error", got)
			}
			if p := errors.Is(err, gateway.ErrPermanent); p != tc.wantPermanent {
				t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v (err: %v)", p, tc.wantPermanent, err)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) || !strings.Contains(err.Error(), "in_1PgcTest0001") {
				t.Errorf("error %q does not name the invoice and %q", err, tc.wantInErr)
			}
			if n := len(f.pays()); n != 1 {
				t.Errorf("pay calls = %d, want 1: the caller owns retries", n)
			}
		})
	}
}

func TestChargeReadErrors(t *testing.T) {
	tests := []struct {
		name          string
		answer        answer
		wantPermanent bool
	}{
		{"404 no such invoice", answer{status: 404, body: noSuchInvoiceBody}, true},
		{"401 invalid API key", answer{status: 401, body: invalidKeyBody}, true},
		{"403 missing permission", answer{status: 403, body: permissionBody}, true},
		{"429 rate limit", answer{status: 429, body: rateLimitBody}, false},
		{"500 api_error", answer{status: 500, body: apiErrorBody}, false},
		{"502 without a Stripe body", answer{status: 502, body: badGatewayBody}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStripe{invoice: func(string, int) answer { return tc.answer }, pay: paysInvoice}
			g, _ := newTestGateway(t, f)
			_, err := g.ChargeDetailed(context.Background(), chargeRequest())
			if err == nil {
				t.Fatal("Charge succeeded, want an error")
			}
			if p := errors.Is(err, gateway.ErrPermanent); p != tc.wantPermanent {
				t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v (err: %v)", p, tc.wantPermanent, err)
			}
			if n := len(f.pays()); n != 0 {
				t.Errorf("pay calls = %d, want none after the read failed", n)
			}
		})
	}
}

func TestChargeAlreadyPaid(t *testing.T) {
	refused := func(string, *http.Request, int) answer { return answer{status: 400, body: alreadyPaidBody} }
	tests := []struct {
		name          string
		invoice       func(string, int) answer
		pay           func(string, *http.Request, int) answer
		wantMessage   string
		wantErr       bool
		wantPermanent bool
		wantRequests  int
	}{
		{
			name: "paid before this attempt", invoice: paidInvoice, pay: refused,
			wantMessage: "invoice is already paid", wantRequests: 2,
		},
		{
			name: "paid by this key's earlier call", invoice: paidInvoice, pay: paysInvoice,
			wantMessage: "invoice paid", wantRequests: 2,
		},
		{
			name: "paid between the read and the pay",
			invoice: func(id string, n int) answer {
				if n == 0 {
					return openInvoice(id, n)
				}
				return paidInvoice(id, n)
			},
			pay: refused, wantMessage: "invoice is already paid", wantRequests: 3,
		},
		{
			name: "refused while the invoice is open", invoice: openInvoice, pay: refused,
			wantErr: true, wantPermanent: true, wantRequests: 3,
		},
		{
			name: "refused and the re-read fails",
			invoice: func(id string, n int) answer {
				if n == 0 {
					return openInvoice(id, n)
				}
				return answer{status: 503, body: apiErrorBody}
			},
			pay: refused, wantErr: true, wantRequests: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStripe{invoice: tc.invoice, pay: tc.pay}
			g, _ := newTestGateway(t, f)
			req := chargeRequest()
			got, err := g.ChargeDetailed(context.Background(), req)
			if n := len(f.requests()); n != tc.wantRequests {
				t.Errorf("requests = %d, want %d", n, tc.wantRequests)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Charge = %+v, want an error", got)
				}
				if p := errors.Is(err, gateway.ErrPermanent); p != tc.wantPermanent {
					t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v (err: %v)", p, tc.wantPermanent, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if got.Outcome != gateway.Succeeded || got.Ref != req.InvoiceID || got.Message != tc.wantMessage {
				t.Errorf("Charge = %+v, want succeeded for %s with message %q", got, req.InvoiceID, tc.wantMessage)
			}
			checkPayRequest(t, f.pays()[0], req)
		})
	}
}

func TestChargeRefusesBeforePaying(t *testing.T) {
	tests := []struct {
		name    string
		invoice string
		wantErr string
	}{
		{"amount differs", invoiceBody("in_1PgcTest0001", "open", 2499, "usd"), "has 2499 USD remaining, the request is for 1999 USD"},
		{"partly paid", invoiceBody("in_1PgcTest0001", "open", 999, "usd"), "has 999 USD remaining"},
		{"currency differs", invoiceBody("in_1PgcTest0001", "open", 1999, "eur"), "1999 EUR remaining"},
		{"draft", invoiceBody("in_1PgcTest0001", "draft", 1999, "usd"), "is draft, not open"},
		{"void", invoiceBody("in_1PgcTest0001", "void", 1999, "usd"), "is void, not open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStripe{invoice: func(string, int) answer { return ok(tc.invoice) }, pay: paysInvoice}
			g, _ := newTestGateway(t, f)
			_, err := g.ChargeDetailed(context.Background(), chargeRequest())
			if !errors.Is(err, gateway.ErrPermanent) {
				t.Fatalf("Charge error = %v, want a permanent error", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
			if n := len(f.pays()); n != 0 {
				t.Errorf("pay calls = %d, want none", n)
			}
		})
	}

	t.Run("uncollectible is still collected", func(t *testing.T) {
		f := &fakeStripe{invoice: func(id string, _ int) answer { return ok(invoiceBody(id, "uncollectible", 1999, "usd")) }, pay: paysInvoice}
		g, _ := newTestGateway(t, f)
		res, err := g.ChargeDetailed(context.Background(), chargeRequest())
		if err != nil || res.Outcome != gateway.Succeeded {
			t.Errorf("Charge = %+v, %v; want succeeded", res, err)
		}
	})
}

func TestChargeOpenAfterPay(t *testing.T) {
	const pi = "pi_3PgcOpen00000001"
	intent := func(status, extra string) string {
		return fmt.Sprintf(`{"id": %q, "object": "payment_intent", "amount": 1999, "currency": "usd", "status": %q%s}`, pi, status, extra)
	}
	tests := []struct {
		name          string
		pay           string
		intent        string
		want          Result
		wantErr       string
		wantPermanent bool
	}{
		{
			name: "processing", pay: payResponseBody("in_1PgcTest0001", "open", pi), intent: intent("processing", ""),
			wantErr: "is processing",
		},
		{
			name: "requires action", pay: payResponseBody("in_1PgcTest0001", "open", pi), intent: intent("requires_action", ""),
			want: Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "authentication_required",
				Message: "the payment requires customer authentication", Ref: "in_1PgcTest0001", At: testNow},
				RequiresAction: true, PaymentIntentID: pi},
		},
		{
			name: "declined", pay: payResponseBody("in_1PgcTest0001", "open", pi),
			intent: intent("requires_payment_method", `, "last_payment_error": {"type": "card_error", "code": "card_declined",
  "decline_code": "insufficient_funds", "advice_code": "try_again_later", "network_decline_code": "51",
  "network_advice_code": "02", "message": "Your card has insufficient funds.", "charge": "ch_3PgcOpen00000001"}`),
			want: Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "insufficient_funds",
				AdviceCode: "try_again_later", Message: "Your card has insufficient funds.", Ref: "in_1PgcTest0001", At: testNow},
				NetworkDeclineCode: "51", NetworkAdviceCode: "02", PaymentIntentID: pi, ChargeID: "ch_3PgcOpen00000001"},
		},
		{
			name: "payment succeeded, invoice not updated yet", pay: payResponseBody("in_1PgcTest0001", "open", pi), intent: intent("succeeded", ""),
			want: Result{ChargeResult: gateway.ChargeResult{Outcome: gateway.Succeeded, Message: "invoice paid", Ref: "in_1PgcTest0001", At: testNow},
				PaymentIntentID: pi},
		},
		{
			name: "no payment intent", pay: invoiceBody("in_1PgcTest0001", "open", 1999, "usd"),
			wantErr: "names no payment intent",
		},
		{
			name: "void after paying", pay: invoiceBody("in_1PgcTest0001", "void", 1999, "usd"),
			wantErr: "is void after paying it", wantPermanent: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStripe{
				invoice: openInvoice,
				pay:     func(string, *http.Request, int) answer { return ok(tc.pay) },
				intent:  func(string, int) answer { return ok(tc.intent) },
			}
			g, _ := newTestGateway(t, f)
			got, err := g.ChargeDetailed(context.Background(), chargeRequest())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Charge = %+v, %v; want an error saying %q", got, err, tc.wantErr)
				}
				if p := errors.Is(err, gateway.ErrPermanent); p != tc.wantPermanent {
					t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v", p, tc.wantPermanent)
				}
				return
			}
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if got != tc.want {
				t.Errorf("Charge =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

// TestChargeRepeatedKey replays answers per idempotency key, as Stripe does,
// and checks a repeated key gets the first result.
func TestChargeRepeatedKey(t *testing.T) {
	tests := []struct {
		name  string
		first answer
	}{
		{"succeeded", ok(payResponseBody("in_1PgcTest0001", "paid", "pi_3PgcPaid00000001"))},
		{"declined", answer{status: 402, body: insufficientFundsBody}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			replies := map[string]answer{}
			paid := false
			f := &fakeStripe{
				invoice: func(id string, n int) answer {
					mu.Lock()
					defer mu.Unlock()
					if paid {
						return paidInvoice(id, n)
					}
					return openInvoice(id, n)
				},
				pay: func(id string, r *http.Request, n int) answer {
					mu.Lock()
					defer mu.Unlock()
					key := r.Header.Get("Idempotency-Key")
					if a, ok := replies[key]; ok {
						return a
					}
					replies[key] = tc.first
					paid = tc.first.status == http.StatusOK
					return tc.first
				},
			}
			g, _ := newTestGateway(t, f)
			req := chargeRequest()
			first, err := g.ChargeDetailed(context.Background(), req)
			if err != nil {
				t.Fatalf("first Charge: %v", err)
			}
			again, err := g.ChargeDetailed(context.Background(), req)
			if err != nil {
				t.Fatalf("repeated Charge: %v", err)
			}
			if again != first {
				t.Errorf("repeated key =\n %+v\nfirst\n %+v", again, first)
			}
			pays := f.pays()
			if len(pays) != 2 {
				t.Fatalf("pay calls = %d, want 2", len(pays))
			}
			for _, p := range pays {
				checkPayRequest(t, p, req)
			}
		})
	}
}

func TestChargeInvalidRequest(t *testing.T) {
	noKey := chargeRequest()
	noKey.IdempotencyKey = ""
	notInvoice := chargeRequest()
	notInvoice.InvoiceID = "INV-2026-0042"
	noCurrency := chargeRequest()
	noCurrency.Currency = ""
	tests := []struct {
		name    string
		req     gateway.ChargeRequest
		wantErr string
	}{
		{"no idempotency key", noKey, "idempotency key is required"},
		{"not a Stripe invoice", notInvoice, `"INV-2026-0042" is not a Stripe invoice ID`},
		{"no currency", noCurrency, "currency is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStripe{invoice: openInvoice, pay: paysInvoice}
			g, _ := newTestGateway(t, f)
			_, err := g.ChargeDetailed(context.Background(), tc.req)
			if !errors.Is(err, gateway.ErrPermanent) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Charge error = %v, want a permanent error saying %q", err, tc.wantErr)
			}
			if n := len(f.requests()); n != 0 {
				t.Errorf("requests = %d, want none", n)
			}
		})
	}
}

func TestChargeNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	g, err := New(Config{APIKey: testKey, BaseURL: base, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Charge(context.Background(), chargeRequest())
	if err == nil || errors.Is(err, gateway.ErrPermanent) {
		t.Fatalf("Charge error = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Errorf("error %q contains the API key", err)
	}
}

func TestChargeKeepsTheKeyOutOfErrors(t *testing.T) {
	body := fmt.Sprintf(`{"error": {"message": "Invalid API Key provided: %s", "type": "invalid_request_error"}}`, testKey)
	for _, where := range []string{"read", "pay"} {
		t.Run(where, func(t *testing.T) {
			f := &fakeStripe{invoice: openInvoice, pay: func(string, *http.Request, int) answer { return answer{status: 401, body: body} }}
			if where == "read" {
				f.invoice = func(string, int) answer { return answer{status: 401, body: body} }
			}
			g, _ := newTestGateway(t, f)
			_, err := g.Charge(context.Background(), chargeRequest())
			if !errors.Is(err, gateway.ErrPermanent) {
				t.Fatalf("Charge error = %v, want permanent", err)
			}
			if strings.Contains(err.Error(), testKey) || !strings.Contains(err.Error(), "[redacted]") {
				t.Errorf("error %q is not redacted", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{APIKey: testKey}, ""},
		{"stripe-mock", Config{APIKey: testKey, BaseURL: "http://127.0.0.1:12111/"}, ""},
		{"no key", Config{}, "API key is required"},
		{"blank key", Config{APIKey: "  "}, "API key is required"},
		{"relative base URL", Config{APIKey: testKey, BaseURL: "localhost:12111"}, "absolute http or https URL"},
		{"other scheme", Config{APIKey: testKey, BaseURL: "ftp://example.com"}, "absolute http or https URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if g.Name() != "stripe" {
					t.Errorf("Name = %q, want stripe", g.Name())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New error = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the API key", err)
			}
		})
	}
}
