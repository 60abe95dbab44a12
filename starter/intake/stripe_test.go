package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"
	"go.temporal.io/api/serviceerror"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/stripehooks"
	"github.com/dunningco/dunning/tenants"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

const stripeTestSecret = "whsec_acme_stripe_endpoint"

// stripeEvent is an invoice event as Stripe posts it.
func stripeEvent(t *testing.T, id, typ string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2026-03-25.dahlia", "created": 1772697600, "type": typ,
		"data": map[string]any{"object": map[string]any{
			"id": "in_1001", "object": "invoice", "status": "open", "customer": "cus_42",
			"customer_email": "ada@example.com", "amount_remaining": 4990, "currency": "eur",
			"default_payment_method": "pm_1Visa", "attempt_count": 1,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stripeSignature(payload []byte, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: stripeTestSecret, Timestamp: at}).Header
}

// postStripe posts payload to tenant's endpoint, without an API key: Stripe
// has none.
func postStripe(t *testing.T, h http.Handler, method, tenant string, payload []byte, signature string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, "/v1/webhooks/stripe/"+tenant, strings.NewReader(string(payload)))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if signature != "" {
		req.Header.Set(stripehooks.SignatureHeader, signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer is not JSON: %q", rec.Body.String())
	}
	if rec.Code >= 400 && rec.Header().Get("Content-Type") != ProblemContentType {
		t.Errorf("error answer has content type %q, want %s", rec.Header().Get("Content-Type"), ProblemContentType)
	}
	return rec, body
}

func newStripeHandler(t *testing.T, runs Runs) (http.Handler, *ledger.Store) {
	t.Helper()
	cfg, err := tenants.New(map[string]tenants.Tenant{
		"acme":   {StripeWebhookSecret: stripeTestSecret},
		"globex": {},
	})
	if err != nil {
		t.Fatal(err)
	}
	store := ledgertest.NewStore(t)
	return NewHandler(runs, slog.New(slog.DiscardHandler), WithStripeWebhooks(cfg, store)), store
}

// TestStripeWebhook delivers signed events in order to one endpoint and
// checks each answer and what reached the runs.
func TestStripeWebhook(t *testing.T) {
	runs := &fakeRuns{result: starter.StartResult{WorkflowID: "dunning/acme/in_1001", RunID: "run-1"}}
	h, store := newStripeHandler(t, runs)
	failed := stripeEvent(t, "evt_failed", "invoice.payment_failed")
	now := time.Now()

	steps := []struct {
		name      string
		tenant    string
		payload   []byte
		signature string
		runsErr   error
		status    int
		want      map[string]any // members the answer must have
		calls     int            // calls to the runs so far
	}{
		{name: "missing header", tenant: "acme", payload: failed, status: 400},
		{name: "tampered body", tenant: "acme", payload: []byte(strings.Replace(string(failed), "4990", "499", 1)),
			signature: stripeSignature(failed, now), status: 400},
		{name: "stale timestamp", tenant: "acme", payload: failed, signature: stripeSignature(failed, now.Add(-10*time.Minute)), status: 400},
		{name: "unknown tenant", tenant: "initech", payload: failed, signature: stripeSignature(failed, now), status: 404},
		{name: "tenant without a Stripe secret", tenant: "globex", payload: failed, signature: stripeSignature(failed, now), status: 404},
		{name: "Temporal unavailable", tenant: "acme", payload: failed, signature: stripeSignature(failed, now),
			runsErr: fmt.Errorf("start: %w", serviceerror.NewUnavailable("connection refused")), status: 503, calls: 1},
		{name: "refused by the intake rules", tenant: "acme", payload: failed, signature: stripeSignature(failed, now),
			runsErr: fmt.Errorf("%w: %w", starter.ErrInvalid, validation.Invalid("/decline/gateway", "stripe is not configured")), status: 422, calls: 2},
		{name: "valid", tenant: "acme", payload: failed, signature: stripeSignature(failed, now), status: 200,
			want: map[string]any{"event_id": "evt_failed", "action": "decline_reported", "runs": []any{"dunning/acme/in_1001"}}, calls: 3},
		{name: "replayed event ID", tenant: "acme", payload: failed, signature: stripeSignature(failed, now.Add(time.Second)), status: 200,
			want: map[string]any{"event_id": "evt_failed", "duplicate": true}, calls: 3},
		{name: "unknown type", tenant: "acme", payload: stripeEvent(t, "evt_other", "invoice.finalized"),
			signature: stripeSignature(stripeEvent(t, "evt_other", "invoice.finalized"), now), status: 200,
			want: map[string]any{"event_id": "evt_other", "ignored": true}, calls: 3},
	}
	for _, s := range steps {
		runs.mu.Lock()
		runs.err = s.runsErr
		runs.mu.Unlock()
		rec, body := postStripe(t, h, http.MethodPost, s.tenant, s.payload, s.signature)
		if rec.Code != s.status {
			t.Errorf("%s: status %d, want %d: %v", s.name, rec.Code, s.status, body)
			continue
		}
		for k, v := range s.want {
			if got, _ := json.Marshal(body[k]); string(got) != stripeJSON(v) {
				t.Errorf("%s: %s = %s, want %s", s.name, k, got, stripeJSON(v))
			}
		}
		if s.status == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", s.name)
		}
		if n := len(runs.Calls()); n != s.calls {
			t.Errorf("%s: %d calls to the runs, want %d", s.name, n, s.calls)
		}
	}

	// The run got the invoice as a decline report.
	calls := runs.Calls()
	in, _ := calls[len(calls)-1].Arg.(workflows.Input)
	if in.Tenant != "acme" || in.InvoiceID != "in_1001" || in.Amount != "49.90" || in.Currency != "EUR" ||
		in.Customer.ID != "cus_42" || in.Decline.Gateway != "stripe" || in.Decline.ID != "evt_failed" || in.PaymentMethod != "pm_1Visa" {
		t.Errorf("input = %+v", in)
	}
	ctx := context.Background()
	for id, want := range map[string]string{"evt_failed": "decline_reported: [dunning/acme/in_1001]", "evt_other": "ignored: event type invoice.finalized needs nothing of dunning"} {
		rec, err := store.GetWebhookEvent(ctx, stripehooks.Source, "acme", id)
		if err != nil || rec.Status != "processed" || rec.Outcome != want {
			t.Errorf("ledger record of %s = %+v, %v; want processed %q", id, rec, err, want)
		}
	}
}

func stripeJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestStripeWebhookBounds(t *testing.T) {
	runs := &fakeRuns{}
	h, _ := newStripeHandler(t, runs)
	big := make([]byte, stripehooks.MaxPayloadBytes+1)
	if rec, body := postStripe(t, h, http.MethodPost, "acme", big, stripeSignature(big, time.Now())); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized event: %d %v, want 413", rec.Code, body)
	}
	if rec, _ := postStripe(t, h, http.MethodGet, "acme", nil, ""); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d, Allow %q; want 405 allowing POST", rec.Code, rec.Header().Get("Allow"))
	}
	if len(runs.Calls()) != 0 {
		t.Errorf("calls = %v, want none", runs.Calls())
	}
}

func TestStripeWebhookOffUnlessConfigured(t *testing.T) {
	h := NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler))
	payload := stripeEvent(t, "evt_1", "invoice.payment_failed")
	if rec, _ := postStripe(t, h, http.MethodPost, "acme", payload, stripeSignature(payload, time.Now())); rec.Code != http.StatusNotFound {
		t.Errorf("status %d, want 404 without WithStripeWebhooks", rec.Code)
	}
}

func TestStripeOptionFromEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	withSecret := write("stripe.yaml", "tenants:\n  acme:\n    stripe_webhook_secret: whsec_abc\n")
	without := write("plain.yaml", "tenants:\n  acme: {}\n")
	broken := write("broken.yaml", "tenants:\n  acme:\n    stripe_secret: whsec_abc\n")
	store := ledgertest.NewStore(t)

	for _, tt := range []struct {
		name       string
		file       string
		store      Stores
		configured bool
		wantOpt    bool
		wantErr    string
	}{
		{name: "no file"},
		{name: "no tenant with a Stripe secret", file: without, store: store},
		{name: "a tenant with a Stripe secret", file: withSecret, store: store, configured: true, wantOpt: true},
		{name: "without the ledger", file: withSecret, configured: true, wantErr: "needs the ledger"},
		{name: "a file that does not load", file: broken, store: store, configured: true, wantErr: "stripe_secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == tenants.EnvFile {
					return tt.file
				}
				return ""
			}
			if got := WebhooksConfigured(getenv); got != tt.configured {
				t.Errorf("WebhooksConfigured = %v, want %v", got, tt.configured)
			}
			opt, err := stripeOptionFromEnv(getenv, tt.store)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case (opt != nil) != tt.wantOpt:
				t.Errorf("option = %v, want one: %v", opt != nil, tt.wantOpt)
			}
		})
	}
}
