package intake

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/workflows"
)

// fragmentLedgers are the ledgers the fragment operations' cases read: a
// seeded one, and one whose pool is closed (every read fails, as with the
// database gone).
type fragmentLedgers struct {
	seeded, closed *ledger.Store
}

// newFragmentLedgers seeds a ledger through its own methods with two acme
// runs in EUR over the last days, both from an insufficient_funds decline
// on a Visa card at Stripe, one per arm of an experiment: inv-1 (control)
// still open after a declined attempt, inv-2 (fast) recovered by its first.
func newFragmentLedgers(t *testing.T) fragmentLedgers {
	t.Helper()
	ctx := context.Background()
	store := ledgertest.NewStore(t)
	now := time.Now().UTC().Truncate(time.Second)
	lim := ledger.DefaultLimits()
	for i, r := range []struct {
		invoice, outcome, amount, variant string
	}{
		{"inv-1", "declined", "49.90", "control"},
		{"inv-2", "succeeded", "20.25", "fast"},
	} {
		id := workflows.WorkflowID("acme", r.invoice)
		opened := now.Add(-time.Duration(5-i) * 24 * time.Hour)
		amount := decimal.RequireFromString(r.amount)
		if _, err := store.OpenRun(ctx, ledger.Run{WorkflowID: id, Tenant: "acme", InvoiceID: r.invoice, CustomerID: "cus_" + r.invoice,
			Amount: amount, Currency: "EUR", Policy: "default@3", Status: "open", OpenedAt: opened,
			Origin: ledger.RunOrigin{DeclineCode: "insufficient_funds", DeclineCategory: "soft", Gateway: "stripe", CardNetwork: "visa",
				Experiment: "retry-timing", Variant: r.variant}}); err != nil {
			t.Fatal(err)
		}
		key := id + "/attempt-1"
		at := opened.Add(time.Hour)
		v, err := store.ReserveCardAttempt(ctx, ledger.Reservation{IdempotencyKey: key, CardKey: "fp:fp_" + r.invoice, Network: "visa",
			Merchant: "acme", AmountMinor: amount.Shift(2).IntPart(), Currency: "EUR", WorkflowID: id, At: at}, lim)
		if err != nil || !v.Allowed {
			t.Fatalf("reserve %s: %+v %v", key, v, err)
		}
		if _, err := store.BeginAttempt(ctx, ledger.Attempt{IdempotencyKey: key, WorkflowID: id, Number: 1, Reason: "scheduled",
			Amount: amount, Currency: "EUR", Gateway: "stripe", PaymentMethod: "pm_1", Status: "pending", StartedAt: at}); err != nil {
			t.Fatal(err)
		}
		o := ledger.AttemptOutcome{Status: r.outcome, GatewayRef: "ch_" + r.invoice, At: at.Add(time.Second)}
		if r.outcome == "declined" {
			o.DeclineCode, o.Message, o.NetworkDeclineCode = "insufficient_funds", "Insufficient funds", "51"
		}
		if err := store.FinishAttempt(ctx, key, o); err != nil {
			t.Fatal(err)
		}
		if err := store.FinishCardAttempt(ctx, key, r.outcome, at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if r.outcome == "succeeded" {
			if err := store.CloseRun(ctx, id, "recovered", "paid", at.Add(2*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	closed := ledgertest.NewStore(t)
	closed.Close()
	return fragmentLedgers{seeded: store, closed: closed}
}

// panicAudit panics on every read (its AuditStore is nil): a bug behind
// an audit endpoint still answers a documented 500 problem.
type panicAudit struct{ AuditStore }

// panicAnalytics does the same behind the analytics endpoints.
type panicAnalytics struct{ Analytics }

// fragmentCases are the contract cases of the operations documented in
// openapi/fragments: the analytics endpoints answer from analytics.New on
// the seeded ledger, the audit endpoints from the ledger itself.
func fragmentCases(t *testing.T, l fragmentLedgers) []contractCase {
	t.Helper()
	// withLedger serves the fragment endpoints from the seeded ledger;
	// failing ones from the closed ledger, slow ones with no time left.
	withLedger := func(w *contractWorld) {
		w.opts = append(w.opts, WithAnalytics(analytics.New(l.seeded.Pool())), WithAudit(l.seeded, ledger.Limits{}))
	}
	failing := func(w *contractWorld) {
		w.opts = append(w.opts, WithAnalytics(analytics.New(l.closed.Pool())), WithAudit(l.closed, ledger.Limits{}))
	}
	slow := func(w *contractWorld) {
		withLedger(w)
		w.opts = append(w.opts, WithTimeout(time.Nanosecond))
	}
	and := func(fs ...func(*contractWorld)) func(*contractWorld) {
		return func(w *contractWorld) {
			for _, f := range fs {
				f(w)
			}
		}
	}
	keyStoreDown := func(w *contractWorld) { w.keys.down = true }
	panicking := func(w *contractWorld) {
		w.opts = append(w.opts, WithAnalytics(panicAnalytics{}), WithAudit(panicAudit{}, ledger.Limits{}))
	}
	limited := func(w *contractWorld) {
		withLedger(w)
		w.limit = true
		// The key's one request of the burst is spent.
		w.opts = append(w.opts, func(hh *handler) { hh.limiter.allow(acmePrincipal(t).KeyID) })
	}

	var cases []contractCase
	const period = "currency=EUR"
	const forecastInputs = "&accounts=1000&bill=10&growth=0.05&failed_rate=0.1&lifetime=20&recovery_rate=0.8&months=3"
	for _, a := range []struct {
		op, path, query string   // query: what a valid request adds to currency
		has             []string // what its answer shows of the seeded runs
	}{
		{"analyticsSummary", "/v1/analytics/summary", "", []string{`"runs":2`, `"recovered_revenue":"20.25"`}},
		{"analyticsSeries", "/v1/analytics/series", "&interval=day", []string{`"recovered_revenue":"20.25"`}},
		{"analyticsBreakdown", "/v1/analytics/breakdown", "&by=decline_code", []string{`insufficient_funds`}},
		{"analyticsMethods", "/v1/analytics/methods", "", []string{`"recovered":1`}},
		{"analyticsExperiments", "/v1/analytics/experiments", "&control=control", []string{`"retry-timing"`, `"fast"`}},
		{"analyticsAging", "/v1/analytics/aging", "", []string{`"open":1`, `"amount_at_risk":"49.9"`}},
		{"analyticsForecast", "/v1/analytics/forecast", forecastInputs, []string{`"measured"`}},
	} {
		ok := a.path + "?" + period + a.query
		cases = append(cases,
			contractCase{name: "from the ledger", op: a.op, method: "GET", path: ok, status: 200, prep: withLedger, validRequest: true, bodyHas: a.has},
			contractCase{name: "unknown parameter", op: a.op, method: "GET", path: ok + "&cohort=x", status: 400, prep: withLedger},
			contractCase{name: "no key", op: a.op, method: "GET", path: ok, noKey: true, status: 401, prep: withLedger},
			contractCase{name: "another tenant", op: a.op, method: "GET", path: ok + "&tenant=globex", status: 403, prep: withLedger},
			contractCase{name: "POST", op: a.op, method: "POST", path: ok, status: 405, prep: withLedger},
			contractCase{name: "lower-case currency", op: a.op, method: "GET", path: a.path + "?currency=eur" + a.query, status: 422, prep: withLedger},
			contractCase{name: "rate limited", op: a.op, method: "GET", path: ok, status: 429, prep: limited},
			contractCase{name: "ledger fails", op: a.op, method: "GET", path: ok, status: 503, prep: failing},
			contractCase{name: "ledger slow", op: a.op, method: "GET", path: ok, status: 504, prep: slow},
			contractCase{name: "key store down", op: a.op, method: "GET", path: ok, status: 503, prep: and(withLedger, keyStoreDown)},
			contractCase{name: "panic", op: a.op, method: "GET", path: ok, status: 500, prep: panicking},
		)
	}

	const timeline = "/v1/runs/acme/inv-1/timeline"
	cases = append(cases,
		contractCase{name: "from the ledger", op: "getRunTimeline", method: "GET", path: timeline, status: 200, prep: withLedger, validRequest: true,
			bodyHas: []string{"dunning/acme/inv-1/attempt-1", "insufficient_funds", "ch_inv-1"}},
		contractCase{name: "recovered run", op: "getRunTimeline", method: "GET", path: "/v1/runs/acme/inv-2/timeline", status: 200, prep: withLedger, validRequest: true,
			bodyHas: []string{"dunning/acme/inv-2/attempt-1", "recovered"}},
		contractCase{name: "bad invoice", op: "getRunTimeline", method: "GET", path: "/v1/runs/acme/inv%20one/timeline", status: 400, prep: withLedger},
		contractCase{name: "no key", op: "getRunTimeline", method: "GET", path: timeline, noKey: true, status: 401, prep: withLedger},
		contractCase{name: "write-only key", op: "getRunTimeline", method: "GET", path: timeline, auth: writeOnlyKey, status: 403, prep: and(withLedger, withWriteOnlyKey)},
		contractCase{name: "unknown run", op: "getRunTimeline", method: "GET", path: "/v1/runs/acme/inv-none/timeline", status: 404, prep: withLedger},
		contractCase{name: "another tenant's run", op: "getRunTimeline", method: "GET", path: "/v1/runs/globex/inv-1/timeline", status: 404, prep: withLedger},
		contractCase{name: "ledger fails", op: "getRunTimeline", method: "GET", path: timeline, status: 503, prep: failing},
		contractCase{name: "ledger slow", op: "getRunTimeline", method: "GET", path: timeline, status: 504, prep: slow},
		contractCase{name: "POST", op: "getRunTimeline", method: "POST", path: timeline, status: 405, prep: withLedger},
		contractCase{name: "rate limited", op: "getRunTimeline", method: "GET", path: timeline, status: 429, prep: limited},
		contractCase{name: "key store down", op: "getRunTimeline", method: "GET", path: timeline, status: 503, prep: and(withLedger, keyStoreDown)},
		contractCase{name: "panic", op: "getRunTimeline", method: "GET", path: timeline, status: 500, prep: panicking},
		contractCase{name: "run panics", op: "getRunTimeline", method: "GET", path: timeline, status: 500, prep: func(w *contractWorld) {
			withLedger(w)
			w.panicky = true
		}},
	)
	for _, a := range []struct {
		op, path, other string
		has             []string // in either format
	}{
		{"exportAudit", "/v1/audit/export", "csv", []string{"inv-1", "inv-2", "dunning/acme/inv-1/attempt-1"}},
		{"getComplianceReport", "/v1/audit/compliance", "json", []string{"fp:fp_inv-1", "fp:fp_inv-2", "visa"}},
	} {
		cases = append(cases,
			contractCase{name: "from the ledger", op: a.op, method: "GET", path: a.path, status: 200, prep: withLedger, validRequest: true, bodyHas: a.has},
			contractCase{name: "from the ledger as " + a.other, op: a.op, method: "GET", path: a.path + "?tenant=acme&format=" + a.other, status: 200, prep: withLedger, validRequest: true, bodyHas: a.has},
			contractCase{name: "unknown format", op: a.op, method: "GET", path: a.path + "?format=xml", status: 400, prep: withLedger},
			contractCase{name: "inverted period", op: a.op, method: "GET", path: a.path + "?from=2026-11-30&to=2026-11-01", status: 400, prep: withLedger},
			contractCase{name: "no key", op: a.op, method: "GET", path: a.path, noKey: true, status: 401, prep: withLedger},
			contractCase{name: "another tenant", op: a.op, method: "GET", path: a.path + "?tenant=globex", status: 403, prep: withLedger},
			contractCase{name: "ledger fails", op: a.op, method: "GET", path: a.path, status: 503, prep: failing},
			contractCase{name: "ledger slow", op: a.op, method: "GET", path: a.path, status: 504, prep: slow},
			contractCase{name: "POST", op: a.op, method: "POST", path: a.path, status: 405, prep: withLedger},
			contractCase{name: "rate limited", op: a.op, method: "GET", path: a.path, status: 429, prep: limited},
			contractCase{name: "key store down", op: a.op, method: "GET", path: a.path, status: 503, prep: and(withLedger, keyStoreDown)},
			contractCase{name: "panic", op: a.op, method: "GET", path: a.path, status: 500, prep: panicking},
		)
	}
	return cases
}
