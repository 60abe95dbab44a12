package analytics_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// EnvScale turns on TestLatencyAtScale: the number of runs to generate,
// e.g. DUNNING_ANALYTICS_SCALE=1000000. Generating a million runs with
// their attempts, messages and service changes takes minutes, so the
// default test run skips it.
const EnvScale = "DUNNING_ANALYTICS_SCALE"

// EnvDatabase names a database TestLatencyAtScale keeps instead of a
// throw-away one: it is generated once and measured again on later runs,
// e.g. DUNNING_ANALYTICS_DB=postgres://postgres@127.0.0.1:5432/analytics_1m.
// Opening it applies any newer migration first, as a deploy would.
const EnvDatabase = "DUNNING_ANALYTICS_DB"

// generate fills the ledger with n runs of one tenant in EUR, declined over
// 2025 and closed 10 minutes to 30 days later, their decline code,
// gateway, card network, policy and experiment arm drawn independently,
// with about 2 attempts and 1.5 messages a run, in SQL
// (generate_series), so a million rows take seconds rather than a million
// round trips. Outcomes: 55% recovered, 20% exhausted, 5% cancelled, 20%
// open; every exhausted run has a cancelled service change. The runs'
// rollups are then recounted from the attempts and messages.
func generate(ctx context.Context, t *testing.T, store *ledger.Store, n int) {
	t.Helper()
	pool := store.Pool()
	steps := []struct{ what, sql string }{
		// scale_pick(g, what, n) is run g's value of what among n, drawn apart
		// from its other values, so the dimensions combine freely as a real
		// ledger's do (the worst case for grouping), and durations spread
		// over seconds rather than whole days.
		{"pick", `CREATE FUNCTION scale_pick(g int, what text, n int) RETURNS int LANGUAGE sql IMMUTABLE
			RETURN abs(hashtext(what || g)) % n`},
		{"runs", `INSERT INTO runs (workflow_id, tenant, invoice_id, customer_id, amount, currency, policy, status, opened_at, closed_at,
			closing_reason, decline_code, decline_category, gateway, card_network, experiment, variant)
		SELECT 'dunning/big/inv-' || g, 'big', 'inv-' || g, 'cus-' || (g % 50000), 5.99 + (g % 200), 'EUR',
		       (ARRAY['default@1#a1', 'aggressive@2#b2'])[1 + scale_pick(g, 'policy', 2)], st,
		       opened, CASE WHEN st <> 'open' THEN opened + make_interval(secs => 600 + scale_pick(g, 'took', 30 * 86400)) END,
		       CASE WHEN st = 'recovered' AND h % 10 = 0 THEN 'paid out of band' ELSE '' END,
		       (ARRAY['insufficient_funds', 'do_not_honor', 'generic_decline', 'expired_card', 'stolen_card', 'authentication_required'])[1 + code],
		       (ARRAY['soft', 'soft', 'soft', 'customer_action', 'hard', 'customer_action'])[1 + code],
		       (ARRAY['stripe', 'simulator', 'http'])[1 + scale_pick(g, 'gateway', 3)],
		       (ARRAY['visa', 'mastercard', 'amex', ''])[1 + scale_pick(g, 'network', 4)],
		       CASE WHEN scale_pick(g, 'experiment', 2) = 0 THEN 'exp1' ELSE '' END,
		       CASE WHEN scale_pick(g, 'experiment', 2) = 0 THEN (ARRAY['control', 'fast'])[1 + scale_pick(g, 'variant', 2)] ELSE '' END
		FROM (SELECT g, (g * 2654435761) % 100 AS h, scale_pick(g, 'code', 6) AS code,
		             timestamptz '2025-01-01' + make_interval(days => g % 365, secs => ((g::bigint * 7919) % 86400)::float8) AS opened
		      FROM generate_series(1, $1::int) g) s,
		     LATERAL (SELECT CASE WHEN h < 55 THEN 'recovered' WHEN h < 75 THEN 'exhausted' WHEN h < 80 THEN 'cancelled' ELSE 'open' END AS st) o`},
		{"attempts", `INSERT INTO attempts (idempotency_key, workflow_id, attempt, reason, amount, currency, gateway, status, started_at, finished_at)
		SELECT r.workflow_id || '/attempt-' || k, r.workflow_id, k,
		       (ARRAY['scheduled', 'scheduled', 'expedite', 'card_updated'])[1 + (length(r.workflow_id) + k) % 4],
		       r.amount, 'EUR', r.gateway,
		       CASE WHEN r.status = 'recovered' AND r.closing_reason = '' AND k = m THEN 'succeeded' ELSE 'declined' END,
		       r.opened_at + make_interval(days => k), r.opened_at + make_interval(days => k, secs => 1)
		FROM (SELECT *, 1 + abs(hashtext(workflow_id)) % 3 AS m FROM runs WHERE tenant = 'big') r,
		     generate_series(1, r.m) k`},
		{"messages", `INSERT INTO messages (idempotency_key, workflow_id, kind, channel, status, created_at, finished_at)
		SELECT r.workflow_id || '/msg-' || k, r.workflow_id, 'retry_failed', 'email', 'sent',
		       r.opened_at + make_interval(days => k), r.opened_at + make_interval(days => k)
		FROM runs r, generate_series(1, 1 + abs(hashtext(r.workflow_id)) % 2) k WHERE r.tenant = 'big'`},
		{"service changes", `INSERT INTO service_changes (idempotency_key, workflow_id, state, created_at)
		SELECT workflow_id || '/svc-cancelled', workflow_id, 'cancelled', closed_at + make_interval(days => abs(hashtext(workflow_id)) % 60)
		FROM runs WHERE tenant = 'big' AND status = 'exhausted'`},
		{"run status", `INSERT INTO run_status (workflow_id, tenant, invoice_id, customer_id, phase, updated_at)
		SELECT workflow_id, tenant, invoice_id, customer_id,
		       (ARRAY['recovering', 'action_required', 'paused', 'suspended', 'needs_attention'])[1 + abs(hashtext(workflow_id)) % 5], opened_at
		FROM runs WHERE tenant = 'big' AND status = 'open'`},
		// The rows went in around the ledger's writes, so the rollup is
		// recounted from them as a bulk import's would be (the statement
		// of ledger.RecountRunRollups and migration 0017's backfill).
		{"run rollups", ""},
		// VACUUM too: the recount rewrote the runs, and index-only scans
		// need the visibility map it sets.
		{"drop pick", `DROP FUNCTION scale_pick`},
		{"vacuum analyze", `VACUUM ANALYZE`},
	}
	for _, s := range steps {
		start := time.Now()
		if s.what == "run rollups" {
			n, err := store.RecountRunRollups(ctx)
			if err != nil {
				t.Fatalf("generate %s: %v", s.what, err)
			}
			t.Logf("generated %s: %d rows in %s", s.what, n, time.Since(start).Round(time.Millisecond))
			continue
		}
		var args []any
		if s.what == "runs" { // the only step with a parameter
			args = append(args, n)
		}
		tag, err := pool.Exec(ctx, s.sql, args...)
		if err != nil {
			t.Fatalf("generate %s: %v", s.what, err)
		}
		t.Logf("generated %s: %d rows in %s", s.what, tag.RowsAffected(), time.Since(start).Round(time.Millisecond))
	}
}

// scaleStore is the ledger TestLatencyAtScale measures: EnvDatabase's, or
// a throw-away one.
func scaleStore(ctx context.Context, t *testing.T) *ledger.Store {
	t.Helper()
	u := os.Getenv(EnvDatabase)
	if u == "" {
		return ledgertest.NewStore(t)
	}
	store, err := ledger.Open(ctx, u)
	if err != nil {
		t.Fatalf("open %s: %v", EnvDatabase, err)
	}
	t.Cleanup(store.Close)
	return store
}

// TestLatencyAtScale measures every analytics query (each endpoint's work)
// over a generated ledger: the whole year of one tenant holding every run,
// the worst case of a period. It reports the fastest and the median of 5
// runs of each and fails when a median passes 1 second.
func TestLatencyAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(EnvScale))
	if n <= 0 {
		t.Skipf("set %s=1000000 to generate that many runs and measure the queries", EnvScale)
	}
	ctx := context.Background()
	store := scaleStore(ctx, t)
	var have int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM runs WHERE tenant = 'big'`).Scan(&have); err != nil {
		t.Fatal(err)
	}
	if have != n {
		if have != 0 {
			t.Fatalf("%s holds %d runs of tenant big, want %d or none", EnvDatabase, have, n)
		}
		generate(ctx, t, store, n)
	} else {
		t.Logf("reusing the %d runs in %s", have, EnvDatabase)
	}
	s := analytics.New(store.Pool())
	year := analytics.Query{Tenant: "big", Currency: "EUR",
		From: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	month := year
	month.From = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	month.To = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	// A period whose ends fall inside days: the partial days are read run
	// by run.
	edges := year
	edges.From = time.Date(2025, 1, 1, 12, 30, 0, 0, time.UTC)
	edges.To = time.Date(2025, 12, 31, 17, 45, 0, 0, time.UTC)
	type endpoint struct {
		name string
		run  func() error
	}
	var endpoints []endpoint
	for _, p := range []struct {
		label string
		q     analytics.Query
	}{{"year", year}, {"month", month}, {"year, edges inside days", edges}} {
		q := p.q
		endpoints = append(endpoints,
			endpoint{"summary (" + p.label + ")", func() error { _, err := s.Summary(ctx, q); return err }},
			endpoint{"series?interval=day (" + p.label + ")", func() error { _, err := s.Series(ctx, q, analytics.Day); return err }},
			endpoint{"series?interval=month (" + p.label + ")", func() error { _, err := s.Series(ctx, q, analytics.Month); return err }},
			endpoint{"breakdown?by=decline_code (" + p.label + ")", func() error { _, err := s.Breakdown(ctx, q, analytics.ByDeclineCode); return err }},
			endpoint{"breakdown?by=policy (" + p.label + ")", func() error { _, err := s.Breakdown(ctx, q, analytics.ByPolicy); return err }},
			endpoint{"breakdown?by=variant (" + p.label + ")", func() error { _, err := s.Breakdown(ctx, q, analytics.ByVariant); return err }},
			endpoint{"methods (" + p.label + ")", func() error { _, err := s.Methods(ctx, q); return err }},
			endpoint{"experiments (" + p.label + ")", func() error { _, err := s.Experiments(ctx, q, ""); return err }},
		)
	}
	endpoints = append(endpoints, endpoint{"aging", func() error {
		_, err := s.Aging(ctx, "big", "EUR", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		return err
	}})
	for _, e := range endpoints {
		var took []time.Duration
		for range 5 {
			start := time.Now()
			if err := e.run(); err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		t.Logf("%-40s min %7s  median %7s", e.name, took[0].Round(time.Millisecond), took[2].Round(time.Millisecond))
		if took[2] > time.Second {
			t.Errorf("%s: median %s, over the 1 s target", e.name, took[2])
		}
	}
}
