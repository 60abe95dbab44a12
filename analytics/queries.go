package analytics

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/money"
)

// A period's runs are read from the ledger's aggregates (migration 0018):
// run_cohorts holds their counts and sums per UTC day of the decline, in
// total (dimension 'all') and per value of each dimension, kept exact by
// the ledger's triggers in the transaction of each write. A period covers
// whole days there, and the runs of the partial days at its edges are read
// one by one through the same projection (run_cohort_rows), so any instant
// works as a bound and the answer is the same as reading every run.
//
// periodCohorts is the CTE c of one dimension's rows in the period. Every
// query binds periodArgs: $1 tenant, $2 currency, $3 from, $4 to, $5 and
// $6 the whole days [from, to) covers, as dates, and $7 and $8 as
// instants. dimension is one of the constants below, never input.
func periodCohorts(dimension string) string {
	return `WITH c AS (
	SELECT * FROM run_cohorts
	WHERE tenant = $1 AND currency = $2 AND dimension = '` + dimension + `' AND day >= $5::date AND day < $6::date
	UNION ALL
	SELECT x.* FROM runs r, LATERAL run_cohort_rows(r, 1) x
	WHERE r.tenant = $1 AND r.currency = $2 AND ` + edgeFilter + ` AND x.dimension = '` + dimension + `')
`
}

// The dimensions of run_cohorts that are not a Dimension of their own.
const (
	allRuns      = "all"    // every run once
	methodsOfWin = "method" // key: the recovery method, key2: the winning attempt
)

// edgeFilter selects the runs of r in the period's partial days.
const edgeFilter = `((r.opened_at >= $3 AND r.opened_at < $7) OR (r.opened_at >= $8 AND r.opened_at < $4))`

// periodArgs binds the placeholders of periodCohorts and edgeFilter.
func (q Query) periodArgs() []any {
	from, to := q.From.UTC(), q.To.UTC()
	// The whole UTC days inside [from, to); none when the period is
	// shorter, and then [from, to) is all edge.
	dayFrom, dayTo := from.Truncate(24*time.Hour), to.Truncate(24*time.Hour)
	if dayFrom.Before(from) {
		dayFrom = dayFrom.Add(24 * time.Hour)
	}
	if !dayFrom.Before(dayTo) {
		dayFrom, dayTo = to, to
	}
	return []any{q.Tenant, q.Currency, from, to, dayFrom, dayTo, dayFrom, dayTo}
}

// outcomeColumns aggregates Outcomes over the rows of c; scanOutcomes reads
// them in this order.
const outcomeColumns = `COALESCE(sum(c.runs), 0)::bigint,
	COALESCE(sum(c.runs) FILTER (WHERE c.status = 'open'), 0)::bigint,
	COALESCE(sum(c.runs) FILTER (WHERE c.status = 'recovered'), 0)::bigint,
	COALESCE(sum(c.runs) FILTER (WHERE c.status = 'exhausted'), 0)::bigint,
	COALESCE(sum(c.runs) FILTER (WHERE c.status = 'cancelled'), 0)::bigint,
	COALESCE(sum(c.amount), 0)::text,
	COALESCE(sum(c.amount) FILTER (WHERE c.status = 'recovered'), 0)::text,
	COALESCE(sum(c.amount) FILTER (WHERE c.status = 'exhausted'), 0)::text`

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

// read runs f in a read-only transaction with one snapshot, so the
// statements of one answer agree with each other under concurrent writes.
// The queries are short aggregations: JIT compilation would cost more than
// it saves, and the group hashes get the memory to stay off disk. Every
// statement is planned for its own parameters: a generic plan (which
// PostgreSQL picks for a prepared statement after five runs) cannot tell a
// period of a day from one of a year, nor a small duration bucket from a
// large one, and read a year's runs in 4 s where the custom plan takes
// 0.4 s.
func (s *Store) read(ctx context.Context, f func(pgx.Tx) error) error {
	return s.readWith(ctx, "", f)
}

// readParallel is read for a query that scans and joins many rows (aging):
// it asks the planner to split the scan across workers even where its
// default costs would not, which halves the answer's time on a loaded
// ledger.
func (s *Store) readParallel(ctx context.Context, f func(pgx.Tx) error) error {
	return s.readWith(ctx, `, set_config('parallel_setup_cost', '10', true), set_config('parallel_tuple_cost', '0.001', true)`, f)
}

func (s *Store) readWith(ctx context.Context, settings string, f func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('jit', 'off', true), set_config('work_mem', '32MB', true),
			set_config('plan_cache_mode', 'force_custom_plan', true)`+settings); err != nil {
			return err
		}
		return f(tx)
	})
}

func ratio(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

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

// Summary is the period's headline figures: the outcomes, attempts and
// messages from the cohorts, and each duration percentile from the
// duration histogram and the one bucket of runs it falls in.
func (s *Store) Summary(ctx context.Context, q Query) (Summary, error) {
	if err := q.Validate(); err != nil {
		return Summary{}, err
	}
	out := Summary{Query: q}
	var (
		oc                    outcomeScan
		ttrMean, resMean      *float64
		recAttempts, messages int64
		byChargeRevenue       string
	)
	err := s.read(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, periodCohorts(allRuns)+`SELECT `+outcomeColumns+`,
			COALESCE(sum(c.runs) FILTER (WHERE c.status = 'recovered'), 0)::bigint,
			(sum(c.closed_seconds) FILTER (WHERE c.status = 'recovered') / NULLIF(sum(c.runs) FILTER (WHERE c.status = 'recovered'), 0))::float8,
			COALESCE(sum(c.runs) FILTER (WHERE c.status <> 'open'), 0)::bigint,
			(sum(c.closed_seconds) FILTER (WHERE c.status <> 'open') / NULLIF(sum(c.runs) FILTER (WHERE c.status <> 'open'), 0))::float8,
			COALESCE(sum(c.answered_attempts), 0)::bigint,
			COALESCE(sum(c.answered_attempts) FILTER (WHERE c.status = 'recovered'), 0)::bigint,
			COALESCE(sum(c.charged_attempts) FILTER (WHERE c.status = 'recovered'), 0)::bigint,
			COALESCE(sum(c.charged_amount) FILTER (WHERE c.status = 'recovered'), 0)::text,
			COALESCE(sum(c.sent_messages) FILTER (WHERE c.status = 'recovered'), 0)::bigint,
			COALESCE(sum(c.runs) FILTER (WHERE c.churned), 0)::bigint
		FROM c`, q.periodArgs()...).Scan(append(oc.dest(),
			&out.TimeToRecovery.Count, &ttrMean, &out.TimeToResolution.Count, &resMean,
			&out.Attempts, &recAttempts, &out.RecoveredByCharge, &byChargeRevenue, &messages, &out.ChurnedRuns)...); err != nil {
			return err
		}
		var err error
		if out.TimeToRecovery.MedianSeconds, out.TimeToRecovery.P90Seconds, err = durationPercentiles(ctx, tx, q, true); err != nil {
			return fmt.Errorf("time to recovery: %w", err)
		}
		if out.TimeToResolution.MedianSeconds, out.TimeToResolution.P90Seconds, err = durationPercentiles(ctx, tx, q, false); err != nil {
			return fmt.Errorf("time to resolution: %w", err)
		}
		return nil
	})
	if err != nil {
		return Summary{}, fmt.Errorf("analytics: summary of %s %s: %w", q.Tenant, q.Currency, err)
	}
	if out.Outcomes, err = oc.outcomes(); err != nil {
		return Summary{}, err
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

// cell is one group of a two-key count: its keys, its runs and their
// amount, read from (a, b, count, sum(amount)::text).
type cell[A, B any] struct {
	a      A
	b      B
	n      int64
	amount decimal.Decimal
}

func scanCell[A, B any](row pgx.CollectableRow) (cell[A, B], error) {
	var (
		c      cell[A, B]
		amount string
	)
	if err := row.Scan(&c.a, &c.b, &c.n, &amount); err != nil {
		return cell[A, B]{}, err
	}
	var err error
	if c.amount, err = decimal.NewFromString(amount); err != nil {
		return cell[A, B]{}, fmt.Errorf("amount %q: %w", amount, err)
	}
	return c, nil
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
	var points []Point
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, periodCohorts(allRuns)+`
		SELECT `+bucketKeys[interval]+` AS bucket, `+outcomeColumns+`
		FROM c GROUP BY bucket ORDER BY bucket`, q.periodArgs()...)
		if err != nil {
			return err
		}
		points, err = pgx.CollectRows(rows, scanPoint)
		return err
	})
	if err != nil {
		return Series{}, fmt.Errorf("analytics: series of %s %s: %w", q.Tenant, q.Currency, err)
	}
	return Series{Query: q, Interval: interval, Points: points}, nil
}

func scanPoint(row pgx.CollectableRow) (Point, error) {
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
}

// bucketKeys are the SQL expressions of each Granularity over c, whose day
// is the UTC day of the decline.
var bucketKeys = map[Granularity]string{
	Day:   `c.day::timestamp`,
	Week:  `date_trunc('week', c.day::timestamp)`,
	Month: `date_trunc('month', c.day::timestamp)`,
}

// dimensionKeys are the SQL expressions of each Dimension's value over its
// rows of c: run_cohorts names its dimensions as Dimension does.
var dimensionKeys = map[Dimension]string{
	ByDeclineCategory: `c.key`,
	ByDeclineCode:     `c.key`,
	ByGateway:         `c.key`,
	ByCardNetwork:     `c.key`,
	ByPolicy:          `c.key`,                                                        // name@version, without the content hash
	ByVariant:         `CASE WHEN c.key = '' THEN '' ELSE c.key || '/' || c.key2 END`, // experiment/variant
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
	var groups []Group
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, periodCohorts(string(by))+`
		SELECT `+key+` AS grp, `+outcomeColumns+`
		FROM c GROUP BY grp ORDER BY sum(c.amount) DESC, grp`, q.periodArgs()...)
		if err != nil {
			return err
		}
		groups, err = pgx.CollectRows(rows, scanGroup)
		return err
	})
	if err != nil {
		return Breakdown{}, fmt.Errorf("analytics: breakdown of %s %s by %s: %w", q.Tenant, q.Currency, by, err)
	}
	return Breakdown{Query: q, By: by, Groups: groups}, nil
}

func scanGroup(row pgx.CollectableRow) (Group, error) {
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
	var cells []cell[string, int]
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, periodCohorts(methodsOfWin)+`
		SELECT c.key, c.key2::int, sum(c.runs)::bigint, sum(c.amount)::text
		FROM c WHERE c.status = 'recovered' GROUP BY c.key, c.key2`, q.periodArgs()...)
		if err != nil {
			return err
		}
		cells, err = pgx.CollectRows(rows, scanCell[string, int])
		return err
	})
	if err != nil {
		return Methods{}, fmt.Errorf("analytics: recovery methods of %s %s: %w", q.Tenant, q.Currency, err)
	}
	out := Methods{Query: q, ByMethod: []MethodCount{}, ByAttempt: []AttemptCount{}}
	methods := map[string]*MethodCount{}
	attempts := map[int]*AttemptCount{}
	for _, c := range cells {
		method, attempt := c.a, c.b
		out.Recovered += c.n
		m := methods[method]
		if m == nil {
			m = &MethodCount{Method: method}
			methods[method] = m
		}
		m.Recovered += c.n
		m.Revenue = m.Revenue.Add(c.amount)
		a := attempts[attempt]
		if a == nil {
			a = &AttemptCount{Attempt: attempt}
			attempts[attempt] = a
		}
		a.Recovered += c.n
		a.Revenue = a.Revenue.Add(c.amount)
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
	var cells []cell[int, string]
	err := s.readParallel(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
	WITH o AS (
		SELECT r.amount, COALESCE(rs.phase, 'recovering') AS phase,
		       CASE WHEN r.opened_at > $3::timestamptz - interval '8 days' THEN 0
		            WHEN r.opened_at > $3::timestamptz - interval '15 days' THEN 1
		            WHEN r.opened_at > $3::timestamptz - interval '31 days' THEN 2
		            ELSE 3 END AS bucket
		FROM runs r LEFT JOIN run_status rs ON rs.workflow_id = r.workflow_id
		     AND rs.phase NOT IN ('recovered', 'exhausted', 'cancelled', 'aborted') -- run_status_open_phase_idx
		WHERE r.tenant = $1 AND r.currency = $2 AND r.status = 'open' AND r.opened_at <= $3::timestamptz)
	SELECT bucket, phase, count(*), sum(amount)::text FROM o GROUP BY bucket, phase`, tenant, currency, at)
		if err != nil {
			return err
		}
		cells, err = pgx.CollectRows(rows, scanCell[int, string])
		return err
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
		bucket, phase := c.a, c.b
		out.Open += c.n
		out.AmountAtRisk = out.AmountAtRisk.Add(c.amount)
		b := &out.Buckets[bucket]
		b.Runs += c.n
		b.AmountAtRisk = b.AmountAtRisk.Add(c.amount)
		p := phases[phase]
		if p == nil {
			p = &PhaseCount{Phase: phase, AmountAtRisk: decimal.Zero}
			phases[phase] = p
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
	type arm struct {
		experiment string
		v          VariantResult
	}
	var arms []arm
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, periodCohorts(string(ByVariant))+`
		SELECT c.key, c.key2,
		       COALESCE(sum(c.runs) FILTER (WHERE c.status IN ('recovered', 'exhausted')), 0)::bigint,
		       COALESCE(sum(c.runs) FILTER (WHERE c.status = 'recovered'), 0)::bigint,
		       COALESCE(sum(c.amount) FILTER (WHERE c.status = 'recovered'), 0)::text
		FROM c WHERE c.key <> ''
		GROUP BY c.key, c.key2 ORDER BY c.key, c.key2`, q.periodArgs()...)
		if err != nil {
			return err
		}
		arms, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (arm, error) {
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
		return err
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
