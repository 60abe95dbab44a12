package httpgw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/gateway"
)

const testSecret = "whsec_dunning_test_secret"

var testNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// received is one request as the billing system saw it.
type received struct {
	method, contentType, key string
	body                     []byte
	charge                   Request
	sigErr                   error
}

// billingSystem verifies each request's signature, refuses bad ones with a
// 401 as a real endpoint would, and otherwise answers with answer.
type billingSystem struct {
	answer func(req Request, n int) (status int, body string)

	mu   sync.Mutex
	reqs []received
}

func (b *billingSystem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := received{method: r.Method, contentType: r.Header.Get("Content-Type"), key: r.Header.Get("Idempotency-Key"), body: body}
	rec.sigErr = Verify(testSecret, r.Header.Get(billing.SignatureHeader), body, testNow, time.Minute)
	_ = json.Unmarshal(body, &rec.charge)
	b.mu.Lock()
	b.reqs = append(b.reqs, rec)
	n := len(b.reqs) - 1
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if rec.sigErr != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(Response{Error: rec.sigErr.Error()})
		return
	}
	status, answer := b.answer(rec.charge, n)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (b *billingSystem) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.reqs...)
}

func answering(status int, body string) *billingSystem {
	return &billingSystem{answer: func(Request, int) (int, string) { return status, body }}
}

func newTestGateway(t *testing.T, b *billingSystem) *Gateway {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	g, err := New(Config{URL: srv.URL + "/dunning/charge", Secret: testSecret, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
}

func chargeRequest() gateway.ChargeRequest {
	return gateway.ChargeRequest{
		IdempotencyKey: "dunning/acme/INV-2026-0042/attempt-2",
		Attempt:        2,
		Tenant:         "acme",
		InvoiceID:      "INV-2026-0042",
		CustomerID:     "cust-981",
		PaymentMethod:  "card-visa-4242",
		AmountMinor:    1999,
		Currency:       "USD",
	}
}

func TestChargeRequest(t *testing.T) {
	b := answering(200, `{"outcome":"succeeded","reference":"pay_1"}`)
	g := newTestGateway(t, b)
	if _, err := g.Charge(context.Background(), chargeRequest()); err != nil {
		t.Fatalf("Charge: %v", err)
	}
	reqs := b.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.contentType != "application/json" || r.key != "dunning/acme/INV-2026-0042/attempt-2" {
		t.Errorf("request = %s, Content-Type %q, Idempotency-Key %q", r.method, r.contentType, r.key)
	}
	if r.sigErr != nil {
		t.Errorf("signature does not verify: %v", r.sigErr)
	}
	want := `{"idempotency_key":"dunning/acme/INV-2026-0042/attempt-2","attempt":2,"tenant":"acme",` +
		`"invoice_id":"INV-2026-0042","customer_id":"cust-981","payment_method":"card-visa-4242",` +
		`"amount_minor":1999,"currency":"USD"}`
	if string(r.body) != want {
		t.Errorf("body =\n %s\nwant\n %s", r.body, want)
	}
}

func TestChargeOutcomes(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		body          string
		want          gateway.ChargeResult
		wantErr       string
		wantPermanent bool
	}{
		{
			name: "succeeded", status: 200, body: `{"outcome":"succeeded","reference":"pay_1"}`,
			want: gateway.ChargeResult{Outcome: gateway.Succeeded, Ref: "pay_1", At: testNow},
		},
		{
			name: "succeeded with 201", status: 201, body: `{"outcome":"succeeded","reference":"pay_2","message":"collected"}`,
			want: gateway.ChargeResult{Outcome: gateway.Succeeded, Ref: "pay_2", Message: "collected", At: testNow},
		},
		{
			name: "declined", status: 200,
			body: `{"outcome":"declined","decline_code":"insufficient_funds","advice_code":"try_again_later","message":"Insufficient funds","reference":"pay_3"}`,
			want: gateway.ChargeResult{Outcome: gateway.Declined, DeclineCode: "insufficient_funds", AdviceCode: "try_again_later",
				Message: "Insufficient funds", Ref: "pay_3", At: testNow},
		},
		{
			name: "declined without codes", status: 200, body: `{"outcome":"declined"}`,
			want: gateway.ChargeResult{Outcome: gateway.Declined, At: testNow},
		},
		{name: "unknown outcome", status: 200, body: `{"outcome":"pending"}`, wantErr: `unknown outcome "pending"`, wantPermanent: true},
		{name: "outcome in other case", status: 200, body: `{"outcome":"Succeeded"}`, wantErr: `unknown outcome "Succeeded"`, wantPermanent: true},
		{name: "no outcome", status: 200, body: `{"reference":"pay_4"}`, wantErr: "without an outcome"},
		{name: "not JSON", status: 200, body: `<html>OK</html>`, wantErr: "not a charge result"},
		{name: "empty body", status: 200, body: ``, wantErr: "not a charge result"},
		{name: "truncated JSON", status: 200, body: `{"outcome":"succ`, wantErr: "not a charge result"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGateway(t, answering(tc.status, tc.body))
			got, err := g.Charge(context.Background(), chargeRequest())
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
				t.Errorf("Charge = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestChargeErrorStatuses(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		body          string
		wantPermanent bool
		wantInErr     string
	}{
		{"400 with error", 400, `{"error":"amount_minor does not match invoice INV-2026-0042"}`, true, "HTTP 400: amount_minor does not match invoice INV-2026-0042"},
		{"400 without JSON", 400, "bad request\n", true, "HTTP 400: bad request"},
		{"401", 401, `{"error":"unknown key"}`, true, "HTTP 401: unknown key"},
		{"403", 403, `{"error":"tenant acme is not allowed"}`, true, "tenant acme is not allowed"},
		{"404", 404, `{"error":"unknown invoice INV-2026-0042"}`, true, "unknown invoice INV-2026-0042"},
		{"409 in progress", 409, `{"error":"a request with this key is in progress"}`, false, "HTTP 409"},
		{"422", 422, `{"error":"currency USD not supported"}`, true, "currency USD not supported"},
		{"408", 408, `{"error":"timeout"}`, false, "HTTP 408: timeout"},
		{"429", 429, `{"error":"slow down"}`, false, "HTTP 429: slow down"},
		{"500", 500, `{"error":"database unavailable"}`, false, "HTTP 500: database unavailable"},
		{"502 without body", 502, ``, false, "HTTP 502: no body"},
		{"503", 503, `<html>maintenance</html>`, false, "HTTP 503: <html>maintenance</html>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGateway(t, answering(tc.status, tc.body))
			got, err := g.Charge(context.Background(), chargeRequest())
			if err == nil {
				t.Fatalf("Charge = %+v, nil; want an error", got)
			}
			if p := errors.Is(err, gateway.ErrPermanent); p != tc.wantPermanent {
				t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v (err: %v)", p, tc.wantPermanent, err)
			}
			// Refused credentials are ours to fix: the run holds for ops.
			if auth, want := errors.Is(err, gateway.ErrNotAuthorized), tc.status == 401 || tc.status == 403; auth != want {
				t.Errorf("errors.Is(err, ErrNotAuthorized) = %v, want %v (err: %v)", auth, want, err)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q does not say %q", err, tc.wantInErr)
			}
		})
	}
}

func TestChargeRedirectIsNotFollowed(t *testing.T) {
	target := answering(200, `{"outcome":"succeeded"}`)
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/elsewhere", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	g, err := New(Config{URL: redirect.URL, Secret: testSecret, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Charge(context.Background(), chargeRequest())
	if !errors.Is(err, gateway.ErrPermanent) || !strings.Contains(err.Error(), "HTTP 302 redirect") {
		t.Errorf("Charge error = %v, want a permanent redirect error", err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect was followed (%d requests)", n)
	}
}

// TestChargeRepeatedKey runs against an endpoint that keeps the first answer
// per idempotency key, as the contract asks.
func TestChargeRepeatedKey(t *testing.T) {
	var mu sync.Mutex
	first := map[string]string{}
	charges := 0
	b := &billingSystem{answer: func(req Request, n int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := first[req.IdempotencyKey]; ok {
			return 200, a
		}
		charges++
		a := `{"outcome":"declined","decline_code":"do_not_honor","reference":"pay_` + strconv.Itoa(charges) + `"}`
		first[req.IdempotencyKey] = a
		return 200, a
	}}
	g := newTestGateway(t, b)
	req := chargeRequest()
	one, err := g.Charge(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	two, err := g.Charge(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if one != two || charges != 1 {
		t.Errorf("results %+v and %+v after %d charges; want one charge and the same result", one, two, charges)
	}
	reqs := b.requests()
	if len(reqs) != 2 || reqs[0].key != req.IdempotencyKey || reqs[1].key != req.IdempotencyKey || !bytes.Equal(reqs[0].body, reqs[1].body) {
		t.Errorf("requests did not repeat the same key and body: %+v", reqs)
	}
}

func TestChargeWrongSecret(t *testing.T) {
	b := answering(200, `{"outcome":"succeeded"}`)
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	g, err := New(Config{URL: srv.URL, Secret: "not-the-shared-secret", Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Charge(context.Background(), chargeRequest())
	if !errors.Is(err, gateway.ErrPermanent) || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("Charge error = %v, want a permanent 401", err)
	}
	if strings.Contains(err.Error(), "not-the-shared-secret") {
		t.Errorf("error %q contains the secret", err)
	}
}

func TestChargeNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	g, err := New(Config{URL: url, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Charge(context.Background(), chargeRequest())
	if err == nil || errors.Is(err, gateway.ErrPermanent) {
		t.Errorf("Charge error = %v, want a retryable error", err)
	}
}

func TestChargeNeedsIdempotencyKey(t *testing.T) {
	b := answering(200, `{"outcome":"succeeded"}`)
	g := newTestGateway(t, b)
	req := chargeRequest()
	req.IdempotencyKey = ""
	if _, err := g.Charge(context.Background(), req); !errors.Is(err, gateway.ErrPermanent) {
		t.Errorf("Charge error = %v, want permanent", err)
	}
	if n := len(b.requests()); n != 0 {
		t.Errorf("requests = %d, want none", n)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"https", Config{URL: "https://billing.example.com/dunning/charge", Secret: "s"}, ""},
		{"http", Config{URL: "http://billing.internal:8080/charge", Secret: "s"}, ""},
		{"no URL", Config{Secret: "s"}, "absolute http or https URL"},
		{"relative URL", Config{URL: "/charge", Secret: "s"}, "absolute http or https URL"},
		{"other scheme", Config{URL: "ftp://billing.example.com/charge", Secret: "s"}, "absolute http or https URL"},
		{"no host", Config{URL: "https:///charge", Secret: "s"}, "absolute http or https URL"},
		{"credentials are not echoed", Config{URL: "ftp://user:hunter2@billing.example.com/", Secret: "s"}, "user:xxxxx@"},
		{"no secret", Config{URL: "https://billing.example.com/charge"}, "secret is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if g.Name() != "http" {
					t.Errorf("Name = %q, want http", g.Name())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New error = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q contains a password", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"idempotency_key":"dunning/acme/INV-1/attempt-1","amount_minor":1999}`)
	signed := billing.Sign(testSecret, testNow, body)
	_, v1, _ := strings.Cut(signed, ",v1=")
	tests := []struct {
		name      string
		secret    string
		header    string
		body      []byte
		now       time.Time
		tolerance time.Duration
		wantErr   string
	}{
		{name: "valid", header: signed},
		{name: "valid with spaces", header: strings.ReplaceAll(signed, ",", ", ")},
		{name: "valid at the edge of the tolerance", header: signed, now: testNow.Add(time.Minute)},
		{name: "one of several v1 values", header: signed + ",v1=" + strings.Repeat("ab", 32)},
		{name: "rotated secret first", header: billing.Sign("old-secret", testNow, body) + ",v1=" + v1},
		{name: "default tolerance", header: signed, now: testNow.Add(4 * time.Minute), tolerance: -1},
		{name: "tampered body", header: signed, body: bytes.Replace(body, []byte("1999"), []byte("1"), 1), wantErr: "does not match"},
		{name: "other secret", header: signed, secret: "whsec_other", wantErr: "does not match"},
		{name: "expired", header: signed, now: testNow.Add(time.Minute + time.Second), wantErr: "more than the 1m0s allowed"},
		{name: "expired under the default tolerance", header: signed, now: testNow.Add(6 * time.Minute), tolerance: -1, wantErr: "more than the 5m0s allowed"},
		{name: "from the future", header: signed, now: testNow.Add(-2 * time.Minute), wantErr: "allowed"},
		{name: "timestamp changed", header: fmt.Sprintf("t=%d,v1=%s", testNow.Unix()+1, v1), wantErr: "does not match"},
		{name: "timestamp far away", header: "t=99999999999999,v1=" + v1, wantErr: "allowed"},
		{name: "missing", header: "", wantErr: "missing"},
		{name: "no v1", header: "t=1772445600", wantErr: "need t and v1"},
		{name: "no t", header: "v1=" + v1, wantErr: "need t and v1"},
		{name: "v1 not hex", header: "t=1772445600,v1=zz", wantErr: "not hex"},
		{name: "malformed", header: "garbage", wantErr: "malformed"},
		{name: "t not a number", header: "t=yesterday,v1=" + v1, wantErr: "timestamp"},
		{name: "no secret to verify with", header: signed, secret: "-", wantErr: "no secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secret := testSecret
			switch tc.secret {
			case "":
			case "-":
				secret = ""
			default:
				secret = tc.secret
			}
			b := body
			if tc.body != nil {
				b = tc.body
			}
			now := testNow
			if !tc.now.IsZero() {
				now = tc.now
			}
			tolerance := time.Minute
			if tc.tolerance != 0 {
				tolerance = tc.tolerance
			}
			err := Verify(secret, tc.header, b, now, tolerance)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Verify error = %v, want ErrBadSignature saying %q", err, tc.wantErr)
			}
		})
	}
}

// A 409 on an in-flight key, and a 429 or 5xx with Retry-After, are
// "outcome unknown": the same key is asked again after the gateway's wait.
func TestChargeUnknownOutcomeHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wantWait   time.Duration
		inProgress bool
	}{
		{"409 in progress with seconds", 409, "7", 7 * time.Second, true},
		{"409 in progress without a wait", 409, "", 0, true},
		{"429 with an HTTP date", 429, testNow.Add(90 * time.Second).UTC().Format(http.TimeFormat), 90 * time.Second, false},
		{"503 with a wait past the cap", 503, "86400", time.Hour, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
			}))
			t.Cleanup(srv.Close)
			g, err := New(Config{URL: srv.URL, Secret: testSecret, Now: func() time.Time { return testNow }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = g.Charge(context.Background(), chargeRequest())
			if err == nil || errors.Is(err, gateway.ErrPermanent) {
				t.Fatalf("err = %v, want a retryable error", err)
			}
			if errors.Is(err, gateway.ErrInProgress) != tc.inProgress {
				t.Errorf("errors.Is(err, ErrInProgress) = %v, want %v", !tc.inProgress, tc.inProgress)
			}
			var later *gateway.RetryLater
			if got := errors.As(err, &later); got != (tc.wantWait > 0) || (got && later.Wait != tc.wantWait) {
				t.Errorf("RetryLater = %v (%+v), want wait %s", got, later, tc.wantWait)
			}
		})
	}
}
