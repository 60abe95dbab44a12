package analytics

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
)

// durationPercentiles is the median and the p90 of how long the period's
// closed runs took (only the recovered ones when recovered), in seconds,
// exactly as PostgreSQL's percentile_cont would give them; 0 and 0 without
// runs.
//
// percentile_cont sorts every run, seconds at a million. The ranks it
// interpolates between are found instead: the duration histogram
// (run_durations for the whole days, the edges' runs counted one by one)
// tells which bucket holds a rank and at which offset, and only that
// bucket's runs are read, in duration order, from runs_duration_idx.
func durationPercentiles(ctx context.Context, tx pgx.Tx, q Query, recovered bool) (median, p90 float64, err error) {
	args := append(q.periodArgs(), recovered)
	rows, err := tx.Query(ctx, `WITH h AS (
		SELECT bucket, runs FROM run_durations
		WHERE tenant = $1 AND currency = $2 AND day >= $5::date AND day < $6::date AND (recovered OR NOT $9)
		UNION ALL
		SELECT analytics_duration_bucket(r.closed_at - r.opened_at), 1 FROM runs r
		WHERE r.tenant = $1 AND r.currency = $2 AND r.status <> 'open' AND (r.status = 'recovered' OR NOT $9) AND `+edgeFilter+`)
	SELECT bucket, sum(runs)::bigint FROM h GROUP BY bucket HAVING sum(runs) > 0 ORDER BY bucket`, args...)
	if err != nil {
		return 0, 0, fmt.Errorf("duration histogram: %w", err)
	}
	hist, err := pgx.CollectRows(rows, pgx.RowToStructByPos[histogramBucket])
	if err != nil {
		return 0, 0, fmt.Errorf("duration histogram: %w", err)
	}
	r := rankReader{ctx: ctx, tx: tx, q: q, recovered: recovered, hist: hist}
	if median, err = r.percentile(0.5); err != nil {
		return 0, 0, err
	}
	if p90, err = r.percentile(0.9); err != nil {
		return 0, 0, err
	}
	return median, p90, nil
}

// histogramBucket is one bucket of the duration histogram: the runs whose
// analytics_duration_bucket is Bucket.
type histogramBucket struct {
	Bucket int
	Runs   int64
}

// rankReader reads the durations at given ranks of one set of runs.
type rankReader struct {
	ctx       context.Context
	tx        pgx.Tx
	q         Query
	recovered bool
	hist      []histogramBucket
}

// percentile is percentile_cont(p): the values at the ranks floor and
// ceil of p*(n-1), interpolated linearly as PostgreSQL does in float8.
func (r rankReader) percentile(p float64) (float64, error) {
	var n int64
	for _, b := range r.hist {
		n += b.Runs
	}
	if n == 0 {
		return 0, nil
	}
	pos := p * float64(n-1)
	lo, hi := int64(math.Floor(pos)), int64(math.Ceil(pos))
	vals, err := r.valuesAt(lo, hi)
	if err != nil {
		return 0, err
	}
	if lo == hi {
		return vals[0], nil
	}
	return vals[0] + (vals[1]-vals[0])*(pos-float64(lo)), nil
}

// valuesAt is the durations at the 0-based ranks lo and hi (hi is lo or
// lo+1), in one read when both fall in one bucket.
func (r rankReader) valuesAt(lo, hi int64) ([]float64, error) {
	bLo, offLo := r.locate(lo)
	bHi, offHi := r.locate(hi)
	if bLo == bHi {
		return r.read(bLo, offLo, offHi-offLo+1)
	}
	a, err := r.read(bLo, offLo, 1)
	if err != nil {
		return nil, err
	}
	b, err := r.read(bHi, offHi, 1)
	if err != nil {
		return nil, err
	}
	return append(a, b...), nil
}

// locate is the bucket holding the 0-based rank k and k's offset in it.
func (r rankReader) locate(k int64) (bucket int, offset int64) {
	for _, b := range r.hist {
		if k < b.Runs {
			return b.Bucket, k
		}
		k -= b.Runs
	}
	// Unreachable for k < n: the histogram sums to n.
	last := r.hist[len(r.hist)-1]
	return last.Bucket, last.Runs - 1
}

// read is limit durations of bucket's runs in the period, from offset in
// duration order.
func (r rankReader) read(bucket int, offset, limit int64) ([]float64, error) {
	rows, err := r.tx.Query(r.ctx, `SELECT date_part('epoch', r.closed_at - r.opened_at) FROM runs r
		WHERE r.tenant = $1 AND r.currency = $2 AND r.status <> 'open'
		  AND analytics_duration_bucket(r.closed_at - r.opened_at) = $3
		  AND (r.status = 'recovered' OR NOT $4) AND r.opened_at >= $5 AND r.opened_at < $6
		ORDER BY r.closed_at - r.opened_at OFFSET $7 LIMIT $8`,
		r.q.Tenant, r.q.Currency, bucket, r.recovered, r.q.From.UTC(), r.q.To.UTC(), offset, limit)
	if err != nil {
		return nil, fmt.Errorf("durations of bucket %d: %w", bucket, err)
	}
	vals, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		return nil, fmt.Errorf("durations of bucket %d: %w", bucket, err)
	}
	if int64(len(vals)) != limit {
		// The histogram and the runs disagree: the aggregates are not
		// exact, which the ledger's triggers rule out.
		return nil, fmt.Errorf("durations of bucket %d: %d runs from offset %d, the histogram promised %d", bucket, len(vals), offset, limit)
	}
	return vals, nil
}
