package dashboard

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/starter/intake"
)

// seedCards adds card activity to seedLedger's March. One Visa card is
// shared by acme's three invoices (and charged once by globex, which acme's
// report must not count); inv-3 then moves to a Mastercard card, whose
// decline with advice 03 blocks it for 30 days, and is charged again on it
// while blocked: a violation, written directly because the gate would
// never let it through.
func seedCards(t *testing.T, store *ledger.Store) {
	t.Helper()
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := store.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatalf("seed: %v\n%s", err, sql)
		}
	}
	reserve := func(key, card, network, merchant, wf, outcome string, at time.Time) {
		exec(`INSERT INTO card_attempts (idempotency_key, card_key, network, merchant, amount_minor, currency, workflow_id, reserved_at, outcome, finished_at)
			VALUES ($1, $2, $3, $4, 10000, 'EUR', $5, $6, $7, $6)`, key, card, network, merchant, wf, at, outcome)
	}
	attempt := func(wf string, n int, reason, status string, at time.Time) string {
		key := wf + "/attempt-" + string(rune('0'+n))
		exec(`INSERT INTO attempts (idempotency_key, workflow_id, attempt, reason, amount, currency, gateway, status, started_at, finished_at)
			VALUES ($1, $2, $3, $4, 1234.50, 'EUR', 'simulator', $5, $6, $6)`, key, wf, n, reason, status, at)
		return key
	}
	const visa, mc = "fp:4242visa0001", "fp:5555mcrd0002"
	// seedLedger's attempts (all scheduled) were on the shared Visa card.
	reserve("dunning/acme/inv-1/attempt-1", visa, "visa", "acme", "dunning/acme/inv-1", "declined", march(2, 10))
	reserve("dunning/acme/inv-1/attempt-2", visa, "visa", "acme", "dunning/acme/inv-1", "succeeded", march(3, 10))
	reserve("dunning/acme/inv-2/attempt-1", visa, "visa", "acme", "dunning/acme/inv-2", "declined", march(5, 10))
	inv3 := "dunning/acme/inv-3"
	reserve(attempt(inv3, 1, "expedite", "declined", march(10, 10)), visa, "visa", "acme", inv3, "declined", march(10, 10))
	exec(`INSERT INTO attempts (idempotency_key, workflow_id, attempt, reason, amount, currency, gateway, status, started_at, finished_at)
		VALUES ('dunning/globex/inv-9/attempt-1', 'dunning/globex/inv-9', 1, 'scheduled', 999.00, 'EUR', 'simulator', 'succeeded', $1, $1)`, march(1, 12))
	reserve("dunning/globex/inv-9/attempt-1", visa, "visa", "globex", "dunning/globex/inv-9", "succeeded", march(1, 12))
	// The Visa rule denied inv-2 a second charge; the policy's cap refused
	// an expedite of inv-3.
	exec(`INSERT INTO card_denials (idempotency_key, rule, card_key, network, workflow_id, not_before, denied_at)
		VALUES ('dunning/acme/inv-2/attempt-2', 'visa: 15 reattempts per card in 30 days', $1, 'visa', 'dunning/acme/inv-2', $2, $3)`, visa, march(30, 10), march(6, 10))
	if err := store.RecordDecisions(ctx, []ledger.Decision{{Key: inv3 + "/journal-7", WorkflowID: inv3, At: march(11, 10), Kind: ledger.DecisionRefusal,
		Action: "expedite", Words: "expedite attempt refused: policy cap: 3 of 3 scheduled and expedited attempts used",
		Rule: "policy cap: 3 of 3 scheduled and expedited attempts used", CardKey: visa}}); err != nil {
		t.Fatal(err)
	}
	// inv-3 on the new Mastercard card: declined with advice 03, blocked,
	// then charged while the block stood.
	reserve(attempt(inv3, 2, "card_updated", "declined", march(12, 10)), mc, "mastercard", "acme", inv3, "declined", march(12, 10))
	if err := store.BlockCard(ctx, mc, "mastercard", "mastercard advice 03", inv3+"/attempt-2", march(12, 10).Add(30*24*time.Hour), march(12, 10)); err != nil {
		t.Fatal(err)
	}
	reserve(attempt(inv3, 3, "scheduled", "succeeded", march(14, 10)), mc, "mastercard", "acme", inv3, "succeeded", march(14, 10))
}

// newComplianceFixture serves the dashboard in front of the private API
// (as dunning serve does), on a ledger with seedLedger's runs and
// seedCards' activity.
func newComplianceFixture(t *testing.T) *fixture {
	t.Helper()
	store := ledgertest.NewStore(t)
	seedLedger(t, store.Pool())
	seedCards(t, store)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := New(Config{
		Auth: keys, Analytics: analytics.New(store.Pool()), Ledger: store,
		SessionSecret: []byte("0123456789abcdef0123456789abcdef"), Logger: logger,
		Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	api := intake.NewPrivateHandler(nil, logger, intake.WithAuthenticator(keys), intake.WithAudit(store, ledger.Limits{}))
	srv := httptest.NewServer(h.Mount(api))
	t.Cleanup(srv.Close)
	return &fixture{h: h, srv: srv}
}

var (
	rowRE  = regexp.MustCompile(`(?s)<tr class="card-row( violation)?">(.*?)</tr>`)
	cellRE = regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`)
	kpiRE  = regexp.MustCompile(`(?s)<div class="kpi( violations)?( attention)?"><div class="label">([^<]*)</div><div class="value">([^<]*)</div>`)
	tagRE  = regexp.MustCompile(`<[^>]+>`)
)

// tableRows are the report's rows as text, one string per cell; a row that
// is highlighted as a violation starts with "!".
func tableRows(page string) [][]string {
	var out [][]string
	for _, m := range rowRE.FindAllStringSubmatch(page, -1) {
		var row []string
		if m[1] != "" {
			row = append(row, "!")
		}
		for _, c := range cellRE.FindAllStringSubmatch(m[2], -1) {
			row = append(row, strings.TrimSpace(tagRE.ReplaceAllString(strings.ReplaceAll(c[1], "</div><div", "</div>|<div"), "")))
		}
		out = append(out, row)
	}
	return out
}

// The page against figures computed by hand from seedCards: the shared
// Visa card counts acme's four charges of three invoices (not globex's),
// two refusals of two different rules and no violation; the Mastercard
// card counts the card-update charge and the charge made while blocked,
// which is the one violation, highlighted in the table and the KPI.
func TestCompliancePage(t *testing.T) {
	f := newComplianceFixture(t)
	_, cookie := f.login(t, acmeKey)
	status, page := f.get(t, "/dashboard/compliance", cookie)
	if status != http.StatusOK {
		t.Fatalf("status %d:\n%s", status, page)
	}
	want := [][]string{
		{"fp:…0001", "visa", "4", "3", "1", "0", "0", "3", "2",
			"policy cap: 3 of 3 scheduled and expedited attempts used: 1|visa: 15 reattempts per card in 30 days: 1", "0"},
		{"!", "fp:…0002", "mastercard", "2", "1", "0", "1", "0", "1", "0", "",
			"1dunning/acme/inv-3/attempt-3: charged while the card was blocked until 2026-04-11T10:00:00Z (mastercard advice 03)"},
	}
	if got := tableRows(page); !reflect.DeepEqual(got, want) {
		t.Fatalf("rows:\n got  %q\n want %q", got, want)
	}
	var kpis []string
	for _, m := range kpiRE.FindAllStringSubmatch(page, -1) {
		kpis = append(kpis, m[3]+"="+m[4]+m[2])
	}
	if want := []string{"Cards=2", "Attempts=6", "Refusals=2", "Violations=1 attention"}; !reflect.DeepEqual(kpis, want) {
		t.Fatalf("KPIs = %q, want %q", kpis, want)
	}
	// The whole fingerprint stays off the page; the default window is the
	// 30 days ending today, and the CSV link carries it.
	if strings.Contains(page, "4242visa0001") || strings.Contains(page, "5555mcrd0002") {
		t.Error("the page shows a whole card fingerprint")
	}
	if !strings.Contains(page, `value="2026-02-24"`) || !strings.Contains(page, `value="2026-03-25"`) {
		t.Error("the default window is not 2026-02-24 to 2026-03-25")
	}
	if !strings.Contains(page, `href="/dashboard/compliance.csv?from=2026-02-24&amp;to=2026-03-25"`) {
		t.Error("no CSV link for the window")
	}
	if !strings.Contains(page, `href="/dashboard/compliance" class="active"`) {
		t.Error("the navigation does not mark the compliance page")
	}

	// A window without the violation: 2026-03-04 to 2026-03-11 holds
	// inv-2's and inv-3's Visa charges, the Visa rule's denial, and the
	// policy cap's refusal (made on the 11th, the window's last day).
	_, page = f.get(t, "/dashboard/compliance?from=2026-03-04&to=2026-03-11", cookie)
	want = [][]string{{"fp:…0001", "visa", "2", "1", "1", "0", "0", "2", "2",
		"policy cap: 3 of 3 scheduled and expedited attempts used: 1|visa: 15 reattempts per card in 30 days: 1", "0"}}
	if got := tableRows(page); !reflect.DeepEqual(got, want) {
		t.Fatalf("rows of 03-04..03-11:\n got  %q\n want %q", got, want)
	}
	if !strings.Contains(page, `<div class="kpi violations"><div class="label">Violations</div><div class="value">0</div>`) {
		t.Error("zero violations are highlighted")
	}
}

// Other pages link to the compliance page without their 90-day period,
// which the compliance page would refuse.
func TestComplianceNavLink(t *testing.T) {
	f := newComplianceFixture(t)
	_, cookie := f.login(t, acmeKey)
	_, page := f.get(t, "/dashboard/aging", cookie)
	if !strings.Contains(page, `<a href="/dashboard/compliance">Compliance</a>`) {
		t.Fatal("the aging page has no plain link to the compliance page")
	}
	_, cookie = f.login(t, adminKey)
	_, page = f.get(t, "/dashboard/aging?tenant=acme", cookie)
	if !strings.Contains(page, `<a href="/dashboard/compliance?tenant=acme">Compliance</a>`) {
		t.Fatal("an admin's link to the compliance page loses the tenant")
	}
}

// The CSV the dashboard serves is, byte for byte, the API's for the same
// tenant and window.
func TestComplianceCSVMatchesAPI(t *testing.T) {
	f := newComplianceFixture(t)
	_, cookie := f.login(t, acmeKey)
	status, dash := f.get(t, "/dashboard/compliance.csv?from=2026-02-24&to=2026-03-25", cookie)
	if status != http.StatusOK {
		t.Fatalf("dashboard CSV: status %d: %s", status, dash)
	}
	status, api := f.get(t, "/v1/audit/compliance?tenant=acme&from=2026-02-24&to=2026-03-26&format=csv", nil, "Authorization", "Bearer "+acmeKey)
	if status != http.StatusOK {
		t.Fatalf("API CSV: status %d: %s", status, api)
	}
	if dash != api {
		t.Fatalf("the dashboard's CSV differs from the API's:\n%s\n---\n%s", dash, api)
	}
	if lines := strings.Count(dash, "\n"); lines != 3 || !strings.Contains(dash, "fp:4242visa0001,visa,2026-02-24T00:00:00Z,2026-03-26T00:00:00Z,4,3,1,0,0,3,2,") {
		t.Fatalf("CSV:\n%s", dash)
	}
	// Without a session the CSV is not served.
	if status, _ := f.get(t, "/dashboard/compliance.csv", nil); status != http.StatusUnauthorized {
		t.Fatalf("CSV without a session: status %d", status)
	}
}

// Bad windows and other tenants change nothing and answer 4xx, as the API
// does.
func TestComplianceBadRequests(t *testing.T) {
	f := newComplianceFixture(t)
	_, cookie := f.login(t, acmeKey)
	for _, tc := range []struct {
		path   string
		status int
		says   string
	}{
		{"/dashboard/compliance?from=2026-02-01&to=2026-03-03", http.StatusBadRequest, "longer than 30 days"},
		{"/dashboard/compliance.csv?from=2026-02-01&to=2026-03-03", http.StatusBadRequest, "longer than 30 days"},
		{"/dashboard/compliance?from=2026-03-10&to=2026-03-01", http.StatusBadRequest, "must be after"},
		{"/dashboard/compliance?from=yesterday", http.StatusBadRequest, "is not a date"},
		{"/dashboard/compliance?to=2026-13-01", http.StatusBadRequest, "is not a date"},
		{"/dashboard/compliance?tenant=globex", http.StatusForbidden, "cannot see tenant"},
		{"/dashboard/compliance.csv?tenant=globex", http.StatusForbidden, "cannot see tenant"},
		{"/dashboard/compliance?from=2026-02-25&to=2026-03-26", http.StatusOK, "fp:…0001"}, // exactly 30 days
	} {
		status, body := f.get(t, tc.path, cookie)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: status %d, want %d with %q:\n%s", tc.path, status, tc.status, tc.says, body)
		}
	}
	// The API refuses the same 31 days.
	if status, _ := f.get(t, "/v1/audit/compliance?tenant=acme&from=2026-02-01&to=2026-03-04", nil, "Authorization", "Bearer "+acmeKey); status != http.StatusBadRequest {
		t.Fatalf("API: status %d for 31 days", status)
	}
}

func TestMaskCard(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"fp:4242visa0001", "fp:…0001"},
		{"pm:sim:succeed-on=2", "pm:…on=2"},
		{"fp:abcd", "fp:abcd"},
		{"rawkey123456", "…3456"},
		{"", ""},
	} {
		if got := maskCard(tc.in); got != tc.want {
			t.Errorf("maskCard(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
