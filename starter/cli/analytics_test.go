package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// analyticsLedger holds acme's March in EUR: two recovered runs (10.00,
// 30.00), one exhausted (20.00), one open (5.00).
func analyticsLedger(t *testing.T) string {
	t.Helper()
	dbURL := ledgertest.NewDatabaseURL(t)
	ctx := context.Background()
	store, err := ledger.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = store.Pool().Exec(ctx, `INSERT INTO runs (workflow_id, tenant, invoice_id, customer_id, amount, currency, policy,
		status, opened_at, closed_at, decline_category) VALUES
		('a1', 'acme', 'a1', 'c', 10.00, 'EUR', 'default@1#x', 'recovered', '2026-03-02', '2026-03-04', 'soft'),
		('a2', 'acme', 'a2', 'c', 30.00, 'EUR', 'default@1#x', 'recovered', '2026-03-03', '2026-03-05', 'hard'),
		('a3', 'acme', 'a3', 'c', 20.00, 'EUR', 'default@1#x', 'exhausted', '2026-03-04', '2026-03-25', 'soft'),
		('a4', 'acme', 'a4', 'c', 5.00, 'EUR', 'default@1#x', 'open', '2026-03-05', NULL, 'soft')`)
	if err != nil {
		t.Fatal(err)
	}
	return dbURL
}

func TestAnalyticsCommand(t *testing.T) {
	env := map[string]string{"DATABASE_URL": analyticsLedger(t)}
	r := runWithEnv(t, &fakeTemporal{}, nil, env, "analytics", "-tenant", "acme", "-currency", "EUR",
		"-from", "2026-03-01", "-to", "2026-03-31", "-report", "summary", "-format", "json")
	if r.code != ExitOK || r.dialed {
		t.Fatalf("exit %d (dialed %v), stderr %q", r.code, r.dialed, r.stderr)
	}
	var sum struct {
		Runs             int64   `json:"runs"`
		RecoveryRate     float64 `json:"recovery_rate"`
		RecoveredRevenue string  `json:"recovered_revenue"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if sum.Runs != 4 || sum.RecoveryRate != 2.0/3 || sum.RecoveredRevenue != "40" {
		t.Errorf("summary = %+v, want 4 runs, 2/3, 40", sum)
	}

	r = runWithEnv(t, &fakeTemporal{}, nil, env, "analytics", "-tenant", "acme", "-currency", "EUR",
		"-from", "2026-03-01", "-to", "2026-03-31")
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"runs                                       4 (open 1, recovered 2, exhausted 1, cancelled 0)",
		"recovery rate", "66.7% of settled runs", "By decline_category", "How 2 runs were recovered", "Open runs at"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text report lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestAnalyticsCommandRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"analytics", "-currency", "EUR"},
		{"analytics", "-tenant", "acme"},
		{"analytics", "-tenant", "acme", "-currency", "eur"},
		{"analytics", "-tenant", "acme", "-currency", "EUR", "-from", "2026-04-01", "-to", "2026-03-01"},
		{"analytics", "-tenant", "acme", "-currency", "EUR", "-report", "everything"},
		{"analytics", "-tenant", "acme", "-currency", "EUR", "-by", "customer"},
		{"forecast", "-accounts", "1000", "-bill", "10", "-currency", "EUR", "-failed-rate", "0.1", "-lifetime", "24"},
		{"forecast", "-accounts", "1000", "-bill", "ten", "-currency", "EUR", "-failed-rate", "0.1", "-lifetime", "24", "-recovery-rate", "0.5"},
		{"forecast", "-accounts", "1000", "-bill", "10", "-currency", "EUR", "-failed-rate", "1.5", "-lifetime", "24", "-recovery-rate", "0.5"},
	} {
		// No DATABASE_URL: a refused command line never reaches the ledger.
		r := runWithEnv(t, &fakeTemporal{}, nil, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}, args...)
		if r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %q", args, r.code, ExitUsage, r.stderr)
		}
	}
}

func TestForecastCommand(t *testing.T) {
	env := map[string]string{"DATABASE_URL": analyticsLedger(t)}
	// The hand-computed table of package forecast, month 1: 9000, 9500,
	// and at the measured 2/3 (rounded to 0.666667): 1000·(1 - 0.1/3)·10.
	r := runWithEnv(t, &fakeTemporal{}, nil, env, "forecast", "-accounts", "1000", "-bill", "10.00", "-currency", "EUR",
		"-growth", "0.05", "-failed-rate", "0.10", "-lifetime", "20", "-recovery-rate", "0.5", "-months", "3",
		"-tenant", "acme", "-from", "2026-03-01", "-to", "2026-03-31", "-format", "json")
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var out struct {
		Scenarios []struct {
			Name         string `json:"name"`
			RecoveryRate string `json:"recovery_rate"`
			Months       []struct {
				Revenue string `json:"revenue"`
			} `json:"months"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(out.Scenarios) != 3 || out.Scenarios[0].Months[0].Revenue != "9000" || out.Scenarios[1].Months[0].Revenue != "9500" ||
		out.Scenarios[2].RecoveryRate != "0.666667" || out.Scenarios[2].Months[0].Revenue != "9666.67" {
		t.Errorf("forecast = %+v", out)
	}

	r = runWithEnv(t, &fakeTemporal{}, nil, nil, "forecast", "-accounts", "1000", "-bill", "10.00", "-currency", "EUR",
		"-growth", "0.05", "-failed-rate", "0.10", "-lifetime", "20", "-recovery-rate", "0.5", "-measured-rate", "0.8")
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"105488.81", "87331.57", "64581.34", "measured recovery wins 40907.47 EUR over no recovery"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("forecast table lacks %q:\n%s", want, r.stdout)
		}
	}
}
