package activities_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/outbox"
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

func TestCloseRunEnqueuesRunClosed(t *testing.T) {
	store := newLedger(t)
	srv := newBillingServer(t, http.StatusOK)
	runs := &activities.Runs{Ledger: store}
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
	if got := len(srv.requests()); got != 0 {
		t.Fatalf("billing requests from the activity = %d, want 0", got)
	}

	key := testWorkflowID + "/closed"
	ev := outboxEvent(t, store, key)
	if ev.Kind != "run.closed" || ev.WorkflowID != testWorkflowID || ev.Tenant != "acme" || ev.Status != "pending" {
		t.Errorf("outbox event = %+v, want a pending run.closed of acme", ev)
	}
	var got activities.RunClosedEvent
	if err := json.Unmarshal(ev.Body, &got); err != nil {
		t.Fatalf("body %q: %v", ev.Body, err)
	}
	want := activities.RunClosedEvent{
		Type: "run.closed", WorkflowID: testWorkflowID, Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		Outcome: "recovered", Reason: in.Reason, Amount: "49.90", Currency: "EUR", Attempts: 2, ClosedAt: in.ClosedAt,
	}
	if got != want {
		t.Errorf("run.closed event = %+v, want %+v", got, want)
	}

	if n := dispatch(t, store, srv); n != 1 {
		t.Fatalf("dispatcher sent %d events, want 1", n)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("billing requests = %d, want 1", len(reqs))
	}
	assertSentAsStored(t, reqs[0], ev)
	if ev := outboxEvent(t, store, key); ev.Status != "delivered" || ev.Attempts != 1 {
		t.Errorf("outbox event after dispatch = %s after %d attempts, want delivered after 1", ev.Status, ev.Attempts)
	}
}

func TestCloseRunCallback(t *testing.T) {
	tests := []struct {
		name           string
		status         int
		tenant         string
		tenantEndpoint bool
		wantRequests   int
		wantEvent      string // outbox status after one dispatcher pass; "" for no event
	}{
		{name: "no tenant", status: http.StatusOK},
		{name: "tenant endpoint", status: http.StatusNoContent, tenant: "acme", tenantEndpoint: true, wantRequests: 1, wantEvent: "delivered"},
		{name: "tenant without endpoint", status: http.StatusNoContent, tenant: "acme", wantEvent: "skipped"},
		{name: "rejected", status: http.StatusBadRequest, tenant: "acme", tenantEndpoint: true, wantRequests: 1, wantEvent: "failed"},
		{name: "unavailable", status: http.StatusServiceUnavailable, tenant: "acme", tenantEndpoint: true, wantRequests: 1, wantEvent: "pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, tt.status)
			runURL := newBillingServer(t, http.StatusOK) // named by the run, never called
			runs := &activities.Runs{Ledger: store}
			in := closeRunInput(runURL.URL)
			in.Tenant = tt.tenant

			// Whatever the billing system will answer, closing succeeds: it
			// only writes the ledger.
			if err := runs.CloseRun(ctxFor(t), in); err != nil {
				t.Fatalf("CloseRun: %v", err)
			}
			d := &outbox.Dispatcher{Ledger: store, Logger: quietLogger}
			if tt.tenantEndpoint {
				d.Endpoints = tenantAt(srv)
			}
			if _, err := d.DispatchOnce(ctxFor(t)); err != nil {
				t.Fatal(err)
			}
			if got := len(srv.requests()); got != tt.wantRequests {
				t.Errorf("billing requests = %d, want %d", got, tt.wantRequests)
			}
			if got := len(runURL.requests()); got != 0 {
				t.Errorf("the run's callback URL got %d requests, want 0", got)
			}
			events, err := store.OutboxEvents(ctxFor(t), testWorkflowID)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantEvent == "" && len(events) != 0:
				t.Errorf("outbox events = %+v, want none", events)
			case tt.wantEvent != "" && (len(events) != 1 || events[0].Status != tt.wantEvent):
				t.Errorf("outbox events = %+v, want one %s", events, tt.wantEvent)
			}
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

func TestCloseRunRepeated(t *testing.T) {
	store := newLedger(t)
	srv := newBillingServer(t, http.StatusOK)
	runs := &activities.Runs{Ledger: store}
	in := closeRunInput(srv.URL)

	for i := range 2 {
		if err := runs.CloseRun(ctxFor(t), in); err != nil {
			t.Fatalf("CloseRun #%d: %v", i+1, err)
		}
	}
	assertCount(t, store, "outbox", 1)

	// Closing with another outcome is refused and enqueues nothing.
	other := in
	other.Outcome, other.ClosedAt = "cancelled", in.ClosedAt.Add(time.Hour)
	assertPermanent(t, runs.CloseRun(ctxFor(t), other), activities.ErrTypeRunClosed)
	assertCount(t, store, "outbox", 1)

	dispatch(t, store, srv)
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("billing requests = %d, want 1", len(reqs))
	}
	if data, _ := decodeJSON(t, reqs[0].Body)["data"].(map[string]any); data["outcome"] != "recovered" {
		t.Errorf("run.closed data = %v, want outcome recovered", data)
	}
}

// Opening a run records run.started for the tenant once, however often the
// activity is retried; a declined attempt records attempt.failed the same way.
func TestRunEventsAreRecordedOnce(t *testing.T) {
	store := ledgertest.NewStore(t)
	runs := &activities.Runs{Ledger: store}
	in := openRunInput(testWorkflowID, "inv-1")
	for range 2 {
		if err := runs.OpenRun(ctxFor(t), in); err != nil {
			t.Fatal(err)
		}
	}
	ev := outboxEvent(t, store, testWorkflowID+"/started")
	if ev.Kind != activities.EventRunStarted || !strings.Contains(string(ev.Body), `"invoice_id": "inv-1"`) {
		t.Errorf("run.started = %s %s", ev.Kind, ev.Body)
	}
	assertCount(t, store, "outbox", 1)

	charges := &activities.Charges{Gateways: map[string]gateway.Gateway{"simulator": gateway.NewSimulator()}, Ledger: store, Logger: quietLogger}
	attempt := activities.AttemptInput{ChargeInput: chargeInput(1, "sim:decline;code=stolen_card"), Card: activities.CardSnapshot{Key: "fp:f1", Network: "visa", PaymentMethod: "sim:decline;code=stolen_card"}, At: t0}
	for range 2 {
		if _, err := charges.Attempt(ctxFor(t), attempt); err != nil {
			t.Fatal(err)
		}
	}
	failed := outboxEvent(t, store, attempt.IdempotencyKey+"/failed")
	if failed.Kind != activities.EventAttemptFailed || !strings.Contains(string(failed.Body), `"decline_code": "stolen_card"`) {
		t.Errorf("attempt.failed = %s %s", failed.Kind, failed.Body)
	}
	assertCount(t, store, "outbox", 2)
}
