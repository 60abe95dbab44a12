package money

import (
	"errors"
	"testing"
)

func TestProrate(t *testing.T) {
	tests := []struct {
		charge, currency string
		period, days     int
		want             string
	}{
		{"30.00", "EUR", 30, 7, "7.00 EUR"},
		{"49.90", "EUR", 30, 7, "11.64 EUR"},   // 11.6433...
		{"10.00", "USD", 3, 1, "3.33 USD"},     // 3.333...
		{"0.05", "USD", 2, 1, "0.02 USD"},      // 0.025 -> half-even 0.02
		{"0.15", "USD", 2, 1, "0.08 USD"},      // 0.075 -> half-even 0.08
		{"1000", "JPY", 30, 7, "233 JPY"},      // 233.33...
		{"1", "JPY", 2, 1, "0 JPY"},            // 0.5 -> half-even 0
		{"3", "JPY", 2, 1, "2 JPY"},            // 1.5 -> half-even 2
		{"10.000", "BHD", 31, 10, "3.226 BHD"}, // 3.2258...
		{"49.90", "EUR", 30, 0, "0.00 EUR"},
		{"49.90", "EUR", 30, 30, "49.90 EUR"},
		{"99.99", "PLN", 28, 14, "50.00 PLN"}, // 49.995 -> half-even 50.00
	}
	for _, tt := range tests {
		got, err := Prorate(MustParse(tt.charge, tt.currency), tt.period, tt.days)
		if err != nil {
			t.Fatalf("Prorate(%s %s, %d, %d): %v", tt.charge, tt.currency, tt.period, tt.days, err)
		}
		if got.String() != tt.want {
			t.Errorf("Prorate(%s %s, %d, %d) = %s, want %s", tt.charge, tt.currency, tt.period, tt.days, got, tt.want)
		}
	}
	for _, bad := range [][2]int{{0, 0}, {30, -1}, {30, 31}} {
		if _, err := Prorate(MustParse("10", "EUR"), bad[0], bad[1]); !errors.Is(err, ErrInvalidAmount) {
			t.Errorf("Prorate(period %d, days %d) error = %v", bad[0], bad[1], err)
		}
	}
}
