// Package analytics answers how much of the failed revenue the platform wins
// back, and why the rest is lost, from the ledger alone, scoped to one
// tenant, one currency (amounts of different currencies never add up) and a
// period of declines.
//
// The answers come from aggregates the ledger keeps exact in the
// transaction of every write (migration 0018): run_cohorts, the runs'
// counts and sums per UTC day of the decline and per every dimension
// grouped on here, and run_durations, a histogram of how long closed runs
// took. A period reads its whole days there and its partial days run by
// run, so a year of a million runs answers in tens of milliseconds, and
// an exact median reads one histogram bucket of runs (percentile.go).
// Aging reads the open runs themselves, with their phase from the read
// model.
//
// A run belongs to the period in which its decline arrived (the run opened):
// the figures of a period are those of a cohort of declines, so a later
// recovery counts towards the month of its decline. Definitions:
//
//   - settled runs: recovered + exhausted. Open runs are not decided yet and
//     cancelled runs (the billing system voided the invoice) were never the
//     dunning's to win, so neither counts for or against it.
//   - recovery rate: recovered / settled; revenue recovery rate: recovered
//     amount / settled amount.
//   - time to recovery: from the decline to the run's close, recovered runs;
//     time to resolution: the same over every closed run.
//   - attempts: charges that reached the gateway and got an answer
//     (succeeded or declined); failed and pending charges are ours, not the
//     customer's.
//
// Money stays exact (numeric in SQL, decimal.Decimal in Go); averages of
// money are rounded half-even to the currency's minor unit. Rates are
// float64.
package analytics

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/money"
)

// ErrInvalid marks a query that cannot be answered as asked (bad period,
// currency, grouping): a caller's mistake, never retried.
var ErrInvalid = errors.New("analytics: invalid query")

// MaxPeriod is the longest period one query covers.
const MaxPeriod = 3 * 366 * 24 * time.Hour

// Query scopes every figure: one tenant's runs in one currency whose decline
// arrived in [From, To).
type Query struct {
	Tenant   string    `json:"tenant"`
	Currency string    `json:"currency"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
}

// Validate reports, wrapping ErrInvalid, what is wrong with q.
func (q Query) Validate() error {
	switch {
	case q.Tenant == "":
		return fmt.Errorf("%w: tenant is required", ErrInvalid)
	case q.From.IsZero() || q.To.IsZero():
		return fmt.Errorf("%w: the period needs both from and to", ErrInvalid)
	case !q.From.Before(q.To):
		return fmt.Errorf("%w: from (%s) must be before to (%s)", ErrInvalid, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	case q.To.Sub(q.From) > MaxPeriod:
		return fmt.Errorf("%w: the period may span at most %d days", ErrInvalid, int(MaxPeriod/(24*time.Hour)))
	}
	if _, err := money.LookupCurrency(q.Currency); err != nil {
		return fmt.Errorf("%w: currency: %w", ErrInvalid, err)
	}
	return nil
}

// Granularity is the bucket of a time series: the day, ISO week (starting
// Monday) or month of the decline, in UTC.
type Granularity string

// Granularities.
const (
	Day   Granularity = "day"
	Week  Granularity = "week"
	Month Granularity = "month"
)

// ParseGranularity accepts day, week or month.
func ParseGranularity(s string) (Granularity, error) {
	switch g := Granularity(s); g {
	case Day, Week, Month:
		return g, nil
	}
	return "", fmt.Errorf("%w: interval %q is not one of day, week, month", ErrInvalid, s)
}

// Dimension is what a breakdown groups runs by.
type Dimension string

// Dimensions. Runs recorded without a value (e.g. before the ledger kept
// it) fall in the group "".
const (
	ByDeclineCategory Dimension = "decline_category" // hard, soft, action_required, ...
	ByDeclineCode     Dimension = "decline_code"     // the gateway's code of the decline that started the run
	ByGateway         Dimension = "gateway"
	ByCardNetwork     Dimension = "card_network" // visa, mastercard, ...
	ByPolicy          Dimension = "policy"       // name@version
	ByVariant         Dimension = "variant"      // experiment/variant
)

// Dimensions lists every Dimension, in the order reports show them.
var Dimensions = []Dimension{ByDeclineCategory, ByDeclineCode, ByGateway, ByCardNetwork, ByPolicy, ByVariant}

// ParseDimension accepts one of Dimensions.
func ParseDimension(s string) (Dimension, error) {
	for _, d := range Dimensions {
		if string(d) == s {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: by %q is not one of %v", ErrInvalid, s, Dimensions)
}

// Outcomes counts runs by how they ended and sums their amounts.
type Outcomes struct {
	Runs      int64 `json:"runs"`
	Open      int64 `json:"open"`
	Recovered int64 `json:"recovered"`
	Exhausted int64 `json:"exhausted"`
	Cancelled int64 `json:"cancelled"`
	// RecoveryRate is Recovered / (Recovered + Exhausted); 0 when none settled.
	RecoveryRate float64 `json:"recovery_rate"`
	// FailedRevenue is the amount of every run; RecoveredRevenue of the
	// recovered ones; LostRevenue of the exhausted ones.
	FailedRevenue    decimal.Decimal `json:"failed_revenue"`
	RecoveredRevenue decimal.Decimal `json:"recovered_revenue"`
	LostRevenue      decimal.Decimal `json:"lost_revenue"`
	// RevenueRecoveryRate is RecoveredRevenue / (RecoveredRevenue + LostRevenue).
	RevenueRecoveryRate float64 `json:"revenue_recovery_rate"`
}

// Durations summarises a set of durations, in seconds.
type Durations struct {
	Count         int64   `json:"count"`
	MedianSeconds float64 `json:"median_seconds"`
	P90Seconds    float64 `json:"p90_seconds"`
	MeanSeconds   float64 `json:"mean_seconds"`
}

// Summary is the headline of a period.
type Summary struct {
	Query Query `json:"query"`
	Outcomes
	// TimeToRecovery: decline to close of recovered runs (median, p90).
	TimeToRecovery Durations `json:"time_to_recovery"`
	// TimeToResolution: decline to close of every closed run; its mean is
	// the average time to resolution.
	TimeToResolution Durations `json:"time_to_resolution"`
	// Attempts answered by the gateway over all runs of the period.
	Attempts int64 `json:"attempts"`
	// AttemptsPerRecovery: answered attempts of recovered runs / recovered runs.
	AttemptsPerRecovery float64 `json:"attempts_per_recovery"`
	// RevenuePerAttempt: recovered revenue / answered attempts of the period.
	RevenuePerAttempt decimal.Decimal `json:"revenue_per_attempt"`
	// MessagesPerRecovery: messages sent (or dry-run) in recovered runs /
	// recovered runs.
	MessagesPerRecovery float64 `json:"messages_per_recovery"`
	// RecoveredByCharge and RecoveredByChargeRevenue count recoveries won
	// by a charge of ours (not paid out of band): the incremental revenue.
	RecoveredByCharge        int64           `json:"recovered_by_charge"`
	RecoveredByChargeRevenue decimal.Decimal `json:"recovered_by_charge_revenue"`
	// IncrementalRevenuePerRecoveredAttempt: RecoveredByChargeRevenue /
	// RecoveredByCharge, what each succeeding charge of ours brought back.
	IncrementalRevenuePerRecoveredAttempt decimal.Decimal `json:"incremental_revenue_per_recovered_attempt"`
	// Involuntary churn: of the exhausted runs, those whose service was
	// cancelled no later than 30 days after the run closed.
	ChurnedRuns      int64   `json:"churned_runs"`
	InvoluntaryChurn float64 `json:"involuntary_churn"`
}

// Point is one bucket of a time series.
type Point struct {
	Start time.Time `json:"start"`
	Outcomes
}

// Series is recovery over time.
type Series struct {
	Query    Query       `json:"query"`
	Interval Granularity `json:"interval"`
	Points   []Point     `json:"points"`
}

// Group is one value of a dimension.
type Group struct {
	Key string `json:"key"`
	Outcomes
}

// Breakdown is recovery by one dimension, largest failed revenue first.
type Breakdown struct {
	Query  Query     `json:"query"`
	By     Dimension `json:"by"`
	Groups []Group   `json:"groups"`
}

// Recovery methods: how a recovered run got its money.
const (
	MethodRetry         = "retry"            // a scheduled retry succeeded
	MethodCardUpdate    = "card_update"      // the charge after the customer updated the card
	MethodExpedite      = "expedite"         // a retry ops or the billing system asked for now
	MethodPaidOutOfBand = "paid_out_of_band" // the billing system reported the invoice paid
	MethodOther         = "other"            // recovered without a succeeded charge or out-of-band note
)

// MethodCount is how many recoveries, and how much, one method brought.
type MethodCount struct {
	Method    string          `json:"method"`
	Recovered int64           `json:"recovered"`
	Revenue   decimal.Decimal `json:"revenue"`
	Share     float64         `json:"share"` // of all recoveries
}

// AttemptCount is how many recoveries the n-th attempt brought.
type AttemptCount struct {
	Attempt   int             `json:"attempt"`
	Recovered int64           `json:"recovered"`
	Revenue   decimal.Decimal `json:"revenue"`
	Share     float64         `json:"share"` // of all recoveries
}

// Methods is how runs were recovered.
type Methods struct {
	Query     Query          `json:"query"`
	Recovered int64          `json:"recovered"`
	ByMethod  []MethodCount  `json:"by_method"`
	ByAttempt []AttemptCount `json:"by_attempt"`
}

// AgingBucket holds the open runs whose age in whole days is within
// [MinDays, MaxDays]; MaxDays is -1 for the open-ended last bucket.
type AgingBucket struct {
	Label        string          `json:"label"`
	MinDays      int             `json:"min_days"`
	MaxDays      int             `json:"max_days"`
	Runs         int64           `json:"runs"`
	AmountAtRisk decimal.Decimal `json:"amount_at_risk"`
}

// PhaseCount is the open runs in one phase of the read model.
type PhaseCount struct {
	Phase        string          `json:"phase"`
	Runs         int64           `json:"runs"`
	AmountAtRisk decimal.Decimal `json:"amount_at_risk"`
}

// Aging is where the open runs stand at a moment: by age (0-7, 8-14, 15-30,
// 31+ days since the decline) and by phase. It covers every open run of the
// tenant in the currency, whatever the period.
type Aging struct {
	Tenant       string          `json:"tenant"`
	Currency     string          `json:"currency"`
	At           time.Time       `json:"at"`
	Open         int64           `json:"open"`
	AmountAtRisk decimal.Decimal `json:"amount_at_risk"`
	Buckets      []AgingBucket   `json:"buckets"`
	ByPhase      []PhaseCount    `json:"by_phase"`
}

// VariantResult is one arm of an experiment over the settled runs assigned
// to it.
type VariantResult struct {
	Variant   string `json:"variant"`
	Control   bool   `json:"control"`
	Settled   int64  `json:"settled"`
	Recovered int64  `json:"recovered"`
	// RecoveredRevenue is the amount of the arm's recovered runs.
	RecoveredRevenue decimal.Decimal `json:"recovered_revenue"`
	// Rate is Recovered / Settled, with its 95% Wilson score interval.
	Rate   float64 `json:"rate"`
	CILow  float64 `json:"ci_low"`
	CIHigh float64 `json:"ci_high"`
	// Against control (nil for the control arm, or when either arm is
	// empty or the pooled rate is 0 or 1): the two-proportion z statistic
	// (positive when this arm recovers more), its two-sided p-value, and
	// whether p < 0.05.
	Z           *float64 `json:"z,omitempty"`
	PValue      *float64 `json:"p_value,omitempty"`
	Significant bool     `json:"significant"`
	// SamplePerArm is how many settled runs each arm needs for the
	// observed difference to be detected at 5% significance (two-sided)
	// with 80% power; SampleNeeded is how many more the smaller of this arm
	// and the control still needs (0 once reached). Both nil when the arms'
	// rates do not differ.
	SamplePerArm *int64 `json:"sample_per_arm,omitempty"`
	SampleNeeded *int64 `json:"sample_needed,omitempty"`
}

// Experiment is one policy experiment's arms.
type Experiment struct {
	Name     string          `json:"name"`
	Control  string          `json:"control"`
	Variants []VariantResult `json:"variants"`
}

// Experiments is every experiment with runs in the period.
type Experiments struct {
	Query       Query        `json:"query"`
	Experiments []Experiment `json:"experiments"`
}

// Store runs the analytics queries on the ledger's database. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// New reads the ledger through pool (ledger.Store.Pool()).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }
