package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/workflows"
)

// tableRequest is one bad request to the real stack.
type tableRequest struct {
	name       string
	method     string
	path       string
	body       string
	wantStatus int
	// wantField is the field the problem names: a body member's JSON pointer
	// ("" is the whole body), or "?name" for a path or query parameter.
	wantField string
}

// tableDecline is a decline the stack accepts, edited per case. Its
// invoice has no run and must never get one.
func tableDecline(edit func(m map[string]any)) string {
	m := map[string]any{
		"tenant": "acme", "invoice_id": "inv-table-bad",
		"customer": map[string]any{"id": "cus-table", "email": "ada@example.com", "phone": "+48123456789", "time_zone": "Europe/Warsaw"},
		"amount":   "49.90", "currency": "EUR", "payment_method": "sim:succeed",
		"decline": map[string]any{"gateway": "simulator", "code": "insufficient_funds"},
		"policy":  "default",
	}
	edit(m)
	b, _ := json.Marshal(m)
	return string(b)
}

func tableReminder(edit func(m map[string]any)) string {
	m := map[string]any{
		"tenant": "acme", "kind": "pre-due", "invoice_id": "inv-table-bad", "amount": "49.90", "currency": "EUR",
		"customer": map[string]any{"id": "cus-table", "email": "ada@example.com"},
		"anchor":   time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339),
	}
	edit(m)
	b, _ := json.Marshal(m)
	return string(b)
}

func tableCustomer(m map[string]any) map[string]any { return m["customer"].(map[string]any) }
func tableDecl(m map[string]any) map[string]any     { return m["decline"].(map[string]any) }

func tableRequests() []tableRequest {
	post := http.MethodPost
	d := func(name string, status int, field string, edit func(m map[string]any)) tableRequest {
		return tableRequest{"decline: " + name, post, "/v1/declines", tableDecline(edit), status, field}
	}
	r := func(name string, status int, field string, edit func(m map[string]any)) tableRequest {
		return tableRequest{"reminder: " + name, post, "/v1/reminders", tableReminder(edit), status, field}
	}
	run := "/v1/runs/acme/inv-table-bad"
	return []tableRequest{
		{"decline: null body", post, "/v1/declines", "null", 400, ""},
		{"decline: malformed JSON", post, "/v1/declines", `{"tenant":`, 400, ""},
		d("unknown field", 400, "/colour", func(m map[string]any) { m["colour"] = "red" }),
		d("unknown nested field", 400, "/decline/received_at", func(m map[string]any) { tableDecl(m)["received_at"] = "2026-03-01T10:00:00Z" }),
		d("tenant as a number", 400, "/tenant", func(m map[string]any) { m["tenant"] = 1 }),
		d("amount as a JSON number", 400, "/amount", func(m map[string]any) { m["amount"] = 49.9 }),
		d("occurred_at not RFC 3339", 400, "/decline/occurred_at", func(m map[string]any) { tableDecl(m)["occurred_at"] = "yesterday" }),
		d("zero amount", 422, "/amount", func(m map[string]any) { m["amount"] = "0" }),
		d("too many decimals", 422, "/amount", func(m map[string]any) { m["amount"] = "49.901" }),
		d("amount that wrapped to 1 cent", 422, "/amount", func(m map[string]any) { m["amount"] = "184467440737095516.17" }),
		d("amount that wrapped to 1590897978359414784", 422, "/amount", func(m map[string]any) { m["amount"] = "100000000000000000000000.00" }),
		d("amount that wrapped negative", 422, "/amount", func(m map[string]any) { m["amount"] = "92233720368547758.08" }),
		d("amount over the default bound", 422, "/amount", func(m map[string]any) { m["amount"] = "1000000000.00" }),
		d("unknown currency", 422, "/currency", func(m map[string]any) { m["currency"] = "XYZ" }),
		d("email with CR/LF", 422, "/customer/email", func(m map[string]any) { tableCustomer(m)["email"] = "ada@example.com\r\nBcc: eve@example.com" }),
		d("email with a display name", 422, "/customer/email", func(m map[string]any) { tableCustomer(m)["email"] = "Ada <ada@example.com>" }),
		d("phone not E.164", 422, "/customer/phone", func(m map[string]any) { tableCustomer(m)["phone"] = "0123" }),
		d("phone invalid in its plan", 422, "/customer/phone", func(m map[string]any) { tableCustomer(m)["phone"] = "+4812" }),
		d("unknown gateway", 422, "/decline/gateway", func(m map[string]any) { tableDecl(m)["gateway"] = "paypal" }),
		d("malformed simulator script", 422, "/payment_method", func(m map[string]any) { m["payment_method"] = "sim:decline;colour=red" }),
		d("simulator script with a repeated key", 422, "/payment_method", func(m map[string]any) { m["payment_method"] = "sim:decline;code=a;code=b" }),
		d("malformed Stripe method", 422, "/payment_method", func(m map[string]any) {
			tableDecl(m)["gateway"], m["payment_method"] = "stripe", "4242424242424242"
		}),
		d("tenant over 64 bytes", 422, "/tenant", func(m map[string]any) { m["tenant"] = strings.Repeat("t", 65) }),
		d("invoice over 128 bytes", 422, "/invoice_id", func(m map[string]any) { m["invoice_id"] = strings.Repeat("i", 129) }),
		d("customer ID past the card-link limit", 422, "/customer/id", func(m map[string]any) { tableCustomer(m)["id"] = strings.Repeat("c", 201) }),
		d("customer ID of 300 kB", 422, "/customer/id", func(m map[string]any) { tableCustomer(m)["id"] = strings.Repeat("c", 300_000) }),
		d("decline code of 300 kB", 422, "/decline/code", func(m map[string]any) { tableDecl(m)["code"] = strings.Repeat("x", 300_000) }),
		d("decline ID over 255 bytes", 422, "/decline/id", func(m map[string]any) { tableDecl(m)["id"] = strings.Repeat("d", 256) }),
		d("plan with a space", 422, "/plan", func(m map[string]any) { m["plan"] = "pro plan" }),
		d("segment over 128 bytes", 422, "/segment", func(m map[string]any) { m["segment"] = strings.Repeat("s", 129) }),
		d("unknown policy", 422, "/policy", func(m map[string]any) { m["policy"] = "gold" }),
		{"decline: body over 1 MiB", post, "/v1/declines", `{"tenant":"` + strings.Repeat("a", 1<<20) + `"}`, 413, ""},
		{"reminder: null body", post, "/v1/reminders", "null", 400, ""},
		r("unknown field", 400, "/colour", func(m map[string]any) { m["colour"] = "red" }),
		r("unknown kind", 422, "/kind", func(m map[string]any) { m["kind"] = "weekly" }),
		r("amount that wrapped", 422, "/amount", func(m map[string]any) { m["amount"] = "184467440737095516.17" }),
		r("email with CR/LF", 422, "/customer/email", func(m map[string]any) { tableCustomer(m)["email"] = "ada@example.com\nBcc: eve@example.com" }),
		{"status: tenant over 128 bytes", http.MethodGet, "/v1/runs/" + strings.Repeat("t", 129) + "/inv-1", "", 400, "?tenant"},
		{"cancel: null body", post, run + "/cancel", "null", 400, ""},
		{"cancel: no reason", post, run + "/cancel", `{"by":"ops"}`, 422, "/reason"},
		{"cancel: reason as a number", post, run + "/cancel", `{"reason":7}`, 400, "/reason"},
		{"expedite: unknown field", post, run + "/expedite", `{"now":true}`, 400, "/now"},
		{"payment-method-updated: no gateway takes it", post, run + "/payment-method-updated", `{"payment_method":"tok visa"}`, 422, "/payment_method"},
		{"paid: reference too long", post, run + "/paid", `{"reference":"` + strings.Repeat("r", 256) + `"}`, 422, "/reference"},
		{"cancel reminders: no reason", http.MethodDelete, "/v1/reminders/acme/pre-due/inv-table-bad", "", 422, "?reason"},
		{"cancel reminders: by with CR/LF", http.MethodDelete, "/v1/reminders/acme/pre-due/inv-table-bad?reason=x&by=a%0D%0Ab", "", 422, "?by"},
	}
}

// testBadRequestTable sends the table of bad requests through the real
// stack: each is answered with a problem naming the field, no run is
// started, and the ledger does not change. Then a decline for an open run
// with another amount or currency is refused the same way.
func (p *platform) testBadRequestTable(t *testing.T) {
	before := p.ledgerRows(t)
	for _, tt := range tableRequests() {
		t.Run(tt.name, func(t *testing.T) {
			status, contentType, body := p.send(t, tt.method, tt.path, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (%s)", status, tt.wantStatus, body)
			}
			assertProblemNames(t, contentType, body, status, tt.wantField)
		})
	}
	for _, id := range []string{"dunning/acme/inv-table-bad", "reminders/acme/pre-due/inv-table-bad"} {
		if n := p.list(t, fmt.Sprintf("WorkflowId = %q", id)); n != 0 {
			t.Errorf("bad requests started %d runs %s", n, id)
		}
	}
	p.assertLedgerUnchanged(t, before)

	t.Run("conflicting amount or currency", p.testConflictingDecline)
}

// testConflictingDecline reports a second decline for an open run with
// another amount, then another currency: 409 naming both values, and the
// run and the ledger stay as they were.
func (p *platform) testConflictingDecline(t *testing.T) {
	const invoice = "inv-table-open"
	valid := tableDecline(func(m map[string]any) { m["invoice_id"] = invoice })
	if status, _, body := p.send(t, http.MethodPost, "/v1/declines", valid); status != http.StatusAccepted {
		t.Fatalf("valid decline = %d %s", status, body)
	}
	// The default policy's first retry is days away: once the first notice
	// is recorded the run is parked and the ledger is still.
	before := p.settledLedger(t, invoice)
	for _, tt := range []struct {
		name, amount, currency, want string
	}{
		{"other amount", "50.00", "EUR", "dunns 49.90 EUR; this decline reports 50.00 EUR"},
		{"other currency", "49.90", "USD", "dunns 49.90 EUR; this decline reports 49.90 USD"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := tableDecline(func(m map[string]any) {
				m["invoice_id"], m["amount"], m["currency"] = invoice, tt.amount, tt.currency
				tableDecl(m)["id"] = "ch_conflict_" + tt.currency
			})
			status, contentType, out := p.send(t, http.MethodPost, "/v1/declines", body)
			if status != http.StatusConflict || !strings.Contains(out, tt.want) {
				t.Errorf("answer = %d %s, want 409 naming %q", status, out, tt.want)
			}
			assertProblemNames(t, contentType, out, status, "/amount")
		})
	}
	p.assertLedgerUnchanged(t, before)
	code, st := p.do(t, http.MethodGet, "/v1/runs/acme/"+invoice, "")
	if declines, _ := st["declines"].([]any); code != http.StatusOK || len(declines) != 1 || st["amount"] != "49.90" {
		t.Errorf("status = %d %v, want the run unchanged with its one decline", code, st)
	}
	if code, body := p.do(t, http.MethodPost, "/v1/runs/acme/"+invoice+"/cancel", `{"reason":"test over"}`); code != http.StatusAccepted {
		t.Errorf("cancel = %d %v", code, body)
	}
}

// send makes a request and returns the status, content type and body.
func (p *platform) send(t testing.TB, method, path, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.api.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(raw)
}

// assertProblemNames checks an RFC 9457 answer naming wantField.
func assertProblemNames(t *testing.T, contentType, body string, status int, wantField string) {
	t.Helper()
	if contentType != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", contentType)
	}
	var problem struct {
		Type, Title, Detail string
		Status              int
		Errors              []struct {
			Pointer   *string `json:"pointer"`
			Parameter string  `json:"parameter"`
		}
	}
	if err := json.Unmarshal([]byte(body), &problem); err != nil {
		t.Fatalf("not a problem details object: %v: %s", err, body)
	}
	if problem.Type == "" || problem.Title == "" || problem.Detail == "" || problem.Status != status {
		t.Errorf("problem = %s, want type, title, status %d and detail", body, status)
	}
	for _, e := range problem.Errors {
		if param, ok := strings.CutPrefix(wantField, "?"); ok && e.Parameter == param {
			return
		}
		if e.Pointer != nil && *e.Pointer == wantField {
			return
		}
	}
	if len(body) > 400 {
		body = body[:400] + "..."
	}
	t.Errorf("problem %s names no %q", body, wantField)
}

// ledgerRows counts the rows a run writes.
func (p *platform) ledgerRows(t *testing.T) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	for _, table := range []string{"runs", "attempts", "messages", "service_changes"} {
		var n int64
		if err := p.store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		counts[table] = n
	}
	return counts
}

func (p *platform) assertLedgerUnchanged(t *testing.T, before map[string]int64) {
	t.Helper()
	for table, n := range p.ledgerRows(t) {
		if n != before[table] {
			t.Errorf("%s: %d rows before the bad requests, %d after", table, before[table], n)
		}
	}
}

// settledLedger waits until the open run has written its first steps (its
// run row, the first notice when the policy sends one) and the row counts
// have held still for a second.
func (p *platform) settledLedger(t *testing.T, invoice string) map[string]int64 {
	t.Helper()
	id := workflows.WorkflowID("acme", invoice)
	var last map[string]int64
	stable := 0
	waitFor(t, func() bool {
		if _, err := p.store.GetRun(context.Background(), id); err != nil {
			return false
		}
		rows := p.ledgerRows(t)
		if fmt.Sprint(rows) == fmt.Sprint(last) {
			stable++
		} else {
			stable = 0
		}
		last = rows
		return stable >= 10
	})
	return last
}
