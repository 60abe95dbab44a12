package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

// call is one request the handler made to the runs.
type call struct {
	Method  string
	Tenant  string
	Invoice string
	Arg     any
}

// fakeRuns records calls and answers with canned values.
type fakeRuns struct {
	mu     sync.Mutex
	calls  []call
	err    error
	result starter.StartResult
	status workflows.Status
	record workflows.AttemptRecord
}

func (f *fakeRuns) note(c call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.err
}

func (f *fakeRuns) Start(_ context.Context, in workflows.Input) (starter.StartResult, error) {
	if err := f.note(call{"Start", in.Tenant, in.InvoiceID, in}); err != nil {
		return starter.StartResult{}, err
	}
	return f.result, nil
}

func (f *fakeRuns) Status(_ context.Context, tenant, invoice string) (workflows.Status, error) {
	if err := f.note(call{"Status", tenant, invoice, nil}); err != nil {
		return workflows.Status{}, err
	}
	return f.status, nil
}

func (f *fakeRuns) Cancel(_ context.Context, tenant, invoice string, req workflows.CancelRequest) error {
	return f.note(call{"Cancel", tenant, invoice, req})
}

func (f *fakeRuns) Expedite(_ context.Context, tenant, invoice string, req workflows.ExpediteRequest) (workflows.AttemptRecord, error) {
	if err := f.note(call{"Expedite", tenant, invoice, req}); err != nil {
		return workflows.AttemptRecord{}, err
	}
	return f.record, nil
}

func (f *fakeRuns) PaymentMethodUpdated(_ context.Context, tenant, invoice string, req workflows.PaymentMethodUpdate) error {
	return f.note(call{"PaymentMethodUpdated", tenant, invoice, req})
}

func (f *fakeRuns) Paid(_ context.Context, tenant, invoice string, req workflows.PaidOutOfBand) error {
	return f.note(call{"Paid", tenant, invoice, req})
}

func (f *fakeRuns) Resume(_ context.Context, tenant, invoice string, req workflows.ResumeRequest) error {
	return f.note(call{"Resume", tenant, invoice, req})
}

func (f *fakeRuns) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// validReport is a decline report every check accepts.
func validReport() map[string]any {
	return map[string]any{
		"tenant":     "acme",
		"invoice_id": "inv-1001",
		"customer": map[string]any{
			"id":        "cus_42",
			"email":     "ada@example.com",
			"phone":     "+48123456789",
			"locale":    "pl-PL",
			"time_zone": "Europe/Warsaw",
		},
		"amount":         "49.90",
		"currency":       "EUR",
		"payment_method": "pm_card_visa",
		"decline": map[string]any{
			"id":          "ch_1",
			"gateway":     "stripe",
			"code":        "insufficient_funds",
			"advice_code": "try_again_later",
			"message":     "Your card has insufficient funds.",
			"occurred_at": "2026-03-01T10:00:00Z",
		},
		"policy": "default",
	}
}

func reportWith(t *testing.T, edit func(m map[string]any)) string {
	t.Helper()
	m := validReport()
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sub(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func newTestHandler(runs Runs) http.Handler {
	return NewHandler(runs, slog.New(slog.DiscardHandler), withTestKeys())
}

func do(t *testing.T, h http.Handler, method, path, contentType, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out := checkAnswer(t, rec)
	return rec, out
}

// checkAnswer decodes an answer: JSON for success, an RFC 9457 problem
// (application/problem+json with type, title, status and detail) for every
// error.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	want := "application/json"
	if rec.Code >= 400 {
		want = ProblemContentType
	}
	if got := rec.Header().Get("Content-Type"); got != want {
		t.Errorf("status %d: Content-Type = %q, want %s", rec.Code, got, want)
	}
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, rec.Body)
	}
	if rec.Code >= 400 {
		typ, _ := out["type"].(string)
		title, _ := out["title"].(string)
		detail, _ := out["detail"].(string)
		if typ == "" || title == "" || detail == "" || out["status"] != float64(rec.Code) {
			t.Errorf("status %d: not a problem details object: %v", rec.Code, out)
		}
	}
	return out
}

func TestStartRejectsBadInput(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantError   string
	}{
		{"malformed JSON", "application/json", `{"tenant": "acme",}`, 400, "malformed JSON at line 1, column 19"},
		{"malformed JSON on a later line", "", "{\n  \"tenant\": \"acme\"\n  \"invoice_id\": \"x\"\n}", 400, "line 3, column 3"},
		{"truncated JSON", "", `{"tenant": "acme"`, 400, "ends before the JSON value is complete"},
		{"empty body", "", "", 400, "body is empty"},
		{"blank body", "", "  \n ", 400, "body is empty"},
		{"not an object", "", `["acme"]`, 400, "must be a JSON object"},
		{"unknown field", "", reportWith(t, func(m map[string]any) { m["colour"] = "red" }), 400, `unknown field "colour"`},
		{"unknown nested field", "", reportWith(t, func(m map[string]any) { sub(m, "decline")["received_at"] = "2026-03-01T10:00:00Z" }), 400, `unknown field "received_at"`},
		{"inline policy", "", reportWith(t, func(m map[string]any) { m["policy_inline"] = map[string]any{"name": "x"} }), 400, `unknown field "policy_inline"`},
		{"trailing data", "", validJSON(t) + ` {}`, 400, "unexpected data after the JSON value"},
		{"wrong field type", "", reportWith(t, func(m map[string]any) { m["tenant"] = 7 }), 400, "tenant must be a JSON string"},
		{"amount as JSON number", "", reportWith(t, func(m map[string]any) { m["amount"] = 49.90 }), 400, "amount must be a JSON string such as \"49.90\""},
		{"amount as JSON number explains why", "", `{"amount": 12}`, 400, "floating-point numbers cannot hold money"},
		{"bad occurred_at", "", reportWith(t, func(m map[string]any) { sub(m, "decline")["occurred_at"] = "yesterday" }), 400, `times must be RFC 3339 such as "2026-03-01T10:00:00Z": "yesterday" is not`},
		{"bad tenant", "", reportWith(t, func(m map[string]any) { m["tenant"] = "ac me" }), 422, `tenant: "ac me" has characters other than letters, digits`},
		{"missing invoice_id", "", reportWith(t, func(m map[string]any) { delete(m, "invoice_id") }), 422, "invoice_id: is required"},
		{"missing customer.id", "", reportWith(t, func(m map[string]any) { delete(sub(m, "customer"), "id") }), 422, "customer.id: is required"},
		{"missing amount", "", reportWith(t, func(m map[string]any) { delete(m, "amount") }), 422, "amount: is required"},
		{"missing currency", "", reportWith(t, func(m map[string]any) { delete(m, "currency") }), 422, "currency: is required"},
		{"missing decline.code", "", reportWith(t, func(m map[string]any) { delete(sub(m, "decline"), "code") }), 422, "decline.code: is required"},
		{"missing decline.gateway", "", reportWith(t, func(m map[string]any) { delete(sub(m, "decline"), "gateway") }), 422, "decline.gateway: is required"},
		{"zero amount", "", reportWith(t, func(m map[string]any) { m["amount"] = "0.00" }), 422, "must be greater than zero"},
		{"negative amount", "", reportWith(t, func(m map[string]any) { m["amount"] = "-5.00" }), 422, "must be greater than zero"},
		{"unknown currency", "", reportWith(t, func(m map[string]any) { m["currency"] = "XYZ" }), 422, `"XYZ" is not an ISO 4217 code`},
		{"too many decimals for EUR", "", reportWith(t, func(m map[string]any) { m["amount"] = "12.345" }), 422, "has 3 decimal places but EUR allows 2"},
		{"decimals for JPY", "", reportWith(t, func(m map[string]any) { m["amount"] = "10.5"; m["currency"] = "JPY" }), 422, "has 1 decimal places but JPY allows 0"},
		{"bad time zone", "", reportWith(t, func(m map[string]any) { sub(m, "customer")["time_zone"] = "Mars/Olympus" }), 422, `"Mars/Olympus" is not an IANA time zone`},
		{"bad phone", "", reportWith(t, func(m map[string]any) { sub(m, "customer")["phone"] = "0123" }), 422, "is not a valid phone number; send it in E.164 form"},
		{"callback URL in the body", "", reportWith(t, func(m map[string]any) { m["billing_callback_url"] = "https://billing.example.com/dunning" }), 422, "billing_callback_url: is no longer accepted"},
		{"several problems at once", "", reportWith(t, func(m map[string]any) { m["tenant"] = "ac me"; delete(sub(m, "decline"), "code") }), 422, `tenant: "ac me" has characters other than letters, digits and . _ : @ -; decline.code: is required`},
		{"unknown policy", "", reportWith(t, func(m map[string]any) { m["policy"] = "gold" }), 422, `unknown policy "gold"; known policies: default, demo`},
		{"wrong content type", "text/plain", validJSON(t), 415, `unsupported content type "text/plain"`},
		{"form content type", "application/x-www-form-urlencoded", validJSON(t), 415, "send application/json"},
		{"body too large", "", `{"tenant": "` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeRuns{}
			rec, out := do(t, newTestHandler(runs), http.MethodPost, "/v1/declines", tt.contentType, tt.body)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if msg, _ := out["error"].(string); !strings.Contains(msg, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
			if calls := runs.Calls(); len(calls) != 0 {
				t.Errorf("runs were called on bad input: %+v", calls)
			}
		})
	}
}

func validJSON(t *testing.T) string { return reportWith(t, func(map[string]any) {}) }

func TestStartAccepted(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
	}{
		{"json", "application/json"},
		{"json with charset", "application/json; charset=utf-8"},
		{"no content type", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeRuns{result: starter.StartResult{WorkflowID: "dunning/acme/inv-1001", RunID: "run-1"}}
			rec, out := do(t, newTestHandler(runs), http.MethodPost, "/v1/declines", tt.contentType, validJSON(t))
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status = %d, want 202 (body %s)", rec.Code, rec.Body)
			}
			want := map[string]any{
				"workflow_id": "dunning/acme/inv-1001",
				"run_id":      "run-1",
				"status_url":  "/v1/runs/acme/inv-1001",
			}
			if !reflect.DeepEqual(out, want) {
				t.Errorf("body = %v, want %v", out, want)
			}
			if got := rec.Header().Get("Location"); got != "/v1/runs/acme/inv-1001" {
				t.Errorf("Location = %q", got)
			}
			wantInput := workflows.Input{
				Tenant:    "acme",
				InvoiceID: "inv-1001",
				Customer: workflows.Customer{
					ID: "cus_42", Email: "ada@example.com", Phone: "+48123456789",
					Locale: "pl-PL", TimeZone: "Europe/Warsaw", Country: "PL", // from the phone
				},
				Amount:        "49.90",
				Currency:      "EUR",
				PaymentMethod: "pm_card_visa",
				Decline: workflows.Decline{
					ID: "ch_1", Gateway: "stripe", Code: "insufficient_funds",
					AdviceCode: "try_again_later", Message: "Your card has insufficient funds.",
					OccurredAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Source: "api",
				},
				PolicyName: "default",
			}
			calls := runs.Calls()
			if len(calls) != 1 || calls[0].Method != "Start" {
				t.Fatalf("calls = %+v, want one Start", calls)
			}
			if got := calls[0].Arg.(workflows.Input); !reflect.DeepEqual(got, wantInput) {
				t.Errorf("Start input =\n%+v\nwant\n%+v", got, wantInput)
			}
			if id := workflows.WorkflowID(wantInput.Tenant, wantInput.InvoiceID); out["workflow_id"] != id {
				t.Errorf("workflow_id = %v, want %v", out["workflow_id"], id)
			}
		})
	}
}

func TestStartMinimalReportUsesDefaultPolicy(t *testing.T) {
	runs := &fakeRuns{}
	body := `{"tenant":"acme","invoice_id":"inv-7","customer":{"id":"c1"},"amount":"1000","currency":"JPY","decline":{"gateway":"stripe","code":"card_declined"}}`
	rec, _ := do(t, newTestHandler(runs), http.MethodPost, "/v1/declines", "", body)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202 (body %s)", rec.Code, rec.Body)
	}
	in := runs.Calls()[0].Arg.(workflows.Input)
	if in.PolicyName != "" || in.Policy != nil || in.Amount != "1000" {
		t.Errorf("input = %+v, want no policy and amount 1000", in)
	}
}

func TestStartRunErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantError  string
	}{
		{"closed run", fmt.Errorf("%w: ended", starter.ErrRunClosed), 409, `the dunning run for invoice "inv-1001" already ended; a closed invoice is never dunned twice`},
		{"unknown policy at the client", fmt.Errorf("%w \"default\"", starter.ErrUnknownPolicy), 422, "unknown policy"},
		{"invalid at the client", fmt.Errorf("%w: inline policies are not accepted", starter.ErrInvalid), 422, "inline policies are not accepted"},
		{"timeout", fmt.Errorf("start: %w", context.DeadlineExceeded), 504, "timed out"},
		{"flood of reports", &starter.TooManyReportsError{Wait: 42 * time.Second, Invoice: "inv-1001"}, 429, "too many decline reports"},
		{"server failure", errors.New("rpc error: code = Unavailable desc = connection refused at 10.0.0.7"), 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeRuns{err: tt.err}
			rec, out := do(t, newTestHandler(runs), http.MethodPost, "/v1/declines", "application/json", validJSON(t))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			msg, _ := out["error"].(string)
			if !strings.Contains(msg, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
			if tt.wantStatus == 429 && rec.Header().Get("Retry-After") != "42" {
				t.Errorf("Retry-After = %q, want 42", rec.Header().Get("Retry-After"))
			}
			if tt.wantStatus == 500 && strings.Contains(msg, "10.0.0.7") {
				t.Errorf("500 leaks internal detail: %q", msg)
			}
		})
	}
}

func TestRunEndpoints(t *testing.T) {
	record := workflows.AttemptRecord{Number: 2, Reason: "expedite", IdempotencyKey: "dunning/acme/inv-1/2", Outcome: "declined", DeclineCode: "insufficient_funds"}
	status := workflows.Status{WorkflowID: "dunning/acme/inv-1", Tenant: "acme", InvoiceID: "inv-1", Phase: workflows.PhaseRecovering, Amount: "49.90", Currency: "EUR"}
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		err         error // returned by the fake
		wantStatus  int
		wantError   string // substring of the error message; empty for success
		wantCall    *call  // nil: the runs must not be called
		wantBody    map[string]any
	}{
		{
			name: "status", method: "GET", path: "/v1/runs/acme/inv-1", wantStatus: 200,
			wantCall: &call{"Status", "acme", "inv-1", nil},
			wantBody: jsonMap(t, StatusAnswer{Status: status, Source: SourceLive}),
		},
		{
			name: "status of unknown run", method: "GET", path: "/v1/runs/acme/inv-404",
			err: fmt.Errorf("query: %w", starter.ErrRunNotFound), wantStatus: 404,
			wantError: `no dunning run for tenant "acme" invoice "inv-404"`,
			wantCall:  &call{"Status", "acme", "inv-404", nil},
		},
		{
			name: "status with a bad invoice", method: "GET", path: "/v1/runs/acme/inv%201", wantStatus: 400,
			wantError: `invoice: "inv 1" must be 1-128 characters`,
		},
		{
			name: "status with a slash in the tenant", method: "GET", path: "/v1/runs/ac%2Fme/inv-1", wantStatus: 400,
			wantError: `tenant: "ac/me" must be 1-128 characters`,
		},
		{
			name: "status with a too long invoice", method: "GET", path: "/v1/runs/acme/" + strings.Repeat("i", 129), wantStatus: 400,
			wantError: "must be 1-128 characters",
		},
		{
			name: "status with a wrong method", method: "DELETE", path: "/v1/runs/acme/inv-1", wantStatus: 405,
			wantError: "method DELETE is not allowed",
		},
		{
			name: "cancel", method: "POST", path: "/v1/runs/acme/inv-1/cancel", body: `{"reason":"customer left","by":"ops@acme"}`,
			wantStatus: 202,
			wantCall:   &call{"Cancel", "acme", "inv-1", workflows.CancelRequest{Reason: "customer left", By: "ops@acme"}},
			wantBody:   map[string]any{"workflow_id": "dunning/acme/inv-1", "status_url": "/v1/runs/acme/inv-1"},
		},
		{
			name: "cancel without a reason", method: "POST", path: "/v1/runs/acme/inv-1/cancel", body: `{"by":"ops@acme"}`,
			wantStatus: 422, wantError: "reason: is required",
		},
		{
			name: "cancel with a blank reason", method: "POST", path: "/v1/runs/acme/inv-1/cancel", body: `{"reason":"  "}`,
			wantStatus: 422, wantError: "reason: is required",
		},
		{
			name: "cancel with an empty body", method: "POST", path: "/v1/runs/acme/inv-1/cancel",
			wantStatus: 400, wantError: "body is empty",
		},
		{
			name: "cancel with an unknown field", method: "POST", path: "/v1/runs/acme/inv-1/cancel", body: `{"reason":"x","why":"y"}`,
			wantStatus: 400, wantError: `unknown field "why"`,
		},
		{
			name: "cancel with a wrong content type", method: "POST", path: "/v1/runs/acme/inv-1/cancel", contentType: "text/plain", body: `{"reason":"x"}`,
			wantStatus: 415, wantError: "unsupported content type",
		},
		{
			name: "cancel a closed run", method: "POST", path: "/v1/runs/acme/inv-1/cancel", body: `{"reason":"x"}`,
			err: fmt.Errorf("signal: %w", starter.ErrRunClosed), wantStatus: 409,
			wantError: `the dunning run for tenant "acme" invoice "inv-1" has already ended`,
			wantCall:  &call{"Cancel", "acme", "inv-1", workflows.CancelRequest{Reason: "x"}},
		},
		{
			name: "cancel an unknown run", method: "POST", path: "/v1/runs/acme/inv-9/cancel", body: `{"reason":"x"}`,
			err: starter.ErrRunNotFound, wantStatus: 404,
			wantError: `no dunning run for tenant "acme" invoice "inv-9"`,
			wantCall:  &call{"Cancel", "acme", "inv-9", workflows.CancelRequest{Reason: "x"}},
		},
		{
			name: "cancel with a wrong method", method: "GET", path: "/v1/runs/acme/inv-1/cancel", wantStatus: 405,
			wantError: "use POST",
		},
		{
			name: "expedite with an empty body", method: "POST", path: "/v1/runs/acme/inv-1/expedite",
			wantStatus: 200,
			wantCall:   &call{"Expedite", "acme", "inv-1", workflows.ExpediteRequest{}},
			wantBody:   jsonMap(t, record),
		},
		{
			name: "expedite with a reason", method: "POST", path: "/v1/runs/acme/inv-1/expedite", body: `{"reason":"customer called","by":"agent-7"}`,
			wantStatus: 200,
			wantCall:   &call{"Expedite", "acme", "inv-1", workflows.ExpediteRequest{Reason: "customer called", By: "agent-7"}},
			wantBody:   jsonMap(t, record),
		},
		{
			name: "expedite rejected", method: "POST", path: "/v1/runs/acme/inv-1/expedite",
			err: fmt.Errorf("%w: no attempts left in the schedule", starter.ErrRejected), wantStatus: 409,
			wantError: "no attempts left in the schedule",
			wantCall:  &call{"Expedite", "acme", "inv-1", workflows.ExpediteRequest{}},
		},
		{
			name: "expedite times out", method: "POST", path: "/v1/runs/acme/inv-1/expedite",
			err: context.DeadlineExceeded, wantStatus: 504, wantError: "timed out",
			wantCall: &call{"Expedite", "acme", "inv-1", workflows.ExpediteRequest{}},
		},
		{
			name: "card updated", method: "POST", path: "/v1/runs/acme/inv-1/payment-method-updated", body: `{"payment_method":"pm_new"}`,
			wantStatus: 202,
			wantCall:   &call{"PaymentMethodUpdated", "acme", "inv-1", workflows.PaymentMethodUpdate{PaymentMethod: "pm_new"}},
			wantBody:   map[string]any{"workflow_id": "dunning/acme/inv-1", "status_url": "/v1/runs/acme/inv-1"},
		},
		{
			name: "card updated with an empty body", method: "POST", path: "/v1/runs/acme/inv-1/payment-method-updated",
			wantStatus: 202,
			wantCall:   &call{"PaymentMethodUpdated", "acme", "inv-1", workflows.PaymentMethodUpdate{}},
		},
		{
			name: "card updated with malformed JSON", method: "POST", path: "/v1/runs/acme/inv-1/payment-method-updated", body: `{"payment_method":}`,
			wantStatus: 400, wantError: "malformed JSON at line 1",
		},
		{
			name: "paid", method: "POST", path: "/v1/runs/acme/inv-1/paid", body: `{"reference":"wire-991","note":"bank transfer"}`,
			wantStatus: 202,
			wantCall:   &call{"Paid", "acme", "inv-1", workflows.PaidOutOfBand{Reference: "wire-991", Note: "bank transfer"}},
		},
		{
			name: "paid on a closed run", method: "POST", path: "/v1/runs/acme/inv-1/paid",
			err: starter.ErrRunClosed, wantStatus: 409, wantError: "has already ended",
			wantCall: &call{"Paid", "acme", "inv-1", workflows.PaidOutOfBand{}},
		},
		{
			name: "paid with a bad tenant", method: "POST", path: "/v1/runs/ac%20me/inv-1/paid",
			wantStatus: 400, wantError: "tenant",
		},
		{
			name: "resume", method: "POST", path: "/v1/runs/acme/inv-1/resume", body: `{"reason":"key rotated","by":"ops@acme"}`,
			wantStatus: 202,
			wantCall:   &call{"Resume", "acme", "inv-1", workflows.ResumeRequest{Reason: "key rotated", By: "ops@acme"}},
			wantBody:   map[string]any{"workflow_id": "dunning/acme/inv-1", "status_url": "/v1/runs/acme/inv-1"},
		},
		{
			name: "resume with an empty body", method: "POST", path: "/v1/runs/acme/inv-1/resume",
			wantStatus: 202,
			wantCall:   &call{"Resume", "acme", "inv-1", workflows.ResumeRequest{}},
		},
		{
			name: "resume with an unknown field", method: "POST", path: "/v1/runs/acme/inv-1/resume", body: `{"why":"x"}`,
			wantStatus: 400, wantError: "why",
		},
		{
			name: "resume with a line break in by", method: "POST", path: "/v1/runs/acme/inv-1/resume", body: `{"by":"ops\r\nX: y"}`,
			wantStatus: 422, wantError: "by",
		},
		{
			name: "resume an unknown run", method: "POST", path: "/v1/runs/acme/inv-404/resume",
			err: starter.ErrRunNotFound, wantStatus: 404, wantError: "no dunning run",
			wantCall: &call{"Resume", "acme", "inv-404", workflows.ResumeRequest{}},
		},
		{
			name: "resume a closed run", method: "POST", path: "/v1/runs/acme/inv-1/resume",
			err: starter.ErrRunClosed, wantStatus: 409, wantError: "has already ended",
			wantCall: &call{"Resume", "acme", "inv-1", workflows.ResumeRequest{}},
		},
		{
			name: "resume with a wrong method", method: "GET", path: "/v1/runs/acme/inv-1/resume", wantStatus: 405,
			wantError: "use POST",
		},
		{
			name: "run failure", method: "POST", path: "/v1/runs/acme/inv-1/paid",
			err: errors.New("rpc error: code = Internal"), wantStatus: 500, wantError: "internal error",
			wantCall: &call{"Paid", "acme", "inv-1", workflows.PaidOutOfBand{}},
		},
		{
			name: "health", method: "GET", path: "/healthz", wantStatus: 200,
			wantBody: map[string]any{"status": "ok"},
		},
		{
			name: "health with a wrong method", method: "POST", path: "/healthz", wantStatus: 405,
			wantError: "use GET",
		},
		{
			name: "unknown endpoint", method: "GET", path: "/v1/nothing", wantStatus: 404,
			wantError: "no such endpoint",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeRuns{err: tt.err, status: status, record: record}
			rec, out := do(t, newTestHandler(runs), tt.method, tt.path, tt.contentType, tt.body)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			msg, _ := out["error"].(string)
			switch {
			case tt.wantError == "" && msg != "":
				t.Errorf("unexpected error %q", msg)
			case !strings.Contains(msg, tt.wantError):
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
			}
			if tt.wantStatus == 405 && rec.Header().Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if tt.wantBody != nil && !reflect.DeepEqual(out, tt.wantBody) {
				t.Errorf("body = %v, want %v", out, tt.wantBody)
			}
			calls := runs.Calls()
			switch {
			case tt.wantCall == nil && len(calls) != 0:
				t.Errorf("runs were called: %+v", calls)
			case tt.wantCall != nil && (len(calls) != 1 || !reflect.DeepEqual(calls[0], *tt.wantCall)):
				t.Errorf("calls = %+v, want [%+v]", calls, *tt.wantCall)
			}
		})
	}
}

func TestRequestsGetATimeout(t *testing.T) {
	runs := &deadlineRuns{}
	h := NewHandler(runs, slog.New(slog.DiscardHandler), WithTimeout(time.Minute), withTestKeys())
	rec, _ := do(t, h, http.MethodGet, "/v1/runs/acme/inv-1", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	if remaining := time.Until(runs.deadline); remaining <= 0 || remaining > time.Minute {
		t.Errorf("deadline in %v, want within a minute", remaining)
	}
}

// deadlineRuns records the deadline the handler gave it.
type deadlineRuns struct {
	fakeRuns
	deadline time.Time
}

func (d *deadlineRuns) Status(ctx context.Context, _, _ string) (workflows.Status, error) {
	d.deadline, _ = ctx.Deadline()
	return workflows.Status{}, nil
}

func TestPanicsBecome500(t *testing.T) {
	var logs bytes.Buffer
	h := NewHandler(&panicRuns{}, slog.New(slog.NewTextHandler(&logs, nil)), withTestKeys())
	rec, out := do(t, h, http.MethodGet, "/v1/runs/acme/inv-1", "", "")
	if rec.Code != http.StatusInternalServerError || out["error"] == "" {
		t.Errorf("status = %d, body %v", rec.Code, out)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

type panicRuns struct{ fakeRuns }

func (*panicRuns) Status(context.Context, string, string) (workflows.Status, error) { panic("boom") }

func TestDecodeDeclineReportPositions(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"syntax error", "{\n\"tenant\": 'acme'\n}", "line 2, column 11"},
		{"trailing data", "{}\n\n  x", "line 3, column 3"},
		{"type error", "{\n  \"currency\": 978\n}", "currency must be a JSON string, not number (line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeDeclineReport([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func jsonMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return m
}

// README tells billing systems to report plan and segment for policy
// selection; the API takes them and hands them to the client, which
// selects with them.
func TestStartTakesPlanAndSegment(t *testing.T) {
	runs := &fakeRuns{}
	body := reportWith(t, func(m map[string]any) { m["plan"], m["segment"] = "pro", "smb"; delete(m, "policy") })
	rec, _ := do(t, newTestHandler(runs), http.MethodPost, "/v1/declines", "", body)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202 (body %s)", rec.Code, rec.Body)
	}
	in := runs.Calls()[0].Arg.(workflows.Input)
	if in.Plan != "pro" || in.Segment != "smb" {
		t.Errorf("input plan/segment = %q/%q, want pro/smb", in.Plan, in.Segment)
	}
}

// The run's input holds the phone in E.164, and the country and time zone
// the number gives when the report had none.
func TestStartNormalizesBeforeTheRunStarts(t *testing.T) {
	runs := &fakeRuns{}
	body := reportWith(t, func(m map[string]any) {
		sub(m, "customer")["phone"] = "+33 6 12 34 56 78"
		delete(sub(m, "customer"), "time_zone")
	})
	if rec, _ := do(t, newTestHandler(runs), http.MethodPost, "/v1/declines", "", body); rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d (body %s)", rec.Code, rec.Body)
	}
	c := runs.Calls()[0].Arg.(workflows.Input).Customer
	if c.Phone != "+33612345678" || c.Country != "FR" || c.TimeZone != "Europe/Paris" {
		t.Errorf("customer = %+v, want +33612345678 in FR, Europe/Paris", c)
	}
}

// readyRuns is fakeRuns whose Temporal answers the health check with err.
type readyRuns struct {
	fakeRuns
	err error
}

func (r *readyRuns) Ready(context.Context) error { return r.err }

// GET /readyz answers 200 only when Temporal and PostgreSQL answer; it
// needs no key on either surface.
func TestReadiness(t *testing.T) {
	for _, tt := range []struct {
		name     string
		temporal error
		want     int
	}{
		{"both answer", nil, http.StatusOK},
		{"Temporal down", errors.New("connection refused"), http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHandler(&readyRuns{err: tt.temporal}, slog.New(slog.DiscardHandler), WithReadModel(&fakeReadModel{}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tt.want {
				t.Fatalf("status = %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			out := checkAnswer(t, rec)
			if tt.want != http.StatusOK && (rec.Header().Get("Retry-After") == "" || !strings.Contains(out["detail"].(string), "temporal")) {
				t.Errorf("answer = %v, want Retry-After and temporal named", out)
			}
		})
	}
}

// With Temporal down the SDK retries the call until the handler's deadline,
// so the error is a timeout; the answer must still say "unavailable" (503,
// try again later), not "slow run" (504), and a timeout while Temporal
// answers its health check stays a 504.
func TestTimeoutWhileTemporalIsDown(t *testing.T) {
	for _, tt := range []struct {
		name     string
		health   error
		want     int
		wantText string
	}{
		{"Temporal unreachable", errors.New("rpc error: code = Unavailable desc = connection refused"), http.StatusServiceUnavailable, "cannot be reached"},
		{"Temporal answers, the run is slow", nil, http.StatusGatewayTimeout, "timed out"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runs := &readyRuns{fakeRuns: fakeRuns{err: fmt.Errorf("start: %w", context.DeadlineExceeded)}, err: tt.health}
			rec, out := do(t, newTestHandler(runs), http.MethodPost, "/v1/declines", "application/json", validJSON(t))
			if rec.Code != tt.want || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("status = %d, Retry-After %q (body %s), want %d with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body, tt.want)
			}
			if msg, _ := out["error"].(string); !strings.Contains(msg, tt.wantText) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.wantText)
			}
		})
	}
}
