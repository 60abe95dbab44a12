package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/forecast"
	"github.com/dunningco/dunning/money"
)

// Analytics answers the recovery analytics; *analytics.Store implements it.
type Analytics interface {
	Summary(ctx context.Context, q analytics.Query) (analytics.Summary, error)
	Series(ctx context.Context, q analytics.Query, interval analytics.Granularity) (analytics.Series, error)
	Breakdown(ctx context.Context, q analytics.Query, by analytics.Dimension) (analytics.Breakdown, error)
	Methods(ctx context.Context, q analytics.Query) (analytics.Methods, error)
	Aging(ctx context.Context, tenant, currency string, at time.Time) (analytics.Aging, error)
	Experiments(ctx context.Context, q analytics.Query, control string) (analytics.Experiments, error)
}

var _ Analytics = (*analytics.Store)(nil)

// WithAnalytics turns on GET /v1/analytics/... (read scope; the key's own
// tenant unless an admin key names one with ?tenant=).
func WithAnalytics(a Analytics) Option {
	return func(h *handler) { h.analytics = a }
}

// periodParams are the parameters of every period endpoint.
var periodParams = []string{"tenant", "currency", "from", "to"}

// registerAnalytics adds the analytics routes when WithAnalytics is set.
//
//	GET /v1/analytics/summary?currency=EUR&from=2026-03-01&to=2026-03-31
//	GET /v1/analytics/series?...&interval=day|week|month
//	GET /v1/analytics/breakdown?...&by=decline_category|decline_code|gateway|card_network|policy|variant
//	GET /v1/analytics/methods?...
//	GET /v1/analytics/experiments?...&control=<variant>
//	GET /v1/analytics/aging?currency=EUR&at=<RFC 3339>
//	GET /v1/analytics/forecast?currency=EUR&accounts=...&bill=...&growth=...&failed_rate=...&lifetime=...&recovery_rate=...
func (h *handler) registerAnalytics(route func(method, path string, fn http.HandlerFunc)) {
	if h.analytics == nil {
		return
	}
	route(http.MethodGet, "/v1/analytics/summary", h.analyticsPeriod(nil, func(ctx context.Context, q analytics.Query, _ url.Values) (any, error) {
		return h.analytics.Summary(ctx, q)
	}))
	route(http.MethodGet, "/v1/analytics/series", h.analyticsPeriod([]string{"interval"}, func(ctx context.Context, q analytics.Query, v url.Values) (any, error) {
		interval := analytics.Week
		if s := v.Get("interval"); s != "" {
			var err error
			if interval, err = analytics.ParseGranularity(s); err != nil {
				return nil, paramError{"interval", err}
			}
		}
		return h.analytics.Series(ctx, q, interval)
	}))
	route(http.MethodGet, "/v1/analytics/breakdown", h.analyticsPeriod([]string{"by"}, func(ctx context.Context, q analytics.Query, v url.Values) (any, error) {
		by, err := analytics.ParseDimension(v.Get("by"))
		if err != nil {
			return nil, paramError{"by", err}
		}
		return h.analytics.Breakdown(ctx, q, by)
	}))
	route(http.MethodGet, "/v1/analytics/methods", h.analyticsPeriod(nil, func(ctx context.Context, q analytics.Query, _ url.Values) (any, error) {
		return h.analytics.Methods(ctx, q)
	}))
	route(http.MethodGet, "/v1/analytics/experiments", h.analyticsPeriod([]string{"control"}, func(ctx context.Context, q analytics.Query, v url.Values) (any, error) {
		return h.analytics.Experiments(ctx, q, v.Get("control"))
	}))
	route(http.MethodGet, "/v1/analytics/aging", h.analyticsAging)
	route(http.MethodGet, "/v1/analytics/forecast", h.analyticsForecast)
}

// paramError is a query parameter's value the analytics refused.
type paramError struct {
	param string
	err   error
}

func (e paramError) Error() string { return e.param + ": " + e.err.Error() }
func (e paramError) Unwrap() error { return e.err }

// analyticsParams checks the query names only known parameters, each once,
// and resolves the tenant: the key's own, or the one an admin key names.
func analyticsParams(w http.ResponseWriter, r *http.Request, known []string) (url.Values, string, bool) {
	v := r.URL.Query()
	var problems []FieldProblem
	for name, vals := range v {
		switch {
		case !slices.Contains(known, name):
			problems = append(problems, paramField(name, fmt.Sprintf("unknown parameter; this endpoint takes %s", strings.Join(known, ", "))))
		case len(vals) > 1:
			problems = append(problems, paramField(name, "given more than once"))
		}
	}
	if len(problems) > 0 {
		problems = sortedFields(problems)
		writeError(w, http.StatusBadRequest, (&QueryError{Problems: problems}).Error(), problems...)
		return nil, "", false
	}
	tenant := fillTenant(r, v.Get("tenant"))
	if tenant == "" {
		writeError(w, http.StatusUnprocessableEntity, "tenant: an admin key must name the tenant", paramField("tenant", "required with an admin key"))
		return nil, "", false
	}
	if !allowTenant(w, r, tenant, paramField("tenant", "")) {
		return nil, "", false
	}
	return v, tenant, true
}

// analyticsPeriod serves an endpoint over a period: it parses tenant,
// currency, from and to (plus extra parameters), runs answer and writes its
// result.
func (h *handler) analyticsPeriod(extra []string, answer func(context.Context, analytics.Query, url.Values) (any, error)) http.HandlerFunc {
	known := append(slices.Clone(periodParams), extra...)
	return func(w http.ResponseWriter, r *http.Request) {
		v, tenant, ok := analyticsParams(w, r, known)
		if !ok {
			return
		}
		q := analytics.Query{Tenant: tenant, Currency: v.Get("currency")}
		if !checkCurrency(w, q.Currency) {
			return
		}
		var err error
		if q.From, q.To, err = analytics.ParsePeriod(v.Get("from"), v.Get("to"), time.Now()); err != nil {
			param := "from"
			if berr, ok := errors.AsType[*analytics.BoundError](err); ok {
				param = berr.Bound
			}
			writeError(w, http.StatusUnprocessableEntity, err.Error(), paramField(param, err.Error()))
			return
		}
		if err := q.Validate(); err != nil {
			writeError(w, http.StatusUnprocessableEntity, err.Error(), paramField("from", err.Error()))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
		defer cancel()
		out, err := answer(ctx, q, v)
		h.writeAnalytics(w, r, out, err)
	}
}

// checkCurrency answers 422 unless c is an ISO 4217 code.
func checkCurrency(w http.ResponseWriter, c string) bool {
	if c == "" {
		writeError(w, http.StatusUnprocessableEntity, "currency: required (amounts of different currencies are never added up)",
			paramField("currency", "required, e.g. EUR"))
		return false
	}
	if _, err := money.LookupCurrency(c); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "currency: "+err.Error(), paramField("currency", err.Error()))
		return false
	}
	return true
}

func (h *handler) writeAnalytics(w http.ResponseWriter, r *http.Request, out any, err error) {
	var perr paramError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, out)
	case errors.As(err, &perr):
		writeError(w, http.StatusUnprocessableEntity, perr.Error(), paramField(perr.param, perr.err.Error()))
	case errors.Is(err, analytics.ErrInvalid):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		h.ledgerFailed(w, r, "analytics", err)
	}
}

func (h *handler) analyticsAging(w http.ResponseWriter, r *http.Request) {
	v, tenant, ok := analyticsParams(w, r, []string{"tenant", "currency", "at"})
	if !ok {
		return
	}
	currency := v.Get("currency")
	if !checkCurrency(w, currency) {
		return
	}
	var at time.Time
	if s := v.Get("at"); s != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, s); err != nil {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("at: %q is not an RFC 3339 time", s),
				paramField("at", "an RFC 3339 time, e.g. 2026-03-01T00:00:00Z"))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	out, err := h.analytics.Aging(ctx, tenant, currency, at)
	h.writeAnalytics(w, r, out, err)
}

// forecastParams are the forecast's inputs; the measured rate comes from
// the summary of the period (from, to; the last 30 days by default).
var forecastParams = []string{"tenant", "currency", "from", "to", "accounts", "bill", "growth", "failed_rate", "lifetime", "recovery_rate", "months"}

func (h *handler) analyticsForecast(w http.ResponseWriter, r *http.Request) {
	v, tenant, ok := analyticsParams(w, r, forecastParams)
	if !ok {
		return
	}
	in := forecast.Inputs{Currency: v.Get("currency")}
	if !checkCurrency(w, in.Currency) {
		return
	}
	var problems []FieldProblem
	number := func(name string, into *decimal.Decimal, required bool) {
		s := v.Get(name)
		if s == "" {
			if required {
				problems = append(problems, paramField(name, "required"))
			}
			return
		}
		d, err := decimal.NewFromString(s)
		if err != nil || strings.ContainsAny(s, "eE") {
			problems = append(problems, paramField(name, fmt.Sprintf("%q is not a decimal number", s)))
			return
		}
		*into = d
	}
	var months decimal.Decimal
	number("accounts", &in.ActiveAccounts, true)
	number("bill", &in.AverageBill, true)
	number("growth", &in.MonthlyGrowth, false)
	number("failed_rate", &in.FailedPaymentRate, true)
	number("lifetime", &in.LifetimeMonths, true)
	number("recovery_rate", &in.RecoveryRate, true)
	number("months", &months, false)
	if !months.IsInteger() || months.IsNegative() || months.GreaterThan(decimal.NewFromInt(forecast.MaxMonths)) {
		problems = append(problems, paramField("months", fmt.Sprintf("a whole number of months up to %d", forecast.MaxMonths)))
	}
	if len(problems) > 0 {
		problems = sortedFields(problems)
		writeError(w, http.StatusUnprocessableEntity, (&QueryError{Problems: problems}).Error(), problems...)
		return
	}
	in.Months = int(months.IntPart())
	if err := in.Validate(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	q := analytics.Query{Tenant: tenant, Currency: in.Currency}
	var err error
	if q.From, q.To, err = analytics.ParsePeriod(v.Get("from"), v.Get("to"), time.Now()); err == nil {
		err = q.Validate()
	}
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error(), paramField("from", err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	sum, err := h.analytics.Summary(ctx, q)
	if err != nil {
		h.writeAnalytics(w, r, nil, err)
		return
	}
	// Without settled runs nothing was measured: that scenario is left out
	// rather than shown as a rate of 0.
	if sum.Recovered+sum.Exhausted > 0 {
		rate := decimal.NewFromInt(sum.Recovered).DivRound(decimal.NewFromInt(sum.Recovered+sum.Exhausted), 6)
		in.MeasuredRate = &rate
	}
	out, err := forecast.Project(in)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ForecastAnswer{Forecast: out, MeasuredOver: q, Measured: sum.Outcomes})
}

// ForecastAnswer is the forecast with the period its measured rate comes
// from.
type ForecastAnswer struct {
	forecast.Forecast
	MeasuredOver analytics.Query    `json:"measured_over"`
	Measured     analytics.Outcomes `json:"measured"`
}
