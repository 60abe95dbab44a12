package forecast_test

import (
	"errors"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/forecast"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func ptr(d decimal.Decimal) *decimal.Decimal { return &d }

// The hand-computed table: 1,000 customers paying 10.00 EUR, 5% new
// customers and 5% leaving (a 20-month lifetime) each month, 10% of payments
// failing. Growth and voluntary churn cancel, so A shrinks each month by the
// unrecovered failures alone, by the factor 1 - 0.1·(1 - r):
//
//	r = 0   (none):     A = 1000, 900, 810, 729      revenue 9·A    = 9000, 8100, 7290, 6561
//	r = 0.5 (entered):  A = 1000, 950, 902.5, 857.375 revenue 9.5·A  = 9500, 9025, 8573.75, 8145.0625 -> 8145.06
//	r = 0.8 (measured): A = 1000, 980, 960.4, 941.192 revenue 9.8·A  = 9800, 9604, 9411.92, 9223.6816 -> 9223.68
//
// Over 12 months the revenues are geometric series: 9000·(1-0.9¹²)/0.1 =
// 64581.34, 9500·(1-0.95¹²)/0.05 = 87331.58 and 9800·(1-0.98¹²)/0.02 =
// 105488.81 before each month is rounded to the cent; the totals are sums of
// the rounded months, which for 0.95 lose a cent: 87331.57. Customers after
// 12 months: 1000·0.9¹² = 282.43, 1000·0.95¹² = 540.36, 1000·0.98¹² = 784.72.
func TestProjectHandComputed(t *testing.T) {
	in := forecast.Inputs{
		ActiveAccounts: dec("1000"), AverageBill: dec("10.00"), Currency: "EUR",
		MonthlyGrowth: dec("0.05"), FailedPaymentRate: dec("0.10"), LifetimeMonths: dec("20"),
		RecoveryRate: dec("0.5"), MeasuredRate: ptr(dec("0.8")),
	}
	got, err := forecast.Project(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name                  string
		customers, revenue    []string
		total, end, gain      string
		firstRecoveredRevenue string
	}{
		{"none", []string{"1000", "900", "810", "729"}, []string{"9000", "8100", "7290", "6561"}, "64581.34", "282.43", "0", "0"},
		{"entered", []string{"1000", "950", "902.5", "857.38"}, []string{"9500", "9025", "8573.75", "8145.06"}, "87331.57", "540.36", "22750.23", "500"},
		{"measured", []string{"1000", "980", "960.4", "941.19"}, []string{"9800", "9604", "9411.92", "9223.68"}, "105488.81", "784.72", "40907.47", "800"},
	}
	if len(got.Scenarios) != len(want) {
		t.Fatalf("%d scenarios, want %d", len(got.Scenarios), len(want))
	}
	for i, w := range want {
		s := got.Scenarios[i]
		if s.Name != w.name || len(s.Months) != 12 {
			t.Fatalf("scenario %d = %s with %d months, want %s with 12", i, s.Name, len(s.Months), w.name)
		}
		for m := range w.revenue {
			if !s.Months[m].ActiveCustomers.Equal(dec(w.customers[m])) || !s.Months[m].Revenue.Equal(dec(w.revenue[m])) {
				t.Errorf("%s month %d: %s customers, revenue %s; want %s, %s", w.name, m+1,
					s.Months[m].ActiveCustomers, s.Months[m].Revenue, w.customers[m], w.revenue[m])
			}
		}
		if !s.Months[0].RecoveredRevenue.Equal(dec(w.firstRecoveredRevenue)) {
			t.Errorf("%s month 1 recovered %s, want %s", w.name, s.Months[0].RecoveredRevenue, w.firstRecoveredRevenue)
		}
		if !s.TotalRevenue.Equal(dec(w.total)) || !s.EndCustomers.Equal(dec(w.end)) || !s.GainOverNone.Equal(dec(w.gain)) {
			t.Errorf("%s: total %s, end customers %s, gain %s; want %s, %s, %s", w.name,
				s.TotalRevenue, s.EndCustomers, s.GainOverNone, w.total, w.end, w.gain)
		}
	}
}

// Without a measured rate the scenario is left out; JPY rounds to whole yen.
func TestProjectWithoutMeasuredRate(t *testing.T) {
	got, err := forecast.Project(forecast.Inputs{
		ActiveAccounts: dec("3"), AverageBill: dec("999"), Currency: "JPY", MonthlyGrowth: dec("0"),
		FailedPaymentRate: dec("0.5"), LifetimeMonths: dec("1000000"), RecoveryRate: dec("0.5"), Months: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Scenarios) != 2 || len(got.Scenarios[1].Months) != 2 {
		t.Fatalf("scenarios = %+v", got.Scenarios)
	}
	// Month 1 with r = 0.5: 3·(1 - 0.25)·999 = 2247.75 -> 2248 yen.
	if r := got.Scenarios[1].Months[0].Revenue; !r.Equal(dec("2248")) {
		t.Errorf("JPY revenue %s, want 2248", r)
	}
}

func TestProjectRejects(t *testing.T) {
	base := forecast.Inputs{
		ActiveAccounts: dec("1000"), AverageBill: dec("10"), Currency: "EUR", MonthlyGrowth: dec("0.02"),
		FailedPaymentRate: dec("0.1"), LifetimeMonths: dec("24"), RecoveryRate: dec("0.5"),
	}
	tests := []struct {
		name string
		edit func(*forecast.Inputs)
	}{
		{"no accounts", func(in *forecast.Inputs) { in.ActiveAccounts = dec("0") }},
		{"negative bill", func(in *forecast.Inputs) { in.AverageBill = dec("-1") }},
		{"unknown currency", func(in *forecast.Inputs) { in.Currency = "EURO" }},
		{"failed rate above 1", func(in *forecast.Inputs) { in.FailedPaymentRate = dec("1.5") }},
		{"negative recovery", func(in *forecast.Inputs) { in.RecoveryRate = dec("-0.1") }},
		{"measured above 1", func(in *forecast.Inputs) { in.MeasuredRate = ptr(dec("2")) }},
		{"lifetime under a month", func(in *forecast.Inputs) { in.LifetimeMonths = dec("0.5") }},
		{"growth of -100%", func(in *forecast.Inputs) { in.MonthlyGrowth = dec("-1") }},
		{"too many months", func(in *forecast.Inputs) { in.Months = 121 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.edit(&in)
			if _, err := forecast.Project(in); !errors.Is(err, forecast.ErrInvalid) {
				t.Errorf("Project: %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := forecast.Project(base); err != nil {
		t.Errorf("base inputs: %v", err)
	}
}
