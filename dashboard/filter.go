package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/money"
)

// filter is what every analytics page shows: one tenant's declines in one
// currency over [From, To), bucketed by Interval. It comes from the query
// string, so a page's address is the page: it can be bookmarked and shared.
type filter struct {
	Tenant     string
	Currency   string
	From, To   time.Time // To is exclusive
	Interval   analytics.Granularity
	Currencies []string // the tenant's currencies, for the picker
	Admin      bool     // the key may choose the tenant
}

const dateLayout = "2006-01-02"

// DefaultPeriod is how far back the pages look when no period is chosen.
const DefaultPeriod = 90 * 24 * time.Hour

// query is the filter as analytics asks for it.
func (f filter) query() analytics.Query {
	return analytics.Query{Tenant: f.Tenant, Currency: f.Currency, From: f.From, To: f.To}
}

// FromDate and ToDate are the period's dates as the form shows them; the
// form's "to" is the last day included.
func (f filter) FromDate() string { return f.From.Format(dateLayout) }
func (f filter) ToDate() string   { return f.To.AddDate(0, 0, -1).Format(dateLayout) }

// Link is the address of page with this filter, plus extra parameters.
func (f filter) Link(page string, extra ...string) string {
	v := url.Values{}
	v.Set("from", f.FromDate())
	v.Set("to", f.ToDate())
	v.Set("currency", f.Currency)
	v.Set("interval", string(f.Interval))
	if f.Admin {
		v.Set("tenant", f.Tenant)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return basePath + page + "?" + v.Encode()
}

// TenantLink is the address of a page that has its own period, keeping
// only the tenant an admin chose.
func (f filter) TenantLink(page string) string {
	if !f.Admin {
		return basePath + page
	}
	return basePath + page + "?" + url.Values{"tenant": {f.Tenant}}.Encode()
}

// badRequest is a filter the page cannot be drawn for; its message is
// shown to the user with 400, or status when set.
type badRequest struct {
	msg    string
	status int
}

func (e badRequest) Error() string { return e.msg }

// parseFilter reads the filter from the query string, with defaults: the
// last 90 days, the tenant's most used currency, a bucket that draws
// between a handful and a hundred points.
func (h *Handler) parseFilter(ctx context.Context, r *http.Request) (filter, error) {
	p := principalFrom(ctx)
	q := r.URL.Query()
	f := filter{Tenant: p.Tenant, Admin: p.Has(apikeys.ScopeAdmin)}
	if t := strings.TrimSpace(q.Get("tenant")); t != "" {
		if !p.MayActFor(t) {
			return f, badRequest{msg: fmt.Sprintf("This API key is for tenant %q and cannot see tenant %q.", p.Tenant, t), status: http.StatusForbidden}
		}
		f.Tenant = t
	}
	if f.Tenant == "" {
		return f, badRequest{msg: "This admin key belongs to no tenant: choose one with ?tenant=."}
	}
	today := h.cfg.Now().UTC().Truncate(24 * time.Hour)
	f.To = today.AddDate(0, 0, 1)
	f.From = f.To.Add(-DefaultPeriod)
	if s := q.Get("from"); s != "" {
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return f, badRequest{msg: fmt.Sprintf("from %q is not a date (YYYY-MM-DD).", s)}
		}
		f.From = t
	}
	if s := q.Get("to"); s != "" {
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return f, badRequest{msg: fmt.Sprintf("to %q is not a date (YYYY-MM-DD).", s)}
		}
		f.To = t.AddDate(0, 0, 1)
	}
	switch {
	case !f.From.Before(f.To):
		return f, badRequest{msg: fmt.Sprintf("The period must start (%s) no later than it ends (%s).", f.FromDate(), f.ToDate())}
	case f.To.Sub(f.From) > analytics.MaxPeriod:
		return f, badRequest{msg: fmt.Sprintf("The period may span at most %d days.", int(analytics.MaxPeriod/(24*time.Hour)))}
	}
	if s := q.Get("interval"); s != "" {
		g, err := analytics.ParseGranularity(s)
		if err != nil {
			return f, badRequest{msg: fmt.Sprintf("interval %q is not one of day, week, month.", s)}
		}
		f.Interval = g
	} else {
		switch span := f.To.Sub(f.From); {
		case span <= 92*24*time.Hour:
			f.Interval = analytics.Day
		case span <= 2*366*24*time.Hour:
			f.Interval = analytics.Week
		default:
			f.Interval = analytics.Month
		}
	}
	currencies, err := h.currencies(ctx, f.Tenant)
	if err != nil {
		return f, err
	}
	f.Currencies = currencies
	if s := strings.ToUpper(strings.TrimSpace(q.Get("currency"))); s != "" {
		c, err := money.LookupCurrency(s)
		if err != nil {
			return f, badRequest{msg: fmt.Sprintf("currency %q is not an ISO 4217 code.", s)}
		}
		f.Currency = c.Code
	} else if len(currencies) > 0 {
		f.Currency = currencies[0]
	} else {
		f.Currency = "USD"
	}
	if !slices.Contains(f.Currencies, f.Currency) {
		f.Currencies = append(f.Currencies, f.Currency)
	}
	return f, nil
}

// currencies are the tenant's run currencies, the one declined most
// recently first: amounts of different currencies never add up, so every
// page shows one of them. The tenant may have a million runs; this reads
// the analytics index (tenant, currency, opened_at) once per currency, a
// loose index scan, instead of every run.
func (h *Handler) currencies(ctx context.Context, tenant string) ([]string, error) {
	rows, err := h.cfg.Ledger.Pool().Query(ctx, `
		WITH RECURSIVE c(cur) AS (
			SELECT min(currency) FROM runs WHERE tenant = $1
			UNION ALL
			SELECT (SELECT min(currency) FROM runs WHERE tenant = $1 AND currency > c.cur) FROM c WHERE c.cur IS NOT NULL
		)
		SELECT cur FROM c WHERE cur IS NOT NULL
		ORDER BY (SELECT max(opened_at) FROM runs WHERE tenant = $1 AND currency = c.cur) DESC, cur
		LIMIT 50`, tenant)
	if err != nil {
		return nil, fmt.Errorf("dashboard: currencies of %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("dashboard: currencies of %s: %w", tenant, err)
		}
		out = append(out, strings.TrimSpace(c))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dashboard: currencies of %s: %w", tenant, err)
	}
	return out, nil
}
