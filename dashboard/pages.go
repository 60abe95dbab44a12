package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger"
)

// page is what every page template gets: the frame (navigation, filter)
// and the page's own data in Body.
type page struct {
	Title  string
	Active string // the navigation entry to highlight
	L      locale
	Tenant string
	Filter *filter // nil on pages without the period picker
	Body   any
}

// kpi is one headline figure.
type kpi struct {
	Label, Value, Note string
}

// fail shows err: 400 with its message when the request was wrong, 503
// with Retry-After when the ledger cannot be reached or did not answer in
// time, else 500 (details only in the log). The ledger decides what an
// outage looks like (ledger.Unreachable, ledger.TimedOut), so the pages
// answer one alike the API does; a timeout stays 503 rather than the
// API's 504, as a person reloading a page is helped by neither more.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var bad badRequest
	switch {
	case errors.As(err, &bad):
		h.errorPage(w, r, cmp.Or(bad.status, http.StatusBadRequest), bad.msg)
	case errors.Is(err, analytics.ErrInvalid):
		h.errorPage(w, r, http.StatusBadRequest, err.Error())
	case r.Context().Err() != nil || errors.Is(err, context.Canceled):
		// The browser left: nobody reads the answer, and it is no failure
		// of ours.
		h.logger.InfoContext(r.Context(), "dashboard page abandoned by the client", "path", r.URL.Path, "error", err)
		w.Header().Set("Retry-After", "5")
		h.errorPage(w, r, http.StatusServiceUnavailable, "The page was abandoned; reload it.")
	case ledger.TimedOut(err):
		h.logger.WarnContext(r.Context(), "dashboard: timed out reading the ledger", "path", r.URL.Path, "error", err)
		w.Header().Set("Retry-After", "5")
		h.errorPage(w, r, http.StatusServiceUnavailable, "The ledger did not answer in time; reload in a moment.")
	case ledger.Unreachable(err):
		h.logger.WarnContext(r.Context(), "dashboard: the ledger is unavailable", "path", r.URL.Path, "error", err)
		w.Header().Set("Retry-After", "5")
		h.errorPage(w, r, http.StatusServiceUnavailable, "The ledger is not answering right now; reload in a moment.")
	default:
		h.logger.ErrorContext(r.Context(), "dashboard page failed", "path", r.URL.Path, "error", err)
		h.errorPage(w, r, http.StatusInternalServerError, "This page could not be drawn; the error is in the server's log.")
	}
}

// queryTimeout bounds the analytics of one page.
const queryTimeout = 10 * time.Second

// --- overview -------------------------------------------------------------

type overviewBody struct {
	KPIs      []kpi
	Rate      Chart // recovery rate over time: runs and revenue
	Revenue   Chart // recovered and lost revenue over time
	Methods   Chart
	ByMethod  []methodRow
	ByAttempt []attemptRow
}

type methodRow struct{ Method, Recovered, Revenue, Share string }
type attemptRow struct{ Attempt, Recovered, Revenue, Share string }

func (h *Handler) overview(ctx context.Context, w http.ResponseWriter, r *http.Request, f filter, l locale) {
	q := f.query()
	sum, err := h.cfg.Analytics.Summary(ctx, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	series, err := h.cfg.Analytics.Series(ctx, q, f.Interval)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	methods, err := h.cfg.Analytics.Methods(ctx, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cur := f.Currency
	money := func(d decimal.Decimal) string { return l.Money(d, cur) }
	body := overviewBody{KPIs: []kpi{
		{"Recovery rate", l.Percent(sum.RecoveryRate), fmt.Sprintf("%s of %s settled runs", l.Int(sum.Recovered), l.Int(sum.Recovered+sum.Exhausted))},
		{"Recovered revenue", money(sum.RecoveredRevenue), "revenue recovery rate " + l.Percent(sum.RevenueRecoveryRate)},
		{"Failed revenue", money(sum.FailedRevenue), l.Int(sum.Runs) + " runs"},
		{"Lost revenue", money(sum.LostRevenue), l.Int(sum.Exhausted) + " exhausted runs"},
		{"Open runs", l.Int(sum.Open), l.Int(sum.Cancelled) + " cancelled"},
		{"Time to recovery", l.Duration(seconds(sum.TimeToRecovery.MedianSeconds)), "median; p90 " + l.Duration(seconds(sum.TimeToRecovery.P90Seconds))},
		{"Attempts per recovery", l.Number(sum.AttemptsPerRecovery), l.Int(sum.Attempts) + " attempts answered"},
		{"Revenue per attempt", money(sum.RevenuePerAttempt), "recovered revenue / attempts"},
		{"Incremental revenue per recovered attempt", money(sum.IncrementalRevenuePerRecoveredAttempt), l.Int(sum.RecoveredByCharge) + " recovered by our charges"},
		{"Messages per recovery", l.Number(sum.MessagesPerRecovery), ""},
		{"Involuntary churn", l.Percent(sum.InvoluntaryChurn), l.Int(sum.ChurnedRuns) + " exhausted runs cancelled within 30 days"},
		{"Average time to resolution", l.Duration(seconds(sum.TimeToResolution.MeanSeconds)), l.Int(sum.TimeToResolution.Count) + " closed runs"},
	}}
	var labels []string
	rate, revRate := Series{Name: "Recovery rate (runs)"}, Series{Name: "Recovery rate (revenue)"}
	recovered, lost := Series{Name: "Recovered"}, Series{Name: "Lost"}
	for _, p := range series.Points {
		labels = append(labels, bucketLabel(p.Start, f.Interval))
		rate.Values = append(rate.Values, settledRate(p.Outcomes, p.RecoveryRate))
		revRate.Values = append(revRate.Values, settledRate(p.Outcomes, p.RevenueRecoveryRate))
		recovered.Values = append(recovered.Values, p.RecoveredRevenue.InexactFloat64())
		lost.Values = append(lost.Values, p.LostRevenue.InexactFloat64())
	}
	body.Rate = Chart{ID: "recovery-rate", Title: "Recovery rate by " + string(f.Interval) + " of decline", Kind: Lines, Labels: labels,
		Series: []Series{rate, revRate}, Format: l.Percent, Max: 1}
	body.Revenue = Chart{ID: "recovered-revenue", Title: "Recovered and lost revenue by " + string(f.Interval) + " of decline", Kind: Bars,
		Labels: labels, Series: []Series{recovered, lost}, Format: func(v float64) string { return l.MoneyFloat(v, cur) }}
	byMethod := Series{Name: "Recovered runs"}
	var methodLabels []string
	for _, m := range methods.ByMethod {
		body.ByMethod = append(body.ByMethod, methodRow{plainLabel(m.Method), l.Int(m.Recovered), money(m.Revenue), l.Percent(m.Share)})
		methodLabels = append(methodLabels, plainLabel(m.Method))
		byMethod.Values = append(byMethod.Values, float64(m.Recovered))
	}
	body.Methods = Chart{ID: "recovery-methods", Title: "How runs were recovered", Kind: HBars, Labels: methodLabels,
		Series: []Series{byMethod}, Format: func(v float64) string { return l.Int(int64(v)) }}
	for _, a := range methods.ByAttempt {
		label := "attempt " + strconv.Itoa(a.Attempt)
		if a.Attempt == 0 {
			label = "no charge of ours"
		}
		body.ByAttempt = append(body.ByAttempt, attemptRow{label, l.Int(a.Recovered), money(a.Revenue), l.Percent(a.Share)})
	}
	h.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Active: "overview", L: l, Tenant: f.Tenant, Filter: &f, Body: body})
}

// settledRate is a bucket's rate, or NaN (no point drawn) while none of its
// runs has settled: 0% would read as "all lost".
func settledRate(o analytics.Outcomes, rate float64) float64 {
	if o.Recovered+o.Exhausted == 0 {
		return math.NaN()
	}
	return rate
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func bucketLabel(t time.Time, g analytics.Granularity) string {
	switch g {
	case analytics.Month:
		return t.UTC().Format("2006-01")
	case analytics.Week:
		y, w := t.UTC().ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	}
	return t.UTC().Format("01-02")
}

// --- declines ---------------------------------------------------------------

type groupRow struct {
	Key, Runs, Recovered, Exhausted, Open, Rate, Failed, RecoveredRevenue, Lost string
}

type breakdownTable struct {
	Title string
	Rows  []groupRow
}

type declinesBody struct {
	Lost   Chart
	Rates  Chart
	Tables []breakdownTable
}

func groupRows(l locale, cur string, groups []analytics.Group) []groupRow {
	rows := make([]groupRow, 0, len(groups))
	for _, g := range groups {
		rate := "–"
		if g.Recovered+g.Exhausted > 0 {
			rate = l.Percent(g.RecoveryRate)
		}
		rows = append(rows, groupRow{Key: plainLabel(g.Key), Runs: l.Int(g.Runs), Recovered: l.Int(g.Recovered), Exhausted: l.Int(g.Exhausted),
			Open: l.Int(g.Open), Rate: rate, Failed: l.Money(g.FailedRevenue, cur), RecoveredRevenue: l.Money(g.RecoveredRevenue, cur), Lost: l.Money(g.LostRevenue, cur)})
	}
	return rows
}

// maxBars keeps ranking charts readable; the tables list every group.
const maxBars = 12

func (h *Handler) declines(ctx context.Context, w http.ResponseWriter, r *http.Request, f filter, l locale) {
	q := f.query()
	var body declinesBody
	byCode, err := h.cfg.Analytics.Breakdown(ctx, q, analytics.ByDeclineCode)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Where the money is lost: codes by lost revenue, largest first.
	lostOrder := slices.Clone(byCode.Groups)
	slices.SortStableFunc(lostOrder, func(a, b analytics.Group) int { return b.LostRevenue.Cmp(a.LostRevenue) })
	lost := Series{Name: "Lost revenue"}
	var lostLabels []string
	for _, g := range lostOrder[:min(len(lostOrder), maxBars)] {
		lostLabels = append(lostLabels, plainLabel(g.Key))
		lost.Values = append(lost.Values, g.LostRevenue.InexactFloat64())
	}
	cur := f.Currency
	body.Lost = Chart{ID: "lost-by-code", Title: "Lost revenue by decline code", Kind: HBars, Labels: lostLabels, Series: []Series{lost},
		Format: func(v float64) string { return l.MoneyFloat(v, cur) }}
	rates := Series{Name: "Recovery rate"}
	var rateLabels []string
	for _, g := range byCode.Groups {
		if g.Recovered+g.Exhausted == 0 || len(rateLabels) == maxBars {
			continue
		}
		rateLabels = append(rateLabels, plainLabel(g.Key))
		rates.Values = append(rates.Values, g.RecoveryRate)
	}
	body.Rates = Chart{ID: "rate-by-code", Title: "Recovery rate by decline code", Kind: HBars, Labels: rateLabels, Series: []Series{rates},
		Format: l.Percent, Max: 1}
	body.Tables = append(body.Tables, breakdownTable{"By decline code", groupRows(l, cur, byCode.Groups)})
	for _, d := range []struct {
		by    analytics.Dimension
		title string
	}{{analytics.ByDeclineCategory, "By decline category"}, {analytics.ByGateway, "By gateway"}, {analytics.ByCardNetwork, "By card network"}} {
		b, err := h.cfg.Analytics.Breakdown(ctx, q, d.by)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		body.Tables = append(body.Tables, breakdownTable{d.title, groupRows(l, cur, b.Groups)})
	}
	h.render(w, r, http.StatusOK, "declines", page{Title: "Decline codes", Active: "declines", L: l, Tenant: f.Tenant, Filter: &f, Body: body})
}

// --- policies and experiments ------------------------------------------------

type variantRow struct {
	Variant, Settled, Recovered, Rate, Interval, Revenue, Z, P, Verdict, SampleNeeded string
	Control, Significant                                                              bool
}

type experimentView struct {
	Name, Control string
	Chart         Chart
	Rows          []variantRow
}

type policiesBody struct {
	Rates       Chart
	Policies    breakdownTable
	Variants    breakdownTable
	Experiments []experimentView
}

func (h *Handler) policies(ctx context.Context, w http.ResponseWriter, r *http.Request, f filter, l locale) {
	q := f.query()
	byPolicy, err := h.cfg.Analytics.Breakdown(ctx, q, analytics.ByPolicy)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	byVariant, err := h.cfg.Analytics.Breakdown(ctx, q, analytics.ByVariant)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	exps, err := h.cfg.Analytics.Experiments(ctx, q, r.URL.Query().Get("control"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cur := f.Currency
	body := policiesBody{
		Policies: breakdownTable{"By policy@version", groupRows(l, cur, byPolicy.Groups)},
		Variants: breakdownTable{"By experiment variant", groupRows(l, cur, byVariant.Groups)},
	}
	rates := Series{Name: "Recovery rate"}
	var labels []string
	for _, g := range byPolicy.Groups {
		if g.Recovered+g.Exhausted == 0 || len(labels) == maxBars {
			continue
		}
		labels = append(labels, plainLabel(g.Key))
		rates.Values = append(rates.Values, g.RecoveryRate)
	}
	body.Rates = Chart{ID: "rate-by-policy", Title: "Recovery rate by policy", Kind: HBars, Labels: labels, Series: []Series{rates}, Format: l.Percent, Max: 1}
	for _, e := range exps.Experiments {
		ev := experimentView{Name: e.Name, Control: e.Control}
		arm := Series{Name: "Recovery rate"}
		var armLabels []string
		for _, v := range e.Variants {
			row := variantRow{Variant: v.Variant, Settled: l.Int(v.Settled), Recovered: l.Int(v.Recovered), Rate: l.Percent(v.Rate),
				Interval: l.Percent(v.CILow) + " – " + l.Percent(v.CIHigh), Revenue: l.Money(v.RecoveredRevenue, cur),
				Z: "–", P: "–", SampleNeeded: "–", Control: v.Control, Significant: v.Significant}
			switch {
			case v.Control:
				row.Verdict = "control"
			case v.PValue == nil:
				row.Verdict = "no test (too few runs or no difference)"
			case v.Significant && v.Z != nil && *v.Z > 0:
				row.Verdict = "better than control"
			case v.Significant:
				row.Verdict = "worse than control"
			default:
				row.Verdict = "not significant yet"
			}
			if v.Z != nil {
				row.Z = l.p.Sprintf("%.2f", *v.Z)
			}
			if v.PValue != nil {
				row.P = l.p.Sprintf("%.3f", *v.PValue)
			}
			if v.SampleNeeded != nil {
				row.SampleNeeded = l.Int(*v.SampleNeeded) + " per arm"
				if *v.SampleNeeded == 0 {
					row.SampleNeeded = "reached"
				}
			}
			ev.Rows = append(ev.Rows, row)
			armLabels = append(armLabels, v.Variant)
			arm.Values = append(arm.Values, v.Rate)
		}
		ev.Chart = Chart{ID: "experiment-" + e.Name, Title: "Recovery rate by arm of " + e.Name, Kind: HBars, Labels: armLabels,
			Series: []Series{arm}, Format: l.Percent, Max: 1}
		body.Experiments = append(body.Experiments, ev)
	}
	h.render(w, r, http.StatusOK, "policies", page{Title: "Policies and experiments", Active: "policies", L: l, Tenant: f.Tenant, Filter: &f, Body: body})
}

// --- aging -------------------------------------------------------------------

type agingBody struct {
	KPIs    []kpi
	Amount  Chart
	Buckets []agingRow
	Phases  []agingRow
}

type agingRow struct{ Label, Runs, Amount string }

func (h *Handler) aging(ctx context.Context, w http.ResponseWriter, r *http.Request, f filter, l locale) {
	a, err := h.cfg.Analytics.Aging(ctx, f.Tenant, f.Currency, h.cfg.Now())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cur := f.Currency
	body := agingBody{KPIs: []kpi{
		{"Open runs", l.Int(a.Open), "as of " + l.Time(a.At)},
		{"Amount at risk", l.Money(a.AmountAtRisk, cur), "in open runs"},
	}}
	amount := Series{Name: "Amount at risk"}
	var labels []string
	for _, b := range a.Buckets {
		label := b.Label + " days"
		labels = append(labels, label)
		amount.Values = append(amount.Values, b.AmountAtRisk.InexactFloat64())
		body.Buckets = append(body.Buckets, agingRow{label, l.Int(b.Runs), l.Money(b.AmountAtRisk, cur)})
	}
	body.Amount = Chart{ID: "aging-amount", Title: "Amount at risk by age of the open run", Kind: Bars, Labels: labels,
		Series: []Series{amount}, Format: func(v float64) string { return l.MoneyFloat(v, cur) }}
	phases := slices.Clone(a.ByPhase)
	slices.SortStableFunc(phases, func(x, y analytics.PhaseCount) int { return cmp.Compare(y.Runs, x.Runs) })
	for _, p := range phases {
		body.Phases = append(body.Phases, agingRow{plainLabel(p.Phase), l.Int(p.Runs), l.Money(p.AmountAtRisk, cur)})
	}
	h.render(w, r, http.StatusOK, "aging", page{Title: "Aging", Active: "aging", L: l, Tenant: f.Tenant, Filter: &f, Body: body})
}
