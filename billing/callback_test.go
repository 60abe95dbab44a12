package billing_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dunningco/dunning/billing"
)

// testSecret is the example secret of the Standard Webhooks specification.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// received is one request as the billing system saw it.
type received struct {
	method, contentType string
	header              http.Header
	body                []byte
}

// recorder is a billing system answering every request with status and
// answer.
type recorder struct {
	mu     sync.Mutex
	status int
	answer string
	reqs   []received
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, received{method: req.Method, contentType: req.Header.Get("Content-Type"), header: req.Header.Clone(), body: body})
	status, answer := r.status, r.answer
	r.mu.Unlock()
	if answer == "" {
		answer = "  answer from billing  \n"
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (r *recorder) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// local is an endpoint on this machine, which only a tenant allowed
// private networks may reach.
func local(url string) billing.Endpoint {
	return billing.Endpoint{URL: url, Secret: testSecret, AllowPrivateNetwork: true}
}

var body = []byte(`{"type":"service.state_changed","version":1,"timestamp":"2026-03-05T08:00:00Z","data":{"state":"paused"}}`)

func TestSendStatusMapping(t *testing.T) {
	tests := []struct {
		status        int
		wantErr       bool
		wantPermanent bool
	}{
		{http.StatusOK, false, false},
		{http.StatusAccepted, false, false},
		{http.StatusNoContent, false, false},
		{http.StatusMovedPermanently, true, true},
		{http.StatusFound, true, true},
		{http.StatusTemporaryRedirect, true, true},
		{http.StatusNotModified, true, true},
		{http.StatusBadRequest, true, true},
		{http.StatusUnauthorized, true, true},
		{http.StatusForbidden, true, true},
		{http.StatusNotFound, true, true},
		{http.StatusConflict, true, true},
		{http.StatusUnprocessableEntity, true, true},
		{http.StatusRequestTimeout, true, false},
		{http.StatusTooManyRequests, true, false},
		{http.StatusInternalServerError, true, false},
		{http.StatusBadGateway, true, false},
		{http.StatusServiceUnavailable, true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			rec := &recorder{status: tt.status}
			srv := httptest.NewServer(rec)
			defer srv.Close()

			err := (&billing.Callback{}).Send(ctxFor(t), local(srv.URL), "msg_1", body)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Send with HTTP %d: error = %v, want error: %v", tt.status, err, tt.wantErr)
			}
			if got := errors.Is(err, billing.ErrRejected); got != tt.wantPermanent {
				t.Errorf("Send with HTTP %d: errors.Is(err, ErrRejected) = %v, want %v (err: %v)", tt.status, got, tt.wantPermanent, err)
			}
			if err != nil {
				var de *billing.DeliveryError
				if !errors.As(err, &de) || de.Status != tt.status {
					t.Errorf("error %v: want a DeliveryError with status %d", err, tt.status)
				}
				if !strings.HasPrefix(err.Error(), fmt.Sprintf("HTTP %d", tt.status)) {
					t.Errorf("error %q should start with the status", err)
				}
			}
			if got := len(rec.requests()); got != 1 {
				t.Errorf("requests = %d, want 1 (Send does not retry by itself)", got)
			}
		})
	}
}

// A refusal keeps only a short, clean snippet of the answer: no control
// characters (terminal escapes, CR/LF that would forge log lines), no
// invalid UTF-8, no more than 100 characters of whatever the server sent.
func TestSendSanitizesTheAnswer(t *testing.T) {
	tests := []struct {
		name, answer, want string
	}{
		{"plain", "unknown customer", "HTTP 422: unknown customer"},
		{"white space folded", "  unknown\r\n\tcustomer \n", "HTTP 422: unknown customer"},
		{"control characters", "bad\x1b[31m red\x00\x07 input\u2028x", "HTTP 422: bad [31m red input x"},
		{"invalid UTF-8", "caf\xc3\x28 \xff\xfeok", "HTTP 422: caf ( ok"},
		{"long", strings.Repeat("a", 5000), "HTTP 422: " + strings.Repeat("a", 100) + "..."},
		{"HTML page", "<html>\n<body>\n<h1>Unprocessable</h1>\n" + strings.Repeat("<p>x</p>\n", 1000), "HTTP 422: <html> <body> <h1>Unprocessable</h1> <p>x</p> <p>x</p>"},
		{"empty", " ", "HTTP 422"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{status: http.StatusUnprocessableEntity, answer: tt.answer}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			err := (&billing.Callback{}).Send(ctxFor(t), local(srv.URL), "msg_1", body)
			if err == nil {
				t.Fatal("Send: want an error")
			}
			got := err.Error()
			if !strings.HasPrefix(got, tt.want) || len(got) > len("HTTP 422: ")+103 {
				t.Errorf("error = %q, want it to start with %q and stay short", got, tt.want)
			}
			for _, r := range got {
				if r < ' ' || r == 0x7f {
					t.Errorf("error %q holds control character %U", got, r)
				}
			}
		})
	}
}

func TestSendSignsWithStandardWebhooks(t *testing.T) {
	rec := &recorder{status: http.StatusNoContent}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	at := time.Now().Truncate(time.Second)
	cb := &billing.Callback{Now: func() time.Time { return at }}

	id := billing.WebhookID("dunning/acme/inv-1/service-suspended")
	if err := cb.Send(ctxFor(t), local(srv.URL), id, body); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	got := reqs[0]
	if got.method != http.MethodPost || got.contentType != "application/json" {
		t.Errorf("%s with Content-Type %q, want a JSON POST", got.method, got.contentType)
	}
	if string(got.body) != string(body) {
		t.Errorf("body = %s, want it byte for byte: %s", got.body, body)
	}
	if got.header.Get("webhook-id") != id || got.header.Get("webhook-timestamp") != fmt.Sprint(at.Unix()) {
		t.Errorf("webhook-id %q, webhook-timestamp %q", got.header.Get("webhook-id"), got.header.Get("webhook-timestamp"))
	}
	if !strings.HasPrefix(got.header.Get("webhook-signature"), "v1,") {
		t.Errorf("webhook-signature = %q, want v1,<base64>", got.header.Get("webhook-signature"))
	}
	if got.header.Get(billing.SignatureHeader) != "" || got.header.Get("Idempotency-Key") != "" {
		t.Errorf("old headers still sent: %v", got.header)
	}

	// The billing system checks it with the official library.
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Errorf("Verify: %v", err)
	}
	tampered := append([]byte(nil), got.body...)
	tampered[len(tampered)-3] = 'X'
	if err := wh.Verify(tampered, got.header); err == nil {
		t.Error("Verify accepted a changed body")
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("A", 32))
	if err := other.Verify(got.body, got.header); err == nil {
		t.Error("Verify accepted another tenant's secret")
	}
}

func TestSendRefusesLoopbackUnlessAllowed(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()

	err := (&billing.Callback{}).Send(ctxFor(t), billing.Endpoint{URL: srv.URL, Secret: testSecret}, "msg_1", body)
	if !errors.Is(err, billing.ErrRejected) || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("Send to loopback = %v, want a permanent refusal naming loopback", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server got %d requests, want 0", n)
	}
}

func TestSendRedirectIsNotFollowed(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer redirector.Close()

	err := (&billing.Callback{}).Send(ctxFor(t), local(redirector.URL), "msg_1", body)
	if !errors.Is(err, billing.ErrRejected) || !strings.Contains(err.Error(), "HTTP 302: redirect not followed") {
		t.Errorf("Send = %v, want a permanent failure for the redirect", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}

func TestSendTransportErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so the server notices the client leave
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()

	tests := []struct {
		name       string
		cb         *billing.Callback
		ep         billing.Endpoint
		wantReason string
		permanent  bool
	}{
		{"connection refused", &billing.Callback{}, local(closedURL), "connection refused", false},
		{"timeout", &billing.Callback{Timeout: 200 * time.Millisecond}, local(slow.URL + "/secret-token-in-path?token=s3cr3t"), "timed out", false},
		{"no such host", &billing.Callback{}, local("http://no-such-host.invalid/"), "DNS", false},
		{"bad secret", &billing.Callback{}, billing.Endpoint{URL: slow.URL, Secret: "not base64 !", AllowPrivateNetwork: true}, "signing secret", true},
		{"no secret", &billing.Callback{}, billing.Endpoint{URL: slow.URL, AllowPrivateNetwork: true}, "signing secret", true},
		{"malformed URL", &billing.Callback{}, local("http://bad host/\x7f"), "URL is not usable", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cb.Send(ctxFor(t), tt.ep, "msg_1", body)
			if err == nil || !strings.Contains(err.Error(), tt.wantReason) {
				t.Fatalf("Send = %v, want %q", err, tt.wantReason)
			}
			if got := errors.Is(err, billing.ErrRejected); got != tt.permanent {
				t.Errorf("permanent = %v, want %v (%v)", got, tt.permanent, err)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "http://") {
				t.Errorf("error %q repeats the URL", err)
			}
		})
	}
}

func TestEnvelopeEncode(t *testing.T) {
	at := time.Date(2026, 3, 5, 9, 0, 0, 123456000, time.FixedZone("CET", 3600))
	e := billing.Envelope{Type: "run.closed", Timestamp: at, Data: []byte(`{"reason": "paid <in full> & on time"}`)}
	got, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"type":"run.closed","version":1,"timestamp":"2026-03-05T08:00:00.123456Z","data":{"reason":"paid <in full> & on time"}}`
	if string(got) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", got, want)
	}
	again, _ := e.Encode()
	if string(again) != string(got) {
		t.Error("the same envelope encoded differently")
	}
	e.Version = 2
	if v2, _ := e.Encode(); !strings.Contains(string(v2), `"version":2`) {
		t.Errorf("Encode = %s, want version 2", v2)
	}
	if _, err := (billing.Envelope{Type: "x", Data: []byte("{")}).Encode(); err == nil {
		t.Error("Encode with data that is not JSON: want an error")
	}
}

func TestWebhookID(t *testing.T) {
	a := billing.WebhookID("dunning/acme/inv-1/closed")
	if a != billing.WebhookID("dunning/acme/inv-1/closed") {
		t.Error("WebhookID is not stable")
	}
	if a == billing.WebhookID("dunning/acme/inv-2/closed") {
		t.Error("two keys share a webhook-id")
	}
	if !strings.HasPrefix(a, "msg_") || len(a) != 36 {
		t.Errorf("WebhookID = %q, want msg_ and 32 hex digits", a)
	}
	if weird := billing.WebhookID("tenant\r\nX-Injected: 1"); strings.ContainsAny(weird, "\r\n: ") {
		t.Errorf("WebhookID = %q, not header-safe", weird)
	}
}

func TestEndpointNeverPrintsItsSecret(t *testing.T) {
	ep := billing.Endpoint{URL: "https://billing.example.com/events", Secret: testSecret}
	for _, s := range []string{fmt.Sprint(ep), fmt.Sprintf("%v", ep), fmt.Sprintf("%s", ep)} {
		if strings.Contains(s, "whsec_") {
			t.Errorf("formatted endpoint %q shows the secret", s)
		}
	}
}
