package activities_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
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

func TestSetServiceStateDelivered(t *testing.T) {
	for _, state := range []string{"active", "paused", "suspended", "cancelled"} {
		t.Run(state, func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, http.StatusNoContent)
			a := &activities.ServiceActions{Ledger: store, Callback: signedCallback()}
			in := serviceInput(state, srv.URL)
			before := time.Now().UTC()

			out, err := a.SetServiceState(ctxFor(t), in)
			if err != nil {
				t.Fatalf("SetServiceState: %v", err)
			}
			if out.Callback != "delivered" {
				t.Errorf("Callback = %q, want delivered", out.Callback)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("billing requests = %d, want 1", len(reqs))
			}
			req := reqs[0]
			if req.Method != http.MethodPost || req.ContentType != "application/json" {
				t.Errorf("request = %s %s, want POST application/json", req.Method, req.ContentType)
			}
			if req.Key != in.IdempotencyKey {
				t.Errorf("Idempotency-Key = %q, want %q", req.Key, in.IdempotencyKey)
			}
			assertSigned(t, req, t0)

			body := decodeJSON(t, req.Body)
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
			at, err := time.Parse(time.RFC3339Nano, body["at"].(string))
			if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("body at = %v (%v), want the time of the change", body["at"], err)
			}

			row := serviceChange(t, store, in.IdempotencyKey)
			if row.CallbackStatus != "delivered" || row.State != state || row.Reason != in.Reason || row.CallbackDetail != "" {
				t.Errorf("ledger change = %+v, want %s delivered", row, state)
			}
			if !row.CreatedAt.Equal(at) {
				t.Errorf("body at = %v, want the recorded change time %v", at, row.CreatedAt)
			}

			again, err := a.SetServiceState(ctxFor(t), in)
			if err != nil || again.Callback != "delivered" {
				t.Errorf("repeated SetServiceState = %+v, %v; want delivered", again, err)
			}
			if got := len(srv.requests()); got != 1 {
				t.Errorf("billing requests after repeat = %d, want 1", got)
			}
			assertCount(t, store, "service_changes", 1)
		})
	}
}

func TestSetServiceStateUnsigned(t *testing.T) {
	store := newLedger(t)
	srv := newBillingServer(t, http.StatusOK)
	a := &activities.ServiceActions{Ledger: store}
	if _, err := a.SetServiceState(ctxFor(t), serviceInput("paused", srv.URL)); err != nil {
		t.Fatalf("SetServiceState: %v", err)
	}
	reqs := srv.requests()
	if len(reqs) != 1 || reqs[0].Signature != "" {
		t.Errorf("requests = %+v, want one without %s", reqs, billing.SignatureHeader)
	}
}

func TestSetServiceStateCallbackFailures(t *testing.T) {
	tests := []struct {
		status       int
		wantRejected bool
		wantRow      string
	}{
		{http.StatusBadRequest, true, "failed"},
		{http.StatusUnauthorized, true, "failed"},
		{http.StatusNotFound, true, "failed"},
		{http.StatusUnprocessableEntity, true, "failed"},
		{http.StatusTooManyRequests, false, "pending"},
		{http.StatusInternalServerError, false, "pending"},
		{http.StatusServiceUnavailable, false, "pending"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, tt.status)
			a := &activities.ServiceActions{Ledger: store, Callback: signedCallback()}
			in := serviceInput("suspended", srv.URL)

			_, err := a.SetServiceState(ctxFor(t), in)
			if tt.wantRejected {
				assertPermanent(t, err, activities.ErrTypeCallbackRejected)
			} else {
				assertRetryable(t, err)
			}
			row := serviceChange(t, store, in.IdempotencyKey)
			if row.CallbackStatus != tt.wantRow {
				t.Errorf("ledger callback_status = %q, want %q", row.CallbackStatus, tt.wantRow)
			}
			if tt.wantRejected && !strings.Contains(row.CallbackDetail, http.StatusText(tt.status)) {
				t.Errorf("ledger callback_detail = %q, want the billing system's answer", row.CallbackDetail)
			}
			if row.State != "suspended" {
				t.Errorf("ledger state = %q, want suspended", row.State)
			}
		})
	}
}

func TestSetServiceStateRetryDelivers(t *testing.T) {
	store := newLedger(t)
	srv := newBillingServer(t, http.StatusServiceUnavailable)
	a := &activities.ServiceActions{Ledger: store, Callback: signedCallback()}
	in := serviceInput("paused", srv.URL)

	_, err := a.SetServiceState(ctxFor(t), in)
	assertRetryable(t, err)

	srv.setStatus(http.StatusOK)
	out, err := a.SetServiceState(ctxFor(t), in)
	if err != nil || out.Callback != "delivered" {
		t.Fatalf("retried SetServiceState = %+v, %v; want delivered", out, err)
	}
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("billing requests = %d, want 2", len(reqs))
	}
	if reqs[0].Key != in.IdempotencyKey || reqs[1].Key != in.IdempotencyKey {
		t.Errorf("Idempotency-Keys = %q, %q; want %q on both", reqs[0].Key, reqs[1].Key, in.IdempotencyKey)
	}
	// A retry sends the same event, so the billing system can de-duplicate it.
	if string(reqs[0].Body) != string(reqs[1].Body) {
		t.Errorf("retried body differs:\n%s\n%s", reqs[0].Body, reqs[1].Body)
	}
	if row := serviceChange(t, store, in.IdempotencyKey); row.CallbackStatus != "delivered" {
		t.Errorf("ledger callback_status = %q, want delivered", row.CallbackStatus)
	}
	assertCount(t, store, "service_changes", 1)
}

func TestSetServiceStateCallbackURL(t *testing.T) {
	tests := []struct {
		name         string
		inputURL     bool
		defaultURL   bool
		wantCallback string
		wantInput    int
		wantDefault  int
	}{
		{name: "no URL", wantCallback: "none"},
		{name: "default URL", defaultURL: true, wantCallback: "delivered", wantDefault: 1},
		{name: "run URL wins", inputURL: true, defaultURL: true, wantCallback: "delivered", wantInput: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newLedger(t)
			runSrv := newBillingServer(t, http.StatusOK)
			defSrv := newBillingServer(t, http.StatusOK)
			a := &activities.ServiceActions{Ledger: store, Callback: signedCallback()}
			if tt.defaultURL {
				a.DefaultCallbackURL = defSrv.URL
			}
			in := serviceInput("paused", "")
			if tt.inputURL {
				in.CallbackURL = runSrv.URL
			}

			out, err := a.SetServiceState(ctxFor(t), in)
			if err != nil {
				t.Fatalf("SetServiceState: %v", err)
			}
			if out.Callback != tt.wantCallback {
				t.Errorf("Callback = %q, want %q", out.Callback, tt.wantCallback)
			}
			if got := len(runSrv.requests()); got != tt.wantInput {
				t.Errorf("run URL requests = %d, want %d", got, tt.wantInput)
			}
			if got := len(defSrv.requests()); got != tt.wantDefault {
				t.Errorf("default URL requests = %d, want %d", got, tt.wantDefault)
			}
			row := serviceChange(t, store, in.IdempotencyKey)
			if row.CallbackStatus != tt.wantCallback {
				t.Errorf("ledger callback_status = %q, want %q", row.CallbackStatus, tt.wantCallback)
			}
			if tt.wantCallback == "none" && row.CallbackDetail != "no billing callback configured" {
				t.Errorf("ledger callback_detail = %q", row.CallbackDetail)
			}
		})
	}
}

func TestSetServiceStateUnknownState(t *testing.T) {
	for _, state := range []string{"", "frozen", "Paused", "restored"} {
		t.Run(state, func(t *testing.T) {
			store := newLedger(t)
			srv := newBillingServer(t, http.StatusOK)
			a := &activities.ServiceActions{Ledger: store, Callback: signedCallback()}

			_, err := a.SetServiceState(ctxFor(t), serviceInput(state, srv.URL))
			assertPermanent(t, err, activities.ErrTypeInvalidInput)
			assertCount(t, store, "service_changes", 0)
			if got := len(srv.requests()); got != 0 {
				t.Errorf("billing requests = %d, want 0", got)
			}
		})
	}
}
