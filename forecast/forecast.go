// Package forecast projects a subscription business's next months of revenue
// and active customers under three recovery rates, in the spirit of the
// recovery calculators subscription businesses use: no recovery of failed
// payments at all, the rate the merchant enters, and the rate the platform
// measured (analytics.Outcomes.RecoveryRate).
//
// # The model
//
// A is the number of active customers at the start of a month, each billed
// the average bill B once that month. With g the monthly growth (new
// customers as a share of A), L the customer lifetime in months (so 1/L of
// the customers leave of their own accord each month), f the failed-payment
// rate and r the recovery rate, month by month:
//
//	failed payments    F  = A·f
//	recovered          R  = F·r
//	revenue               = (A − F + R)·B = A·(1 − f·(1 − r))·B
//	recovered revenue     = R·B
//	next month's A'       = A + A·g − A/L − (F − R)
//
// A failed payment that is not recovered loses the customer (involuntary
// churn), so recovery compounds: the customers it keeps are billed again
// next month. With constant inputs A grows by the factor
// 1 + g − 1/L − f·(1 − r) each month.
//
// Customers are kept fractional (they are expected values) and shown to two
// decimals; money is exact decimal arithmetic, each month's amounts rounded
// half-even to the currency's minor unit, and totals are sums of the
// rounded months, so a table adds up.
package forecast

import (
	"errors"
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/money"
)

// ErrInvalid marks inputs the model cannot use.
var ErrInvalid = errors.New("forecast: invalid input")

// DefaultMonths is how many months Project covers unless told otherwise.
const DefaultMonths = 12

// MaxMonths bounds a projection.
const MaxMonths = 120

// Inputs describe the business today. Rates are fractions (0.05 is 5%).
type Inputs struct {
	ActiveAccounts    decimal.Decimal `json:"active_accounts"`
	AverageBill       decimal.Decimal `json:"average_bill"`
	Currency          string          `json:"currency"`
	MonthlyGrowth     decimal.Decimal `json:"monthly_growth"`
	FailedPaymentRate decimal.Decimal `json:"failed_payment_rate"`
	LifetimeMonths    decimal.Decimal `json:"lifetime_months"`
	// RecoveryRate is the rate the merchant enters.
	RecoveryRate decimal.Decimal `json:"recovery_rate"`
	// MeasuredRate is the rate analytics measured; nil leaves that
	// scenario out.
	MeasuredRate *decimal.Decimal `json:"measured_rate,omitempty"`
	// Months to project; DefaultMonths when zero.
	Months int `json:"months"`
}

// Validate reports, wrapping ErrInvalid, the first input the model cannot use.
func (in Inputs) Validate() error {
	one := decimal.NewFromInt(1)
	fraction := func(name string, d decimal.Decimal) error {
		if d.IsNegative() || d.GreaterThan(one) {
			return fmt.Errorf("%w: %s %s must be between 0 and 1", ErrInvalid, name, d)
		}
		return nil
	}
	switch {
	case !in.ActiveAccounts.IsPositive():
		return fmt.Errorf("%w: active accounts must be greater than 0", ErrInvalid)
	case !in.AverageBill.IsPositive():
		return fmt.Errorf("%w: the average bill must be greater than 0", ErrInvalid)
	case in.MonthlyGrowth.LessThanOrEqual(one.Neg()) || in.MonthlyGrowth.GreaterThan(one):
		return fmt.Errorf("%w: monthly growth %s must be above -1 and at most 1", ErrInvalid, in.MonthlyGrowth)
	case in.LifetimeMonths.LessThan(one):
		return fmt.Errorf("%w: customer lifetime %s must be at least 1 month", ErrInvalid, in.LifetimeMonths)
	case in.Months < 0 || in.Months > MaxMonths:
		return fmt.Errorf("%w: months %d must be between 1 and %d", ErrInvalid, in.Months, MaxMonths)
	}
	if _, err := money.LookupCurrency(in.Currency); err != nil {
		return fmt.Errorf("%w: currency: %w", ErrInvalid, err)
	}
	if err := fraction("failed-payment rate", in.FailedPaymentRate); err != nil {
		return err
	}
	if err := fraction("recovery rate", in.RecoveryRate); err != nil {
		return err
	}
	if in.MeasuredRate != nil {
		return fraction("measured recovery rate", *in.MeasuredRate)
	}
	return nil
}

// Month is one projected month.
type Month struct {
	Month int `json:"month"`
	// ActiveCustomers are billed this month (at its start).
	ActiveCustomers  decimal.Decimal `json:"active_customers"`
	FailedPayments   decimal.Decimal `json:"failed_payments"`
	Recovered        decimal.Decimal `json:"recovered"` // failed payments won back
	Revenue          decimal.Decimal `json:"revenue"`
	RecoveredRevenue decimal.Decimal `json:"recovered_revenue"`
}

// Scenario is the projection under one recovery rate.
type Scenario struct {
	Name         string          `json:"name"` // none, entered, measured
	RecoveryRate decimal.Decimal `json:"recovery_rate"`
	Months       []Month         `json:"months"`
	TotalRevenue decimal.Decimal `json:"total_revenue"`
	// TotalRecovered is the recovered revenue over all months.
	TotalRecovered decimal.Decimal `json:"total_recovered"`
	// EndCustomers is the active customers after the last month.
	EndCustomers decimal.Decimal `json:"end_customers"`
	// GainOverNone is TotalRevenue minus the no-recovery scenario's.
	GainOverNone decimal.Decimal `json:"gain_over_none"`
}

// Scenario names.
const (
	ScenarioNone     = "none"
	ScenarioEntered  = "entered"
	ScenarioMeasured = "measured"
)

// Forecast is the projection of every scenario.
type Forecast struct {
	Inputs    Inputs     `json:"inputs"`
	Scenarios []Scenario `json:"scenarios"`
}

// Project runs the model (see the package documentation) for no recovery,
// the entered rate and, when given, the measured rate.
func Project(in Inputs) (Forecast, error) {
	if err := in.Validate(); err != nil {
		return Forecast{}, err
	}
	if in.Months == 0 {
		in.Months = DefaultMonths
	}
	cur, _ := money.LookupCurrency(in.Currency) // checked by Validate
	out := Forecast{Inputs: in}
	rates := []struct {
		name string
		rate decimal.Decimal
	}{{ScenarioNone, decimal.Zero}, {ScenarioEntered, in.RecoveryRate}}
	if in.MeasuredRate != nil {
		rates = append(rates, struct {
			name string
			rate decimal.Decimal
		}{ScenarioMeasured, *in.MeasuredRate})
	}
	for _, r := range rates {
		out.Scenarios = append(out.Scenarios, project(in, r.name, r.rate, cur.MinorUnits))
	}
	for i := range out.Scenarios {
		out.Scenarios[i].GainOverNone = out.Scenarios[i].TotalRevenue.Sub(out.Scenarios[0].TotalRevenue)
	}
	return out, nil
}

// customerPlaces is how many decimals customer counts are shown with.
const customerPlaces = 2

func project(in Inputs, name string, rate decimal.Decimal, places int32) Scenario {
	s := Scenario{Name: name, RecoveryRate: rate, TotalRevenue: decimal.Zero, TotalRecovered: decimal.Zero}
	// 1/L to 20 significant places: exact for lifetimes like 20 or 25
	// months, and far below a cent otherwise.
	churn := decimal.NewFromInt(1).DivRound(in.LifetimeMonths, 20)
	active := in.ActiveAccounts
	for m := 1; m <= in.Months; m++ {
		failed := active.Mul(in.FailedPaymentRate)
		recovered := failed.Mul(rate)
		revenue := active.Sub(failed).Add(recovered).Mul(in.AverageBill).RoundBank(places)
		recRevenue := recovered.Mul(in.AverageBill).RoundBank(places)
		s.Months = append(s.Months, Month{
			Month:            m,
			ActiveCustomers:  active.RoundBank(customerPlaces),
			FailedPayments:   failed.RoundBank(customerPlaces),
			Recovered:        recovered.RoundBank(customerPlaces),
			Revenue:          revenue,
			RecoveredRevenue: recRevenue,
		})
		s.TotalRevenue = s.TotalRevenue.Add(revenue)
		s.TotalRecovered = s.TotalRecovered.Add(recRevenue)
		// Keep the unrounded count, trimmed to 20 places so the decimals do
		// not grow without bound over the months.
		active = active.Add(active.Mul(in.MonthlyGrowth)).Sub(active.Mul(churn)).Sub(failed.Sub(recovered)).Round(20)
	}
	s.EndCustomers = active.RoundBank(customerPlaces)
	return s
}
