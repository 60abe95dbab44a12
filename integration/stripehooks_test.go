package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/stripehooks"
)

// stripeWebhookSecret is tenant acme's Stripe webhook endpoint secret.
const stripeWebhookSecret = "whsec_integration_acme_stripe_endpoint"

// postStripeEvent posts a Stripe event to acme's webhook endpoint, signed
// as Stripe signs it.
func (p *platform) postStripeEvent(t *testing.T, id, typ string, invoice map[string]any) (int, map[string]any) {
	t.Helper()
	payload, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2026-03-25.dahlia", "created": time.Now().Unix(), "type": typ,
		"data": map[string]any{"object": invoice},
	})
	if err != nil {
		t.Fatal(err)
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: stripeWebhookSecret})
	req, err := http.NewRequest(http.MethodPost, p.api.URL+"/v1/webhooks/stripe/acme", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(stripehooks.SignatureHeader, signed.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", typ, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("post %s: answer is not JSON: %s", typ, raw)
	}
	return resp.StatusCode, out
}

// testStripeWebhooks drives a run from Stripe's events alone: a failed
// invoice payment starts it, a replay of that event changes nothing, and
// the invoice being paid closes it as recovered.
func (p *platform) testStripeWebhooks(t *testing.T) {
	const invoiceID = "in_it_stripe_1"
	invoice := map[string]any{
		"id": invoiceID, "object": "invoice", "status": "open", "customer": "cus_it_stripe",
		"customer_email": "ada@example.com", "customer_phone": "+48601234567",
		"amount_due": 4990, "amount_remaining": 4990, "currency": "eur",
		"default_payment_method": "pm_card_visa", "attempt_count": 1,
	}

	code, body := p.postStripeEvent(t, "evt_it_failed", "invoice.payment_failed", invoice)
	if code != http.StatusOK || body["action"] != "decline_reported" {
		t.Fatalf("invoice.payment_failed: %d %v", code, body)
	}
	code, status := p.do(t, http.MethodGet, "/v1/runs/acme/"+invoiceID, "")
	if code != http.StatusOK || status["amount"] != "49.90" || status["currency"] != "EUR" || status["customer_id"] != "cus_it_stripe" {
		t.Fatalf("status after the failed payment: %d %v", code, status)
	}
	declines, _ := status["declines"].([]any)
	if len(declines) != 1 {
		t.Fatalf("declines = %v, want the one Stripe reported", status["declines"])
	}

	// Stripe delivers the same event again (a lost acknowledgement).
	code, body = p.postStripeEvent(t, "evt_it_failed", "invoice.payment_failed", invoice)
	if code != http.StatusOK || body["duplicate"] != true {
		t.Fatalf("replay: %d %v, want a duplicate", code, body)
	}
	if _, again := p.do(t, http.MethodGet, "/v1/runs/acme/"+invoiceID, ""); len(again["declines"].([]any)) != 1 {
		t.Fatalf("declines after the replay = %v, want still one", again["declines"])
	}
	rec, err := p.store.GetWebhookEvent(context.Background(), stripehooks.Source, "acme", "evt_it_failed")
	if err != nil || rec.Status != "processed" {
		t.Fatalf("ledger record of the event = %+v, %v", rec, err)
	}

	// The customer pays the invoice in Stripe's hosted page.
	invoice["status"], invoice["amount_paid"], invoice["amount_remaining"] = "paid", 4990, 0
	code, body = p.postStripeEvent(t, "evt_it_paid", "invoice.paid", invoice)
	if code != http.StatusOK || body["action"] != "paid" {
		t.Fatalf("invoice.paid: %d %v", code, body)
	}
	if res := p.result(t, invoiceID); res.Outcome != policy.Recovered {
		t.Fatalf("result = %+v, want recovered", res)
	}
	run, err := p.store.GetRun(context.Background(), "dunning/acme/"+invoiceID)
	if err != nil || run.Status != "recovered" {
		t.Fatalf("ledger run = %+v, %v", run, err)
	}
	if code, status = p.do(t, http.MethodGet, "/v1/runs/acme/"+invoiceID, ""); code != http.StatusOK || status["phase"] != "recovered" {
		t.Fatalf("status after payment: %d %v", code, status)
	}
	// The payment reaches nothing once the run has ended.
	code, body = p.postStripeEvent(t, "evt_it_paid_again", "invoice.payment_succeeded", invoice)
	if code != http.StatusOK || body["ignored"] != true {
		t.Fatalf("invoice.payment_succeeded after the close: %d %v", code, body)
	}
}
