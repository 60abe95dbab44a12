// Package forecast projects a subscription business's next months of revenue
// and active customers under three recovery rates: none, the rate the
// merchant enters, and the rate the platform measured.
package forecast

import (
	"errors"

	"github.com/shopspring/decimal"
)

// ErrInvalid marks inputs the model cannot use.
var ErrInvalid = errors.New("forecast: invalid input")

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
	// Months to project; 12 when zero.
	Months int `json:"months"`
}

// Month is one projected month.
type Month struct {
	Month            int             `json:"month"`
	ActiveCustomers  decimal.Decimal `json:"active_customers"` // at the start of the month, billed this month
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
	// EndCustomers is the active customers after the last month.
	EndCustomers decimal.Decimal `json:"end_customers"`
	// GainOverNone is TotalRevenue minus the no-recovery scenario's.
	GainOverNone decimal.Decimal `json:"gain_over_none"`
}

// Forecast is the projection of every scenario.
type Forecast struct {
	Inputs    Inputs     `json:"inputs"`
	Scenarios []Scenario `json:"scenarios"`
}

// Project runs the model; see the package documentation.
func Project(in Inputs) (Forecast, error) {
	return Forecast{}, errors.New("forecast: not implemented yet")
}
