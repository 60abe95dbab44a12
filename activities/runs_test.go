package activities_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

func TestOpenRunIsIdempotent(t *testing.T) {
	store := ledgertest.NewStore(t)
	runs := &activities.Runs{Ledger: store}
	in := openRunInput(testWorkflowID, "inv-1")

	for i := range 2 {
		if err := runs.OpenRun(ctxFor(t), in); err != nil {
			t.Fatalf("OpenRun #%d: %v", i+1, err)
		}
	}
	run, err := store.GetRun(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if run.Status != "open" || run.Tenant != "acme" || run.InvoiceID != "inv-1" || run.CustomerID != "cus_1" ||
		run.Policy != "default@v1" || !run.OpenedAt.Equal(t0) || !run.ClosedAt.IsZero() {
		t.Errorf("run = %+v, want the open run as given", run)
	}
	if run.Amount.StringFixed(2) != "49.90" || run.Amount.Exponent() != -2 || run.Currency != "EUR" {
		t.Errorf("run amount = %s (exp %d) %s, want 49.90 EUR", run.Amount, run.Amount.Exponent(), run.Currency)
	}
	assertCount(t, store, "runs", 1)
}

func TestOpenRunInvalidAmount(t *testing.T) {
	tests := []struct{ amount, currency string }{
		{"49.999", "EUR"},
		{"0", "EUR"},
		{"", "EUR"},
		{"49.90", "eur"},
		{"49.90", "ABC"},
	}
	for _, tt := range tests {
		t.Run(tt.amount+" "+tt.currency, func(t *testing.T) {
			store := ledgertest.NewStore(t)
			runs := &activities.Runs{Ledger: store}
			in := openRunInput(testWorkflowID, "inv-1")
			in.Amount, in.Currency = tt.amount, tt.currency

			err := runs.OpenRun(ctxFor(t), in)
			assertPermanent(t, err, activities.ErrTypeInvalidInput)
			assertCount(t, store, "runs", 0)
		})
	}
}

func TestOpenRunAfterClose(t *testing.T) {
	store := newLedger(t)
	closeRun(t, store, testWorkflowID)

	err := (&activities.Runs{Ledger: store}).OpenRun(ctxFor(t), openRunInput(testWorkflowID, "inv-1"))
	assertPermanent(t, err, activities.ErrTypeRunClosed)

	run, err := store.GetRun(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if run.Status != "exhausted" {
		t.Errorf("run status = %q, want it to stay exhausted", run.Status)
	}
}

func closeRunInput(callbackURL string) activities.CloseRunInput {
	return activities.CloseRunInput{
		WorkflowID: testWorkflowID, Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		Outcome: "recovered", Reason: "charge succeeded on attempt 2", Amount: "49.90", Currency: "EUR",
		Attempts: 2, ClosedAt: t0.Add(48 * time.Hour), CallbackURL: callbackURL,
	}
}

func TestCloseRunPostsRunClosed(t *testing.T) {
	store := newLedger(t)
	srv := newBillingServer(t, http.StatusOK)
	runs := &activities.Runs{Ledger: store, Callback: signedCallback()}
	in := closeRunInput(srv.URL)

	if err := runs.CloseRun(ctxFor(t), in); err != nil {
		t.Fatalf("CloseRun: %v", err)
	}
	run, err := store.GetRun(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if run.Status != "recovered" || run.ClosingReason != in.Reason || !run.ClosedAt.Equal(in.ClosedAt) {
		t.Errorf("run = status %q reason %q closed %v, want recovered %q at %v", run.Status, run.ClosingReason, run.ClosedAt, in.Reason, in.ClosedAt)
	}

	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("billing requests = %d, want 1", len(reqs))
	}
	req := reqs[0]
	if req.Method != http.MethodPost || req.ContentType != "application/json" {
		t.Errorf("request = %s %s, want POST application/json", req.Method, req.ContentType)
	}
	if want := testWorkflowID + "/closed"; req.Key != want {
		t.Errorf("Idempotency-Key = %q, want %q", req.Key, want)
	}
	assertSigned(t, req, t0)

	var ev activities.RunClosedEvent
	if err := json.Unmarshal(req.Body, &ev); err != nil {
		t.Fatalf("body %q: %v", req.Body, err)
	}
	if ev.Type != "run.closed" || ev.WorkflowID != testWorkflowID || ev.Tenant != "acme" || ev.InvoiceID != "inv-1" ||
		ev.CustomerID != "cus_1" || ev.Outcome != "recovered" || ev.Reason != in.Reason || ev.Amount != "49.90" ||
		ev.Currency != "EUR" || ev.Attempts != 2 || !ev.ClosedAt.Equal(in.ClosedAt) {
		t.Errorf("run.closed event = %+v, want the run's outcome", ev)
	}
}

func TestCloseRunCallback(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		runURL       bool
		defaultURL   bool
		wantRequests int
		wantType     string // non-retryable error type; "" with wantRetry false means success
		wantRetry    bool
	}{
		{name: "no URL", status: http.StatusOK, wantRequests: 0},
		{name: "default URL", status: http.StatusNoContent, defaultURL: true, wantRequests: 1},
		{name: "run URL", status: http.StatusNoContent, runURL: true, wantRequests: 1},
		{name: "rejected", status: http.StatusBadRequest, runURL: true, wantRequests: 1, wantType: activities.ErrTypeCallbackRejected},
		{name: "unavailable", status: http.StatusServiceUnavailable, runURL: true, wantRequests: 1, wantRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, tt.status)
			runs := &activities.Runs{Ledger: store, Callback: signedCallback()}
			if tt.defaultURL {
				runs.DefaultCallbackURL = srv.URL
			}
			in := closeRunInput("")
			if tt.runURL {
				in.CallbackURL = srv.URL
			}

			err := runs.CloseRun(ctxFor(t), in)
			switch {
			case tt.wantType != "":
				assertPermanent(t, err, tt.wantType)
			case tt.wantRetry:
				assertRetryable(t, err)
			case err != nil:
				t.Fatalf("CloseRun: %v", err)
			}
			if got := len(srv.requests()); got != tt.wantRequests {
				t.Errorf("billing requests = %d, want %d", got, tt.wantRequests)
			}
			// The ledger records the close even when the callback fails.
			run, err := store.GetRun(ctxFor(t), testWorkflowID)
			if err != nil {
				t.Fatalf("GetRun: %v", err)
			}
			if run.Status != "recovered" {
				t.Errorf("run status = %q, want recovered", run.Status)
			}
		})
	}
}

func TestCloseRunRetryAfterUnavailable(t *testing.T) {
	store := newLedger(t)
	srv := newBillingServer(t, http.StatusServiceUnavailable)
	runs := &activities.Runs{Ledger: store, Callback: signedCallback()}
	in := closeRunInput(srv.URL)

	assertRetryable(t, runs.CloseRun(ctxFor(t), in))
	srv.setStatus(http.StatusOK)
	if err := runs.CloseRun(ctxFor(t), in); err != nil {
		t.Fatalf("retried CloseRun: %v", err)
	}
	reqs := srv.requests()
	if len(reqs) != 2 || reqs[0].Key != reqs[1].Key || string(reqs[0].Body) != string(reqs[1].Body) {
		t.Errorf("billing saw %d requests, want 2 with the same key and body", len(reqs))
	}
}
