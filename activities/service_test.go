package activities_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/outbox"
)

func serviceInput(state, callbackURL string) activities.ServiceInput {
	return activities.ServiceInput{
		WorkflowID: testWorkflowID, IdempotencyKey: testWorkflowID + "/" + state,
		Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		State: state, Reason: "invoice unpaid after 3 attempts", CallbackURL: callbackURL,
	}
}

func serviceChange(t *testing.T, store *ledger.Store, key string) ledger.ServiceChange {
	t.Helper()
	changes, err := store.ServiceChanges(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatalf("ServiceChanges: %v", err)
	}
	for _, c := range changes {
		if c.IdempotencyKey == key {
			return c
		}
	}
	t.Fatalf("no service change %q in the ledger (have %d)", key, len(changes))
	return ledger.ServiceChange{}
}

func TestSetServiceStateQueuesThenDelivers(t *testing.T) {
	for _, state := range []string{"active", "paused", "suspended", "cancelled"} {
		t.Run(state, func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, http.StatusNoContent)
			a := &activities.ServiceActions{Ledger: store}
			in := serviceInput(state, srv.URL)
			before := time.Now().UTC()

			out, err := a.SetServiceState(ctxFor(t), in)
			if err != nil {
				t.Fatalf("SetServiceState: %v", err)
			}
			if out.Callback != "queued" {
				t.Errorf("Callback = %q, want queued", out.Callback)
			}
			// Ledger-only: the billing system hears nothing from the activity.
			if got := len(srv.requests()); got != 0 {
				t.Fatalf("billing requests from the activity = %d, want 0", got)
			}
			row := serviceChange(t, store, in.IdempotencyKey)
			if row.CallbackStatus != "pending" || row.State != state || row.Reason != in.Reason {
				t.Errorf("ledger change = %+v, want %s pending", row, state)
			}

			ev := outboxEvent(t, store, in.IdempotencyKey)
			if ev.Kind != "service.state_changed" || ev.WorkflowID != testWorkflowID || ev.Tenant != "acme" || ev.Status != "pending" {
				t.Errorf("outbox event = %+v, want a pending service.state_changed of acme", ev)
			}
			body := decodeJSON(t, ev.Body)
			wantFields := map[string]string{
				"type": "service.state_changed", "idempotency_key": in.IdempotencyKey, "workflow_id": testWorkflowID,
				"tenant": "acme", "invoice_id": "inv-1", "customer_id": "cus_1", "state": state,
				"reason": "invoice unpaid after 3 attempts",
			}
			for k, want := range wantFields {
				if got, _ := body[k].(string); got != want {
					t.Errorf("body %s = %q, want %q", k, got, want)
				}
			}
			if len(body) != len(wantFields)+1 {
				t.Errorf("body has %d fields, want %d: %v", len(body), len(wantFields)+1, body)
			}
			at, err := time.Parse(time.RFC3339Nano, body["at"].(string))
			if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("body at = %v (%v), want the time of the change", body["at"], err)
			}
			if !row.CreatedAt.Equal(at) {
				t.Errorf("body at = %v, want the recorded change time %v", at, row.CreatedAt)
			}

			again, err := a.SetServiceState(ctxFor(t), in)
			if err != nil || again.Callback != "queued" {
				t.Errorf("repeated SetServiceState = %+v, %v; want queued", again, err)
			}
			assertCount(t, store, "service_changes", 1)
			assertCount(t, store, "outbox", 1)

			if n := dispatch(t, store, srv); n != 1 {
				t.Fatalf("dispatcher sent %d events, want 1", n)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("billing requests = %d, want 1", len(reqs))
			}
			assertSentAsStored(t, reqs[0], ev)
			if row := serviceChange(t, store, in.IdempotencyKey); row.CallbackStatus != "delivered" || row.CallbackDetail != "" {
				t.Errorf("ledger change after dispatch = %+v, want delivered", row)
			}

			again, err = a.SetServiceState(ctxFor(t), in)
			if err != nil || again.Callback != "delivered" {
				t.Errorf("SetServiceState after delivery = %+v, %v; want delivered", again, err)
			}
			dispatch(t, store, srv)
			if got := len(srv.requests()); got != 1 {
				t.Errorf("billing requests after repeat = %d, want 1", got)
			}
			assertCount(t, store, "outbox", 1)
		})
	}
}

// The billing system's answer no longer reaches the activity: a refusal is
// recorded by the dispatcher as callback status "failed" for ops, and the
// activity, called again, reports it without an error.
func TestSetServiceStateCallbackFailures(t *testing.T) {
	tests := []struct {
		status  int
		wantRow string // after one dispatcher pass; also what a repeated call reports
	}{
		{http.StatusBadRequest, "failed"},
		{http.StatusUnauthorized, "failed"},
		{http.StatusNotFound, "failed"},
		{http.StatusUnprocessableEntity, "failed"},
		{http.StatusTooManyRequests, "pending"},
		{http.StatusInternalServerError, "pending"},
		{http.StatusServiceUnavailable, "pending"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, tt.status)
			a := &activities.ServiceActions{Ledger: store}
			in := serviceInput("suspended", srv.URL)

			out, err := a.SetServiceState(ctxFor(t), in)
			if err != nil || out.Callback != "queued" {
				t.Fatalf("SetServiceState = %+v, %v; want queued", out, err)
			}
			dispatch(t, store, srv)
			row := serviceChange(t, store, in.IdempotencyKey)
			if row.CallbackStatus != tt.wantRow {
				t.Errorf("ledger callback_status = %q, want %q", row.CallbackStatus, tt.wantRow)
			}
			if !strings.Contains(row.CallbackDetail, http.StatusText(tt.status)) {
				t.Errorf("ledger callback_detail = %q, want the billing system's answer", row.CallbackDetail)
			}
			if row.State != "suspended" {
				t.Errorf("ledger state = %q, want suspended", row.State)
			}
			if ev := outboxEvent(t, store, in.IdempotencyKey); ev.Status != tt.wantRow || ev.Attempts != 1 {
				t.Errorf("outbox event = %s after %d attempts, want %s after 1", ev.Status, ev.Attempts, tt.wantRow)
			}

			again, err := a.SetServiceState(ctxFor(t), in)
			want := map[string]string{"failed": "failed", "pending": "queued"}[tt.wantRow]
			if err != nil || again.Callback != want {
				t.Errorf("repeated SetServiceState = %+v, %v; want %s and no error", again, err, want)
			}
			assertCount(t, store, "outbox", 1)
		})
	}
}

func TestSetServiceStateRetryDelivers(t *testing.T) {
	store := newLedger(t)
	srv := newBillingServer(t, http.StatusServiceUnavailable)
	a := &activities.ServiceActions{Ledger: store}
	in := serviceInput("paused", srv.URL)
	if _, err := a.SetServiceState(ctxFor(t), in); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d := dispatcher(store, srv, func() time.Time { return now })
	if _, err := d.DispatchOnce(ctxFor(t)); err != nil {
		t.Fatal(err)
	}

	srv.setStatus(http.StatusOK)
	now = now.Add(outbox.DefaultBackoffMin)
	if _, err := d.DispatchOnce(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("billing requests = %d, want 2", len(reqs))
	}
	// A retry sends the same event, so the billing system can de-duplicate it.
	ev := outboxEvent(t, store, in.IdempotencyKey)
	for _, req := range reqs {
		assertSentAsStored(t, req, ev)
	}
	if ev.Status != "delivered" || ev.Attempts != 2 {
		t.Errorf("outbox event = %s after %d attempts, want delivered after 2", ev.Status, ev.Attempts)
	}
	if row := serviceChange(t, store, in.IdempotencyKey); row.CallbackStatus != "delivered" {
		t.Errorf("ledger callback_status = %q, want delivered", row.CallbackStatus)
	}
	out, err := a.SetServiceState(ctxFor(t), in)
	if err != nil || out.Callback != "delivered" {
		t.Errorf("repeated SetServiceState = %+v, %v; want delivered", out, err)
	}
	assertCount(t, store, "service_changes", 1)
}

// Where the event goes is the tenant configuration's business alone: a
// callback URL the run carries (from a decline body, before that was
// refused) is never called, and a tenant without an endpoint gets nothing.
func TestSetServiceStateIgnoresRunCallbackURL(t *testing.T) {
	tests := []struct {
		name            string
		tenant          string
		tenantEndpoint  bool
		wantCallback    string // what the activity reports
		wantAfter       string // callback status after one dispatcher pass
		wantTenantCalls int
	}{
		{name: "tenant endpoint", tenant: "acme", tenantEndpoint: true, wantCallback: "queued", wantAfter: "delivered", wantTenantCalls: 1},
		{name: "tenant without endpoint", tenant: "acme", wantCallback: "queued", wantAfter: "none"},
		{name: "run without tenant", tenant: "", wantCallback: "none", wantAfter: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newLedger(t)
			runURL := newBillingServer(t, http.StatusOK) // what the decline body named
			tenantSrv := newBillingServer(t, http.StatusOK)
			a := &activities.ServiceActions{Ledger: store}
			in := serviceInput("paused", runURL.URL)
			in.Tenant = tt.tenant

			out, err := a.SetServiceState(ctxFor(t), in)
			if err != nil || out.Callback != tt.wantCallback {
				t.Fatalf("SetServiceState = %+v, %v; want %s", out, err, tt.wantCallback)
			}
			d := &outbox.Dispatcher{Ledger: store, Logger: quietLogger}
			if tt.tenantEndpoint {
				d.Endpoints = tenantAt(tenantSrv)
			}
			if _, err := d.DispatchOnce(ctxFor(t)); err != nil {
				t.Fatal(err)
			}
			if got := len(runURL.requests()); got != 0 {
				t.Errorf("the run's callback URL got %d requests, want 0", got)
			}
			if got := len(tenantSrv.requests()); got != tt.wantTenantCalls {
				t.Errorf("tenant endpoint got %d requests, want %d", got, tt.wantTenantCalls)
			}
			row := serviceChange(t, store, in.IdempotencyKey)
			if row.CallbackStatus != tt.wantAfter {
				t.Errorf("ledger callback_status after dispatch = %q (%q), want %q", row.CallbackStatus, row.CallbackDetail, tt.wantAfter)
			}
			if tt.wantAfter == "none" && row.CallbackDetail == "" {
				t.Errorf("callback none without the reason")
			}
		})
	}
}

func TestSetServiceStateUnknownState(t *testing.T) {
	for _, state := range []string{"", "frozen", "Paused", "restored"} {
		t.Run(state, func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, http.StatusOK)
			a := &activities.ServiceActions{Ledger: store}

			_, err := a.SetServiceState(ctxFor(t), serviceInput(state, srv.URL))
			assertPermanent(t, err, activities.ErrTypeInvalidInput)
			assertCount(t, store, "service_changes", 0)
			assertCount(t, store, "outbox", 0)
		})
	}
}

// A key that already holds another change is permanent; neither the change
// nor an event is written.
func TestSetServiceStateConflictingKey(t *testing.T) {
	store := newLedger(t)
	srv := newBillingServer(t, http.StatusOK)
	a := &activities.ServiceActions{Ledger: store}
	in := serviceInput("paused", srv.URL)
	if _, err := a.SetServiceState(ctxFor(t), in); err != nil {
		t.Fatal(err)
	}
	other := in
	other.State = "cancelled"
	_, err := a.SetServiceState(ctxFor(t), other)
	assertPermanent(t, err, activities.ErrTypeInvalidInput)
	if ev := outboxEvent(t, store, in.IdempotencyKey); !strings.Contains(string(ev.Body), `"paused"`) {
		t.Errorf("outbox body = %s, want the first change's", ev.Body)
	}
	assertCount(t, store, "outbox", 1)
}
