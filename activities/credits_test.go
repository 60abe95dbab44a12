package activities_test

import (
	"net/http"
	"testing"

	"github.com/dunningco/dunning/activities"
)

func TestRecordCredit(t *testing.T) {
	store := newLedger(t)
	billingSystem := newBillingServer(t, http.StatusNoContent)
	a := &activities.ServiceActions{Ledger: store, Callback: signedCallback(), DefaultCallbackURL: billingSystem.URL}
	in := activities.CreditInput{
		WorkflowID: testWorkflowID, IdempotencyKey: testWorkflowID + "/credit-suspended", Tenant: "acme", InvoiceID: "inv-1",
		CustomerID: "cus_1", PeriodCharge: "49.90", Currency: "EUR", PeriodDays: 30, Days: 7, Reason: "service suspended 7 days",
	}
	for range 2 { // a retried activity records and posts under the same key
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
	reqs := billingSystem.requests()
	if len(reqs) == 0 {
		t.Fatal("billing system was not told")
	}
	body := decodeJSON(t, reqs[0].Body)
	if body["type"] != "service.credited" || body["amount"] != "11.64" {
		t.Errorf("callback body = %v", body)
	}

	bad := in
	bad.IdempotencyKey, bad.Days = testWorkflowID+"/credit-bad", 31
	_, err = a.RecordCredit(ctxFor(t), bad)
	assertPermanent(t, err, activities.ErrTypeInvalidInput)
}
