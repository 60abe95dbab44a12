// Package money holds exact amounts of money: a decimal value with an ISO 4217
// currency. Floats never hold money anywhere in the platform.
package money

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/shopspring/decimal"
)

// Currency is an ISO 4217 currency and the number of digits after its decimal
// point (its minor unit).
type Currency struct {
	Code       string
	MinorUnits int32
}

// Errors callers branch on.
var (
	ErrUnknownCurrency = errors.New("unknown currency")
	ErrInvalidAmount   = errors.New("invalid amount")
	// ErrTooLarge marks an amount above a limit: the configured maximum
	// (Amount.Within) or what fits in int64 minor units (Amount.MinorUnits).
	// It is also an ErrInvalidAmount.
	ErrTooLarge = fmt.Errorf("%w: too large", ErrInvalidAmount)
)

// LookupCurrency finds an active ISO 4217 currency by its alphabetic code.
func LookupCurrency(code string) (Currency, error) {
	up := strings.ToUpper(strings.TrimSpace(code))
	digits, ok := minorUnits[up]
	if !ok || code != up {
		return Currency{}, fmt.Errorf("%w: %q is not an ISO 4217 code (use upper case, e.g. \"EUR\")", ErrUnknownCurrency, code)
	}
	return Currency{Code: up, MinorUnits: digits}, nil
}

// Amount is an exact amount in one currency.
type Amount struct {
	Value    decimal.Decimal
	Currency Currency
}

// Parse reads a positive decimal amount such as "12.50" in the given currency.
// It rejects zero, negative values, exponents and more decimals than the
// currency allows (JPY 0, EUR 2, BHD 3). It sets no upper bound: how much is
// too much is the deployment's choice (Within), and MinorUnits refuses what
// no gateway could be sent.
func Parse(value, currency string) (Amount, error) {
	cur, err := LookupCurrency(currency)
	if err != nil {
		return Amount{}, err
	}
	v := strings.TrimSpace(value)
	if v == "" {
		return Amount{}, fmt.Errorf("%w: amount is empty", ErrInvalidAmount)
	}
	if strings.ContainsAny(v, "eE") {
		return Amount{}, fmt.Errorf("%w: %q: write the amount as plain decimal digits", ErrInvalidAmount, value)
	}
	d, err := decimal.NewFromString(v)
	if err != nil {
		return Amount{}, fmt.Errorf("%w: %q is not a decimal number", ErrInvalidAmount, value)
	}
	if !d.IsPositive() {
		return Amount{}, fmt.Errorf("%w: %q must be greater than zero", ErrInvalidAmount, value)
	}
	if places := decimalPlaces(v); places > cur.MinorUnits {
		return Amount{}, fmt.Errorf("%w: %q has %d decimal places but %s allows %d", ErrInvalidAmount, value, places, cur.Code, cur.MinorUnits)
	}
	return Amount{Value: d, Currency: cur}, nil
}

// MustParse is Parse for literals in tests and fixtures.
func MustParse(value, currency string) Amount {
	a, err := Parse(value, currency)
	if err != nil {
		panic(err)
	}
	return a
}

var (
	maxInt64 = decimal.NewFromInt(math.MaxInt64)
	minInt64 = decimal.NewFromInt(math.MinInt64)
)

// MinorUnits is the amount in the currency's smallest unit (cents, yen,
// fils), as payment gateways expect it. An amount outside int64 is an
// ErrTooLarge rather than a wrapped number: a wrapped amount once reached a
// gateway as 1 cent. An amount with more decimals than the currency has
// (only possible for an Amount not made by Parse) is an ErrInvalidAmount
// rather than silently truncated.
func (a Amount) MinorUnits() (int64, error) {
	minor := a.Value.Shift(a.Currency.MinorUnits)
	if !minor.IsInteger() {
		return 0, fmt.Errorf("%w: %s has more decimals than %s allows (%d)", ErrInvalidAmount, a.Value, a.Currency.Code, a.Currency.MinorUnits)
	}
	if minor.GreaterThan(maxInt64) || minor.LessThan(minInt64) {
		return 0, fmt.Errorf("%w: %s %s is beyond what a payment gateway can be sent (%s minor units at most)",
			ErrTooLarge, a.Value, a.Currency.Code, maxInt64)
	}
	return minor.IntPart(), nil
}

// FromMinorUnits is the amount of minor units (cents, yen, fils) in cur.
func FromMinorUnits(minor int64, cur Currency) Amount {
	return Amount{Value: decimal.New(minor, -cur.MinorUnits), Currency: cur}
}

// String renders the amount with exactly the currency's decimals, e.g. "12.50 EUR".
func (a Amount) String() string {
	return a.Value.StringFixed(a.Currency.MinorUnits) + " " + a.Currency.Code
}

// Decimal renders the value with exactly the currency's decimals, e.g. "12.50".
func (a Amount) Decimal() string {
	return a.Value.StringFixed(a.Currency.MinorUnits)
}

// decimalPlaces counts the digits written after the point, trailing zeros
// included: "10.500" in EUR is refused, as the sender meant three places.
func decimalPlaces(v string) int32 {
	i := strings.IndexByte(v, '.')
	if i < 0 {
		return 0
	}
	return int32(len(v) - i - 1)
}
