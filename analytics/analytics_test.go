package analytics_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// seedRun is a run as a test writes it straight into the ledger.
type seedRun struct {
	id, tenant, currency, amount, policy, status string
	opened, closed                               time.Time // closed zero while open
	closingReason                                string
	code, category, gateway, network             string
	experiment, variant                          string
	phase                                        string // run_status, open runs only
}

type seedAttempt struct {
	run     string
	n       int
	reason  string // scheduled, expedite, card_updated
	status  string // succeeded, declined, failed
	amount  string
	started time.Time
}

type seedMessage struct {
	run, status string // sent, dry-run, skipped, failed
	at          time.Time
}

type seedChange struct {
	run, state string
	at         time.Time
}

func day(d int, hm ...int) time.Time {
	h, m := 0, 0
	if len(hm) > 0 {
		h = hm[0]
	}
	if len(hm) > 1 {
		m = hm[1]
	}
	return time.Date(2026, time.March, d, h, m, 0, 0, time.UTC)
}

func seed(t *testing.T, store *ledger.Store, runs []seedRun, attempts []seedAttempt, messages []seedMessage, changes []seedChange) {
	t.Helper()
	ctx := context.Background()
	pool := store.Pool()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("seed: %v\n%s %v", err, sql, args)
		}
	}
	for _, r := range runs {
		var closed *time.Time
		if !r.closed.IsZero() {
			closed = &r.closed
		}
		if r.currency == "" {
			r.currency = "EUR"
		}
		if r.policy == "" {
			r.policy = "default@1#aaaa"
		}
		exec(`INSERT INTO runs (workflow_id, tenant, invoice_id, customer_id, amount, currency, policy, status, opened_at, closed_at,
			closing_reason, decline_code, decline_category, gateway, card_network, experiment, variant)
			VALUES ($1, $2, $1, 'cus', $3::numeric, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			r.id, r.tenant, r.amount, r.currency, r.policy, r.status, r.opened, closed, r.closingReason,
			r.code, r.category, r.gateway, r.network, r.experiment, r.variant)
		if r.phase != "" {
			exec(`INSERT INTO run_status (workflow_id, tenant, invoice_id, customer_id, phase, updated_at)
				VALUES ($1, $2, $1, 'cus', $3, $4)`, r.id, r.tenant, r.phase, r.opened)
		}
	}
	for _, a := range attempts {
		var finished *time.Time
		if a.status != "pending" {
			f := a.started.Add(time.Second)
			finished = &f
		}
		exec(`INSERT INTO attempts (idempotency_key, workflow_id, attempt, reason, amount, currency, gateway, status, started_at, finished_at)
			VALUES ($1::text || '/attempt-' || $2::int, $1, $2::int, $3, $4::numeric, 'EUR', 'stripe', $5, $6, $7)`,
			a.run, a.n, a.reason, a.amount, a.status, a.started, finished)
	}
	for i, m := range messages {
		var finished *time.Time
		if m.status != "pending" {
			finished = &m.at
		}
		exec(`INSERT INTO messages (idempotency_key, workflow_id, kind, channel, status, created_at, finished_at)
			VALUES ($1, $2, 'retry_failed', 'email', $3, $4, $5)`, fmt.Sprintf("%s/msg-%d", m.run, i), m.run, m.status, m.at, finished)
	}
	for i, c := range changes {
		exec(`INSERT INTO service_changes (idempotency_key, workflow_id, state, created_at) VALUES ($1, $2, $3, $4)`,
			fmt.Sprintf("%s/svc-%d", c.run, i), c.run, c.state, c.at)
	}
	// The rows went in around the ledger's writes, so the runs' rollups
	// are recounted from them, as a bulk import's would be.
	if _, err := store.RecountRunRollups(ctx); err != nil {
		t.Fatal(err)
	}
}

// march is acme's EUR ledger for March 2026, with runs around it that no
// March query of acme in EUR may count. Expectations below are worked out
// by hand from these rows.
func march(t *testing.T) *analytics.Store {
	t.Helper()
	store := ledgertest.NewStore(t)
	runs := []seedRun{
		{id: "r1", tenant: "acme", amount: "49.90", status: "recovered", opened: day(2, 10), closed: day(4, 10),
			code: "insufficient_funds", category: "soft", gateway: "stripe", network: "visa", experiment: "exp1", variant: "default"},
		{id: "r2", tenant: "acme", amount: "100.00", status: "recovered", opened: day(3), closed: day(13), policy: "aggressive@2#bbbb",
			code: "stolen_card", category: "hard", gateway: "stripe", network: "mastercard", experiment: "exp1", variant: "aggressive"},
		{id: "r3", tenant: "acme", amount: "20.00", status: "recovered", opened: day(10, 12), closed: day(11, 12), closingReason: "paid out of band (chk 12)",
			code: "do_not_honor", category: "soft", gateway: "simulator", network: "visa", experiment: "exp1", variant: "default"},
		{id: "r4", tenant: "acme", amount: "30.00", status: "exhausted", opened: day(10), closed: day(31),
			code: "insufficient_funds", category: "soft", gateway: "stripe", network: "visa", experiment: "exp1", variant: "default"},
		{id: "r5", tenant: "acme", amount: "25.50", status: "exhausted", opened: day(15), closed: day(20), policy: "aggressive@2#bbbb",
			code: "stolen_card", category: "hard", gateway: "stripe", network: "mastercard", experiment: "exp1", variant: "aggressive"},
		{id: "r6", tenant: "acme", amount: "10.00", status: "cancelled", opened: day(20), closed: day(21), closingReason: "invoice voided",
			code: "generic_decline", category: "soft", gateway: "simulator"},
		{id: "r7", tenant: "acme", amount: "60.00", status: "open", opened: day(25), phase: "recovering",
			code: "insufficient_funds", category: "soft", gateway: "stripe", network: "visa"},
		{id: "r8", tenant: "acme", amount: "15.00", status: "recovered", opened: day(5), closed: day(5, 6), policy: "aggressive@2#bbbb",
			code: "authentication_required", category: "customer_action", gateway: "stripe", network: "visa", experiment: "exp1", variant: "aggressive"},
		// Not acme's March in EUR: another tenant, another currency, the
		// instants just before and exactly at the period's ends.
		{id: "x-tenant", tenant: "globex", amount: "1000.00", status: "recovered", opened: day(10), closed: day(11)},
		{id: "x-usd", tenant: "acme", currency: "USD", amount: "1000.00", status: "recovered", opened: day(10), closed: day(11)},
		{id: "x-before", tenant: "acme", amount: "1000.00", status: "exhausted", opened: day(1).Add(-time.Millisecond), closed: day(10)},
		{id: "x-after", tenant: "acme", amount: "1000.00", status: "open", opened: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
	}
	attempts := []seedAttempt{
		{run: "r1", n: 1, reason: "scheduled", status: "declined", amount: "49.90", started: day(3)},
		{run: "r1", n: 2, reason: "scheduled", status: "succeeded", amount: "49.90", started: day(4, 10)},
		{run: "r2", n: 1, reason: "scheduled", status: "declined", amount: "100.00", started: day(6)},
		{run: "r2", n: 2, reason: "card_updated", status: "succeeded", amount: "100.00", started: day(13)},
		{run: "r3", n: 1, reason: "scheduled", status: "declined", amount: "20.00", started: day(11)},
		{run: "r4", n: 1, reason: "scheduled", status: "declined", amount: "30.00", started: day(13)},
		{run: "r4", n: 2, reason: "scheduled", status: "declined", amount: "30.00", started: day(17)},
		{run: "r4", n: 3, reason: "scheduled", status: "declined", amount: "30.00", started: day(24)},
		{run: "r4", n: 4, reason: "expedite", status: "failed", amount: "30.00", started: day(25)}, // ours: not an attempt
		{run: "r7", n: 1, reason: "scheduled", status: "declined", amount: "60.00", started: day(28)},
		{run: "r8", n: 1, reason: "expedite", status: "succeeded", amount: "15.00", started: day(5, 6)},
		{run: "x-tenant", n: 1, reason: "scheduled", status: "succeeded", amount: "1000.00", started: day(11)},
		{run: "x-usd", n: 1, reason: "scheduled", status: "succeeded", amount: "1000.00", started: day(11)},
	}
	messages := []seedMessage{
		{run: "r1", status: "sent", at: day(3)},
		{run: "r1", status: "sent", at: day(4)},
		{run: "r1", status: "failed", at: day(4)}, // never reached the customer
		{run: "r2", status: "dry-run", at: day(6)},
		{run: "r3", status: "sent", at: day(11)},
		{run: "r8", status: "skipped", at: day(5)},
		{run: "r4", status: "sent", at: day(13)}, // not a recovered run
		{run: "x-tenant", status: "sent", at: day(10)},
	}
	changes := []seedChange{
		{run: "r4", state: "suspended", at: day(24)},
		{run: "r4", state: "cancelled", at: day(31).AddDate(0, 0, 5)},  // within 30 days of the close: churned
		{run: "r5", state: "cancelled", at: day(20).AddDate(0, 0, 45)}, // later: not counted
	}
	seed(t, store, runs, attempts, messages, changes)
	return analytics.New(store.Pool())
}

var marchQuery = analytics.Query{
	Tenant: "acme", Currency: "EUR",
	From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func checkOutcomes(t *testing.T, what string, got, want analytics.Outcomes) {
	t.Helper()
	if got.Runs != want.Runs || got.Open != want.Open || got.Recovered != want.Recovered ||
		got.Exhausted != want.Exhausted || got.Cancelled != want.Cancelled {
		t.Errorf("%s: counts runs/open/recovered/exhausted/cancelled = %d/%d/%d/%d/%d, want %d/%d/%d/%d/%d", what,
			got.Runs, got.Open, got.Recovered, got.Exhausted, got.Cancelled,
			want.Runs, want.Open, want.Recovered, want.Exhausted, want.Cancelled)
	}
	if !got.FailedRevenue.Equal(want.FailedRevenue) || !got.RecoveredRevenue.Equal(want.RecoveredRevenue) || !got.LostRevenue.Equal(want.LostRevenue) {
		t.Errorf("%s: failed/recovered/lost = %s/%s/%s, want %s/%s/%s", what, got.FailedRevenue, got.RecoveredRevenue, got.LostRevenue,
			want.FailedRevenue, want.RecoveredRevenue, want.LostRevenue)
	}
	if !near(got.RecoveryRate, want.RecoveryRate) || !near(got.RevenueRecoveryRate, want.RevenueRecoveryRate) {
		t.Errorf("%s: rates %v (revenue %v), want %v (revenue %v)", what, got.RecoveryRate, got.RevenueRecoveryRate, want.RecoveryRate, want.RevenueRecoveryRate)
	}
}

func TestSummary(t *testing.T) {
	s := march(t)
	got, err := s.Summary(context.Background(), marchQuery)
	if err != nil {
		t.Fatal(err)
	}
	// r1 r2 r3 r8 recovered (49.90+100+20+15), r4 r5 exhausted (30+25.50),
	// r6 cancelled, r7 open: 4 of 6 settled.
	checkOutcomes(t, "summary", got.Outcomes, analytics.Outcomes{
		Runs: 8, Open: 1, Recovered: 4, Exhausted: 2, Cancelled: 1, RecoveryRate: 4.0 / 6,
		FailedRevenue: dec("310.40"), RecoveredRevenue: dec("184.90"), LostRevenue: dec("55.50"),
		RevenueRecoveryRate: 184.90 / 240.40,
	})
	// Recoveries took 6 h, 1 d, 2 d, 10 d: median (1 d + 2 d)/2 = 1.5 d;
	// p90 at rank 0.9*3 = 2.7: 2 d + 0.7*(10 d - 2 d) = 7.6 d.
	const d = 86400.0
	if tr := got.TimeToRecovery; tr.Count != 4 || !near(tr.MedianSeconds, 1.5*d) || !near(tr.P90Seconds, 7.6*d) || !near(tr.MeanSeconds, (0.25+1+2+10)/4*d) {
		t.Errorf("time to recovery = %+v, want 4, median 1.5 d, p90 7.6 d, mean 3.3125 d", tr)
	}
	// Closed runs took 0.25, 1, 1, 2, 5, 10, 21 days: median 2 d; p90 at rank
	// 5.4: 10 d + 0.4*11 d = 14.4 d; mean 40.25/7 d.
	if tr := got.TimeToResolution; tr.Count != 7 || !near(tr.MedianSeconds, 2*d) || !near(tr.P90Seconds, 14.4*d) || !near(tr.MeanSeconds, 40.25/7*d) {
		t.Errorf("time to resolution = %+v, want 7, median 2 d, p90 14.4 d, mean 5.75 d", tr)
	}
	// Answered attempts: r1 2, r2 2, r3 1, r4 3 (its failed 4th is ours),
	// r7 1, r8 1 = 10; of recovered runs 6.
	if got.Attempts != 10 || !near(got.AttemptsPerRecovery, 1.5) {
		t.Errorf("attempts %d, per recovery %v; want 10, 1.5", got.Attempts, got.AttemptsPerRecovery)
	}
	if !got.RevenuePerAttempt.Equal(dec("18.49")) { // 184.90 / 10
		t.Errorf("revenue per attempt %s, want 18.49", got.RevenuePerAttempt)
	}
	// Sent or dry-run messages of recovered runs: r1 2, r2 1, r3 1.
	if !near(got.MessagesPerRecovery, 1) {
		t.Errorf("messages per recovery %v, want 1", got.MessagesPerRecovery)
	}
	// Charges of ours won r1, r2, r8 (r3 paid out of band): 164.90 / 3 =
	// 54.9666... -> 54.97.
	if got.RecoveredByCharge != 3 || !got.RecoveredByChargeRevenue.Equal(dec("164.90")) || !got.IncrementalRevenuePerRecoveredAttempt.Equal(dec("54.97")) {
		t.Errorf("recovered by charge %d for %s, %s each; want 3 for 164.90, 54.97 each",
			got.RecoveredByCharge, got.RecoveredByChargeRevenue, got.IncrementalRevenuePerRecoveredAttempt)
	}
	// r4's service was cancelled 5 days after it closed, r5's after 45.
	if got.ChurnedRuns != 1 || !near(got.InvoluntaryChurn, 0.5) {
		t.Errorf("churned %d (%v), want 1 (0.5)", got.ChurnedRuns, got.InvoluntaryChurn)
	}
}

func TestSeries(t *testing.T) {
	s := march(t)
	got, err := s.Series(context.Background(), marchQuery, analytics.Week)
	if err != nil {
		t.Fatal(err)
	}
	// ISO weeks from Monday: r1 r2 r8 | r3 r4 r5 (Sunday the 15th) | r6 | r7.
	want := []analytics.Point{
		{Start: day(2), Outcomes: analytics.Outcomes{Runs: 3, Recovered: 3, RecoveryRate: 1, RevenueRecoveryRate: 1,
			FailedRevenue: dec("164.90"), RecoveredRevenue: dec("164.90"), LostRevenue: dec("0")}},
		{Start: day(9), Outcomes: analytics.Outcomes{Runs: 3, Recovered: 1, Exhausted: 2, RecoveryRate: 1.0 / 3, RevenueRecoveryRate: 20 / 75.5,
			FailedRevenue: dec("75.50"), RecoveredRevenue: dec("20.00"), LostRevenue: dec("55.50")}},
		{Start: day(16), Outcomes: analytics.Outcomes{Runs: 1, Cancelled: 1, FailedRevenue: dec("10"), RecoveredRevenue: dec("0"), LostRevenue: dec("0")}},
		{Start: day(23), Outcomes: analytics.Outcomes{Runs: 1, Open: 1, FailedRevenue: dec("60"), RecoveredRevenue: dec("0"), LostRevenue: dec("0")}},
	}
	if len(got.Points) != len(want) {
		t.Fatalf("%d weekly points, want %d: %+v", len(got.Points), len(want), got.Points)
	}
	for i, w := range want {
		if !got.Points[i].Start.Equal(w.Start) {
			t.Errorf("point %d starts %s, want %s", i, got.Points[i].Start, w.Start)
		}
		checkOutcomes(t, w.Start.Format("week of Jan 2"), got.Points[i].Outcomes, w.Outcomes)
	}

	month, err := s.Series(context.Background(), marchQuery, analytics.Month)
	if err != nil {
		t.Fatal(err)
	}
	if len(month.Points) != 1 || !month.Points[0].Start.Equal(day(1)) || month.Points[0].Runs != 8 {
		t.Errorf("monthly series = %+v, want one point of 8 runs on March 1", month.Points)
	}
	days, err := s.Series(context.Background(), marchQuery, analytics.Day)
	if err != nil {
		t.Fatal(err)
	}
	// Declines on the 2nd, 3rd, 5th, 10th (two), 15th, 20th, 25th.
	if len(days.Points) != 7 || !days.Points[3].Start.Equal(day(10)) || days.Points[3].Runs != 2 {
		t.Errorf("daily series = %+v, want 7 points, 2 runs on March 10", days.Points)
	}
}

func TestBreakdown(t *testing.T) {
	s := march(t)
	type group struct {
		key                        string
		runs, recovered, exhausted int64
		failed                     string
		rate                       float64
	}
	tests := []struct {
		by   analytics.Dimension
		want []group
	}{
		{analytics.ByDeclineCode, []group{
			{"insufficient_funds", 3, 1, 1, "139.90", 0.5}, // r1 r4 r7
			{"stolen_card", 2, 1, 1, "125.50", 0.5},        // r2 r5
			{"do_not_honor", 1, 1, 0, "20.00", 1},
			{"authentication_required", 1, 1, 0, "15.00", 1},
			{"generic_decline", 1, 0, 0, "10.00", 0},
		}},
		{analytics.ByDeclineCategory, []group{
			{"soft", 5, 2, 1, "169.90", 2.0 / 3}, // r1 r3 r4 r6 r7
			{"hard", 2, 1, 1, "125.50", 0.5},
			{"customer_action", 1, 1, 0, "15.00", 1},
		}},
		{analytics.ByGateway, []group{
			{"stripe", 6, 3, 2, "280.40", 0.6}, // r1 r2 r4 r5 r7 r8
			{"simulator", 2, 1, 0, "30.00", 1},
		}},
		{analytics.ByCardNetwork, []group{
			{"visa", 5, 3, 1, "174.90", 0.75}, // r1 r3 r4 r7 r8
			{"mastercard", 2, 1, 1, "125.50", 0.5},
			{"", 1, 0, 0, "10.00", 0},
		}},
		{analytics.ByPolicy, []group{
			{"default@1", 5, 2, 1, "169.90", 2.0 / 3},
			{"aggressive@2", 3, 2, 1, "140.50", 2.0 / 3},
		}},
		{analytics.ByVariant, []group{
			{"exp1/aggressive", 3, 2, 1, "140.50", 2.0 / 3},
			{"exp1/default", 3, 2, 1, "99.90", 2.0 / 3},
			{"", 2, 0, 0, "70.00", 0},
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.by), func(t *testing.T) {
			got, err := s.Breakdown(context.Background(), marchQuery, tt.by)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Groups) != len(tt.want) {
				t.Fatalf("%d groups, want %d: %+v", len(got.Groups), len(tt.want), got.Groups)
			}
			for i, w := range tt.want {
				g := got.Groups[i]
				if g.Key != w.key || g.Runs != w.runs || g.Recovered != w.recovered || g.Exhausted != w.exhausted ||
					!g.FailedRevenue.Equal(dec(w.failed)) || !near(g.RecoveryRate, w.rate) {
					t.Errorf("group %d = %q runs %d recovered %d exhausted %d failed %s rate %v; want %+v",
						i, g.Key, g.Runs, g.Recovered, g.Exhausted, g.FailedRevenue, g.RecoveryRate, w)
				}
			}
		})
	}
}

func TestMethods(t *testing.T) {
	s := march(t)
	got, err := s.Methods(context.Background(), marchQuery)
	if err != nil {
		t.Fatal(err)
	}
	// r1 scheduled retry #2, r2 card update #2, r8 expedite #1, r3 paid out
	// of band without a charge of ours.
	wantMethods := []analytics.MethodCount{
		{Method: "retry", Recovered: 1, Revenue: dec("49.90"), Share: 0.25},
		{Method: "card_update", Recovered: 1, Revenue: dec("100.00"), Share: 0.25},
		{Method: "expedite", Recovered: 1, Revenue: dec("15.00"), Share: 0.25},
		{Method: "paid_out_of_band", Recovered: 1, Revenue: dec("20.00"), Share: 0.25},
		{Method: "other", Recovered: 0, Revenue: dec("0"), Share: 0},
	}
	if got.Recovered != 4 || len(got.ByMethod) != len(wantMethods) {
		t.Fatalf("methods = %+v", got)
	}
	for i, w := range wantMethods {
		g := got.ByMethod[i]
		if g.Method != w.Method || g.Recovered != w.Recovered || !g.Revenue.Equal(w.Revenue) || !near(g.Share, w.Share) {
			t.Errorf("method %d = %+v, want %+v", i, g, w)
		}
	}
	wantAttempts := []analytics.AttemptCount{
		{Attempt: 0, Recovered: 1, Revenue: dec("20.00"), Share: 0.25},
		{Attempt: 1, Recovered: 1, Revenue: dec("15.00"), Share: 0.25},
		{Attempt: 2, Recovered: 2, Revenue: dec("149.90"), Share: 0.5},
	}
	if len(got.ByAttempt) != len(wantAttempts) {
		t.Fatalf("by attempt = %+v", got.ByAttempt)
	}
	for i, w := range wantAttempts {
		g := got.ByAttempt[i]
		if g.Attempt != w.Attempt || g.Recovered != w.Recovered || !g.Revenue.Equal(w.Revenue) || !near(g.Share, w.Share) {
			t.Errorf("attempt row %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestAging(t *testing.T) {
	store := ledgertest.NewStore(t)
	at := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return at.Add(-d) }
	const dd = 24 * time.Hour
	seed(t, store, []seedRun{
		{id: "a0", tenant: "acme", amount: "1.00", status: "open", opened: at, phase: "recovering"},                       // 0 days
		{id: "a1", tenant: "acme", amount: "2.00", status: "open", opened: ago(8*dd - time.Second), phase: "recovering"},  // 7 days
		{id: "a2", tenant: "acme", amount: "4.00", status: "open", opened: ago(8 * dd), phase: "action_required"},         // 8 days
		{id: "a3", tenant: "acme", amount: "8.00", status: "open", opened: ago(15*dd - time.Second), phase: "recovering"}, // 14 days
		{id: "a4", tenant: "acme", amount: "16.00", status: "open", opened: ago(15 * dd), phase: "suspended"},             // 15 days
		{id: "a5", tenant: "acme", amount: "32.00", status: "open", opened: ago(31*dd - time.Second), phase: "suspended"}, // 30 days
		{id: "a6", tenant: "acme", amount: "64.00", status: "open", opened: ago(31 * dd), phase: "needs_attention"},       // 31 days
		{id: "a7", tenant: "acme", amount: "128.00", status: "open", opened: ago(200 * dd)},                               // no read-model row yet
		{id: "x-closed", tenant: "acme", amount: "1000.00", status: "recovered", opened: ago(3 * dd), closed: ago(dd)},    // closed
		{id: "x-usd", tenant: "acme", currency: "USD", amount: "1000.00", status: "open", opened: ago(3 * dd)},            // USD
		{id: "x-future", tenant: "acme", amount: "1000.00", status: "open", opened: at.Add(time.Second)},                  // after at
		{id: "x-other", tenant: "globex", amount: "1000.00", status: "open", opened: ago(3 * dd), phase: "recovering"},    // other tenant
	}, nil, nil, nil)
	got, err := analytics.New(store.Pool()).Aging(context.Background(), "acme", "EUR", at)
	if err != nil {
		t.Fatal(err)
	}
	want := []analytics.AgingBucket{
		{Label: "0-7", MinDays: 0, MaxDays: 7, Runs: 2, AmountAtRisk: dec("3.00")},
		{Label: "8-14", MinDays: 8, MaxDays: 14, Runs: 2, AmountAtRisk: dec("12.00")},
		{Label: "15-30", MinDays: 15, MaxDays: 30, Runs: 2, AmountAtRisk: dec("48.00")},
		{Label: "30+", MinDays: 31, MaxDays: -1, Runs: 2, AmountAtRisk: dec("192.00")},
	}
	if got.Open != 8 || !got.AmountAtRisk.Equal(dec("255.00")) || len(got.Buckets) != len(want) {
		t.Fatalf("aging = %+v, want 8 open runs, 255.00 at risk", got)
	}
	for i, w := range want {
		g := got.Buckets[i]
		if g.Label != w.Label || g.MinDays != w.MinDays || g.MaxDays != w.MaxDays || g.Runs != w.Runs || !g.AmountAtRisk.Equal(w.AmountAtRisk) {
			t.Errorf("bucket %d = %+v, want %+v", i, g, w)
		}
	}
	// Most runs first, then by name; a run without a read-model row is
	// recovering (how its workflow starts).
	wantPhases := []analytics.PhaseCount{
		{Phase: "recovering", Runs: 4, AmountAtRisk: dec("139.00")},
		{Phase: "suspended", Runs: 2, AmountAtRisk: dec("48.00")},
		{Phase: "action_required", Runs: 1, AmountAtRisk: dec("4.00")},
		{Phase: "needs_attention", Runs: 1, AmountAtRisk: dec("64.00")},
	}
	if len(got.ByPhase) != len(wantPhases) {
		t.Fatalf("by phase = %+v", got.ByPhase)
	}
	for i, w := range wantPhases {
		if g := got.ByPhase[i]; g.Phase != w.Phase || g.Runs != w.Runs || !g.AmountAtRisk.Equal(w.AmountAtRisk) {
			t.Errorf("phase %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestExperiments(t *testing.T) {
	store := ledgertest.NewStore(t)
	// Experiment "retry-speed": control 100 of 200 settled runs recovered,
	// "fast" 130 of 200, "slow" 110 of 200; open and cancelled runs of the
	// arms do not count.
	ctx := context.Background()
	for _, arm := range []struct {
		variant                    string
		recovered, exhausted, open int
	}{{"control", 100, 100, 7}, {"fast", 130, 70, 0}, {"slow", 110, 90, 3}} {
		_, err := store.Pool().Exec(ctx, `INSERT INTO runs (workflow_id, tenant, invoice_id, customer_id, amount, currency, policy,
			status, opened_at, closed_at, experiment, variant)
			SELECT $1::text || '-' || g, 'lab', $1::text || '-' || g, 'cus', 10, 'EUR', $1::text || '@1',
			       CASE WHEN g <= $2::int THEN 'recovered' WHEN g <= $2::int + $3::int THEN 'exhausted' ELSE 'open' END,
			       '2026-03-10', CASE WHEN g <= $2::int + $3::int THEN timestamptz '2026-03-20' END, 'retry-speed', $1::text
			FROM generate_series(1, $2::int + $3::int + $4::int) g`, arm.variant, arm.recovered, arm.exhausted, arm.open)
		if err != nil {
			t.Fatal(err)
		}
	}
	q := marchQuery
	q.Tenant = "lab"
	got, err := analytics.New(store.Pool()).Experiments(ctx, q, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Experiments) != 1 || got.Experiments[0].Name != "retry-speed" || got.Experiments[0].Control != "control" {
		t.Fatalf("experiments = %+v", got.Experiments)
	}
	// Worked by hand from the formulas (z = 1.959964, z80 = 0.841621):
	//   Wilson 100/200: centre (0.5 + z²/400)/(1 + z²/200) = 0.5, half
	//   z/1.019207·sqrt(0.25/200 + z²/160000) = 0.068639: [0.431361, 0.568639].
	//   Wilson 130/200: centre 0.647173, half 0.065539: [0.581635, 0.712712].
	//   Wilson 110/200: centre 0.549058, half 0.068302: [0.480756, 0.617359].
	//   fast vs control: pooled 0.575, se sqrt(0.575·0.425·0.01) = 0.049434,
	//   z = 0.15/0.049434 = 3.034330, p = erfc(z/√2) = 0.002411.
	//   Per arm for 0.5 vs 0.65: (z·sqrt(2·0.575·0.425) + z80·sqrt(0.25 + 0.2275))² / 0.0225
	//   = 169.31 -> 170, which 200 already exceeds.
	//   slow vs control: pooled 0.525, se 0.049937, z = 1.001252, p = 0.316705;
	//   per arm for 0.5 vs 0.55: 1564.67 -> 1565, so 1365 more each.
	type want struct {
		variant         string
		rate, low, high float64
		z, p            float64
		perArm, needed  int64
		significant     bool
	}
	wants := []want{
		{"control", 0.5, 0.431361, 0.568639, 0, 0, 0, 0, false},
		{"fast", 0.65, 0.581635, 0.712712, 3.034330, 0.002411, 170, 0, true},
		{"slow", 0.55, 0.480756, 0.617359, 1.001252, 0.316705, 1565, 1365, false},
	}
	vs := got.Experiments[0].Variants
	if len(vs) != len(wants) {
		t.Fatalf("variants = %+v", vs)
	}
	close6 := func(a, b float64) bool { return math.Abs(a-b) < 5e-6 }
	for i, w := range wants {
		v := vs[i]
		if v.Variant != w.variant || v.Settled != 200 || !close6(v.Rate, w.rate) || !close6(v.CILow, w.low) || !close6(v.CIHigh, w.high) {
			t.Errorf("%s: settled %d rate %v CI [%v, %v]; want 200, %v [%v, %v]", w.variant, v.Settled, v.Rate, v.CILow, v.CIHigh, w.rate, w.low, w.high)
		}
		if w.variant == "control" {
			if !v.Control || v.Z != nil || v.PValue != nil || v.SampleNeeded != nil {
				t.Errorf("control = %+v, want marked and untested", v)
			}
			continue
		}
		if v.Z == nil || v.PValue == nil || !close6(*v.Z, w.z) || !close6(*v.PValue, w.p) || v.Significant != w.significant {
			t.Errorf("%s: z %v p %v significant %v; want %v %v %v", w.variant, v.Z, v.PValue, v.Significant, w.z, w.p, w.significant)
		}
		if v.SamplePerArm == nil || v.SampleNeeded == nil || *v.SamplePerArm != w.perArm || *v.SampleNeeded != w.needed {
			t.Errorf("%s: sample per arm %v, needed %v; want %d, %d", w.variant, v.SamplePerArm, v.SampleNeeded, w.perArm, w.needed)
		}
	}

	// Naming the control makes "fast" the baseline.
	got, err = analytics.New(store.Pool()).Experiments(ctx, q, "fast")
	if err != nil {
		t.Fatal(err)
	}
	if e := got.Experiments[0]; e.Control != "fast" || !e.Variants[1].Control || e.Variants[0].Z == nil || *e.Variants[0].Z > 0 {
		t.Errorf("with control fast: %+v", e)
	}
}

func TestQueryValidation(t *testing.T) {
	s := analytics.New(nil) // never reaches the database
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		q    analytics.Query
	}{
		{"no tenant", analytics.Query{Currency: "EUR", From: from, To: from.AddDate(0, 1, 0)}},
		{"no period", analytics.Query{Tenant: "acme", Currency: "EUR"}},
		{"reversed", analytics.Query{Tenant: "acme", Currency: "EUR", From: from, To: from.AddDate(0, -1, 0)}},
		{"empty", analytics.Query{Tenant: "acme", Currency: "EUR", From: from, To: from}},
		{"too long", analytics.Query{Tenant: "acme", Currency: "EUR", From: from, To: from.AddDate(4, 0, 0)}},
		{"lower-case currency", analytics.Query{Tenant: "acme", Currency: "eur", From: from, To: from.AddDate(0, 1, 0)}},
		{"unknown currency", analytics.Query{Tenant: "acme", Currency: "XYZ", From: from, To: from.AddDate(0, 1, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Summary(context.Background(), tt.q); !errors.Is(err, analytics.ErrInvalid) {
				t.Errorf("Summary: %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.Series(context.Background(), marchQuery, "year"); !errors.Is(err, analytics.ErrInvalid) {
		t.Errorf("Series by year: %v, want ErrInvalid", err)
	}
	if _, err := s.Breakdown(context.Background(), marchQuery, "customer_id"); !errors.Is(err, analytics.ErrInvalid) {
		t.Errorf("Breakdown by customer_id: %v, want ErrInvalid", err)
	}
	if _, err := s.Aging(context.Background(), "acme", "euro", time.Time{}); !errors.Is(err, analytics.ErrInvalid) {
		t.Errorf("Aging in euro: %v, want ErrInvalid", err)
	}
}

// A period without runs answers zeros, not an error (no NULL reaches Go).
func TestSummaryOfAnEmptyPeriod(t *testing.T) {
	s := march(t)
	q := marchQuery
	q.From, q.To = q.From.AddDate(1, 0, 0), q.To.AddDate(1, 0, 0)
	got, err := s.Summary(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if got.Runs != 0 || got.RecoveryRate != 0 || !got.RecoveredRevenue.IsZero() || got.TimeToRecovery.MedianSeconds != 0 ||
		!got.RevenuePerAttempt.IsZero() || got.InvoluntaryChurn != 0 {
		t.Errorf("empty period = %+v", got)
	}
}
