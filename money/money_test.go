package money

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		value, currency string
		wantErr         error
		wantMinor       int64
		wantString      string
	}{
		{"12.50", "EUR", nil, 1250, "12.50 EUR"},
		{"12", "USD", nil, 1200, "12.00 USD"},
		{"1200", "JPY", nil, 1200, "1200 JPY"},
		{"1.234", "BHD", nil, 1234, "1.234 BHD"},
		{"0.01", "USD", nil, 1, "0.01 USD"},
		{"99999999.99", "USD", nil, 9999999999, "99999999.99 USD"},
		{"0", "USD", ErrInvalidAmount, 0, ""},
		{"-5.00", "USD", ErrInvalidAmount, 0, ""},
		{"12.345", "EUR", ErrInvalidAmount, 0, ""},
		{"12.5", "JPY", ErrInvalidAmount, 0, ""},
		{"1e3", "USD", ErrInvalidAmount, 0, ""},
		{"abc", "USD", ErrInvalidAmount, 0, ""},
		{"", "USD", ErrInvalidAmount, 0, ""},
		{"10.00", "XYZ", ErrUnknownCurrency, 0, ""},
		{"10.00", "eur", ErrUnknownCurrency, 0, ""},
		{"10.00", "", ErrUnknownCurrency, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.value+"_"+tt.currency, func(t *testing.T) {
			a, err := Parse(tt.value, tt.currency)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse(%q, %q) error = %v, want %v", tt.value, tt.currency, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", tt.value, tt.currency, err)
			}
			if got, err := a.MinorUnits(); err != nil || got != tt.wantMinor {
				t.Errorf("MinorUnits() = %d, %v, want %d", got, err, tt.wantMinor)
			}
			if got := a.String(); got != tt.wantString {
				t.Errorf("String() = %q, want %q", got, tt.wantString)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"12.50", "0", "-1", "1e9", "0.001", "  7 ", "184467440737095516.17", "92233720368547758.08"} {
		f.Add(s, "EUR")
	}
	f.Fuzz(func(t *testing.T, value, currency string) {
		a, err := Parse(value, currency)
		if err != nil {
			return
		}
		if !a.Value.IsPositive() {
			t.Fatalf("accepted non-positive amount %q", value)
		}
		if a.Value.Exponent() < -a.Currency.MinorUnits && !a.Value.Equal(a.Value.Round(a.Currency.MinorUnits)) {
			t.Fatalf("accepted %q with more decimals than %s allows", value, a.Currency.Code)
		}
		// Minor units either round-trip exactly or are refused; they never wrap.
		if minor, err := a.MinorUnits(); err == nil && !FromMinorUnits(minor, a.Currency).Value.Equal(a.Value) {
			t.Fatalf("%q: %d minor units do not round-trip", value, minor)
		}
	})
}
