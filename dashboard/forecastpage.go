package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/forecast"
)

// forecastForm is the forecast's inputs as the form shows them: rates in
// percent, as people enter them.
type forecastForm struct {
	Accounts, Bill, Growth, Failed, Lifetime, Recovery string
	Errors                                             []string
}

// defaultForecast are the form's starting values: a mid-sized subscription
// business.
var defaultForecast = forecastForm{Accounts: "10000", Bill: "50", Growth: "2", Failed: "8", Lifetime: "24", Recovery: "30"}

type scenarioRow struct {
	Name, Rate, Revenue, Customers, Gain string
}

type monthRow struct {
	Month  string
	Values []string // revenue of each scenario
}

type forecastBody struct {
	Form      forecastForm
	Measured  string // the measured rate and what it is measured on, or why there is none
	Revenue   Chart
	Customers Chart
	Scenarios []scenarioRow
	Names     []string
	Months    []monthRow
}

var scenarioNames = map[string]string{
	"none":     "No recovery",
	"entered":  "Entered recovery rate",
	"measured": "Measured recovery rate",
}

// forecast projects 12 months of revenue and customers with no recovery,
// the rate entered in the form, and the rate the platform measured over the
// filter's period (settled runs in the currency).
func (h *Handler) forecast(ctx context.Context, w http.ResponseWriter, r *http.Request, f filter, l locale) {
	q := r.URL.Query()
	form := defaultForecast
	for _, fld := range []struct {
		name string
		to   *string
	}{{"accounts", &form.Accounts}, {"bill", &form.Bill}, {"growth", &form.Growth}, {"failed", &form.Failed}, {"lifetime", &form.Lifetime}, {"recovery", &form.Recovery}} {
		if v := strings.TrimSpace(q.Get(fld.name)); v != "" {
			*fld.to = v
		}
	}
	in := forecast.Inputs{Currency: f.Currency, Months: 12}
	parse := func(label, s string, percent bool) decimal.Decimal {
		// Both decimal separators: a French or Polish user types "2,5".
		d, err := decimal.NewFromString(strings.Replace(s, ",", ".", 1))
		if err != nil {
			form.Errors = append(form.Errors, fmt.Sprintf("%s: %q is not a number.", label, s))
			return decimal.Zero
		}
		if percent {
			d = d.Shift(-2)
		}
		return d
	}
	in.ActiveAccounts = parse("Monthly active accounts", form.Accounts, false)
	in.AverageBill = parse("Average bill", form.Bill, false)
	in.MonthlyGrowth = parse("Monthly growth", form.Growth, true)
	in.FailedPaymentRate = parse("Failed-payment rate", form.Failed, true)
	in.LifetimeMonths = parse("Customer lifetime", form.Lifetime, false)
	in.RecoveryRate = parse("Recovery rate", form.Recovery, true)

	body := forecastBody{Form: form}
	sum, err := h.cfg.Analytics.Summary(ctx, f.query())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if settled := sum.Recovered + sum.Exhausted; settled > 0 {
		rate := decimal.NewFromFloat(sum.RecoveryRate).Round(4)
		in.MeasuredRate = &rate
		body.Measured = fmt.Sprintf("%s, measured on %s settled runs in %s declined %s to %s", l.Percent(sum.RecoveryRate), l.Int(settled), f.Currency, f.FromDate(), f.ToDate())
	} else {
		body.Measured = fmt.Sprintf("none yet: no run in %s declined %s to %s has settled", f.Currency, f.FromDate(), f.ToDate())
	}
	status := http.StatusOK
	if len(form.Errors) == 0 {
		fc, err := forecast.Project(in)
		switch {
		case errors.Is(err, forecast.ErrInvalid):
			form.Errors = append(form.Errors, strings.TrimPrefix(err.Error(), "forecast: "))
		case err != nil:
			h.fail(w, r, err)
			return
		default:
			body.fill(l, f.Currency, fc)
		}
	}
	if len(form.Errors) > 0 {
		status = http.StatusBadRequest
		body.Form = form
	}
	h.render(w, r, status, "forecast", page{Title: "Revenue forecast", Active: "forecast", L: l, Tenant: f.Tenant, Filter: &f, Body: body})
}

func (b *forecastBody) fill(l locale, cur string, fc forecast.Forecast) {
	var labels []string
	if len(fc.Scenarios) > 0 {
		for _, m := range fc.Scenarios[0].Months {
			labels = append(labels, fmt.Sprintf("M%d", m.Month))
			b.Months = append(b.Months, monthRow{Month: fmt.Sprintf("Month %d", m.Month)})
		}
	}
	var revenue, customers []Series
	for _, s := range fc.Scenarios {
		name := scenarioNames[s.Name]
		if name == "" {
			name = s.Name
		}
		b.Names = append(b.Names, name)
		rev, cust := Series{Name: name}, Series{Name: name}
		for i, m := range s.Months {
			rev.Values = append(rev.Values, m.Revenue.InexactFloat64())
			cust.Values = append(cust.Values, m.ActiveCustomers.InexactFloat64())
			if i < len(b.Months) {
				b.Months[i].Values = append(b.Months[i].Values, l.Money(m.Revenue, cur))
			}
		}
		revenue, customers = append(revenue, rev), append(customers, cust)
		rate, _ := s.RecoveryRate.Float64()
		b.Scenarios = append(b.Scenarios, scenarioRow{Name: name, Rate: l.Percent(rate), Revenue: l.Money(s.TotalRevenue, cur),
			Customers: l.Int(s.EndCustomers.Round(0).IntPart()), Gain: l.Money(s.GainOverNone, cur)})
	}
	b.Revenue = Chart{ID: "forecast-revenue", Title: "Monthly revenue, next 12 months", Kind: Lines, Labels: labels, Series: revenue, Fit: true,
		Format: func(v float64) string { return l.MoneyFloat(v, cur) }}
	b.Customers = Chart{ID: "forecast-customers", Title: "Active customers, next 12 months", Kind: Lines, Labels: labels, Series: customers, Fit: true,
		Format: func(v float64) string { return l.Int(int64(v)) }}
}
