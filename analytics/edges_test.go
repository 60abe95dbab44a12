package analytics_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// TestPeriodEdgesInsideADay: the aggregates hold whole UTC days, so a
// period that starts or ends inside a day reads that day's runs one by
// one. Over the march ledger, hand-worked for each period.
func TestPeriodEdgesInsideADay(t *testing.T) {
	s := march(t)
	ctx := context.Background()
	const h = 3600.0
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     analytics.Outcomes
		// time to recovery and to resolution: median, p90 in hours
		ttr, res [2]float64
		churned  int64
		days     []time.Time // the series' points
	}{{
		// r1 (Mar 2 10:00) is before the start and r3 (Mar 10 12:00) after
		// the end; r4 (Mar 10 00:00) is in. Whole days Mar 3-9 between.
		name: "noon to morning", from: day(2, 12), to: day(10, 6),
		want: analytics.Outcomes{Runs: 3, Recovered: 2, Exhausted: 1,
			FailedRevenue: dec("145.00"), RecoveredRevenue: dec("115.00"), LostRevenue: dec("30.00")},
		// recovered r8 6 h, r2 240 h; closed also r4 504 h
		ttr: [2]float64{(6 + 240) / 2.0, 6 + 0.9*(240-6)}, res: [2]float64{240, 240 + 0.8*(504-240)},
		churned: 1, days: []time.Time{day(3), day(5), day(10)},
	}, {
		name: "within one day", from: day(10), to: day(10, 12),
		want:    analytics.Outcomes{Runs: 1, Exhausted: 1, FailedRevenue: dec("30.00"), RecoveredRevenue: dec("0"), LostRevenue: dec("30.00")},
		res:     [2]float64{504, 504},
		churned: 1, days: []time.Time{day(10)},
	}, {
		name: "one instant", from: day(10, 12), to: day(10, 12).Add(time.Microsecond), // the ledger keeps microseconds
		want: analytics.Outcomes{Runs: 1, Recovered: 1, FailedRevenue: dec("20.00"), RecoveredRevenue: dec("20.00"), LostRevenue: dec("0")},
		ttr:  [2]float64{24, 24}, res: [2]float64{24, 24},
		days: []time.Time{day(10)},
	}, {
		// Both ends inside days, with no whole day between them.
		name: "across midnight", from: day(4, 18), to: day(5, 6),
		want: analytics.Outcomes{Runs: 1, Recovered: 1, FailedRevenue: dec("15.00"), RecoveredRevenue: dec("15.00"), LostRevenue: dec("0")},
		ttr:  [2]float64{6, 6}, res: [2]float64{6, 6},
		days: []time.Time{day(5)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			q := analytics.Query{Tenant: "acme", Currency: "EUR", From: tc.from, To: tc.to}
			got, err := s.Summary(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.RecoveryRate = float64(want.Recovered) / float64(want.Recovered+want.Exhausted)
			want.RevenueRecoveryRate = want.RecoveredRevenue.Div(want.RecoveredRevenue.Add(want.LostRevenue)).InexactFloat64()
			checkOutcomes(t, "summary", got.Outcomes, want)
			if !near(got.TimeToRecovery.MedianSeconds, tc.ttr[0]*h) || !near(got.TimeToRecovery.P90Seconds, tc.ttr[1]*h) {
				t.Errorf("time to recovery median/p90 = %g/%g h, want %g/%g", got.TimeToRecovery.MedianSeconds/h, got.TimeToRecovery.P90Seconds/h, tc.ttr[0], tc.ttr[1])
			}
			if !near(got.TimeToResolution.MedianSeconds, tc.res[0]*h) || !near(got.TimeToResolution.P90Seconds, tc.res[1]*h) {
				t.Errorf("time to resolution median/p90 = %g/%g h, want %g/%g", got.TimeToResolution.MedianSeconds/h, got.TimeToResolution.P90Seconds/h, tc.res[0], tc.res[1])
			}
			if got.ChurnedRuns != tc.churned {
				t.Errorf("churned runs = %d, want %d", got.ChurnedRuns, tc.churned)
			}
			series, err := s.Series(ctx, q, analytics.Day)
			if err != nil {
				t.Fatal(err)
			}
			var days []time.Time
			var runs int64
			for _, p := range series.Points {
				days = append(days, p.Start)
				runs += p.Runs
			}
			if fmt.Sprint(days) != fmt.Sprint(tc.days) || runs != want.Runs {
				t.Errorf("series days %v with %d runs, want %v with %d", days, runs, tc.days, want.Runs)
			}
		})
	}
}

// TestPercentilesMatchSortingEveryRun: the median and p90 read from the
// duration histogram equal percentile_cont over every run of the period,
// for random ledgers and random periods: durations from under a second to
// weeks, ties, a bucket boundary split between the two ranks of an
// interpolation, and periods with edges inside days.
func TestPercentilesMatchSortingEveryRun(t *testing.T) {
	store := ledgertest.NewStore(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 29))
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var runs []seedRun
	for i := range 400 {
		opened := start.Add(time.Duration(rng.Int64N(int64(20 * 24 * time.Hour))))
		var took time.Duration
		switch rng.IntN(4) {
		case 0:
			took = time.Duration(rng.Int64N(int64(2 * time.Second))) // under and around a second
		case 1:
			took = time.Duration(1+rng.IntN(5)) * 24 * time.Hour // ties
		default:
			took = time.Duration(rng.Int64N(int64(40 * 24 * time.Hour)))
		}
		status := []string{"recovered", "recovered", "exhausted", "cancelled", "open"}[rng.IntN(5)]
		r := seedRun{id: fmt.Sprintf("p%d", i), tenant: "acme", amount: "10.00", status: status, opened: opened}
		if status != "open" {
			r.closed = opened.Add(took)
		}
		runs = append(runs, r)
	}
	seed(t, store, runs, nil, nil, nil)
	s := analytics.New(store.Pool())
	for i := range 25 {
		from := start.Add(time.Duration(rng.Int64N(int64(18*24*time.Hour))) - 24*time.Hour)
		to := from.Add(time.Duration(1 + rng.Int64N(int64(12*24*time.Hour))))
		if i%5 == 0 { // whole days
			from, to = from.Truncate(24*time.Hour), to.Truncate(24*time.Hour).Add(24*time.Hour)
		}
		q := analytics.Query{Tenant: "acme", Currency: "EUR", From: from, To: to}
		got, err := s.Summary(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var want [2][]float64
		var counts [2]int64
		if err := store.Pool().QueryRow(ctx, `SELECT
			percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY date_part('epoch', closed_at - opened_at)) FILTER (WHERE status = 'recovered'),
			percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY date_part('epoch', closed_at - opened_at)),
			count(*) FILTER (WHERE status = 'recovered'), count(*)
			FROM runs WHERE tenant = 'acme' AND status <> 'open' AND opened_at >= $1 AND opened_at < $2`, from, to).
			Scan(&want[0], &want[1], &counts[0], &counts[1]); err != nil {
			t.Fatal(err)
		}
		for j, d := range []analytics.Durations{got.TimeToRecovery, got.TimeToResolution} {
			w := want[j]
			if w == nil {
				w = []float64{0, 0}
			}
			if d.Count != counts[j] || d.MedianSeconds != w[0] || d.P90Seconds != w[1] {
				t.Errorf("[%s, %s) set %d: count %d median %v p90 %v, sorting every run gives %d, %v, %v",
					from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), j, d.Count, d.MedianSeconds, d.P90Seconds, counts[j], w[0], w[1])
			}
		}
	}
}
