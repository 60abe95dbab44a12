package money

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// Prorate is the service credit for days of a billing period the customer
// could not use: daily rate = period charge / days in period, credit = daily
// rate * days, rounded half-even to the currency's minor unit. The division
// is done last so the daily rate is never rounded on its own.
func Prorate(periodCharge Amount, daysInPeriod, days int) (Amount, error) {
	if daysInPeriod < 1 {
		return Amount{}, fmt.Errorf("%w: a billing period has at least one day, got %d", ErrInvalidAmount, daysInPeriod)
	}
	if days < 0 || days > daysInPeriod {
		return Amount{}, fmt.Errorf("%w: %d credited days do not fit a %d-day period", ErrInvalidAmount, days, daysInPeriod)
	}
	credit := periodCharge.Value.Mul(decimal.NewFromInt(int64(days))).
		DivRound(decimal.NewFromInt(int64(daysInPeriod)), periodCharge.Currency.MinorUnits+8).
		RoundBank(periodCharge.Currency.MinorUnits)
	return Amount{Value: credit, Currency: periodCharge.Currency}, nil
}
