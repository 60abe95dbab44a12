package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

// fakeReminderRuns is fakeRuns that also starts reminder runs.
type fakeReminderRuns struct {
	fakeRuns
}

func (f *fakeReminderRuns) StartReminders(_ context.Context, in workflows.ReminderInput) (starter.StartResult, error) {
	if err := f.note(call{"StartReminders", in.Tenant, in.InvoiceID, in}); err != nil {
		return starter.StartResult{}, err
	}
	return starter.StartResult{WorkflowID: workflows.ReminderWorkflowID(in), RunID: "run-7"}, nil
}

const preDueBody = `{
  "tenant": "acme", "kind": "pre-due", "invoice_id": "inv-1001",
  "customer": {"id": "cus-42", "email": "ada@example.com", "time_zone": "Europe/Warsaw"},
  "amount": "49.90", "currency": "EUR", "anchor": "2026-12-01T00:00:00+01:00"
}`

func TestStartReminders(t *testing.T) {
	runs := &fakeReminderRuns{}
	h := newTestHandler(runs)
	rec, out := do(t, h, http.MethodPost, "/v1/reminders", "application/json", preDueBody)
	if rec.Code != http.StatusAccepted || out["workflow_id"] != "reminders/acme/pre-due/inv-1001" || out["run_id"] != "run-7" {
		t.Fatalf("answer = %d %v", rec.Code, out)
	}
	calls := runs.Calls()
	if len(calls) != 1 || calls[0].Method != "StartReminders" {
		t.Fatalf("calls = %+v", calls)
	}
	in := calls[0].Arg.(workflows.ReminderInput)
	if in.Kind != workflows.ReminderPreDue || in.Amount != "49.90" || in.Customer.TimeZone != "Europe/Warsaw" ||
		!in.Anchor.Equal(time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)) || in.Policy != nil {
		t.Errorf("input = %+v", in)
	}

	card := `{"tenant": "acme", "kind": "card-expiry", "customer": {"id": "cus-42"}, "card": {"fingerprint": "fp_1"},
	  "anchor": "2027-01-31T00:00:00Z", "policy": "demo"}`
	rec, out = do(t, h, http.MethodPost, "/v1/reminders", "", card)
	if rec.Code != http.StatusAccepted || out["workflow_id"] != "reminders/acme/card-expiry/cus-42/fp_1/2027-01-31" {
		t.Fatalf("card answer = %d %v", rec.Code, out)
	}
}

func TestStartRemindersRejectsBadInput(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantError  string
	}{
		{"malformed JSON", `{"tenant": "acme",}`, 400, "malformed JSON"},
		{"empty body", "", 400, "body is empty"},
		{"unknown field", `{"tenant": "acme", "colour": "red"}`, 400, `unknown field "colour"`},
		{"inline policy", `{"tenant": "acme", "policy_inline": {}}`, 400, `unknown field "policy_inline"`},
		{"bad anchor", `{"tenant": "acme", "anchor": "tomorrow"}`, 400, "RFC 3339"},
		{"trailing data", preDueBody + ` {}`, 400, "unexpected data after the JSON value"},
		{"unknown kind", `{"tenant": "acme", "kind": "weekly", "customer": {"id": "c"}, "anchor": "2026-12-01T00:00:00Z"}`, 422, `kind: "weekly" is not`},
		{"pre-due without invoice", `{"tenant": "acme", "kind": "pre-due", "customer": {"id": "c"}, "amount": "1.00", "currency": "EUR", "anchor": "2026-12-01T00:00:00Z"}`, 422, "invoice_id"},
		{"no anchor", `{"tenant": "acme", "kind": "card-expiry", "customer": {"id": "c"}, "card": {"fingerprint": "f"}}`, 422, "anchor: is required"},
		{"unknown policy", `{"tenant": "acme", "kind": "card-expiry", "customer": {"id": "c"}, "card": {"fingerprint": "f"}, "anchor": "2026-12-01T00:00:00Z", "policy": "gold"}`, 422, `unknown policy "gold"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeReminderRuns{}
			rec, out := do(t, newTestHandler(runs), http.MethodPost, "/v1/reminders", "application/json", tt.body)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (%v)", rec.Code, tt.wantStatus, out)
			}
			if msg, _ := out["error"].(string); !strings.Contains(msg, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
			if len(runs.Calls()) != 0 {
				t.Errorf("runs were called: %+v", runs.Calls())
			}
		})
	}
}

func TestStartRemindersErrors(t *testing.T) {
	runs := &fakeReminderRuns{}
	runs.err = fmt.Errorf("%w: inline policies are not accepted", starter.ErrInvalid)
	if rec, _ := do(t, newTestHandler(runs), http.MethodPost, "/v1/reminders", "", preDueBody); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("invalid: status = %d, want 422", rec.Code)
	}
	runs.err = errors.New("temporal unavailable")
	if rec, _ := do(t, newTestHandler(runs), http.MethodPost, "/v1/reminders", "", preDueBody); rec.Code != http.StatusInternalServerError {
		t.Errorf("failure: status = %d, want 500", rec.Code)
	}
	// A Runs without reminders answers 501; other methods 405.
	if rec, _ := do(t, newTestHandler(&fakeRuns{}), http.MethodPost, "/v1/reminders", "", preDueBody); rec.Code != http.StatusNotImplemented {
		t.Errorf("no reminders: status = %d, want 501", rec.Code)
	}
	if rec, _ := do(t, newTestHandler(runs), http.MethodGet, "/v1/reminders", "", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status = %d, want 405", rec.Code)
	}
}

func (f *fakeReminderRuns) ReminderStatus(_ context.Context, id string) (workflows.ReminderStatus, error) {
	if err := f.note(call{"ReminderStatus", id, "", nil}); err != nil {
		return workflows.ReminderStatus{}, err
	}
	return workflows.ReminderStatus{WorkflowID: id}, nil
}

func (f *fakeReminderRuns) CancelReminders(_ context.Context, id string, req workflows.CancelRequest) error {
	return f.note(call{"CancelReminders", id, "", req})
}

func TestReminderRunStatusAndCancel(t *testing.T) {
	runs := &fakeReminderRuns{}
	h := newTestHandler(runs)
	rec, out := do(t, h, http.MethodGet, "/v1/reminders/acme/pre-due/inv-1001", "", "")
	if rec.Code != http.StatusOK || out["workflow_id"] != "reminders/acme/pre-due/inv-1001" {
		t.Fatalf("status answer = %d %v", rec.Code, out)
	}
	rec, _ = do(t, h, http.MethodDelete, "/v1/reminders/acme/pre-due/inv-1001", "", "")
	if rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("cancel without a reason = %d, want 422", rec.Code)
	}
	rec, out = do(t, h, http.MethodDelete, "/v1/reminders/acme/pre-due/inv-1001?reason=invoice+voided", "", "")
	if rec.Code != http.StatusAccepted || out["workflow_id"] != "reminders/acme/pre-due/inv-1001" {
		t.Fatalf("cancel answer = %d %v", rec.Code, out)
	}
	last := runs.calls[len(runs.calls)-1]
	if req, ok := last.Arg.(workflows.CancelRequest); !ok || last.Method != "CancelReminders" || req.Reason != "invoice voided" {
		t.Fatalf("last call = %+v", last)
	}
	runs.err = starter.ErrRunNotFound
	if rec, _ := do(t, h, http.MethodGet, "/v1/reminders/acme/pre-due/nope", "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("unknown run = %d, want 404", rec.Code)
	}
}
