package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The analytics aggregates (migration 0018): run_cohorts and run_durations
// sum the runs per tenant, currency and UTC day of the decline (run_cohorts
// in total and per value of each analytics dimension). Triggers on
// runs keep them in the transaction of every write, so nothing in Go
// maintains them; this file only checks and repairs them.

// expectedCohorts and expectedDurations are the aggregates recomputed from
// every run, through the triggers' own projection.
const (
	expectedCohorts = `SELECT c.tenant, c.currency, c.day, c.dimension, c.key, c.key2, c.status, c.churned,
		sum(c.runs), sum(c.amount), sum(c.answered_attempts), sum(c.charged_attempts),
		sum(c.charged_amount), sum(c.sent_messages), sum(c.closed_seconds)
	FROM runs r, LATERAL run_cohort_rows(r, 1) c
	GROUP BY c.tenant, c.currency, c.dimension, c.day, c.key, c.key2, c.status, c.churned`
	expectedDurations = `SELECT tenant, currency, (opened_at AT TIME ZONE 'UTC')::date, status = 'recovered',
		analytics_duration_bucket(closed_at - opened_at), count(*)
	FROM runs WHERE status <> 'open' GROUP BY 1, 2, 3, 4, 5`
)

// RecountRunCohorts recomputes the analytics aggregates from the runs and
// returns how many of their rows were wrong, missing or extra. The ledger's
// own writes keep them exact; this is for a repair after rows were changed
// with the triggers disabled (a restore, a bulk load). It blocks writes to
// runs while it counts.
func (s *Store) RecountRunCohorts(ctx context.Context) (int64, error) {
	var corrected int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE runs IN SHARE MODE`); err != nil {
			return err
		}
		for _, t := range []struct{ table, expected string }{
			{"run_cohorts", expectedCohorts},
			{"run_durations", expectedDurations},
		} {
			var n int64
			if err := tx.QueryRow(ctx, `WITH e AS (`+t.expected+`), a AS (SELECT * FROM `+t.table+`)
				SELECT (SELECT count(*) FROM (SELECT * FROM e EXCEPT ALL SELECT * FROM a) x) +
				       (SELECT count(*) FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM e) y)`).Scan(&n); err != nil {
				return fmt.Errorf("compare %s: %w", t.table, err)
			}
			if n == 0 {
				continue
			}
			corrected += n
			if _, err := tx.Exec(ctx, `DELETE FROM `+t.table); err != nil {
				return fmt.Errorf("clear %s: %w", t.table, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+t.table+` `+t.expected); err != nil {
				return fmt.Errorf("refill %s: %w", t.table, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: recount run cohorts: %w", err)
	}
	return corrected, nil
}
