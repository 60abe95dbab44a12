package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/audit"
	"github.com/dunningco/dunning/ledger"
)

// Compliance is what the compliance page reads; *ledger.Store implements it.
type Compliance = audit.ComplianceLedger

var _ Compliance = (*ledger.Store)(nil)

// complianceWindow is the compliance page's period: [From, To) in whole
// UTC days, at most audit.ComplianceWindow long, the card networks' own.
type complianceWindow struct {
	Tenant   string
	From, To time.Time // To is exclusive
	Admin    bool
}

// FromDate and ToDate are the period's dates as the form shows them; "to"
// is the last day included, as on the other pages.
func (c complianceWindow) FromDate() string { return c.From.Format(dateLayout) }
func (c complianceWindow) ToDate() string   { return c.To.AddDate(0, 0, -1).Format(dateLayout) }

// Link is the address of the page (or its CSV, with csv) for this window.
func (c complianceWindow) Link(csv bool) string {
	v := url.Values{}
	v.Set("from", c.FromDate())
	v.Set("to", c.ToDate())
	if c.Admin {
		v.Set("tenant", c.Tenant)
	}
	p := basePath + "compliance"
	if csv {
		p += ".csv"
	}
	return p + "?" + v.Encode()
}

// parseComplianceWindow reads ?tenant, ?from and ?to. The default is the
// 30 days ending today (included); a longer period is refused with 400, as
// GET /v1/audit/compliance refuses it, because the networks' rules count
// over 30 days and a longer report would mix two of their windows.
func (h *Handler) parseComplianceWindow(r *http.Request) (complianceWindow, error) {
	p := principalFrom(r.Context())
	q := r.URL.Query()
	c := complianceWindow{Tenant: p.Tenant, Admin: p.Has(apikeys.ScopeAdmin)}
	if t := strings.TrimSpace(q.Get("tenant")); t != "" {
		if !p.MayActFor(t) {
			return c, badRequest{msg: fmt.Sprintf("This API key is for tenant %q and cannot see tenant %q.", p.Tenant, t), status: http.StatusForbidden}
		}
		c.Tenant = t
	}
	if c.Tenant == "" {
		return c, badRequest{msg: "This admin key belongs to no tenant: choose one with ?tenant=."}
	}
	c.To = h.cfg.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	if s := q.Get("to"); s != "" {
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return c, badRequest{msg: fmt.Sprintf("to %q is not a date (YYYY-MM-DD).", s)}
		}
		c.To = t.AddDate(0, 0, 1)
	}
	c.From = c.To.Add(-audit.ComplianceWindow)
	if s := q.Get("from"); s != "" {
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return c, badRequest{msg: fmt.Sprintf("from %q is not a date (YYYY-MM-DD).", s)}
		}
		c.From = t
	}
	if err := audit.CheckWindow(c.From, c.To, audit.ComplianceWindow); err != nil {
		return c, badRequest{msg: "The compliance report covers at most 30 days: " + err.Error() + "."}
	}
	return c, nil
}

// complianceRow is one card and network as the page shows it.
type complianceRow struct {
	Card, Network                                     string
	Attempts, Scheduled, Expedited, CardUpdate, Other string
	Declines, Refusals                                string
	Rules                                             []string // "rule: n", sorted
	Violations                                        string
	Violated                                          bool
	Detail                                            []string
}

type complianceBody struct {
	Window complianceWindow
	KPIs   []kpi
	// ViolationsKPI is drawn apart: highlighted unless Violations is zero.
	ViolationsKPI kpi
	Violations    int
	Rows          []complianceRow
	CSV           string
}

// report reads the compliance report of the window.
func (h *Handler) report(ctx context.Context, c complianceWindow) ([]audit.CardRow, error) {
	rows, err := audit.Compliance(ctx, h.cfg.Compliance, c.Tenant, c.From, c.To, h.cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("dashboard: compliance report of %s: %w", c.Tenant, err)
	}
	return rows, nil
}

func (h *Handler) compliance(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	c, err := h.parseComplianceWindow(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rows, err := h.report(ctx, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	l := pickLocale(r)
	n := func(v int) string { return l.Int(int64(v)) }
	var attempts, refusals, violations int
	body := complianceBody{Window: c, CSV: c.Link(true)}
	for _, cr := range rows {
		attempts += cr.Attempts
		refusals += cr.Refusals
		violations += cr.Violations
		rules := make([]string, 0, len(cr.RefusalsByRule))
		for rule, k := range cr.RefusalsByRule {
			rules = append(rules, fmt.Sprintf("%s: %s", rule, n(k)))
		}
		slices.Sort(rules)
		body.Rows = append(body.Rows, complianceRow{
			Card: maskCard(cr.Card), Network: cmp.Or(cr.Network, "unknown"),
			Attempts: n(cr.Attempts), Scheduled: n(cr.Scheduled), Expedited: n(cr.Expedited), CardUpdate: n(cr.CardUpdate), Other: n(cr.Other),
			Declines: n(cr.Declines), Refusals: n(cr.Refusals), Rules: rules,
			Violations: n(cr.Violations), Violated: cr.Violations > 0, Detail: cr.ViolationDetail,
		})
	}
	body.Violations = violations
	body.KPIs = []kpi{
		{"Cards", n(len(rows)), "card and network pairs"},
		{"Attempts", n(attempts), "charges sent to the gateway"},
		{"Refusals", n(refusals), "charges a rule stopped"},
	}
	body.ViolationsKPI = kpi{"Violations", n(violations), "charges that broke a rule: must be zero"}
	h.render(w, r, http.StatusOK, "compliance", page{Title: "Card-network compliance", Active: "compliance", L: l, Tenant: c.Tenant, Body: body})
}

// complianceCSV serves the report as GET /v1/audit/compliance does: the
// same columns and bytes, for the session's tenant.
func (h *Handler) complianceCSV(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	c, err := h.parseComplianceWindow(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rows, err := h.report(ctx, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := audit.WriteComplianceCSV(&buf, rows, c.From, c.To); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q",
		url.PathEscape(fmt.Sprintf("compliance-%s-%s", c.Tenant, c.From.Format("20060102")))+".csv"))
	_, _ = w.Write(buf.Bytes())
}

// maskCard shortens a card key ("fp:<fingerprint>" or "pm:<payment
// method>") to its kind and last four characters: enough to tell cards
// apart on screen and match them with the CSV, without showing whole
// fingerprints to everyone who looks over a shoulder.
func maskCard(key string) string {
	kind, rest, ok := strings.Cut(key, ":")
	if !ok {
		kind, rest = "", key
	}
	r := []rune(rest)
	if len(r) > 4 {
		rest = "…" + string(r[len(r)-4:])
	}
	if kind == "" {
		return rest
	}
	return kind + ":" + rest
}
