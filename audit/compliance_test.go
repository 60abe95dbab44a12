package audit_test

import (
	"context"
	"encoding/csv"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/audit"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// seed writes the ledger rows a compliance report reads, as the activities
// would have written them, plus two charges that broke a rule (written
// directly: the gate never lets one through, so the report must catch
// them if it ever happens).
type seed struct {
	t     *testing.T
	store *ledger.Store
}

func (s seed) run(tenant, invoice string) string {
	id := "dunning/" + tenant + "/" + invoice
	if _, err := s.store.OpenRun(context.Background(), ledger.Run{WorkflowID: id, Tenant: tenant, InvoiceID: invoice, CustomerID: "cus",
		Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Policy: "default@1", Status: "open", OpenedAt: t0.Add(-10 * day)}); err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s seed) attempt(run, tenant string, n int, card, network, reason, outcome string, at time.Time) {
	key := run + "/attempt-" + string(rune('0'+n))
	ctx := context.Background()
	if _, err := s.store.Pool().Exec(ctx, `INSERT INTO attempts (idempotency_key, workflow_id, attempt, reason, amount, currency, gateway, status, started_at, finished_at)
		VALUES ($1, $2, $3, $4, 49.90, 'EUR', 'simulator', $5, $6, $6)`, key, run, n, reason, outcome, at); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.store.Pool().Exec(ctx, `INSERT INTO card_attempts (idempotency_key, card_key, network, merchant, amount_minor, currency, workflow_id, reserved_at, outcome, finished_at)
		VALUES ($1, $2, $3, $4, 4990, 'EUR', $5, $6, $7, $6)`, key, card, network, tenant, run, at, outcome); err != nil {
		s.t.Fatal(err)
	}
}

// The report on a seeded ledger, against expectations computed by hand:
// card fp:shared (Visa, limit lowered to 3 in 30 days) is charged by two of
// acme's invoices and by another tenant; card fp:mc (Mastercard) is
// charged while a MAC 03 block stands.
func TestComplianceReport(t *testing.T) {
	store := ledgertest.NewStore(t)
	ctx := context.Background()
	s := seed{t, store}
	a, b, c := s.run("acme", "inv-a"), s.run("acme", "inv-b"), s.run("acme", "inv-c")
	x := s.run("other", "inv-x")

	// Visa card shared by inv-a, inv-b and the other tenant's inv-x.
	s.attempt(x, "other", 1, "fp:shared", "visa", "scheduled", "declined", t0.Add(-5*day)) // before the period, inside Visa's 30 days
	s.attempt(a, "acme", 1, "fp:shared", "visa", "scheduled", "declined", t0.Add(1*day))   // 1 before it: fine
	s.attempt(b, "acme", 1, "fp:shared", "visa", "scheduled", "declined", t0.Add(2*day))   // 2 before it: fine
	s.attempt(a, "acme", 2, "fp:shared", "visa", "expedite", "declined", t0.Add(3*day))    // 3 before it: the 4th in 30 days breaks the limit of 3
	s.attempt(x, "other", 2, "fp:shared", "visa", "scheduled", "declined", t0.Add(10*day)) // the other tenant's: not acme's row
	s.attempt(b, "acme", 2, "fp:shared", "visa", "scheduled", "declined", t0.Add(40*day))  // after the period
	// The Visa rule denied inv-b a third charge; the policy's cap refused an
	// expedite of inv-a.
	if _, err := store.Pool().Exec(ctx, `INSERT INTO card_denials (idempotency_key, rule, card_key, network, workflow_id, not_before, denied_at)
		VALUES ($1, 'visa: 3 reattempts per card in 30 days', 'fp:shared', 'visa', $2, $3, $4)`, b+"/attempt-3", b, t0.Add(26*day), t0.Add(4*day)); err != nil {
		t.Fatal(err)
	}
	if err := store.RecordDecisions(ctx, []ledger.Decision{{Key: a + "/journal-9", WorkflowID: a, At: t0.Add(5 * day), Kind: ledger.DecisionRefusal,
		Action: "expedite", Words: "expedite attempt refused: policy cap: 3 of 3 scheduled and expedited attempts used",
		Rule: "policy cap: 3 of 3 scheduled and expedited attempts used", CardKey: "fp:shared"}}); err != nil {
		t.Fatal(err)
	}
	// Mastercard card of inv-c: declined with MAC 03 (blocked 30 days),
	// then charged after a card update on the same card while blocked.
	s.attempt(c, "acme", 1, "fp:mc", "mastercard", "scheduled", "declined", t0.Add(1*day))
	if err := store.BlockCard(ctx, "fp:mc", "mastercard", "mastercard advice 03", c+"/attempt-1", t0.Add(31*day), t0.Add(1*day)); err != nil {
		t.Fatal(err)
	}
	s.attempt(c, "acme", 2, "fp:mc", "mastercard", "card_updated", "succeeded", t0.Add(2*day))

	lim := ledger.DefaultLimits()
	lim.VisaMaxReattempts = 3
	rows, err := audit.Compliance(ctx, store, "acme", t0, t0.Add(30*day), lim)
	if err != nil {
		t.Fatal(err)
	}
	want := []audit.CardRow{
		{Card: "fp:mc", Network: "mastercard", Attempts: 2, Scheduled: 1, CardUpdate: 1, Declines: 1, Violations: 1,
			ViolationDetail: []string{c + "/attempt-2: charged while the card was blocked until 2026-12-02T00:00:00Z (mastercard advice 03)"}},
		{Card: "fp:shared", Network: "visa", Attempts: 3, Scheduled: 2, Expedited: 1, Declines: 3, Refusals: 2,
			RefusalsByRule: map[string]int{"visa: 3 reattempts per card in 30 days": 1, "policy cap: 3 of 3 scheduled and expedited attempts used": 1},
			Violations:     1, ViolationDetail: []string{a + "/attempt-2: visa: 3 attempts on the card in the 30 days before it (limit 3)"}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("report:\n got  %+v\n want %+v", rows, want)
	}

	// With the networks' own limit (15) the shared card broke nothing.
	rows, err = audit.Compliance(ctx, store, "acme", t0, t0.Add(30*day), ledger.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if rows[1].Violations != 0 || rows[0].Violations != 1 {
		t.Fatalf("violations with the default limits: %+v", rows)
	}

	var out strings.Builder
	if err := audit.WriteComplianceCSV(&out, rows, t0, t0.Add(30*day)); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := [][]string{
		audit.ComplianceColumns,
		{"fp:mc", "mastercard", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2", "1", "0", "1", "0", "1", "0", "", "1",
			c + "/attempt-2: charged while the card was blocked until 2026-12-02T00:00:00Z (mastercard advice 03)"},
		{"fp:shared", "visa", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "3", "2", "1", "0", "0", "3", "2",
			"policy cap: 3 of 3 scheduled and expedited attempts used=1; visa: 3 reattempts per card in 30 days=1", "0", ""},
	}
	if !reflect.DeepEqual(recs, wantCSV) {
		t.Fatalf("CSV:\n got  %q\n want %q", recs, wantCSV)
	}

	// A period longer than the networks' 30 days is refused.
	if _, err := audit.Compliance(ctx, store, "acme", t0, t0.Add(31*day), lim); err == nil {
		t.Fatal("a 31-day report was not refused")
	}
}

// The export lists each run's entries inside the period, run by run, and
// writes them as CSV under the documented header.
func TestExport(t *testing.T) {
	store := ledgertest.NewStore(t)
	ctx := context.Background()
	s := seed{t, store}
	a, b := s.run("acme", "inv-a"), s.run("acme", "inv-b")
	x := s.run("other", "inv-x")
	s.attempt(a, "acme", 1, "fp:1", "visa", "scheduled", "declined", t0.Add(1*day))
	s.attempt(b, "acme", 1, "fp:1", "visa", "scheduled", "declined", t0.Add(2*day))
	s.attempt(a, "acme", 2, "fp:1", "visa", "expedite", "succeeded", t0.Add(3*day))
	s.attempt(b, "acme", 2, "fp:1", "visa", "scheduled", "declined", t0.Add(40*day)) // after the period
	s.attempt(x, "other", 1, "fp:1", "visa", "scheduled", "declined", t0.Add(2*day)) // another tenant's
	if err := store.RecordDecisions(ctx, []ledger.Decision{{Key: b + "/journal-4", WorkflowID: b, At: t0.Add(4 * day), Kind: ledger.DecisionInput,
		Action: "expedite", By: "support", Words: "expedite asked: customer called"}}); err != nil {
		t.Fatal(err)
	}
	rows, err := audit.Export(ctx, store, "acme", t0, t0.Add(30*day))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.InvoiceID+" "+r.Kind+" "+r.Key)
	}
	want := []string{
		"inv-a charge " + a + "/attempt-1",
		"inv-a charge " + a + "/attempt-2",
		"inv-b charge " + b + "/attempt-1",
		"inv-b input " + b + "/journal-4",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("export rows:\n got  %q\n want %q", got, want)
	}
	var out strings.Builder
	if err := audit.WriteCSV(&out, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || !reflect.DeepEqual(recs[0], audit.ExportColumns) {
		t.Fatalf("CSV = %q", recs)
	}
	if r := recs[2]; r[1] != a || r[4] != "charge" || r[5] != "expedite" || r[12] != "succeeded" || r[13] != "49.90" || r[14] != "EUR" {
		t.Fatalf("charge row = %q", r)
	}
	if r := recs[4]; r[4] != "input" || r[8] != "support" || r[7] != "expedite asked: customer called" {
		t.Fatalf("input row = %q", r)
	}
}
