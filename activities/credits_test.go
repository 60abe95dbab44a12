package activities_test

import (
	"net/http"
	"testing"

	"github.com/dunningco/dunning/activities"
)

func creditInput(key string, days int) activities.CreditInput {
	return activities.CreditInput{
		WorkflowID: testWorkflowID, IdempotencyKey: key, Tenant: "acme", InvoiceID: "inv-1",
		CustomerID: "cus_1", PeriodCharge: "49.90", Currency: "EUR", PeriodDays: 30, Days: days, Reason: "service suspended",
	}
}

func TestRecordCredit(t *testing.T) {
	store := newLedger(t)
	billingSystem := newBillingServer(t, http.StatusNoContent)
	a := &activities.ServiceActions{Ledger: store}
	in := creditInput(testWorkflowID+"/credit-suspended", 7)
	for range 2 { // a retried activity records and enqueues under the same key
		out, err := a.RecordCredit(ctxFor(t), in)
		if err != nil {
			t.Fatal(err)
		}
		if out.Amount != "11.64" || out.Currency != "EUR" {
			t.Fatalf("credit = %+v, want 11.64 EUR (49.90 / 30 * 7, half-even)", out)
		}
	}
	credits, err := store.ServiceCredits(ctxFor(t), testWorkflowID)
	if err != nil || len(credits) != 1 {
		t.Fatalf("ledger credits = %+v, %v; want exactly one", credits, err)
	}
	if got := len(billingSystem.requests()); got != 0 {
		t.Fatalf("billing requests from the activity = %d, want 0", got)
	}
	assertCount(t, store, "outbox", 1)

	ev := outboxEvent(t, store, in.IdempotencyKey)
	if ev.Kind != "service.credited" || ev.Tenant != "acme" || ev.Status != "pending" {
		t.Errorf("outbox event = %+v, want a pending service.credited", ev)
	}
	body := decodeJSON(t, ev.Body)
	want := map[string]any{
		"type": "service.credited", "idempotency_key": in.IdempotencyKey, "workflow_id": testWorkflowID, "tenant": "acme",
		"invoice_id": "inv-1", "customer_id": "cus_1", "amount": "11.64", "currency": "EUR", "days": float64(7),
		"reason": "service suspended",
	}
	for k, w := range want {
		if body[k] != w {
			t.Errorf("body %s = %v, want %v", k, body[k], w)
		}
	}
	if at, _ := body["at"].(string); at == "" || at[:19] != credits[0].CreatedAt.Format("2006-01-02T15:04:05") {
		t.Errorf("body at = %v, want the credit's time %v", body["at"], credits[0].CreatedAt)
	}

	if n := dispatch(t, store, billingSystem); n != 1 {
		t.Fatalf("dispatcher sent %d events, want 1", n)
	}
	reqs := billingSystem.requests()
	if len(reqs) != 1 {
		t.Fatalf("billing requests = %d, want 1", len(reqs))
	}
	assertSentAsStored(t, reqs[0], ev)

	bad := in
	bad.IdempotencyKey, bad.Days = testWorkflowID+"/credit-bad", 31
	_, err = a.RecordCredit(ctxFor(t), bad)
	assertPermanent(t, err, activities.ErrTypeInvalidInput)
	assertCount(t, store, "outbox", 1)
}

func TestRecordCreditWithoutEvent(t *testing.T) {
	tests := []struct {
		name       string
		tenant     string
		days       int
		wantAmount string
	}{
		{name: "no tenant", days: 7, wantAmount: "11.64"},
		{name: "zero credit", tenant: "acme", days: 0, wantAmount: "0.00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, http.StatusOK)
			a := &activities.ServiceActions{Ledger: store}
			in := creditInput(testWorkflowID+"/credit", tt.days)
			in.Tenant = tt.tenant
			out, err := a.RecordCredit(ctxFor(t), in)
			if err != nil || out.Amount != tt.wantAmount {
				t.Fatalf("RecordCredit = %+v, %v; want %s", out, err, tt.wantAmount)
			}
			assertCount(t, store, "outbox", 0)
			dispatch(t, store, srv)
			if got := len(srv.requests()); got != 0 {
				t.Errorf("billing requests = %d, want 0", got)
			}
		})
	}
}
