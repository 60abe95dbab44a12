package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// recordingTemporal is the Temporal client under a real starter.Client: it
// records every call and knows one open run, dunning/acme/inv-open, for
// 49.90 EUR. Calls it does not implement panic on the nil embedded client.
type recordingTemporal struct {
	client.Client
	mu    sync.Mutex
	calls []string
}

const openRunID = "dunning/acme/inv-open"

func (f *recordingTemporal) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *recordingTemporal) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *recordingTemporal) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	if opts.ID == openRunID {
		f.record("ExecuteWorkflow (already started) " + opts.ID)
		return nil, serviceerror.NewWorkflowExecutionAlreadyStarted("Workflow execution is already running", "", "run-open")
	}
	f.record("ExecuteWorkflow " + opts.ID)
	return nil, fmt.Errorf("the fake starts nothing")
}

func (f *recordingTemporal) DescribeWorkflow(_ context.Context, id, runID string) (*client.WorkflowExecutionDescription, error) {
	f.record("DescribeWorkflow " + id)
	return &client.WorkflowExecutionDescription{WorkflowExecutionMetadata: client.WorkflowExecutionMetadata{
		Status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SAAmountMinor.ValueSet(4990), workflows.SACurrency.ValueSet("EUR")),
	}}, nil
}

func (f *recordingTemporal) SignalWorkflow(_ context.Context, id, _, name string, _ any) error {
	f.record("SignalWorkflow " + id + " " + name)
	return nil
}

func (f *recordingTemporal) SignalWithStartWorkflow(_ context.Context, id, _ string, _ any, _ client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	f.record("SignalWithStartWorkflow " + id)
	return nil, fmt.Errorf("the fake starts nothing")
}

func (f *recordingTemporal) UpdateWorkflow(_ context.Context, opts client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.record("UpdateWorkflow " + opts.WorkflowID)
	return nil, fmt.Errorf("the fake updates nothing")
}

// QueryWorkflowWithOptions answers as QueryWorkflow: no run of the fake
// ended without completing.
func (f *recordingTemporal) QueryWorkflowWithOptions(ctx context.Context, req *client.QueryWorkflowWithOptionsRequest) (*client.QueryWorkflowWithOptionsResponse, error) {
	v, err := f.QueryWorkflow(ctx, req.WorkflowID, req.RunID, req.QueryType, req.Args...)
	if err != nil {
		return nil, err
	}
	return &client.QueryWorkflowWithOptionsResponse{QueryResult: v}, nil
}

func (f *recordingTemporal) QueryWorkflow(_ context.Context, id, _, query string, _ ...any) (converter.EncodedValue, error) {
	f.record("QueryWorkflow " + id + " " + query)
	return nil, serviceerror.NewNotFound("workflow not found")
}

// changedSomething reports calls that start or change a run.
func changedSomething(calls []string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, "Describe") || strings.HasPrefix(c, "Query") || strings.Contains(c, "(already started)") {
			continue
		}
		out = append(out, c)
	}
	return out
}

// badRequest is one request every check must refuse.
type badRequest struct {
	name        string
	method      string
	path        string
	contentType string
	body        string
	wantStatus  int
	// wantField is the field the problem must name: a body member's JSON
	// pointer ("/customer/email", "" for the whole body) or, prefixed with
	// "?", a path or query parameter ("?tenant").
	wantField string
	// wantDetail is a substring of the problem's detail.
	wantDetail string
}

// validDeclineJSON is a decline every check accepts, edited by each case.
func declineWith(edit func(m map[string]any)) string {
	m := map[string]any{
		"tenant": "acme", "invoice_id": "inv-1001",
		"customer": map[string]any{"id": "cus_42", "email": "ada@example.com", "phone": "+48123456789", "time_zone": "Europe/Warsaw"},
		"amount":   "49.90", "currency": "EUR", "payment_method": "sim:succeed",
		"decline": map[string]any{"gateway": "simulator", "code": "insufficient_funds"},
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func reminderWith(edit func(m map[string]any)) string {
	m := map[string]any{
		"tenant": "acme", "kind": "pre-due", "invoice_id": "inv-1001", "amount": "49.90", "currency": "EUR",
		"customer": map[string]any{"id": "cus_42", "email": "ada@example.com"},
		"anchor":   "2026-12-01T00:00:00Z",
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func customerOf(m map[string]any) map[string]any { return m["customer"].(map[string]any) }
func declineOf(m map[string]any) map[string]any  { return m["decline"].(map[string]any) }

// badRequests covers every intake endpoint: bounds, overflow, CR/LF, bad
// E.164, unknown gateway, malformed payment methods, conflicting amounts,
// null bodies, wrong types, unknown fields and oversize IDs.
func badRequests() []badRequest {
	const declines, reminders = "/v1/declines", "/v1/reminders"
	const run = "/v1/runs/acme/inv-1"
	post := http.MethodPost
	d := func(name string, status int, field, detail string, edit func(m map[string]any)) badRequest {
		return badRequest{name: "decline: " + name, method: post, path: declines, body: declineWith(edit), wantStatus: status, wantField: field, wantDetail: detail}
	}
	r := func(name string, status int, field, detail string, edit func(m map[string]any)) badRequest {
		return badRequest{name: "reminder: " + name, method: post, path: reminders, body: reminderWith(edit), wantStatus: status, wantField: field, wantDetail: detail}
	}
	raw := func(name, method, path, body string, status int, field, detail string) badRequest {
		return badRequest{name: name, method: method, path: path, body: body, wantStatus: status, wantField: field, wantDetail: detail}
	}
	return []badRequest{
		// POST /v1/declines: not the JSON it takes (400).
		raw("decline: null body", post, declines, "null", 400, "", "not null"),
		raw("decline: empty body", post, declines, "", 400, "", "body is empty"),
		raw("decline: array body", post, declines, `[{"tenant":"acme"}]`, 400, "", "must be a JSON object"),
		raw("decline: malformed JSON", post, declines, `{"tenant":"acme",}`, 400, "", "malformed JSON at line 1"),
		raw("decline: trailing data", post, declines, `{"tenant":"acme"} {}`, 400, "", "unexpected data after the JSON value"),
		d("unknown field", 400, "/colour", `unknown field "colour"`, func(m map[string]any) { m["colour"] = "red" }),
		d("unknown nested field", 400, "/decline/received_at", `unknown field "received_at"`, func(m map[string]any) { declineOf(m)["received_at"] = "2026-03-01T10:00:00Z" }),
		d("inline policy", 400, "/policy_inline", `unknown field "policy_inline"`, func(m map[string]any) { m["policy_inline"] = map[string]any{} }),
		d("tenant as a number", 400, "/tenant", "tenant must be a JSON string", func(m map[string]any) { m["tenant"] = 42 }),
		d("customer as a string", 400, "/customer", "customer must be a JSON object", func(m map[string]any) { m["customer"] = "cus_42" }),
		d("amount as a JSON number", 400, "/amount", "floating-point numbers cannot hold money", func(m map[string]any) { m["amount"] = 49.9 }),
		d("period_days as a string", 400, "/period_days", "period_days must be a JSON number", func(m map[string]any) { m["period_days"] = "30" }),
		d("occurred_at not RFC 3339", 400, "/decline/occurred_at", "RFC 3339", func(m map[string]any) { declineOf(m)["occurred_at"] = "yesterday" }),
		// POST /v1/declines: well-formed but invalid (422).
		d("zero amount", 422, "/amount", "greater than zero", func(m map[string]any) { m["amount"] = "0.00" }),
		d("negative amount", 422, "/amount", "greater than zero", func(m map[string]any) { m["amount"] = "-49.90" }),
		d("too many decimals", 422, "/amount", "3 decimal places but EUR allows 2", func(m map[string]any) { m["amount"] = "49.901" }),
		d("amount that wrapped to 1 cent", 422, "/amount", "largest amount accepted in EUR, 999999999.99 EUR", func(m map[string]any) { m["amount"] = "184467440737095516.17" }),
		d("amount that wrapped to 1590897978359414784", 422, "/amount", "largest amount", func(m map[string]any) { m["amount"] = "100000000000000000000000.00" }),
		d("amount that wrapped negative", 422, "/amount", "largest amount", func(m map[string]any) { m["amount"] = "92233720368547758.08" }),
		d("amount one cent over the default bound", 422, "/amount", "largest amount", func(m map[string]any) { m["amount"] = "1000000000.00" }),
		d("amount over the configured JPY bound", 422, "/amount", "100000000 JPY", func(m map[string]any) { m["amount"], m["currency"] = "100000001", "JPY" }),
		d("unknown currency", 422, "/currency", "not an ISO 4217 code", func(m map[string]any) { m["currency"] = "XYZ" }),
		d("missing amount", 422, "/amount", "is required", func(m map[string]any) { delete(m, "amount") }),
		d("email with CR/LF", 422, "/customer/email", "line break", func(m map[string]any) { customerOf(m)["email"] = "ada@example.com\r\nBcc: eve@example.com" }),
		d("email with a display name", 422, "/customer/email", "bare address", func(m map[string]any) { customerOf(m)["email"] = "Ada <ada@example.com>" }),
		d("two emails", 422, "/customer/email", "not an email address", func(m map[string]any) { customerOf(m)["email"] = "ada@example.com, eve@example.com" }),
		d("phone not E.164", 422, "/customer/phone", "E.164", func(m map[string]any) { customerOf(m)["phone"] = "0123" }),
		d("phone too short for its plan", 422, "/customer/phone", "not a valid phone number", func(m map[string]any) { customerOf(m)["phone"] = "+4812" }),
		d("phone with CR/LF", 422, "/customer/phone", "control character", func(m map[string]any) { customerOf(m)["phone"] = "+48123456789\r\n" }),
		d("lower-case country", 422, "/customer/country", "ISO 3166", func(m map[string]any) { customerOf(m)["country"] = "pl" }),
		d("unknown time zone", 422, "/customer/time_zone", "IANA", func(m map[string]any) { customerOf(m)["time_zone"] = "Mars/Olympus" }),
		d("unknown gateway", 422, "/decline/gateway", `"paypal" is not a gateway configured here (simulator, stripe)`, func(m map[string]any) { declineOf(m)["gateway"] = "paypal" }),
		d("gateway the workers lack", 422, "/decline/gateway", `"http" is not a gateway configured here`, func(m map[string]any) { declineOf(m)["gateway"] = "http" }),
		d("malformed simulator script", 422, "/payment_method", "is not a simulator script", func(m map[string]any) { m["payment_method"] = "simulator:succeed" }),
		d("simulator script with an unknown key", 422, "/payment_method", "unknown simulator directive", func(m map[string]any) { m["payment_method"] = "sim:decline;colour=red" }),
		d("malformed Stripe payment method", 422, "/payment_method", "not a Stripe payment method ID", func(m map[string]any) {
			declineOf(m)["gateway"], m["payment_method"] = "stripe", "4242424242424242"
		}),
		d("tenant over 64 bytes", 422, "/tenant", "at most 64", func(m map[string]any) { m["tenant"] = strings.Repeat("t", 65) }),
		d("invoice over 128 bytes", 422, "/invoice_id", "at most 128", func(m map[string]any) { m["invoice_id"] = strings.Repeat("i", 129) }),
		d("customer ID over the card-link limit", 422, "/customer/id", "at most 128", func(m map[string]any) { customerOf(m)["id"] = strings.Repeat("c", 300) }),
		d("customer ID of 300 kB", 422, "/customer/id", "300000 bytes long", func(m map[string]any) { customerOf(m)["id"] = strings.Repeat("c", 300_000) }),
		d("customer ID with a slash", 422, "/customer/id", "characters other than", func(m map[string]any) { customerOf(m)["id"] = "cus/42" }),
		d("decline ID over 255 bytes", 422, "/decline/id", "at most 255", func(m map[string]any) { declineOf(m)["id"] = strings.Repeat("d", 256) }),
		d("decline code with CR/LF", 422, "/decline/code", "characters other than", func(m map[string]any) { declineOf(m)["code"] = "do_not_honor\r\n" }),
		d("plan with a space", 422, "/plan", "characters other than", func(m map[string]any) { m["plan"] = "pro plan" }),
		d("segment over 128 bytes", 422, "/segment", "at most 128", func(m map[string]any) { m["segment"] = strings.Repeat("s", 129) }),
		d("unknown policy", 422, "/policy", `unknown policy "gold"`, func(m map[string]any) { m["policy"] = "gold" }),
		d("callback URL in the body", 422, "/billing_callback_url", "endpoint configured for the tenant", func(m map[string]any) { m["billing_callback_url"] = "http://127.0.0.1:6379/" }),
		raw("decline: body over 1 MiB", post, declines, `{"tenant":"`+strings.Repeat("a", MaxBodyBytes)+`"}`, 413, "", "exceeds"),
		// POST /v1/declines for the open run, about another debt (409).
		d("other amount than the open run", 409, "/amount", "dunns 49.90 EUR; this decline reports 50.00 EUR", func(m map[string]any) { m["invoice_id"], m["amount"] = "inv-open", "50.00" }),
		d("other currency than the open run", 409, "/currency", "dunns 49.90 EUR; this decline reports 49.90 USD", func(m map[string]any) { m["invoice_id"], m["currency"] = "inv-open", "USD" }),

		// POST /v1/reminders.
		raw("reminder: null body", post, reminders, "null", 400, "", "not null"),
		r("unknown field", 400, "/colour", `unknown field "colour"`, func(m map[string]any) { m["colour"] = "red" }),
		r("anchor not RFC 3339", 400, "/anchor", "RFC 3339", func(m map[string]any) { m["anchor"] = "next week" }),
		r("kind as a number", 400, "/kind", "kind must be a JSON string", func(m map[string]any) { m["kind"] = 1 }),
		r("unknown kind", 422, "/kind", `"weekly" is not`, func(m map[string]any) { m["kind"] = "weekly" }),
		r("amount that wrapped", 422, "/amount", "largest amount", func(m map[string]any) { m["amount"] = "184467440737095516.17" }),
		r("email with CR/LF", 422, "/customer/email", "line break", func(m map[string]any) { customerOf(m)["email"] = "ada@example.com\nBcc: eve@example.com" }),
		r("bad E.164", 422, "/customer/phone", "E.164", func(m map[string]any) { customerOf(m)["phone"] = "12345" }),
		r("card-expiry without a fingerprint", 422, "/card/fingerprint", "is required", func(m map[string]any) { m["kind"] = "card-expiry" }),
		r("customer ID of 300 kB", 422, "/customer/id", "300000 bytes long", func(m map[string]any) { customerOf(m)["id"] = strings.Repeat("c", 300_000) }),

		// The run endpoints.
		raw("status: invoice with a space", http.MethodGet, "/v1/runs/acme/inv%201", "", 400, "?invoice", "must be 1-128 characters"),
		raw("status: tenant over 128 bytes", http.MethodGet, "/v1/runs/"+strings.Repeat("t", 129)+"/inv-1", "", 400, "?tenant", "must be 1-128 characters"),
		raw("cancel: null body", post, run+"/cancel", "null", 400, "", "not null"),
		raw("cancel: no reason", post, run+"/cancel", `{"by":"ops"}`, 422, "/reason", "is required"),
		raw("cancel: reason as a number", post, run+"/cancel", `{"reason":7}`, 400, "/reason", "reason must be a JSON string"),
		raw("cancel: unknown field", post, run+"/cancel", `{"reason":"x","why":"y"}`, 400, "/why", `unknown field "why"`),
		raw("cancel: by with CR/LF", post, run+"/cancel", `{"reason":"x","by":"ops\r\nX-Forged: 1"}`, 422, "/by", "control character"),
		raw("cancel: bad tenant", post, "/v1/runs/a%2Fb/inv-1/cancel", `{"reason":"x"}`, 400, "?tenant", "must be 1-128 characters"),
		raw("expedite: null body", post, run+"/expedite", "null", 400, "", "not null"),
		raw("expedite: reason too long", post, run+"/expedite", `{"reason":"`+strings.Repeat("r", 1025)+`"}`, 422, "/reason", "at most 1024"),
		raw("expedite: array body", post, run+"/expedite", `[]`, 400, "", "must be a JSON object"),
		raw("payment-method-updated: no gateway takes it", post, run+"/payment-method-updated", `{"payment_method":"tok visa"}`, 422, "/payment_method", "any configured gateway"),
		raw("payment-method-updated: card as a string", post, run+"/payment-method-updated", `{"card":"visa"}`, 400, "/card", "card must be a JSON object"),
		raw("payment-method-updated: fingerprint with a space", post, run+"/payment-method-updated", `{"card":{"fingerprint":"a b"}}`, 422, "/card/fingerprint", "characters other than"),
		raw("paid: reference too long", post, run+"/paid", `{"reference":"`+strings.Repeat("r", 256)+`"}`, 422, "/reference", "at most 255"),
		raw("paid: note as a number", post, run+"/paid", `{"note":1}`, 400, "/note", "note must be a JSON string"),
		raw("paid: unknown field", post, run+"/paid", `{"amount":"49.90"}`, 400, "/amount", `unknown field "amount"`),
		raw("paid: null body", post, run+"/paid", "null", 400, "", "not null"),

		// DELETE /v1/reminders/...
		raw("cancel reminders: no reason", http.MethodDelete, "/v1/reminders/acme/pre-due/inv-1", "", 422, "?reason", "is required"),
		raw("cancel reminders: reason too long", http.MethodDelete, "/v1/reminders/acme/pre-due/inv-1?reason="+strings.Repeat("r", 1025), "", 422, "?reason", "at most 1024"),
		raw("cancel reminders: by with CR/LF", http.MethodDelete, "/v1/reminders/acme/pre-due/inv-1?reason=x&by=ops%0D%0AX-Forged:%201", "", 422, "?by", "control character"),
		raw("cancel reminders: ID over 512 bytes", http.MethodDelete, "/v1/reminders/"+strings.Repeat("r", 600)+"?reason=x", "", 400, "?id", "is not a reminder run ID"),
	}
}

// TestBadRequestTable sends every bad request through the real handler and
// the real starter client: each is answered with a problem naming the
// field, and nothing is started or sent to a run.
func TestBadRequestTable(t *testing.T) {
	limits, err := money.ParseLimits("JPY=100000000")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := validation.NewRules([]string{"simulator", "stripe"}, limits)
	if err != nil {
		t.Fatal(err)
	}
	cases := badRequests()
	if len(cases) < 40 {
		t.Fatalf("%d cases; the table keeps at least 40", len(cases))
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			tc := &recordingTemporal{}
			h := NewHandler(starter.NewClient(tc, starter.Options{Rules: rules}), slog.New(slog.DiscardHandler), WithRules(rules), withTestKeys())
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			req.Header.Set("Authorization", "Bearer "+acmeKey)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			assertProblem(t, rec.Header().Get("Content-Type"), rec.Body.Bytes(), rec.Code, tt.wantField, tt.wantDetail)
			calls := tc.Calls()
			if changed := changedSomething(calls); len(changed) > 0 {
				t.Errorf("a bad request started or changed a run: %v", changed)
			}
			if tt.wantStatus != http.StatusConflict && len(calls) > 0 {
				t.Errorf("Temporal was called for a request the intake can refuse alone: %v", calls)
			}
		})
	}
}

// assertProblem checks an RFC 9457 answer that names wantField.
func assertProblem(t *testing.T, contentType string, body []byte, status int, wantField, wantDetail string) {
	t.Helper()
	if contentType != ProblemContentType {
		t.Errorf("Content-Type = %q, want %s", contentType, ProblemContentType)
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem details object: %v\n%s", err, body)
	}
	if p.Type == "" || p.Title == "" || p.Status != status || p.Detail == "" {
		t.Errorf("problem = %+v, want type, title, status %d and detail", p, status)
	}
	if !strings.Contains(p.Detail, wantDetail) {
		t.Errorf("detail = %q, want it to contain %q", p.Detail, wantDetail)
	}
	for _, f := range p.Errors {
		switch {
		case strings.HasPrefix(wantField, "?") && f.Parameter == wantField[1:]:
			return
		case !strings.HasPrefix(wantField, "?") && f.Pointer != nil && *f.Pointer == wantField:
			return
		}
	}
	t.Errorf("errors = %s, want one naming %q", mustJSON(p.Errors), wantField)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
