package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/forecast"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
)

// analyticsReports are what `dunning analytics -report` prints.
var analyticsReports = []string{"all", "summary", "series", "breakdown", "methods", "experiments", "aging"}

// analyticsCmd prints recovery analytics read straight from the ledger
// (DATABASE_URL): the same figures as GET /v1/analytics/..., for one tenant.
func (a *app) analyticsCmd(ctx context.Context, args []string) error {
	fs := a.newFlagSet("analytics", "-tenant T -currency CUR [-from DATE] [-to DATE] [-report R] [-format text|json]")
	tenant := fs.String("tenant", "", "tenant (required)")
	currency := fs.String("currency", "", "ISO 4217 currency of the runs, e.g. EUR (required)")
	from := fs.String("from", "", "first day (YYYY-MM-DD) or RFC 3339 time of the declines (default 30 days before -to)")
	to := fs.String("to", "", "last day (YYYY-MM-DD, included) or RFC 3339 time (excluded) of the declines (default now)")
	report := fs.String("report", "all", "what to print: "+strings.Join(analyticsReports, ", "))
	interval := fs.String("interval", "week", "series: day, week or month of the decline")
	by := fs.String("by", string(analytics.ByDeclineCategory), "breakdown: one of "+dimensionNames())
	control := fs.String("control", "", "experiments: the control arm (default control, else default, else the largest)")
	format := fs.String("format", "text", "text or json")
	if err := parse(fs, args, "tenant", "currency"); err != nil {
		return err
	}
	if !slices.Contains(analyticsReports, *report) {
		return usagef("-report %q is not one of %s", *report, strings.Join(analyticsReports, ", "))
	}
	if *format != "text" && *format != "json" {
		return usagef("-format %q is not text or json", *format)
	}
	g, err := analytics.ParseGranularity(*interval)
	if err != nil {
		return usagef("-interval: %v", err)
	}
	dim, err := analytics.ParseDimension(*by)
	if err != nil {
		return usagef("-by: %v", err)
	}
	q := analytics.Query{Tenant: *tenant, Currency: *currency}
	if q.From, q.To, err = analytics.ParsePeriod(*from, *to, time.Now()); err != nil {
		return usagef("%v", err)
	}
	if err := q.Validate(); err != nil {
		return usagef("%v", err)
	}
	store, err := a.openLedger(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	s := analytics.New(store.Pool())

	want := func(r string) bool { return *report == "all" || *report == r }
	type section struct {
		name  string
		fetch func() (any, error)
		print func(io.Writer, any)
	}
	sections := []section{
		{"summary", func() (any, error) { return s.Summary(ctx, q) }, func(w io.Writer, v any) { printSummary(w, v.(analytics.Summary)) }},
		{"series", func() (any, error) { return s.Series(ctx, q, g) }, func(w io.Writer, v any) { printSeries(w, v.(analytics.Series)) }},
		{"breakdown", func() (any, error) { return s.Breakdown(ctx, q, dim) }, func(w io.Writer, v any) { printBreakdown(w, v.(analytics.Breakdown)) }},
		{"methods", func() (any, error) { return s.Methods(ctx, q) }, func(w io.Writer, v any) { printMethods(w, v.(analytics.Methods)) }},
		{"experiments", func() (any, error) { return s.Experiments(ctx, q, *control) }, func(w io.Writer, v any) { printExperiments(w, v.(analytics.Experiments)) }},
		{"aging", func() (any, error) { return s.Aging(ctx, q.Tenant, q.Currency, time.Time{}) }, func(w io.Writer, v any) { printAging(w, v.(analytics.Aging)) }},
	}
	all := map[string]any{}
	for _, sec := range sections {
		if !want(sec.name) {
			continue
		}
		v, err := sec.fetch()
		if err != nil {
			return err
		}
		if *format == "json" {
			all[sec.name] = v
			continue
		}
		sec.print(a.stdout, v)
	}
	if *format == "json" {
		if *report != "all" {
			return a.printJSON(all[*report])
		}
		return a.printJSON(all)
	}
	return nil
}

// openLedger opens the ledger at DATABASE_URL (else the local default).
func (a *app) openLedger(ctx context.Context) (*ledger.Store, error) {
	dbURL := a.getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = ledger.DefaultURL
	}
	store, err := ledger.Open(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("open the ledger at DATABASE_URL: %w", err)
	}
	return store, nil
}

func dimensionNames() string {
	names := make([]string, len(analytics.Dimensions))
	for i, d := range analytics.Dimensions {
		names[i] = string(d)
	}
	return strings.Join(names, ", ")
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// days shows seconds as days with one decimal.
func days(secs float64) string { return fmt.Sprintf("%.1f d", secs/86400) }

func printSummary(w io.Writer, s analytics.Summary) {
	q := s.Query
	fmt.Fprintf(w, "Recovery of %s's %s declines from %s to %s\n\n", q.Tenant, q.Currency,
		q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "runs\t%d (open %d, recovered %d, exhausted %d, cancelled %d)\n", s.Runs, s.Open, s.Recovered, s.Exhausted, s.Cancelled)
	fmt.Fprintf(tw, "recovery rate\t%s of settled runs, %s of settled revenue\n", pct(s.RecoveryRate), pct(s.RevenueRecoveryRate))
	fmt.Fprintf(tw, "failed revenue\t%s %s\n", s.FailedRevenue, q.Currency)
	fmt.Fprintf(tw, "recovered revenue\t%s %s (lost %s)\n", s.RecoveredRevenue, q.Currency, s.LostRevenue)
	fmt.Fprintf(tw, "time to recovery\tmedian %s, p90 %s\n", days(s.TimeToRecovery.MedianSeconds), days(s.TimeToRecovery.P90Seconds))
	fmt.Fprintf(tw, "time to resolution\taverage %s\n", days(s.TimeToResolution.MeanSeconds))
	fmt.Fprintf(tw, "attempts per recovery\t%.2f\n", s.AttemptsPerRecovery)
	fmt.Fprintf(tw, "revenue per attempt\t%s %s\n", s.RevenuePerAttempt, q.Currency)
	fmt.Fprintf(tw, "messages per recovery\t%.2f\n", s.MessagesPerRecovery)
	fmt.Fprintf(tw, "incremental revenue per recovered attempt\t%s %s (%d charges won %s)\n",
		s.IncrementalRevenuePerRecoveredAttempt, q.Currency, s.RecoveredByCharge, s.RecoveredByChargeRevenue)
	fmt.Fprintf(tw, "involuntary churn\t%s (%d of %d exhausted runs cancelled within 30 days)\n", pct(s.InvoluntaryChurn), s.ChurnedRuns, s.Exhausted)
	_ = tw.Flush()
	fmt.Fprintln(w)
}

func outcomeHeader(tw io.Writer, first string) {
	fmt.Fprintf(tw, "%s\truns\trecovered\texhausted\topen\trate\tfailed\trecovered revenue\n", first)
}

func outcomeRow(tw io.Writer, first string, o analytics.Outcomes) {
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", first, o.Runs, o.Recovered, o.Exhausted, o.Open,
		pct(o.RecoveryRate), o.FailedRevenue, o.RecoveredRevenue)
}

func printSeries(w io.Writer, s analytics.Series) {
	fmt.Fprintf(w, "By %s of decline\n", s.Interval)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	outcomeHeader(tw, string(s.Interval))
	for _, p := range s.Points {
		outcomeRow(tw, p.Start.Format(time.DateOnly), p.Outcomes)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

func printBreakdown(w io.Writer, b analytics.Breakdown) {
	fmt.Fprintf(w, "By %s\n", b.By)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	outcomeHeader(tw, string(b.By))
	for _, g := range b.Groups {
		key := g.Key
		if key == "" {
			key = "(not recorded)"
		}
		outcomeRow(tw, key, g.Outcomes)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

func printMethods(w io.Writer, m analytics.Methods) {
	fmt.Fprintf(w, "How %d runs were recovered\n", m.Recovered)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\trecovered\tshare\trevenue")
	for _, c := range m.ByMethod {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.Method, c.Recovered, pct(c.Share), c.Revenue)
	}
	fmt.Fprintln(tw, "attempt\trecovered\tshare\trevenue")
	for _, c := range m.ByAttempt {
		name := fmt.Sprintf("#%d", c.Attempt)
		if c.Attempt == 0 {
			name = "none of ours"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, c.Recovered, pct(c.Share), c.Revenue)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

func printExperiments(w io.Writer, e analytics.Experiments) {
	if len(e.Experiments) == 0 {
		fmt.Fprintln(w, "Experiments: none with runs in the period")
		fmt.Fprintln(w)
		return
	}
	for _, x := range e.Experiments {
		fmt.Fprintf(w, "Experiment %s (control %s)\n", x.Name, x.Control)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "variant\tsettled\trecovered\trate\t95% CI\tz\tp\tmore runs needed")
		for _, v := range x.Variants {
			z, p, need := "-", "-", "-"
			if v.Z != nil {
				z, p = fmt.Sprintf("%.2f", *v.Z), fmt.Sprintf("%.4f", *v.PValue)
				if v.Significant {
					p += " *"
				}
			}
			if v.SampleNeeded != nil {
				need = fmt.Sprintf("%d (of %d per arm)", *v.SampleNeeded, *v.SamplePerArm)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s-%s\t%s\t%s\t%s\n", v.Variant, v.Settled, v.Recovered, pct(v.Rate),
				pct(v.CILow), pct(v.CIHigh), z, p, need)
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
}

func printAging(w io.Writer, ag analytics.Aging) {
	fmt.Fprintf(w, "Open runs at %s: %d, %s %s at risk\n", ag.At.Format(time.RFC3339), ag.Open, ag.AmountAtRisk, ag.Currency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "age (days)\truns\tat risk")
	for _, b := range ag.Buckets {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", b.Label, b.Runs, b.AmountAtRisk)
	}
	fmt.Fprintln(tw, "phase\truns\tat risk")
	for _, p := range ag.ByPhase {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", p.Phase, p.Runs, p.AmountAtRisk)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

// forecastCmd projects revenue with no recovery, the entered rate and the
// measured one: -measured-rate, or the ledger's rate for -tenant over the
// period.
func (a *app) forecastCmd(ctx context.Context, args []string) error {
	fs := a.newFlagSet("forecast", "-accounts N -bill AMOUNT -currency CUR -failed-rate F -lifetime MONTHS -recovery-rate R [-growth G] [-measured-rate R | -tenant T [-from DATE] [-to DATE]] [-months N] [-format text|json]")
	accounts := fs.String("accounts", "", "monthly active accounts (required)")
	bill := fs.String("bill", "", "average monthly bill, e.g. 29.90 (required)")
	currency := fs.String("currency", "", "ISO 4217 currency of the bill (required)")
	growth := fs.String("growth", "0", "monthly growth: new accounts a month as a fraction of active ones, e.g. 0.03")
	failed := fs.String("failed-rate", "", "share of monthly payments that fail, e.g. 0.08 (required)")
	lifetime := fs.String("lifetime", "", "average customer lifetime in months (required)")
	recovery := fs.String("recovery-rate", "", "the recovery rate to compare, e.g. 0.5 (required)")
	measured := fs.String("measured-rate", "", "the measured recovery rate; default: measured from the ledger for -tenant")
	tenant := fs.String("tenant", "", "measure the recovery rate of this tenant's runs in -currency (DATABASE_URL)")
	from := fs.String("from", "", "first day of the measured declines (default 30 days before -to)")
	to := fs.String("to", "", "last day of the measured declines (default now)")
	months := fs.Int("months", forecast.DefaultMonths, "months to project")
	format := fs.String("format", "text", "text or json")
	if err := parse(fs, args, "accounts", "bill", "currency", "failed-rate", "lifetime", "recovery-rate"); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usagef("-format %q is not text or json", *format)
	}
	in := forecast.Inputs{Currency: *currency, Months: *months}
	for _, f := range []struct {
		flag, value string
		into        *decimal.Decimal
	}{
		{"accounts", *accounts, &in.ActiveAccounts}, {"bill", *bill, &in.AverageBill}, {"growth", *growth, &in.MonthlyGrowth},
		{"failed-rate", *failed, &in.FailedPaymentRate}, {"lifetime", *lifetime, &in.LifetimeMonths}, {"recovery-rate", *recovery, &in.RecoveryRate},
	} {
		d, err := decimal.NewFromString(f.value)
		if err != nil || strings.ContainsAny(f.value, "eE") {
			return usagef("-%s %q is not a decimal number", f.flag, f.value)
		}
		*f.into = d
	}
	var source string
	switch {
	case *measured != "" && *tenant != "":
		return usagef("give -measured-rate or -tenant, not both")
	case *measured != "":
		d, err := decimal.NewFromString(*measured)
		if err != nil || strings.ContainsAny(*measured, "eE") {
			return usagef("-measured-rate %q is not a decimal number", *measured)
		}
		in.MeasuredRate, source = &d, "as given"
	case *tenant != "":
		if err := in.Validate(); err != nil { // before touching the ledger
			return usagef("%v", err)
		}
		q := analytics.Query{Tenant: *tenant, Currency: *currency}
		var err error
		if q.From, q.To, err = analytics.ParsePeriod(*from, *to, time.Now()); err != nil {
			return usagef("%v", err)
		}
		if err := q.Validate(); err != nil {
			return usagef("%v", err)
		}
		store, err := a.openLedger(ctx)
		if err != nil {
			return err
		}
		defer store.Close()
		sum, err := analytics.New(store.Pool()).Summary(ctx, q)
		if err != nil {
			return err
		}
		if settled := sum.Recovered + sum.Exhausted; settled > 0 {
			rate := decimal.NewFromInt(sum.Recovered).DivRound(decimal.NewFromInt(settled), 6)
			in.MeasuredRate = &rate
			source = fmt.Sprintf("%s's %d settled runs from %s to %s", q.Tenant, settled, q.From.Format(time.DateOnly), q.To.Format(time.DateOnly))
		} else {
			source = fmt.Sprintf("none: %s has no settled runs in %s from %s to %s", q.Tenant, q.Currency, q.From.Format(time.DateOnly), q.To.Format(time.DateOnly))
		}
	}
	out, err := forecast.Project(in)
	if err != nil {
		return usagef("%v", err)
	}
	if *format == "json" {
		return a.printJSON(out)
	}
	printForecast(a.stdout, out, source)
	return nil
}

func printForecast(w io.Writer, f forecast.Forecast, source string) {
	cur := f.Inputs.Currency
	places := int32(2)
	if c, err := money.LookupCurrency(cur); err == nil {
		places = c.MinorUnits
	}
	amount := func(d decimal.Decimal) string { return d.StringFixed(places) }
	fmt.Fprintf(w, "Revenue forecast, %d months (%s)\n", len(f.Scenarios[0].Months), cur)
	if source != "" {
		fmt.Fprintf(w, "Measured recovery rate: %s\n", source)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "month\t"
	for _, s := range f.Scenarios {
		header += fmt.Sprintf("%s (%s%%) customers\trevenue\t", s.Name, s.RecoveryRate.Mul(decimal.NewFromInt(100)).StringFixed(1))
	}
	fmt.Fprintln(tw, header)
	for m := range f.Scenarios[0].Months {
		row := fmt.Sprintf("%d\t", m+1)
		for _, s := range f.Scenarios {
			row += fmt.Sprintf("%s\t%s\t", s.Months[m].ActiveCustomers.StringFixed(0), amount(s.Months[m].Revenue))
		}
		fmt.Fprintln(tw, row)
	}
	total := "total (customers at the end)\t"
	for _, s := range f.Scenarios {
		total += fmt.Sprintf("%s\t%s\t", s.EndCustomers.StringFixed(0), amount(s.TotalRevenue))
	}
	fmt.Fprintln(tw, total)
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, s := range f.Scenarios[1:] {
		fmt.Fprintf(w, "%s recovery wins %s %s over no recovery\n", s.Name, amount(s.GainOverNone), cur)
	}
}
