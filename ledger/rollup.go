package ledger

import (
	"context"
	"fmt"
)

// The run rollup (migration 0017) sums up a run's attempts and messages on
// its row for analytics. FinishAttempt and FinishMessage keep it in the
// statement that finishes the attempt or message; these fragments are
// those statements' second half. Both only run on a first finish (the
// UPDATE matched a pending row), so a repeated finish changes nothing.

// attemptRollup updates the run of the attempt just finished, f (a CTE
// returning workflow_id, attempt, reason, amount and status).
const attemptRollup = `, rollup AS (
	UPDATE runs r SET
		answered_attempts = r.answered_attempts + CASE WHEN f.status IN ('succeeded', 'declined') THEN 1 ELSE 0 END,
		charged_attempts = r.charged_attempts + CASE WHEN f.status = 'succeeded' THEN 1 ELSE 0 END,
		charged_amount = r.charged_amount + CASE WHEN f.status = 'succeeded' THEN f.amount ELSE 0 END,
		win_attempt = CASE WHEN f.status = 'succeeded' AND (r.win_attempt = 0 OR f.attempt < r.win_attempt)
			THEN f.attempt ELSE r.win_attempt END,
		win_reason = CASE WHEN f.status = 'succeeded' AND (r.win_attempt = 0 OR f.attempt < r.win_attempt)
			THEN f.reason ELSE r.win_reason END
	FROM f WHERE r.workflow_id = f.workflow_id)`

// messageRollup updates the run of the message just finished, f (a CTE
// returning workflow_id and status). Messages of other workflows
// (reminders) match no run.
const messageRollup = `, rollup AS (
	UPDATE runs r SET sent_messages = r.sent_messages + 1
	FROM f WHERE r.workflow_id = f.workflow_id AND f.status IN ('sent', 'dry-run'))`

// recountRollups recomputes every run's rollup from its attempts and
// messages, writing only the rows that differ; the same statement as
// migration 0017's backfill.
const recountRollups = `UPDATE runs r SET answered_attempts = x.answered, charged_attempts = x.charged, charged_amount = x.charged_amount,
       win_attempt = x.win_attempt, win_reason = x.win_reason, sent_messages = x.sent
FROM (SELECT r0.workflow_id,
             COALESCE(a.answered, 0) AS answered, COALESCE(a.charged, 0) AS charged,
             COALESCE(a.charged_amount, 0) AS charged_amount, COALESCE(a.win_attempt, 0) AS win_attempt,
             COALESCE(a.win_reason, '') AS win_reason, COALESCE(m.sent, 0) AS sent
      FROM runs r0
      LEFT JOIN (SELECT workflow_id,
                        count(*) FILTER (WHERE status IN ('succeeded', 'declined')) AS answered,
                        count(*) FILTER (WHERE status = 'succeeded') AS charged,
                        sum(amount) FILTER (WHERE status = 'succeeded') AS charged_amount,
                        min(attempt) FILTER (WHERE status = 'succeeded') AS win_attempt,
                        (array_agg(reason ORDER BY attempt) FILTER (WHERE status = 'succeeded'))[1] AS win_reason
                 FROM attempts GROUP BY workflow_id) a ON a.workflow_id = r0.workflow_id
      LEFT JOIN (SELECT workflow_id, count(*) AS sent FROM messages
                 WHERE status IN ('sent', 'dry-run') GROUP BY workflow_id) m ON m.workflow_id = r0.workflow_id) x
WHERE r.workflow_id = x.workflow_id
  AND (r.answered_attempts, r.charged_attempts, r.charged_amount, r.win_attempt, r.win_reason, r.sent_messages)
      IS DISTINCT FROM (x.answered, x.charged, x.charged_amount, x.win_attempt, x.win_reason, x.sent)`

// RecountRunRollups recomputes every run's rollup from the detail tables
// and returns how many runs it corrected. The ledger's own writes keep the
// rollup exact; this is for rows written around them (bulk imports, test
// seeds, repairs).
func (s *Store) RecountRunRollups(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, recountRollups)
	if err != nil {
		return 0, fmt.Errorf("ledger: recount run rollups: %w", err)
	}
	return tag.RowsAffected(), nil
}
