package money

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultMaxMinor is the largest amount accepted in a currency that has no
// limit of its own: 99,999,999,999 minor units (999,999,999.99 EUR,
// 99,999,999,999 JPY, 99,999,999.999 BHD). It is far below int64 and below
// what card gateways take, and far above any subscription invoice.
const DefaultMaxMinor int64 = 99_999_999_999

// Limits caps amounts per currency, in the currency's minor units. The zero
// value caps every currency at DefaultMaxMinor. Limits are immutable once
// made, so one value can be shared.
type Limits struct {
	max map[string]int64 // by ISO 4217 code
}

// ParseLimits reads limits written as comma-separated CUR=amount pairs, the
// amount a decimal in that currency, e.g. "EUR=1000000.00,JPY=100000000".
// Currencies not named keep DefaultMaxMinor. An empty spec is the zero
// Limits.
func ParseLimits(spec string) (Limits, error) {
	l := Limits{max: map[string]int64{}}
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		code, value, ok := strings.Cut(entry, "=")
		code, value = strings.TrimSpace(code), strings.TrimSpace(value)
		if !ok || code == "" || value == "" {
			return Limits{}, fmt.Errorf("amount limit %q is not CUR=amount, e.g. EUR=1000000.00", entry)
		}
		a, err := Parse(value, code)
		if err != nil {
			return Limits{}, fmt.Errorf("amount limit %q: %w", entry, err)
		}
		minor, err := a.MinorUnits()
		if err != nil {
			return Limits{}, fmt.Errorf("amount limit %q: %w", entry, err)
		}
		if _, dup := l.max[a.Currency.Code]; dup {
			return Limits{}, fmt.Errorf("amount limit for %s is given twice", a.Currency.Code)
		}
		l.max[a.Currency.Code] = minor
	}
	return l, nil
}

// Max is the largest amount accepted in cur.
func (l Limits) Max(cur Currency) Amount {
	return FromMinorUnits(l.maxMinor(cur), cur)
}

func (l Limits) maxMinor(cur Currency) int64 {
	if m, ok := l.max[cur.Code]; ok {
		return m
	}
	return DefaultMaxMinor
}

// Within reports whether the amount is at most the limit for its currency;
// the error wraps ErrTooLarge and names the limit. Amounts beyond int64
// minor units are refused whatever the limits say.
func (a Amount) Within(l Limits) error {
	minor, err := a.MinorUnits()
	if err != nil && !errors.Is(err, ErrTooLarge) {
		return err
	}
	// Past int64 is past any limit: say which limit, not how int64 ends.
	if err != nil || minor > l.maxMinor(a.Currency) {
		return fmt.Errorf("%w: %s is above the largest amount accepted in %s, %s",
			ErrTooLarge, a, a.Currency.Code, l.Max(a.Currency))
	}
	return nil
}
