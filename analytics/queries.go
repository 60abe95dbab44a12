package analytics

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"golang.org/x/sync/errgroup"

	"github.com/dunningco/dunning/money"
)

// periodFilter selects the query's runs as r: $1 tenant, $2 currency, $3
// from, $4 to (runs_analytics_idx).
const periodFilter = `r.tenant = $1 AND r.currency = $2 AND r.opened_at >= $3 AND r.opened_at < $4`

// periodRuns is the CTE the other period queries start from: the query's
// runs. Not materialized, so the planner can push it into the scan of runs.
const periodRuns = `WITH r AS (
	SELECT workflow_id, status, amount, opened_at, closed_at, closing_reason, policy,
	       decline_code, decline_category, gateway, card_network, experiment, variant
	FROM runs
	WHERE tenant = $1 AND currency = $2 AND opened_at >= $3 AND opened_at < $4)
`

// outcomeColumns aggregates Outcomes over the rows of r; scanOutcomes reads
// them in this order.
const outcomeColumns = `count(*),
	count(*) FILTER (WHERE r.status = 'open'),
	count(*) FILTER (WHERE r.status = 'recovered'),
	count(*) FILTER (WHERE r.status = 'exhausted'),
	count(*) FILTER (WHERE r.status = 'cancelled'),
	COALESCE(sum(r.amount), 0)::text,
	COALESCE(sum(r.amount) FILTER (WHERE r.status = 'recovered'), 0)::text,
	COALESCE(sum(r.amount) FILTER (WHERE r.status = 'exhausted'), 0)::text`

// outcomeScan holds the scan targets of outcomeColumns.
type outcomeScan struct {
	o                       Outcomes
	failed, recovered, lost string
}

func (s *outcomeScan) dest() []any {
	return []any{&s.o.Runs, &s.o.Open, &s.o.Recovered, &s.o.Exhausted, &s.o.Cancelled, &s.failed, &s.recovered, &s.lost}
}

func (s *outcomeScan) outcomes() (Outcomes, error) {
	o := s.o
	var err error
	if o.FailedRevenue, err = decimal.NewFromString(s.failed); err != nil {
		return Outcomes{}, fmt.Errorf("analytics: failed revenue %q: %w", s.failed, err)
	}
	if o.RecoveredRevenue, err = decimal.NewFromString(s.recovered); err != nil {
		return Outcomes{}, fmt.Errorf("analytics: recovered revenue %q: %w", s.recovered, err)
	}
	if o.LostRevenue, err = decimal.NewFromString(s.lost); err != nil {
		return Outcomes{}, fmt.Errorf("analytics: lost revenue %q: %w", s.lost, err)
	}
	o.RecoveryRate = ratio(o.Recovered, o.Recovered+o.Exhausted)
	if settled := o.RecoveredRevenue.Add(o.LostRevenue); settled.IsPositive() {
		o.RevenueRecoveryRate = o.RecoveredRevenue.Div(settled).InexactFloat64()
	}
	return o, nil
}

func ratio(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

func (q Query) args() []any { return []any{q.Tenant, q.Currency, q.From.UTC(), q.To.UTC()} }

// perUnit is total / n rounded half-even to the currency's minor unit; 0
// when n is 0.
func perUnit(total decimal.Decimal, n int64, currency string) decimal.Decimal {
	if n == 0 {
		return decimal.Zero
	}
	places := int32(2)
	if c, err := money.LookupCurrency(currency); err == nil {
		places = c.MinorUnits
	}
	return total.DivRound(decimal.NewFromInt(n), places+4).RoundBank(places)
}

// Summary is the period's headline figures.
//
// Three statements at once, on their own connections: the runs' outcomes
// with their attempts and messages from the run rollup (one scan the
// planner runs in parallel), the percentiles of the closed runs' durations
// (a sort, which PostgreSQL cannot parallelise, so it should not hold up
// the rest), and the exhausted runs' service changes.
func (s *Store) Summary(ctx context.Context, q Query) (Summary, error) {
	if err := q.Validate(); err != nil {
		return Summary{}, err
	}
	out := Summary{Query: q}
	var (
		oc outcomeScan
		// Both percentiles of a set come from one sort: [median, p90],
		// NULL when the set is empty.
		ttrPct, resPct        []float64
		ttrMean, resMean      *float64
		recAttempts, messages int64
		byChargeRevenue       string
	)
	// date_part, not extract: float8 arithmetic rather than numeric on
	// every run.
	const secs = `date_part('epoch', r.closed_at - r.opened_at)`
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return s.pool.QueryRow(gctx, `SELECT `+outcomeColumns+`,
			count(*) FILTER (WHERE r.status = 'recovered'),
			avg(`+secs+`) FILTER (WHERE r.status = 'recovered'),
			count(*) FILTER (WHERE r.status <> 'open'),
			avg(`+secs+`) FILTER (WHERE r.status <> 'open'),
			COALESCE(sum(r.answered_attempts), 0),
			COALESCE(sum(r.answered_attempts) FILTER (WHERE r.status = 'recovered'), 0),
			COALESCE(sum(r.charged_attempts) FILTER (WHERE r.status = 'recovered'), 0),
			COALESCE(sum(r.charged_amount) FILTER (WHERE r.status = 'recovered'), 0)::text,
			COALESCE(sum(r.sent_messages) FILTER (WHERE r.status = 'recovered'), 0)
		FROM runs r WHERE `+periodFilter, q.args()...).Scan(append(oc.dest(),
			&out.TimeToRecovery.Count, &ttrMean, &out.TimeToResolution.Count, &resMean,
			&out.Attempts, &recAttempts, &out.RecoveredByCharge, &byChargeRevenue, &messages)...)
	})
	g.Go(func() error {
		return s.pool.QueryRow(gctx, `SELECT
			percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY `+secs+`) FILTER (WHERE r.status = 'recovered'),
			percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY `+secs+`)
		FROM runs r WHERE r.status <> 'open' AND `+periodFilter, q.args()...).Scan(&ttrPct, &resPct)
	})
	g.Go(func() error {
		return s.pool.QueryRow(gctx, `SELECT count(*) FROM runs r WHERE r.status = 'exhausted' AND `+periodFilter+` AND EXISTS (
			SELECT 1 FROM service_changes c WHERE c.workflow_id = r.workflow_id AND c.state = 'cancelled'
			AND c.created_at <= r.closed_at + interval '30 days')`, q.args()...).Scan(&out.ChurnedRuns)
	})
	if err := g.Wait(); err != nil {
		return Summary{}, fmt.Errorf("analytics: summary of %s %s: %w", q.Tenant, q.Currency, err)
	}
	var err error
	if out.Outcomes, err = oc.outcomes(); err != nil {
		return Summary{}, err
	}
	if len(ttrPct) == 2 {
		out.TimeToRecovery.MedianSeconds, out.TimeToRecovery.P90Seconds = ttrPct[0], ttrPct[1]
	}
	if len(resPct) == 2 {
		out.TimeToResolution.MedianSeconds, out.TimeToResolution.P90Seconds = resPct[0], resPct[1]
	}
	out.TimeToRecovery.MeanSeconds, out.TimeToResolution.MeanSeconds = deref(ttrMean), deref(resMean)
	out.AttemptsPerRecovery = ratio(recAttempts, out.Recovered)
	out.MessagesPerRecovery = ratio(messages, out.Recovered)
	out.RevenuePerAttempt = perUnit(out.RecoveredRevenue, out.Attempts, q.Currency)
	if out.RecoveredByChargeRevenue, err = decimal.NewFromString(byChargeRevenue); err != nil {
		return Summary{}, fmt.Errorf("analytics: recovered-by-charge revenue %q: %w", byChargeRevenue, err)
	}
	out.IncrementalRevenuePerRecoveredAttempt = perUnit(out.RecoveredByChargeRevenue, out.RecoveredByCharge, q.Currency)
	out.InvoluntaryChurn = ratio(out.ChurnedRuns, out.Exhausted)
	return out, nil
}

func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}

// Series is recovery by the day, week or month of the decline. Buckets
// without runs are left out.
func (s *Store) Series(ctx context.Context, q Query, interval Granularity) (Series, error) {
	if err := q.Validate(); err != nil {
		return Series{}, err
	}
	if _, err := ParseGranularity(string(interval)); err != nil {
		return Series{}, err
	}
	rows, err := s.pool.Query(ctx, periodRuns+`
	SELECT `+bucketKeys[interval]+` AS bucket, `+outcomeColumns+`
	FROM r GROUP BY bucket ORDER BY bucket`, q.args()...)
	if err != nil {
		return Series{}, fmt.Errorf("analytics: series of %s %s: %w", q.Tenant, q.Currency, err)
	}
	points, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Point, error) {
		var (
			p  Point
			oc outcomeScan
		)
		if err := row.Scan(append([]any{&p.Start}, oc.dest()...)...); err != nil {
			return Point{}, err
		}
		p.Start = time.Date(p.Start.Year(), p.Start.Month(), p.Start.Day(), 0, 0, 0, 0, time.UTC)
		o, err := oc.outcomes()
		p.Outcomes = o
		return p, err
	})
	if err != nil {
		return Series{}, fmt.Errorf("analytics: series of %s %s: %w", q.Tenant, q.Currency, err)
	}
	return Series{Query: q, Interval: interval, Points: points}, nil
}

// bucketKeys are the SQL expressions of each Granularity over r: literal,
// so that they match the statistics migration 0015 keeps on them and the
// planner hashes a few buckets rather than sorting every run.
var bucketKeys = map[Granularity]string{
	Day:   `date_trunc('day', r.opened_at AT TIME ZONE 'UTC')`,
	Week:  `date_trunc('week', r.opened_at AT TIME ZONE 'UTC')`,
	Month: `date_trunc('month', r.opened_at AT TIME ZONE 'UTC')`,
}

// dimensionKeys are the SQL expressions of each Dimension over r; only
// these strings ever reach the query text.
var dimensionKeys = map[Dimension]string{
	ByDeclineCategory: `r.decline_category`,
	ByDeclineCode:     `r.decline_code`,
	ByGateway:         `r.gateway`,
	ByCardNetwork:     `r.card_network`,
	ByPolicy:          `split_part(r.policy, '#', 1)`, // name@version, without the content hash (as in 0015's statistics)
	ByVariant:         `CASE WHEN r.experiment = '' THEN '' ELSE r.experiment || '/' || r.variant END`,
}

// Breakdown is recovery grouped by one dimension, largest failed revenue
// first.
func (s *Store) Breakdown(ctx context.Context, q Query, by Dimension) (Breakdown, error) {
	if err := q.Validate(); err != nil {
		return Breakdown{}, err
	}
	key, ok := dimensionKeys[by]
	if !ok {
		_, err := ParseDimension(string(by))
		return Breakdown{}, err
	}
	rows, err := s.pool.Query(ctx, periodRuns+`
	SELECT `+key+` AS key, `+outcomeColumns+`
	FROM r GROUP BY key ORDER BY sum(r.amount) DESC, key`, q.args()...)
	if err != nil {
		return Breakdown{}, fmt.Errorf("analytics: breakdown of %s %s by %s: %w", q.Tenant, q.Currency, by, err)
	}
	groups, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Group, error) {
		var (
			g  Group
			oc outcomeScan
		)
		if err := row.Scan(append([]any{&g.Key}, oc.dest()...)...); err != nil {
			return Group{}, err
		}
		o, err := oc.outcomes()
		g.Outcomes = o
		return g, err
	})
	if err != nil {
		return Breakdown{}, fmt.Errorf("analytics: breakdown of %s %s by %s: %w", q.Tenant, q.Currency, by, err)
	}
	return Breakdown{Query: q, By: by, Groups: groups}, nil
}

// Methods is how the period's recovered runs were recovered: by method and
// by the number of the attempt that succeeded (0: no charge of ours, e.g.
// paid out of band).
func (s *Store) Methods(ctx context.Context, q Query) (Methods, error) {
	if err := q.Validate(); err != nil {
		return Methods{}, err
	}
	// A recovered run's money came from its succeeded attempt (there is at
	// most one: the run closes on it; the rollup keeps the lowest-numbered);
	// without one, from the billing system reporting the invoice paid.
	rows, err := s.pool.Query(ctx, `WITH rec AS (
		SELECT r.amount, r.win_attempt AS attempt,
		       CASE WHEN r.win_reason = 'scheduled' THEN 'retry'
		            WHEN r.win_reason = 'card_updated' THEN 'card_update'
		            WHEN r.win_reason = 'expedite' THEN 'expedite'
		            WHEN r.win_attempt = 0 AND r.closing_reason LIKE 'paid out of band%' THEN 'paid_out_of_band'
		            ELSE 'other' END AS method
		FROM runs r WHERE r.status = 'recovered' AND `+periodFilter+`)
	SELECT method, attempt, count(*), sum(amount)::text FROM rec GROUP BY method, attempt`, q.args()...)
	if err != nil {
		return Methods{}, fmt.Errorf("analytics: recovery methods of %s %s: %w", q.Tenant, q.Currency, err)
	}
	type cell struct {
		method  string
		attempt int
		n       int64
		revenue decimal.Decimal
	}
	cells, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (cell, error) {
		var (
			c      cell
			amount string
		)
		if err := row.Scan(&c.method, &c.attempt, &c.n, &amount); err != nil {
			return cell{}, err
		}
		var err error
		c.revenue, err = decimal.NewFromString(amount)
		return c, err
	})
	if err != nil {
		return Methods{}, fmt.Errorf("analytics: recovery methods of %s %s: %w", q.Tenant, q.Currency, err)
	}
	out := Methods{Query: q, ByMethod: []MethodCount{}, ByAttempt: []AttemptCount{}}
	methods := map[string]*MethodCount{}
	attempts := map[int]*AttemptCount{}
	for _, c := range cells {
		out.Recovered += c.n
		m := methods[c.method]
		if m == nil {
			m = &MethodCount{Method: c.method}
			methods[c.method] = m
		}
		m.Recovered += c.n
		m.Revenue = m.Revenue.Add(c.revenue)
		a := attempts[c.attempt]
		if a == nil {
			a = &AttemptCount{Attempt: c.attempt}
			attempts[c.attempt] = a
		}
		a.Recovered += c.n
		a.Revenue = a.Revenue.Add(c.revenue)
	}
	// Every method is listed, in a fixed order, so charts keep their colours.
	for _, name := range []string{MethodRetry, MethodCardUpdate, MethodExpedite, MethodPaidOutOfBand, MethodOther} {
		m := MethodCount{Method: name, Revenue: decimal.Zero}
		if got := methods[name]; got != nil {
			m = *got
		}
		m.Share = ratio(m.Recovered, out.Recovered)
		out.ByMethod = append(out.ByMethod, m)
	}
	for _, a := range attempts {
		a.Share = ratio(a.Recovered, out.Recovered)
		out.ByAttempt = append(out.ByAttempt, *a)
	}
	slices.SortFunc(out.ByAttempt, func(a, b AttemptCount) int { return a.Attempt - b.Attempt })
	return out, nil
}

// agingBuckets are the age ranges of open runs, in whole days since the
// decline.
var agingBuckets = []AgingBucket{
	{Label: "0-7", MinDays: 0, MaxDays: 7},
	{Label: "8-14", MinDays: 8, MaxDays: 14},
	{Label: "15-30", MinDays: 15, MaxDays: 30},
	{Label: "30+", MinDays: 31, MaxDays: -1},
}

// Aging is the tenant's open runs in currency at the moment at (now when
// zero), by age and by phase. Runs opened after at are left out.
func (s *Store) Aging(ctx context.Context, tenant, currency string, at time.Time) (Aging, error) {
	if tenant == "" {
		return Aging{}, fmt.Errorf("%w: tenant is required", ErrInvalid)
	}
	if _, err := money.LookupCurrency(currency); err != nil {
		return Aging{}, fmt.Errorf("%w: currency: %w", ErrInvalid, err)
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	out := Aging{Tenant: tenant, Currency: currency, At: at, AmountAtRisk: decimal.Zero}
	// The age is whole days: a run declined 7 days and 23 hours ago is 7
	// days old.
	rows, err := s.pool.Query(ctx, `
	WITH o AS (
		SELECT r.amount, COALESCE(rs.phase, 'recovering') AS phase,
		       CASE WHEN r.opened_at > $3::timestamptz - interval '8 days' THEN 0
		            WHEN r.opened_at > $3::timestamptz - interval '15 days' THEN 1
		            WHEN r.opened_at > $3::timestamptz - interval '31 days' THEN 2
		            ELSE 3 END AS bucket
		FROM runs r LEFT JOIN run_status rs ON rs.workflow_id = r.workflow_id
		WHERE r.tenant = $1 AND r.currency = $2 AND r.status = 'open' AND r.opened_at <= $3::timestamptz)
	SELECT bucket, phase, count(*), sum(amount)::text FROM o GROUP BY bucket, phase`, tenant, currency, at)
	if err != nil {
		return Aging{}, fmt.Errorf("analytics: aging of %s %s: %w", tenant, currency, err)
	}
	type cell struct {
		bucket int
		phase  string
		n      int64
		amount decimal.Decimal
	}
	cells, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (cell, error) {
		var (
			c      cell
			amount string
		)
		if err := row.Scan(&c.bucket, &c.phase, &c.n, &amount); err != nil {
			return cell{}, err
		}
		var err error
		c.amount, err = decimal.NewFromString(amount)
		return c, err
	})
	if err != nil {
		return Aging{}, fmt.Errorf("analytics: aging of %s %s: %w", tenant, currency, err)
	}
	out.Buckets = slices.Clone(agingBuckets)
	for i := range out.Buckets {
		out.Buckets[i].AmountAtRisk = decimal.Zero
	}
	phases := map[string]*PhaseCount{}
	for _, c := range cells {
		out.Open += c.n
		out.AmountAtRisk = out.AmountAtRisk.Add(c.amount)
		b := &out.Buckets[c.bucket]
		b.Runs += c.n
		b.AmountAtRisk = b.AmountAtRisk.Add(c.amount)
		p := phases[c.phase]
		if p == nil {
			p = &PhaseCount{Phase: c.phase, AmountAtRisk: decimal.Zero}
			phases[c.phase] = p
		}
		p.Runs += c.n
		p.AmountAtRisk = p.AmountAtRisk.Add(c.amount)
	}
	out.ByPhase = []PhaseCount{}
	for _, p := range phases {
		out.ByPhase = append(out.ByPhase, *p)
	}
	slices.SortFunc(out.ByPhase, func(a, b PhaseCount) int {
		if a.Runs != b.Runs {
			return int(b.Runs - a.Runs)
		}
		if a.Phase < b.Phase {
			return -1
		}
		return 1
	})
	return out, nil
}

// Experiments compares the arms of every experiment with runs in the
// period. control names the control arm; when empty, or when an
// experiment has no arm of that name, the arm named "control", else
// "default", else the arm with the most settled runs is the control.
func (s *Store) Experiments(ctx context.Context, q Query, control string) (Experiments, error) {
	if err := q.Validate(); err != nil {
		return Experiments{}, err
	}
	rows, err := s.pool.Query(ctx, periodRuns+`
	SELECT r.experiment, r.variant,
	       count(*) FILTER (WHERE r.status IN ('recovered', 'exhausted')),
	       count(*) FILTER (WHERE r.status = 'recovered'),
	       COALESCE(sum(r.amount) FILTER (WHERE r.status = 'recovered'), 0)::text
	FROM r WHERE r.experiment <> ''
	GROUP BY r.experiment, r.variant ORDER BY r.experiment, r.variant`, q.args()...)
	if err != nil {
		return Experiments{}, fmt.Errorf("analytics: experiments of %s %s: %w", q.Tenant, q.Currency, err)
	}
	type arm struct {
		experiment string
		v          VariantResult
	}
	arms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (arm, error) {
		var (
			a      arm
			amount string
		)
		if err := row.Scan(&a.experiment, &a.v.Variant, &a.v.Settled, &a.v.Recovered, &amount); err != nil {
			return arm{}, err
		}
		var err error
		a.v.RecoveredRevenue, err = decimal.NewFromString(amount)
		return a, err
	})
	if err != nil {
		return Experiments{}, fmt.Errorf("analytics: experiments of %s %s: %w", q.Tenant, q.Currency, err)
	}
	out := Experiments{Query: q, Experiments: []Experiment{}}
	for i := 0; i < len(arms); {
		j := i
		var variants []VariantResult
		for ; j < len(arms) && arms[j].experiment == arms[i].experiment; j++ {
			variants = append(variants, arms[j].v)
		}
		out.Experiments = append(out.Experiments, compare(arms[i].experiment, variants, control))
		i = j
	}
	return out, nil
}

// compare picks the control arm and tests every other arm against it.
func compare(name string, variants []VariantResult, control string) Experiment {
	ctl := -1
	for _, want := range []string{control, "control", "default"} {
		if want == "" {
			continue
		}
		if ctl = slices.IndexFunc(variants, func(v VariantResult) bool { return v.Variant == want }); ctl >= 0 {
			break
		}
	}
	if ctl < 0 {
		ctl = 0
		for i, v := range variants {
			if v.Settled > variants[ctl].Settled {
				ctl = i
			}
		}
	}
	for i := range variants {
		v := &variants[i]
		v.Rate = ratio(v.Recovered, v.Settled)
		v.CILow, v.CIHigh = Wilson(v.Recovered, v.Settled, z95)
		if i == ctl {
			v.Control = true
			continue
		}
		c := variants[ctl]
		if z, p, ok := TwoProportionZ(c.Recovered, c.Settled, v.Recovered, v.Settled); ok {
			v.Z, v.PValue = &z, &p
			v.Significant = p < 0.05
		}
		if n, ok := SamplePerArm(ratio(c.Recovered, c.Settled), v.Rate); ok {
			more := max(0, n-min(c.Settled, v.Settled))
			v.SamplePerArm, v.SampleNeeded = &n, &more
		}
	}
	return Experiment{Name: name, Control: variants[ctl].Variant, Variants: variants}
}
