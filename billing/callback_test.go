package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/billing"
)

var fixedNow = time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)

type event struct {
	Type  string `json:"type"`
	State string `json:"state"`
}

// received is one request as the billing system saw it.
type received struct {
	method, contentType, key, signature string
	body                                []byte
}

// recorder is a billing system answering every request with status.
type recorder struct {
	mu     sync.Mutex
	status int
	reqs   []received
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, received{
		method: req.Method, contentType: req.Header.Get("Content-Type"), key: req.Header.Get("Idempotency-Key"),
		signature: req.Header.Get(billing.SignatureHeader), body: body,
	})
	r.mu.Unlock()
	w.WriteHeader(r.status)
	_, _ = io.WriteString(w, "  answer from billing  \n")
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

func TestPostStatusMapping(t *testing.T) {
	tests := []struct {
		status       int
		wantErr      bool
		wantRejected bool
	}{
		{http.StatusOK, false, false},
		{http.StatusAccepted, false, false},
		{http.StatusNoContent, false, false},
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
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			rec := &recorder{status: tt.status}
			srv := httptest.NewServer(rec)
			defer srv.Close()

			err := billing.Callback{}.Post(ctxFor(t), srv.URL, "key-1", event{Type: "service.state_changed", State: "paused"})
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Post with HTTP %d: error = %v, want error: %v", tt.status, err, tt.wantErr)
			}
			if got := errors.Is(err, billing.ErrRejected); got != tt.wantRejected {
				t.Errorf("Post with HTTP %d: errors.Is(err, ErrRejected) = %v, want %v (err: %v)", tt.status, got, tt.wantRejected, err)
			}
			if err != nil {
				// The error names the status and carries the trimmed answer.
				want := fmt.Sprintf("HTTP %d: answer from billing", tt.status)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q should contain %q", err, want)
				}
			}
			if got := len(rec.requests()); got != 1 {
				t.Errorf("requests = %d, want 1 (Post does not retry by itself)", got)
			}
		})
	}
}

func TestPostConnectionRefusedIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()

	err := billing.Callback{}.Post(ctxFor(t), url, "key-1", event{Type: "run.closed"})
	if err == nil {
		t.Fatal("Post to a closed server: want an error")
	}
	if errors.Is(err, billing.ErrRejected) {
		t.Errorf("Post to a closed server: %v must be retryable, not ErrRejected", err)
	}
}

func TestPostMalformedURLIsRejected(t *testing.T) {
	err := billing.Callback{}.Post(ctxFor(t), "http://bad host/\x7f", "key-1", event{Type: "run.closed"})
	if !errors.Is(err, billing.ErrRejected) {
		t.Errorf("Post to a malformed URL: error = %v, want ErrRejected", err)
	}
}

func TestPostRequest(t *testing.T) {
	tests := []struct {
		name          string
		secret        string
		wantSignature bool
	}{
		{name: "unsigned", secret: "", wantSignature: false},
		{name: "signed", secret: "whsec_test", wantSignature: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{status: http.StatusNoContent}
			srv := httptest.NewServer(rec)
			defer srv.Close()

			cb := billing.Callback{HTTP: srv.Client(), Secret: tt.secret, Now: func() time.Time { return fixedNow }}
			if err := cb.Post(ctxFor(t), srv.URL, "dunning/acme/inv-1/suspend", event{Type: "service.state_changed", State: "suspended"}); err != nil {
				t.Fatalf("Post: %v", err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("requests = %d, want 1", len(reqs))
			}
			got := reqs[0]
			if got.method != http.MethodPost {
				t.Errorf("method = %s, want POST", got.method)
			}
			if got.contentType != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got.contentType)
			}
			if got.key != "dunning/acme/inv-1/suspend" {
				t.Errorf("Idempotency-Key = %q, want %q", got.key, "dunning/acme/inv-1/suspend")
			}
			var ev event
			if err := json.Unmarshal(got.body, &ev); err != nil {
				t.Fatalf("body %q is not JSON: %v", got.body, err)
			}
			if ev != (event{Type: "service.state_changed", State: "suspended"}) {
				t.Errorf("body = %+v", ev)
			}
			if !tt.wantSignature {
				if got.signature != "" {
					t.Errorf("%s = %q, want none without a secret", billing.SignatureHeader, got.signature)
				}
				return
			}
			if want := billing.Sign(tt.secret, fixedNow, got.body); got.signature != want {
				t.Errorf("%s = %q, want %q", billing.SignatureHeader, got.signature, want)
			}
		})
	}
}

func TestSign(t *testing.T) {
	body := []byte(`{"type":"run.closed"}`)
	const want = "t=1772697600,v1=bd38eec41b9127d09cf6a09c2a7b0af66ef04c5ffadca1e9366cbffa79999ae1"

	if got := billing.Sign("whsec_test", fixedNow, body); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	// Deterministic: the same inputs give the same value, also from another zone.
	warsaw := fixedNow.In(time.FixedZone("CET", 3600))
	if got := billing.Sign("whsec_test", warsaw, body); got != want {
		t.Errorf("Sign in another zone = %q, want %q", got, want)
	}

	tests := []struct {
		name   string
		secret string
		at     time.Time
		body   []byte
	}{
		{"other secret", "whsec_other", fixedNow, body},
		{"other time", "whsec_test", fixedNow.Add(time.Second), body},
		{"other body", "whsec_test", fixedNow, []byte(`{"type":"run.closed "}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := billing.Sign(tt.secret, tt.at, tt.body); got == want {
				t.Errorf("Sign = %q, want a different signature", got)
			}
		})
	}
}

// PostJSON sends a stored body byte for byte (no re-encoding, no HTML
// escaping), so every attempt of an outbox event is identical and the
// signature covers what was stored.
func TestPostJSONSendsBodyAsIs(t *testing.T) {
	rec := &recorder{status: http.StatusNoContent}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	body := []byte(`{"at": "2026-03-05T08:00:00Z", "type": "run.closed", "reason": "paid <in full> & on time"}`)
	cb := billing.Callback{Secret: "whsec_test", Now: func() time.Time { return fixedNow }}

	for range 2 {
		if err := cb.PostJSON(ctxFor(t), srv.URL, "dunning/acme/inv-1/closed", body); err != nil {
			t.Fatalf("PostJSON: %v", err)
		}
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	for _, got := range reqs {
		if string(got.body) != string(body) {
			t.Errorf("body = %s, want %s", got.body, body)
		}
		if got.key != "dunning/acme/inv-1/closed" || got.contentType != "application/json" {
			t.Errorf("key %q, Content-Type %q", got.key, got.contentType)
		}
		if want := billing.Sign("whsec_test", fixedNow, body); got.signature != want {
			t.Errorf("%s = %q, want %q", billing.SignatureHeader, got.signature, want)
		}
	}
}
