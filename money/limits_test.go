package money

import (
	"errors"
	"math"
	"testing"
)

// The amounts that used to wrap silently on their way to the gateway.
func TestMinorUnitsRefusesOverflow(t *testing.T) {
	tests := []struct {
		value, currency string
		want            int64
		wantErr         error
	}{
		{"49.90", "EUR", 4990, nil},
		{"1200", "JPY", 1200, nil},
		{"1.234", "BHD", 1234, nil},
		{"92233720368547758.07", "EUR", math.MaxInt64, nil},
		// 2^64 + 17 cents: wrapped to 1 minor unit.
		{"184467440737095516.17", "EUR", 0, ErrTooLarge},
		// wrapped to 1590897978359414784.
		{"100000000000000000000000.00", "EUR", 0, ErrTooLarge},
		// MaxInt64 + 1 cent: wrapped negative.
		{"92233720368547758.08", "EUR", 0, ErrTooLarge},
		{"9223372036854775808", "JPY", 0, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.value+"_"+tt.currency, func(t *testing.T) {
			got, err := MustParse(tt.value, tt.currency).MinorUnits()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("MinorUnits() error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, ErrInvalidAmount) {
					t.Errorf("error %v does not wrap ErrInvalidAmount", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("MinorUnits() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestMinorUnitsRefusesFractions(t *testing.T) {
	a := Amount{Value: MustParse("1.234", "BHD").Value, Currency: Currency{Code: "EUR", MinorUnits: 2}}
	if _, err := a.MinorUnits(); !errors.Is(err, ErrInvalidAmount) {
		t.Fatalf("MinorUnits() of 1.234 EUR error = %v, want ErrInvalidAmount", err)
	}
}

func TestWithin(t *testing.T) {
	configured, err := ParseLimits("EUR=1000000.00, JPY=100000000")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		limits          Limits
		value, currency string
		wantErr         bool
	}{
		{"default limit, at it", Limits{}, "999999999.99", "EUR", false},
		{"default limit, one cent over", Limits{}, "1000000000.00", "EUR", true},
		{"default limit in JPY is in yen", Limits{}, "99999999999", "JPY", false},
		{"default limit in JPY, one yen over", Limits{}, "100000000000", "JPY", true},
		{"default limit in BHD", Limits{}, "99999999.999", "BHD", false},
		{"default limit in BHD, one fils over", Limits{}, "100000000.000", "BHD", true},
		{"wraps int64 to 1 minor unit", Limits{}, "184467440737095516.17", "EUR", true},
		{"wraps int64 to a large value", Limits{}, "100000000000000000000000.00", "EUR", true},
		{"wraps int64 negative", Limits{}, "92233720368547758.08", "EUR", true},
		{"configured EUR, at it", configured, "1000000.00", "EUR", false},
		{"configured EUR, over", configured, "1000000.01", "EUR", true},
		{"configured JPY, at it", configured, "100000000", "JPY", false},
		{"configured JPY, over", configured, "100000001", "JPY", true},
		{"unconfigured USD keeps the default", configured, "999999999.99", "USD", false},
		{"unconfigured USD over the default", configured, "1000000000.00", "USD", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := MustParse(tt.value, tt.currency).Within(tt.limits)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Within = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && (!errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrInvalidAmount)) {
				t.Errorf("error %v does not wrap ErrTooLarge and ErrInvalidAmount", err)
			}
		})
	}
}

func TestLimitsMax(t *testing.T) {
	l, err := ParseLimits("EUR=1000000.00")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Max(MustParse("1", "EUR").Currency).String(); got != "1000000.00 EUR" {
		t.Errorf("Max(EUR) = %s", got)
	}
	if got := l.Max(MustParse("1", "KWD").Currency).String(); got != "99999999.999 KWD" {
		t.Errorf("Max(KWD) = %s", got)
	}
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr bool
	}{
		{"", false},
		{"EUR=1000000.00,JPY=100000000", false},
		{" EUR = 5.00 , ", false},
		{"EUR", true},
		{"EUR=", true},
		{"=5", true},
		{"XYZ=5", true},
		{"eur=5", true},
		{"EUR=0", true},
		{"EUR=-5", true},
		{"EUR=1.234", true},
		{"EUR=1e9", true},
		{"EUR=5,EUR=6", true},
		{"EUR=92233720368547758.08", true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := ParseLimits(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseLimits(%q) = %v, want error %v", tt.spec, err, tt.wantErr)
			}
		})
	}
}

func TestFromMinorUnits(t *testing.T) {
	tests := []struct {
		minor    int64
		currency string
		want     string
	}{
		{4990, "EUR", "49.90 EUR"},
		{1200, "JPY", "1200 JPY"},
		{1234, "BHD", "1.234 BHD"},
	}
	for _, tt := range tests {
		cur, err := LookupCurrency(tt.currency)
		if err != nil {
			t.Fatal(err)
		}
		a := FromMinorUnits(tt.minor, cur)
		if a.String() != tt.want {
			t.Errorf("FromMinorUnits(%d, %s) = %s, want %s", tt.minor, tt.currency, a, tt.want)
		}
		if back, err := a.MinorUnits(); err != nil || back != tt.minor {
			t.Errorf("round trip = %d, %v", back, err)
		}
	}
}
