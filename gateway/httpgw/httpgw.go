// Package httpgw is a gateway for in-house billing systems. Each charge is
// one signed JSON POST to an endpoint the billing system runs.
//
// # Request
//
//	POST <URL>
//	Content-Type: application/json
//	Idempotency-Key: dunning/acme/in_123/attempt-2
//	Dunning-Signature: t=1772445600,v1=<hex HMAC-SHA256>
//
//	{"idempotency_key":"dunning/acme/in_123/attempt-2","attempt":2,"tenant":"acme",
//	 "invoice_id":"in_123","customer_id":"cus_42","payment_method":"pm_visa_4242",
//	 "amount_minor":1999,"currency":"USD"}
//
// amount_minor is in the currency's minor unit (cents for USD). An empty
// payment_method means the customer's default.
//
// Dunning-Signature is t=<unix seconds>,v1=<hex of HMAC-SHA256(secret,
// "<t>." + body)>. It uses the same scheme as the platform's billing
// callbacks. Verify the signature over the raw body before acting on the
// request, and reject stale timestamps. Billing systems written in Go can
// call Verify.
//
// The endpoint must be idempotent. A repeated Idempotency-Key must return the
// first answer and must not charge again, because the platform repeats a
// request with the same key after timeouts, network errors, 408, 429 and 5xx.
//
// # Response
//
//	200 {"outcome":"succeeded","reference":"ch_123"}
//	200 {"outcome":"declined","decline_code":"insufficient_funds","advice_code":"try_again_later","message":"Insufficient funds"}
//	4xx {"error":"unknown invoice in_123"}
//
// The platform maps answers like this:
//
//   - 200 (any 2xx) with outcome "succeeded" or "declined": the charge was
//     processed. A decline is a result, not an error. reference is your
//     payment's ID. decline_code, advice_code and message are free text that
//     the dunning policy and the customer messages use.
//   - 200 with any other outcome value: a permanent error.
//   - 200 whose body is not JSON or has no outcome: retried with the same key.
//   - 4xx except 408 and 429: a permanent error. The request can never
//     succeed (unknown invoice, bad signature, invalid request). The body's
//     "error" is recorded.
//   - 408, 429, 5xx and network errors: retried with the same key.
//   - 3xx: a permanent error. Redirects are not followed, so configure the
//     final URL.
package httpgw

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/gateway"
)

// Outcome values in a Response.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeDeclined  = "declined"
)

// DefaultTolerance is how far a signature's timestamp may be from the
// verifier's clock when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// maxResponse caps how much of an answer is read.
const maxResponse = 1 << 20

// ErrBadSignature is wrapped by every error Verify returns.
var ErrBadSignature = errors.New("bad " + billing.SignatureHeader + " header")

// Request is the JSON body POSTed for each charge.
type Request struct {
	IdempotencyKey string `json:"idempotency_key"`
	Attempt        int    `json:"attempt"`
	Tenant         string `json:"tenant"`
	InvoiceID      string `json:"invoice_id"`
	CustomerID     string `json:"customer_id"`
	PaymentMethod  string `json:"payment_method"`
	AmountMinor    int64  `json:"amount_minor"`
	Currency       string `json:"currency"`
}

// Response is the JSON body the billing system answers with.
type Response struct {
	Outcome     string `json:"outcome,omitempty"`
	Reference   string `json:"reference,omitempty"`
	DeclineCode string `json:"decline_code,omitempty"`
	AdviceCode  string `json:"advice_code,omitempty"`
	Message     string `json:"message,omitempty"`
	// Error explains a 4xx answer.
	Error string `json:"error,omitempty"`
}

// Config configures an HTTP gateway.
type Config struct {
	// URL is the billing system's charge endpoint (absolute http or https).
	URL string
	// Secret signs each request; the billing system verifies it.
	Secret string
	// HTTPClient defaults to a client with a 30 second timeout that does not
	// follow redirects.
	HTTPClient *http.Client
	// Now defaults to time.Now; it sets signature timestamps and result times.
	Now func() time.Time
}

// Gateway charges through a billing system's HTTP endpoint. It implements
// gateway.Gateway.
type Gateway struct {
	url    string
	secret string
	client *http.Client
	now    func() time.Time
}

var _ gateway.Gateway = (*Gateway)(nil)

// New returns an HTTP gateway.
func New(cfg Config) (*Gateway, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http gateway: URL %q must be an absolute http or https URL", redactURL(cfg.URL))
	}
	if cfg.Secret == "" {
		return nil, errors.New("http gateway: a signing secret is required")
	}
	g := &Gateway{url: cfg.URL, secret: cfg.Secret, client: cfg.HTTPClient, now: cfg.Now}
	if g.client == nil {
		g.client = &http.Client{
			Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g, nil
}

// Name implements gateway.Gateway.
func (g *Gateway) Name() string { return "http" }

// Charge implements gateway.Gateway with one signed POST; see the package
// documentation for the contract.
func (g *Gateway) Charge(ctx context.Context, req gateway.ChargeRequest) (gateway.ChargeResult, error) {
	if req.IdempotencyKey == "" {
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: %w: idempotency key is required", gateway.ErrPermanent)
	}
	body, err := json.Marshal(Request{
		IdempotencyKey: req.IdempotencyKey,
		Attempt:        req.Attempt,
		Tenant:         req.Tenant,
		InvoiceID:      req.InvoiceID,
		CustomerID:     req.CustomerID,
		PaymentMethod:  req.PaymentMethod,
		AmountMinor:    req.AmountMinor,
		Currency:       req.Currency,
	})
	if err != nil {
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: %w: encode charge %s: %v", gateway.ErrPermanent, req.IdempotencyKey, err)
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: %w: build request: %v", gateway.ErrPermanent, err)
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("Accept", "application/json")
	httpReq.Header.Set("Idempotency-Key", req.IdempotencyKey)
	httpReq.Header.Set(billing.SignatureHeader, billing.Sign(g.secret, g.now(), body))

	resp, err := g.client.Do(httpReq)
	if err != nil {
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: charge %s: %w", req.IdempotencyKey, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: charge %s: read answer (HTTP %d): %w", req.IdempotencyKey, resp.StatusCode, err)
	}

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return g.result(req, code, raw)
	case code == http.StatusConflict:
		// The first request with this key is still running: the outcome
		// is unknown, so the same key is asked again, never a new one.
		err := fmt.Errorf("http gateway: charge %s: HTTP 409: %w: %s", req.IdempotencyKey, gateway.ErrInProgress, explain(raw))
		return gateway.ChargeResult{}, g.retryLater(resp, err)
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		err := fmt.Errorf("http gateway: charge %s: HTTP %d: %s", req.IdempotencyKey, code, explain(raw))
		return gateway.ChargeResult{}, g.retryLater(resp, err)
	case code >= 300 && code < 400:
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: %w: charge %s: HTTP %d redirect to %q is not followed",
			gateway.ErrPermanent, req.IdempotencyKey, code, redactURL(resp.Header.Get("Location")))
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: %w: charge %s: HTTP %d: %s", gateway.ErrNotAuthorized, req.IdempotencyKey, code, explain(raw))
	case code >= 400 && code < 500:
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: %w: charge %s: HTTP %d: %s", gateway.ErrPermanent, req.IdempotencyKey, code, explain(raw))
	default:
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: charge %s: unexpected HTTP %d", req.IdempotencyKey, code)
	}
}

// retryLater carries the answer's Retry-After, when it has one.
func (g *Gateway) retryLater(resp *http.Response, err error) error {
	if wait, ok := gateway.RetryAfter(resp.Header.Get("Retry-After"), g.now()); ok {
		return &gateway.RetryLater{Wait: wait, Err: err}
	}
	return err
}

// result maps a 2xx answer.
func (g *Gateway) result(req gateway.ChargeRequest, code int, raw []byte) (gateway.ChargeResult, error) {
	var r Response
	if err := json.Unmarshal(raw, &r); err != nil {
		// The charge may have happened and the answer got mangled on the way:
		// asking again with the same key returns the first answer.
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: charge %s: HTTP %d with a body that is not a charge result: %w", req.IdempotencyKey, code, err)
	}
	res := gateway.ChargeResult{Ref: r.Reference, Message: r.Message, At: g.now().UTC()}
	switch r.Outcome {
	case OutcomeSucceeded:
		res.Outcome = gateway.Succeeded
	case OutcomeDeclined:
		res.Outcome, res.DeclineCode, res.AdviceCode = gateway.Declined, r.DeclineCode, r.AdviceCode
	case "":
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: charge %s: HTTP %d without an outcome: %s", req.IdempotencyKey, code, snippet(raw))
	default:
		return gateway.ChargeResult{}, fmt.Errorf("http gateway: %w: charge %s: unknown outcome %q (want %q or %q)",
			gateway.ErrPermanent, req.IdempotencyKey, r.Outcome, OutcomeSucceeded, OutcomeDeclined)
	}
	return res, nil
}

// explain returns an error answer's "error" field, or the start of its body.
func explain(raw []byte) string {
	var r Response
	if json.Unmarshal(raw, &r) == nil && r.Error != "" {
		return r.Error
	}
	if s := snippet(raw); s != "" {
		return s
	}
	return "no body"
}

func snippet(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// redactURL drops credentials from a URL before it goes into an error.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// Verify checks a Dunning-Signature header against the raw request body: the
// HMAC must match secret, and its timestamp must be within tolerance of now
// (DefaultTolerance when tolerance is not positive). Several v1 values are
// accepted, so a secret can be rotated. Every error wraps ErrBadSignature.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return fmt.Errorf("%w: no secret to verify with", ErrBadSignature)
	}
	if strings.TrimSpace(header) == "" {
		return fmt.Errorf("%w: missing", ErrBadSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var (
		ts     string
		hasTS  bool
		hashes [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed element %q", ErrBadSignature, part)
		}
		switch k {
		case "t":
			ts, hasTS = v, true
		case "v1":
			h, err := hex.DecodeString(v)
			if err != nil {
				return fmt.Errorf("%w: v1 is not hex: %v", ErrBadSignature, err)
			}
			hashes = append(hashes, h)
		}
	}
	if !hasTS || len(hashes) == 0 {
		return fmt.Errorf("%w: need t and v1", ErrBadSignature)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q: %v", ErrBadSignature, ts, err)
	}
	signedAt := time.Unix(unix, 0)
	if age := now.Sub(signedAt); age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: timestamp %s is %s from now, more than the %s allowed",
			ErrBadSignature, signedAt.UTC().Format(time.RFC3339), age.Round(time.Second), tolerance)
	}
	want, err := expectedMAC(secret, signedAt, body)
	if err != nil {
		return err
	}
	for _, h := range hashes {
		if hmac.Equal(h, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: signature does not match the body", ErrBadSignature)
}

// expectedMAC is the v1 value billing.Sign produces for body at t.
func expectedMAC(secret string, t time.Time, body []byte) ([]byte, error) {
	_, v1, ok := strings.Cut(billing.Sign(secret, t, body), ",v1=")
	if !ok {
		return nil, fmt.Errorf("%w: unexpected signature format", ErrBadSignature)
	}
	return hex.DecodeString(v1)
}
