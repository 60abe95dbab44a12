package dashboard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"golang.org/x/text/language"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// The clock of these tests: late March 2026, after the seeded declines.
var testNow = time.Date(2026, time.March, 25, 12, 0, 0, 0, time.UTC)

func march(d, h int) time.Time { return time.Date(2026, time.March, d, h, 0, 0, 0, time.UTC) }

var (
	acmeKey   = apikeys.StaticKey("acme0001", "acmesecret")
	writeOnly = apikeys.StaticKey("acme0002", "writeonly")
	adminKey  = apikeys.StaticKey("admin001", "adminsecret")
	keys      = apikeys.Static{
		acmeKey:   {KeyID: "acme0001", Tenant: "acme", Scopes: []apikeys.Scope{apikeys.ScopeRunsRead}},
		writeOnly: {KeyID: "acme0002", Tenant: "acme", Scopes: []apikeys.Scope{apikeys.ScopeRunsWrite}},
		adminKey:  {KeyID: "admin001", Tenant: "ops", Scopes: []apikeys.Scope{apikeys.ScopeAdmin}},
	}
)

// revoked is a key store in which the listed keys are revoked.
type revoked map[string]bool

func (r revoked) Get(_ context.Context, id string) (apikeys.Key, error) {
	k := apikeys.Key{ID: id}
	if r[id] {
		k.RevokedAt = testNow.Add(-time.Minute)
	}
	return k, nil
}

// seedLedger writes acme's March: one run recovered on its second attempt
// (100.00 EUR, insufficient_funds), one exhausted (50.00 EUR, do_not_honor),
// one open (1,234.50 EUR, expired_card, 20 days old); and a run of another
// tenant that acme must never see.
func seedLedger(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("seed: %v\n%s", err, sql)
		}
	}
	runs := []struct {
		tenant, invoice, amount, status, code string
		opened, closed                        time.Time
	}{
		{"acme", "inv-1", "100.00", "recovered", "insufficient_funds", march(1, 10), march(3, 10)},
		{"acme", "inv-2", "50.00", "exhausted", "do_not_honor", march(2, 10), march(20, 10)},
		{"acme", "inv-3", "1234.50", "open", "expired_card", march(5, 10), time.Time{}},
		{"globex", "inv-9", "999.00", "recovered", "insufficient_funds", march(1, 10), march(2, 10)},
	}
	for _, r := range runs {
		var closed *time.Time
		if !r.closed.IsZero() {
			closed = &r.closed
		}
		wf := "dunning/" + r.tenant + "/" + r.invoice
		exec(`INSERT INTO runs (workflow_id, tenant, invoice_id, customer_id, amount, currency, policy, status, opened_at, closed_at, decline_code, decline_category, gateway)
			VALUES ($1, $2, $3, 'cus-1', $4::numeric, 'EUR', 'default@1#abcd', $5, $6, $7, $8, 'soft', 'simulator')`,
			wf, r.tenant, r.invoice, r.amount, r.status, r.opened, closed, r.code)
		phase := r.status
		if phase == "open" {
			phase = "recovering"
		}
		exec(`INSERT INTO run_status (workflow_id, tenant, invoice_id, customer_id, phase, updated_at) VALUES ($1, $2, $3, 'cus-1', $4, $5)`,
			wf, r.tenant, r.invoice, phase, r.opened)
	}
	attempt := func(wf string, n int, status, code string, at time.Time) {
		exec(`INSERT INTO attempts (idempotency_key, workflow_id, attempt, reason, amount, currency, gateway, status, decline_code, started_at, finished_at)
			VALUES ($1, $2, $3, 'scheduled', 100.00, 'EUR', 'simulator', $4, $5, $6, $6)`, fmt.Sprintf("%s/attempt-%d", wf, n), wf, n, status, code, at)
	}
	attempt("dunning/acme/inv-1", 1, "declined", "insufficient_funds", march(2, 10))
	attempt("dunning/acme/inv-1", 2, "succeeded", "", march(3, 10))
	attempt("dunning/acme/inv-2", 1, "declined", "do_not_honor", march(5, 10))
	exec(`INSERT INTO messages (idempotency_key, workflow_id, kind, channel, recipient, subject, status, created_at, finished_at)
		VALUES ('dunning/acme/inv-1/msg-1', 'dunning/acme/inv-1', 'first_notice', 'email', 'ada@example.com', 'Your payment did not go through', 'dry-run', $1, $1)`, march(1, 10))
	exec(`INSERT INTO service_changes (idempotency_key, workflow_id, state, reason, created_at) VALUES ('dunning/acme/inv-2/svc-1', 'dunning/acme/inv-2', 'paused', 'retries_exhausted', $1)`, march(6, 10))
}

type fixture struct {
	h   *Handler
	srv *httptest.Server
}

func newFixture(t *testing.T, lookup KeyLookup) *fixture {
	t.Helper()
	store := ledgertest.NewStore(t)
	seedLedger(t, store.Pool())
	h, err := New(Config{
		Auth: keys, Keys: lookup, Analytics: analytics.New(store.Pool()), Ledger: store,
		SessionSecret: []byte("0123456789abcdef0123456789abcdef"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Mount(http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	return &fixture{h: h, srv: srv}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// login signs in with key and returns the session cookie.
func (f *fixture) login(t *testing.T, key string) (*http.Response, *http.Cookie) {
	t.Helper()
	resp, err := noRedirect.PostForm(f.srv.URL+"/dashboard/login", url.Values{"api_key": {key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == CookieName {
			return resp, c
		}
	}
	return resp, nil
}

func (f *fixture) get(t *testing.T, path string, cookie *http.Cookie, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var pagePaths = []string{"/dashboard/", "/dashboard/declines", "/dashboard/policies", "/dashboard/aging", "/dashboard/runs", "/dashboard/runs/inv-1", "/dashboard/forecast", "/dashboard/compliance", "/dashboard/compliance.csv"}

func TestPagesNeedASession(t *testing.T) {
	f := newFixture(t, nil)
	_, good := f.login(t, acmeKey)
	if good == nil {
		t.Fatal("sign-in set no session cookie")
	}
	payload, sig, _ := strings.Cut(good.Value, ".")
	expired := sessions{secret: f.h.sessions.secret, ttl: time.Hour, now: func() time.Time { return testNow.Add(-2 * time.Hour) }}
	expiredValue, _ := expired.seal(keys[acmeKey])
	otherSecret := sessions{secret: []byte("another secret, another deployment"), ttl: time.Hour, now: func() time.Time { return testNow }}
	forgedValue, _ := otherSecret.seal(keys[acmeKey])
	cases := []struct {
		name   string
		cookie *http.Cookie
	}{
		{"no cookie", nil},
		{"empty cookie", &http.Cookie{Name: CookieName, Value: ""}},
		{"payload without signature", &http.Cookie{Name: CookieName, Value: payload}},
		{"signature of another payload", &http.Cookie{Name: CookieName, Value: strings.Replace(payload, payload[:4], "eyJr", 1) + "x." + sig}},
		{"signed under another secret", &http.Cookie{Name: CookieName, Value: forgedValue}},
		{"expired", &http.Cookie{Name: CookieName, Value: expiredValue}},
	}
	for _, tc := range cases {
		for _, path := range pagePaths {
			code, body := f.get(t, path, tc.cookie)
			if code != http.StatusUnauthorized || !strings.Contains(body, `name="api_key"`) {
				t.Errorf("%s: GET %s = %d, want 401 with the sign-in form", tc.name, path, code)
			}
		}
	}
	for _, path := range pagePaths {
		if code, _ := f.get(t, path, good); code != http.StatusOK {
			t.Errorf("signed in: GET %s = %d, want 200", path, code)
		}
	}
}

func TestSignIn(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"empty", "", http.StatusBadRequest},
		{"not a key", "hunter2", http.StatusUnauthorized},
		{"unknown key", apikeys.StaticKey("zzzz0000", "nobody"), http.StatusUnauthorized},
		{"key without runs:read", writeOnly, http.StatusForbidden},
	} {
		resp, c := f.login(t, tc.key)
		if resp.StatusCode != tc.want || c != nil {
			t.Errorf("%s: sign-in = %d (cookie %v), want %d and no cookie", tc.name, resp.StatusCode, c != nil, tc.want)
		}
	}
	resp, c := f.login(t, acmeKey)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/" {
		t.Fatalf("sign-in = %d to %q, want 303 to /dashboard/", resp.StatusCode, resp.Header.Get("Location"))
	}
	switch {
	case c == nil:
		t.Fatal("no session cookie")
	case !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/dashboard/":
		t.Errorf("cookie HttpOnly=%v SameSite=%v Path=%q, want HttpOnly, Strict, /dashboard/", c.HttpOnly, c.SameSite, c.Path)
	case strings.Contains(c.Value, "acmesecret"):
		t.Error("the cookie carries the API key's secret")
	}
	// Signing out clears the cookie.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/dashboard/logout", nil)
	req.AddCookie(c)
	out, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if cs := out.Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("sign-out cookies %v, want the session cookie expired", cs)
	}
}

func TestRevokedKeyEndsSession(t *testing.T) {
	f := newFixture(t, revoked{"acme0001": true})
	_, c := f.login(t, acmeKey) // Static still accepts it; the store says revoked
	if c == nil {
		t.Fatal("no session cookie")
	}
	code, body := f.get(t, "/dashboard/", c)
	if code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("GET with a revoked key's session = %d, want 401 naming the revocation", code)
	}
}

func TestOverviewFigures(t *testing.T) {
	f := newFixture(t, nil)
	_, c := f.login(t, acmeKey)
	q := "?from=2026-03-01&to=2026-03-31"
	cases := []struct {
		lang string
		want []string
	}{
		// 1 of 2 settled runs recovered; 100.00 of 150.00 settled revenue.
		{"en", []string{"50.0%", "€100.00", "€1,384.50", "€50.00", "66.7%"}},
		{"fr", []string{"50,0\u00a0%", "100,00\u00a0€", "1\u202f384,50\u00a0€", "50,00\u00a0€"}},
		{"pl", []string{"50,0\u00a0%", "100,00\u00a0€"}},
	}
	for _, tc := range cases {
		code, body := f.get(t, "/dashboard/"+q, c, "Accept-Language", tc.lang)
		if code != http.StatusOK {
			t.Fatalf("%s: overview = %d", tc.lang, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: overview lacks %q", tc.lang, w)
			}
		}
		if strings.Contains(body, "999") {
			t.Errorf("%s: overview shows another tenant's amount", tc.lang)
		}
		if !strings.Contains(body, `lang="`+tc.lang+`"`) {
			t.Errorf("%s: page language not set", tc.lang)
		}
	}
	// Two lines on the rate chart, two bar series on the revenue chart.
	_, body := f.get(t, "/dashboard/"+q, c)
	for chart, want := range map[string]int{"recovery-rate": 2, "recovered-revenue": 2} {
		if got := seriesIn(body, chart); got != want {
			t.Errorf("chart %s has %d series, want %d", chart, got, want)
		}
	}
}

// seriesIn counts the series groups of one chart in a page.
func seriesIn(page, chart string) int {
	i := strings.Index(page, `data-chart="`+chart+`"`)
	if i < 0 {
		return -1
	}
	end := strings.Index(page[i:], "</svg>")
	return strings.Count(page[i:i+end], `class="series"`)
}

func TestTenantsAndBadFilters(t *testing.T) {
	f := newFixture(t, nil)
	_, c := f.login(t, acmeKey)
	_, admin := f.login(t, adminKey)
	cases := []struct {
		name   string
		path   string
		cookie *http.Cookie
		want   int
		says   string
	}{
		{"another tenant", "/dashboard/?tenant=globex", c, http.StatusForbidden, "cannot see tenant"},
		{"another tenant's run", "/dashboard/runs/inv-9", c, http.StatusNotFound, "no run"},
		{"admin without tenant sees its own", "/dashboard/", admin, http.StatusOK, "tenant <b>ops</b>"},
		{"admin names tenant", "/dashboard/?tenant=globex&from=2026-03-01&to=2026-03-31", admin, http.StatusOK, "€999.00"},
		{"bad from", "/dashboard/?from=2026-13-01", c, http.StatusBadRequest, "is not a date"},
		{"reversed period", "/dashboard/?from=2026-03-10&to=2026-03-01", c, http.StatusBadRequest, "no later than"},
		{"too long", "/dashboard/?from=2010-01-01&to=2026-03-01", c, http.StatusBadRequest, "at most"},
		{"bad currency", "/dashboard/declines?currency=EURO", c, http.StatusBadRequest, "ISO 4217"},
		{"bad interval", "/dashboard/?interval=hour", c, http.StatusBadRequest, "day, week, month"},
		{"unknown page", "/dashboard/nothing", c, http.StatusNotFound, "no such page"},
	}
	for _, tc := range cases {
		code, body := f.get(t, tc.path, tc.cookie)
		if code != tc.want || !strings.Contains(strings.ToLower(body), strings.ToLower(tc.says)) {
			t.Errorf("%s: GET %s = %d, want %d saying %q", tc.name, tc.path, code, tc.want, tc.says)
		}
	}
}

func TestRunTimeline(t *testing.T) {
	f := newFixture(t, nil)
	_, c := f.login(t, acmeKey)
	code, body := f.get(t, "/dashboard/runs/inv-1", c)
	if code != http.StatusOK {
		t.Fatalf("run page = %d", code)
	}
	// In order: opened, first notice, attempt 1 declined, attempt 2
	// succeeded, closed.
	order := []string{"Run opened", "first notice email: dry-run", "Attempt 1 (scheduled): declined", "Attempt 2 (scheduled): succeeded", "Run closed: recovered"}
	at := 0
	for _, s := range order {
		i := strings.Index(body[at:], s)
		if i < 0 {
			t.Fatalf("timeline lacks %q after position %d", s, at)
		}
		at += i
	}
	if strings.Contains(body, "ada@example.com") {
		t.Error("the timeline shows the customer's email address")
	}
	if got := seriesIn(body, "run-timeline"); got != len(lanes) {
		t.Errorf("timeline has %d lanes, want %d", got, len(lanes))
	}
}

func TestChartSVG(t *testing.T) {
	cases := []struct {
		name       string
		c          Chart
		series     int
		values     int
		mustHave   []string
		mustNotSay string
	}{
		{"lines", Chart{ID: "a", Kind: Lines, Labels: []string{"03-01", "03-02", "03-03"},
			Series: []Series{{"x", []float64{0.5, 0.25, 1}}, {"y", []float64{0.1, nanValue(), 0.3}}}, Max: 1}, 2, 5, []string{"<polyline", `class="legend"`}, ""},
		{"bars", Chart{ID: "b", Kind: Bars, Labels: []string{"a", "b"}, Series: []Series{{"x", []float64{10, 20}}}}, 1, 2, []string{"<rect"}, "legend"},
		{"hbars", Chart{ID: "c", Kind: HBars, Labels: []string{"a", "b", "c"}, Series: []Series{{"x", []float64{3, 2, 1}}}}, 1, 3, []string{"<rect"}, ""},
		{"escapes", Chart{ID: "d", Kind: Bars, Labels: []string{"<script>"}, Series: []Series{{"<b>", []float64{1}}}}, 1, 1, []string{"&lt;script&gt;"}, "<script>"},
		{"empty", Chart{ID: "e", Kind: Lines}, 0, 0, []string{"No data"}, "<polyline"},
	}
	for _, tc := range cases {
		svg := string(tc.c.SVG())
		if got := strings.Count(svg, `class="series"`); got != tc.series {
			t.Errorf("%s: %d series, want %d", tc.name, got, tc.series)
		}
		if got := strings.Count(svg, `class="value"`); got != tc.values {
			t.Errorf("%s: %d values drawn, want %d", tc.name, got, tc.values)
		}
		for _, s := range tc.mustHave {
			if !strings.Contains(svg, s) {
				t.Errorf("%s: lacks %q", tc.name, s)
			}
		}
		if tc.mustNotSay != "" && strings.Contains(svg, tc.mustNotSay) {
			t.Errorf("%s: contains %q", tc.name, tc.mustNotSay)
		}
	}
}

func TestAxis(t *testing.T) {
	cases := []struct {
		c      Chart
		lo, hi float64
	}{
		{Chart{Series: []Series{{"x", []float64{0.2, 0.7}}}, Max: 1}, 0, 1},
		{Chart{Series: []Series{{"x", []float64{12, 87}}}}, 0, 100},
		{Chart{Series: []Series{{"x", []float64{0}}}}, 0, 1},
		{Chart{Series: []Series{{"x", []float64{480000, 530000}}}, Fit: true}, 480000, 560000},
	}
	for _, tc := range cases {
		lo, hi := tc.c.axis()
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("axis of %v = [%g, %g], want [%g, %g]", tc.c.Series[0].Values, lo, hi, tc.lo, tc.hi)
		}
		if tc.c.Fit {
			for _, v := range tc.c.Series[0].Values {
				if v < lo || v > hi {
					t.Errorf("value %g outside the fitted axis [%g, %g]", v, lo, hi)
				}
			}
		}
	}
}

func nanValue() float64 { return math.NaN() }

func TestForecastPage(t *testing.T) {
	f := newFixture(t, nil)
	_, c := f.login(t, acmeKey)
	march := "&from=2026-03-01&to=2026-03-31&currency=EUR"
	code, body := f.get(t, "/dashboard/forecast?accounts=1000&bill=20"+march, c)
	if code != http.StatusOK {
		t.Fatalf("forecast = %d", code)
	}
	// The measured rate is March's 1 of 2 settled runs: three scenarios.
	if !strings.Contains(body, "50.0%, measured on 2 settled runs") {
		t.Error("the forecast does not name the measured rate")
	}
	for _, chart := range []string{"forecast-revenue", "forecast-customers"} {
		if got := seriesIn(body, chart); got != 3 {
			t.Errorf("%s has %d series, want 3 (none, entered, measured)", chart, got)
		}
	}
	// Without a settled run there is nothing measured: two scenarios.
	_, body = f.get(t, "/dashboard/forecast?from=2026-01-01&to=2026-01-31&currency=EUR", c)
	if got := seriesIn(body, "forecast-revenue"); got != 2 {
		t.Errorf("forecast without a measured rate has %d series, want 2", got)
	}
	for _, bad := range []string{"growth=abc", "accounts=-5", "recovery=150"} {
		code, body := f.get(t, "/dashboard/forecast?"+bad+march, c)
		if code != http.StatusBadRequest || !strings.Contains(body, `class="notice"`) {
			t.Errorf("forecast?%s = %d, want 400 with the reason", bad, code)
		}
	}
}

func TestMoney(t *testing.T) {
	cases := []struct {
		lang, value, currency, want string
	}{
		{"en", "1234.5", "EUR", "€1,234.50"},
		{"en", "0", "EUR", "€0.00"},
		{"fr", "0", "EUR", "0,00\u00a0€"},
		{"en", "-12.345", "EUR", "-€12.34"}, // half-even
		{"en", "16.635", "EUR", "€16.64"},
		{"pl", "1234.5", "PLN", "1\u00a0234,50\u00a0zł"},
		{"en", "1500", "JPY", "¥1,500"},
		{"en", "0", "JPY", "¥0"},
	}
	for _, tc := range cases {
		got := newLocale(language.Make(tc.lang)).Money(decimal.RequireFromString(tc.value), tc.currency)
		if got != tc.want {
			t.Errorf("%s %s %s = %q, want %q", tc.lang, tc.value, tc.currency, got, tc.want)
		}
	}
}
