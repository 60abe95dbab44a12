package intake

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// recordingAnalytics answers empty results and records what it was asked.
type recordingAnalytics struct {
	q        analytics.Query
	interval analytics.Granularity
	by       analytics.Dimension
	control  string
	calls    int
}

func (a *recordingAnalytics) Summary(_ context.Context, q analytics.Query) (analytics.Summary, error) {
	a.q, a.calls = q, a.calls+1
	return analytics.Summary{Query: q}, nil
}

func (a *recordingAnalytics) Series(_ context.Context, q analytics.Query, g analytics.Granularity) (analytics.Series, error) {
	a.q, a.interval, a.calls = q, g, a.calls+1
	return analytics.Series{Query: q, Interval: g}, nil
}

func (a *recordingAnalytics) Breakdown(_ context.Context, q analytics.Query, by analytics.Dimension) (analytics.Breakdown, error) {
	a.q, a.by, a.calls = q, by, a.calls+1
	return analytics.Breakdown{Query: q, By: by}, nil
}

func (a *recordingAnalytics) Methods(_ context.Context, q analytics.Query) (analytics.Methods, error) {
	a.q, a.calls = q, a.calls+1
	return analytics.Methods{Query: q}, nil
}

func (a *recordingAnalytics) Aging(_ context.Context, tenant, currency string, at time.Time) (analytics.Aging, error) {
	a.q, a.calls = analytics.Query{Tenant: tenant, Currency: currency, From: at}, a.calls+1
	return analytics.Aging{Tenant: tenant, Currency: currency, At: at}, nil
}

func (a *recordingAnalytics) Experiments(_ context.Context, q analytics.Query, control string) (analytics.Experiments, error) {
	a.q, a.control, a.calls = q, control, a.calls+1
	return analytics.Experiments{Query: q}, nil
}

func TestAnalyticsRequests(t *testing.T) {
	march := func(tenant string) analytics.Query {
		return analytics.Query{Tenant: tenant, Currency: "EUR",
			From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	}
	tests := []struct {
		name, path, key string
		status          int
		param           string          // the problem's parameter, for a 4xx
		want            analytics.Query // what the store was asked, for a 200
	}{
		{"summary of the key's tenant", "/v1/analytics/summary?currency=EUR&from=2026-03-01&to=2026-03-31", acmeReadKey, 200, "", march("acme")},
		{"instants", "/v1/analytics/methods?currency=EUR&from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z", acmeKey, 200, "", march("acme")},
		{"own tenant named", "/v1/analytics/series?tenant=acme&currency=EUR&from=2026-03-01&to=2026-03-31&interval=month", acmeKey, 200, "", march("acme")},
		{"admin names a tenant", "/v1/analytics/breakdown?tenant=globex&currency=EUR&from=2026-03-01&to=2026-03-31&by=gateway", adminKey, 200, "", march("globex")},
		{"experiments", "/v1/analytics/experiments?currency=EUR&from=2026-03-01&to=2026-03-31&control=fast", acmeKey, 200, "", march("acme")},
		{"another tenant", "/v1/analytics/summary?tenant=globex&currency=EUR&from=2026-03-01&to=2026-03-31", acmeKey, 403, "tenant", analytics.Query{}},
		{"admin without tenant", "/v1/analytics/summary?currency=EUR&from=2026-03-01&to=2026-03-31", adminKey, 422, "tenant", analytics.Query{}},
		{"no key", "/v1/analytics/summary?currency=EUR", "", 401, "", analytics.Query{}},
		{"no currency", "/v1/analytics/summary?from=2026-03-01&to=2026-03-31", acmeKey, 422, "currency", analytics.Query{}},
		{"lower-case currency", "/v1/analytics/summary?currency=eur", acmeKey, 422, "currency", analytics.Query{}},
		{"unknown currency", "/v1/analytics/aging?currency=EURO", acmeKey, 422, "currency", analytics.Query{}},
		{"bad from", "/v1/analytics/summary?currency=EUR&from=March", acmeKey, 422, "from", analytics.Query{}},
		{"bad to", "/v1/analytics/summary?currency=EUR&from=2026-03-01&to=2026-13-01", acmeKey, 422, "to", analytics.Query{}},
		{"reversed period", "/v1/analytics/summary?currency=EUR&from=2026-04-01&to=2026-03-01", acmeKey, 422, "from", analytics.Query{}},
		{"period too long", "/v1/analytics/summary?currency=EUR&from=2020-01-01&to=2026-03-01", acmeKey, 422, "from", analytics.Query{}},
		{"bad interval", "/v1/analytics/series?currency=EUR&interval=year", acmeKey, 422, "interval", analytics.Query{}},
		{"bad dimension", "/v1/analytics/breakdown?currency=EUR&by=customer_id", acmeKey, 422, "by", analytics.Query{}},
		{"unknown parameter", "/v1/analytics/summary?currency=EUR&cohort=x", acmeKey, 400, "cohort", analytics.Query{}},
		{"repeated parameter", "/v1/analytics/summary?currency=EUR&currency=USD", acmeKey, 400, "currency", analytics.Query{}},
		{"bad at", "/v1/analytics/aging?currency=EUR&at=yesterday", acmeKey, 422, "at", analytics.Query{}},
		{"forecast without inputs", "/v1/analytics/forecast?currency=EUR&accounts=1000", acmeKey, 422, "bill", analytics.Query{}},
		{"forecast with a float exponent", "/v1/analytics/forecast?currency=EUR&accounts=1e3&bill=10&failed_rate=0.1&lifetime=24&recovery_rate=0.5", acmeKey, 422, "accounts", analytics.Query{}},
		{"forecast rate above 1", "/v1/analytics/forecast?currency=EUR&accounts=1000&bill=10&failed_rate=1.1&lifetime=24&recovery_rate=0.5", acmeKey, 422, "", analytics.Query{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &recordingAnalytics{}
			h := NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler), withTestKeys(), WithAnalytics(store))
			auth := ""
			if tt.key != "" {
				auth = bearer(tt.key)
			}
			rec, out := send(t, h, http.MethodGet, tt.path, auth, "")
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status != 200 {
				if store.calls != 0 {
					t.Errorf("a refused request reached the store %d times", store.calls)
				}
				if tt.param != "" && !namesParam(out, tt.param) {
					t.Errorf("problem does not name %q: %v", tt.param, out)
				}
				return
			}
			if store.calls != 1 || store.q != tt.want {
				t.Errorf("store asked %+v (%d calls), want %+v", store.q, store.calls, tt.want)
			}
		})
	}
}

func namesParam(problem map[string]any, param string) bool {
	errs, _ := problem["errors"].([]any)
	for _, e := range errs {
		if m, _ := e.(map[string]any); m["parameter"] == param {
			return true
		}
	}
	return false
}

func TestAnalyticsRequestDefaults(t *testing.T) {
	store := &recordingAnalytics{}
	h := NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler), withTestKeys(), WithAnalytics(store))
	before := time.Now()
	if rec, _ := send(t, h, http.MethodGet, "/v1/analytics/series?currency=USD", bearer(acmeKey), ""); rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	// The last 30 days, by week.
	if store.interval != analytics.Week || store.q.To.Before(before) || store.q.To.Sub(store.q.From) != analytics.DefaultWindow {
		t.Errorf("defaults: %+v by %s", store.q, store.interval)
	}
	// Without WithAnalytics the routes do not exist.
	h = NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler), withTestKeys())
	if rec, _ := send(t, h, http.MethodGet, "/v1/analytics/summary?currency=EUR", bearer(acmeKey), ""); rec.Code != http.StatusNotFound {
		t.Errorf("without analytics: status %d, want 404", rec.Code)
	}
}

// TestAnalyticsFromALedger reads a real ledger through the API: the
// figures are the seeded runs', and another tenant's runs never show.
func TestAnalyticsFromALedger(t *testing.T) {
	ls := ledgertest.NewStore(t)
	ctx := context.Background()
	_, err := ls.Pool().Exec(ctx, `INSERT INTO runs (workflow_id, tenant, invoice_id, customer_id, amount, currency, policy, status, opened_at, closed_at) VALUES
		('a1', 'acme', 'a1', 'c', 10.50, 'EUR', 'default@1#x', 'recovered', '2026-03-02', '2026-03-04'),
		('a2', 'acme', 'a2', 'c', 20.25, 'EUR', 'default@1#x', 'exhausted', '2026-03-03', '2026-03-20'),
		('a3', 'acme', 'a3', 'c', 5.00, 'EUR', 'default@1#x', 'open', '2026-03-10', NULL),
		('g1', 'globex', 'g1', 'c', 99.00, 'EUR', 'default@1#x', 'recovered', '2026-03-02', '2026-03-03')`)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler), withTestKeys(), WithAnalytics(analytics.New(ls.Pool())))
	rec, out := send(t, h, http.MethodGet, "/v1/analytics/summary?currency=EUR&from=2026-03-01&to=2026-03-31", bearer(acmeKey), "")
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	// Money is a JSON string with its cents; 1 of 2 settled runs recovered.
	if out["runs"] != float64(3) || out["recovered"] != float64(1) || out["recovery_rate"] != 0.5 ||
		out["failed_revenue"] != "35.75" || out["recovered_revenue"] != "10.5" || out["lost_revenue"] != "20.25" {
		t.Errorf("summary = %v", out)
	}
	rec, out = send(t, h, http.MethodGet, "/v1/analytics/aging?currency=EUR&at=2026-03-20T00:00:00Z", bearer(acmeKey), "")
	if rec.Code != 200 || out["open"] != float64(1) || out["amount_at_risk"] != "5" {
		t.Errorf("aging: %d %v", rec.Code, out)
	}
	// The forecast's measured scenario uses the measured 50%.
	rec, out = send(t, h, http.MethodGet, "/v1/analytics/forecast?currency=EUR&from=2026-03-01&to=2026-03-31"+
		"&accounts=1000&bill=10&growth=0.05&failed_rate=0.1&lifetime=20&recovery_rate=0.8&months=3", bearer(acmeKey), "")
	if rec.Code != 200 {
		t.Fatalf("forecast: status %d: %s", rec.Code, rec.Body)
	}
	scenarios, _ := out["scenarios"].([]any)
	if len(scenarios) != 3 {
		t.Fatalf("forecast scenarios = %v", out["scenarios"])
	}
	measured, _ := scenarios[2].(map[string]any)
	months, _ := measured["months"].([]any)
	second, _ := months[1].(map[string]any)
	// Month 2 at 50%: 1000·0.95 = 950 customers, 9.5·950 = 9025.
	if measured["name"] != "measured" || measured["recovery_rate"] != "0.5" || second["revenue"] != "9025" {
		t.Errorf("measured scenario = %v", measured)
	}
}
