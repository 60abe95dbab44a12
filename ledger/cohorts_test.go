package ledger_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// TestRunCohortsStayExactUnderConcurrentWrites drives many runs through the
// ledger's own writes from concurrent workers, with the repeats retried
// activities make (two tries of one step at once, a retry after the fact),
// aborts and reopens, closes and late service changes. The analytics
// aggregates must then equal an independent count from the runs, and
// every worker must have finished without a deadlock or a conflict.
func TestRunCohortsStayExactUnderConcurrentWrites(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	const runs, workers = 60, 8
	type plan struct {
		id       string
		tenant   string
		currency string
		opened   time.Time
		outcome  string // recovered, exhausted, cancelled, aborted, aborted+reopened, open
		attempts int
		messages int
		network  string
		closeAt  time.Time
		svc      int // which of the service changes below is recorded
	}
	rng := rand.New(rand.NewPCG(7, 18))
	plans := make([]plan, runs)
	for i := range plans {
		plans[i] = plan{
			id: fmt.Sprintf("wf-%02d", i), tenant: []string{"acme", "acme", "globex"}[i%3], currency: []string{"EUR", "EUR", "USD"}[i%3],
			// Three days, so several runs share each day's rows.
			opened:   t0.Add(time.Duration(rng.IntN(3*24*60)) * time.Minute),
			outcome:  []string{"recovered", "exhausted", "cancelled", "aborted", "aborted+reopened", "open"}[rng.IntN(6)],
			attempts: rng.IntN(4), messages: rng.IntN(3),
			network: []string{"visa", "mastercard", ""}[rng.IntN(3)],
			svc:     rng.IntN(3),
		}
		plans[i].closeAt = plans[i].opened.Add(time.Duration(1+rng.IntN(20)) * 24 * time.Hour)
	}
	// twice runs f twice at once, as two tries of one activity may.
	twice := func(f func() error) error {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = f() }()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	drive := func(p plan) error {
		r := newRun(p.id, "inv-"+p.id)
		r.Tenant, r.Currency, r.OpenedAt = p.tenant, p.currency, p.opened
		r.Origin = ledger.RunOrigin{DeclineCode: "insufficient_funds", DeclineCategory: "soft", Gateway: "sim", CardNetwork: p.network}
		if err := twice(func() error { _, err := s.OpenRun(ctx, r); return err }); err != nil {
			return fmt.Errorf("open: %w", err)
		}
		for n := 1; n <= p.attempts; n++ {
			a := newAttempt(p.id, n, fmt.Sprintf("%s/attempt-%d", p.id, n))
			a.Currency = p.currency
			status := "declined"
			if p.outcome == "recovered" && n == p.attempts {
				status = "succeeded"
			}
			if _, err := s.BeginAttempt(ctx, a); err != nil {
				return fmt.Errorf("begin attempt %d: %w", n, err)
			}
			if err := twice(func() error {
				return s.FinishAttempt(ctx, a.IdempotencyKey, ledger.AttemptOutcome{Status: status, At: a.StartedAt.Add(time.Second)})
			}); err != nil {
				return fmt.Errorf("finish attempt %d: %w", n, err)
			}
		}
		for m := range p.messages {
			key := fmt.Sprintf("%s/msg-%d", p.id, m)
			if _, err := s.BeginMessage(ctx, newMessage(p.id, key, p.opened)); err != nil {
				return err
			}
			if err := twice(func() error { return s.FinishMessage(ctx, key, "sent", "sendgrid", "ref-"+key, "", time.Time{}) }); err != nil {
				return fmt.Errorf("finish message %d: %w", m, err)
			}
		}
		if err := s.ReportStatus(ctx, ledger.RunStatus{WorkflowID: p.id, Phase: "action_required", ServiceState: "active", UpdatedAt: p.opened.Add(time.Hour)}); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		closeAt := p.closeAt
		switch p.outcome {
		case "recovered", "exhausted", "cancelled":
			if err := twice(func() error { return s.CloseRun(ctx, p.id, p.outcome, "test", closeAt) }); err != nil {
				return fmt.Errorf("close: %w", err)
			}
		case "aborted", "aborted+reopened":
			if _, err := s.AbortRun(ctx, ledger.Abort{WorkflowID: p.id, Reason: "terminated", At: closeAt}); err != nil {
				return fmt.Errorf("abort: %w", err)
			}
			if p.outcome == "aborted+reopened" {
				r.Amount = dec("99.99") // a later decline for a changed amount
				r.ExecutionRunID = "second"
				if _, err := s.OpenRun(ctx, r); err != nil {
					return fmt.Errorf("reopen: %w", err)
				}
			}
		}
		// Cancelled service, before or after the close: churn when the
		// run is exhausted and it is within 30 days.
		for i, after := range []int{-1, 10, 45} {
			c := ledger.ServiceChange{IdempotencyKey: fmt.Sprintf("%s/svc-%d", p.id, i), WorkflowID: p.id, State: "cancelled",
				CreatedAt: closeAt.Add(time.Duration(after) * 24 * time.Hour)}
			if i != p.svc {
				continue
			}
			if err := twice(func() error { _, err := s.RecordServiceChange(ctx, c); return err }); err != nil {
				return fmt.Errorf("service change: %w", err)
			}
		}
		return nil
	}
	work := make(chan plan)
	errs := make(chan error, runs)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if err := drive(p); err != nil {
					errs <- fmt.Errorf("%s (%s): %w", p.id, p.outcome, err)
				}
			}
		}()
	}
	for _, p := range plans {
		work <- p
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// An independent count, written here rather than with the triggers'
	// projection: per tenant, currency, day and status, the runs, amounts,
	// churned runs, charged attempts and sent messages.
	const perDay = `SELECT tenant, currency, day, status, sum(runs)::bigint, sum(amount)::text, sum(runs) FILTER (WHERE churned)::bigint,
		sum(charged_attempts)::bigint, sum(sent_messages)::bigint FROM %s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`
	independent := `(SELECT r.tenant, r.currency, (r.opened_at AT TIME ZONE 'UTC')::date AS day, r.status, 1 AS runs, r.amount,
		r.status = 'exhausted' AND EXISTS (SELECT 1 FROM service_changes c WHERE c.workflow_id = r.workflow_id AND c.state = 'cancelled'
			AND c.created_at <= r.closed_at + interval '30 days') AS churned,
		(SELECT count(*) FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.status = 'succeeded') AS charged_attempts,
		(SELECT count(*) FROM messages m WHERE m.workflow_id = r.workflow_id AND m.status IN ('sent', 'dry-run')) AS sent_messages
		FROM runs r) x`
	rowsOf := func(from string) []string {
		t.Helper()
		return rowsOfQuery(t, s, fmt.Sprintf(perDay, from))
	}
	if got, want := rowsOf("(SELECT * FROM run_cohorts WHERE dimension = 'all') c"), rowsOf(independent); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("run_cohorts in total per day and status:\n got  %v\n want %v", got, want)
	}
	// Every dimension counts the same runs and amounts as the total.
	const runsPerDay = `SELECT tenant, currency, day, status, sum(runs)::bigint, sum(amount)::text, sum(runs) FILTER (WHERE churned)::bigint
		FROM %s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`
	want := rowsOfQuery(t, s, fmt.Sprintf(runsPerDay, independent))
	for _, dim := range []string{"decline_category", "decline_code", "gateway", "card_network", "policy", "variant", "method"} {
		if got := rowsOfQuery(t, s, fmt.Sprintf(runsPerDay, "(SELECT * FROM run_cohorts WHERE dimension = '"+dim+"') c")); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("run_cohorts of dimension %s per day and status:\n got  %v\n want %v", dim, got, want)
		}
	}
	// And by card network, as the runs say.
	byNetwork := `SELECT key, status, sum(runs)::bigint FROM run_cohorts WHERE dimension = 'card_network' GROUP BY 1, 2 ORDER BY 1, 2`
	if got, want := rowsOfQuery(t, s, byNetwork), rowsOfQuery(t, s, `SELECT card_network, status, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1, 2`); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("run_cohorts by card network:\n got  %v\n want %v", got, want)
	}
	var churned, exhausted int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE churned), count(*) FILTER (WHERE status = 'exhausted') FROM runs`).Scan(&churned, &exhausted); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d runs, %d exhausted, %d of them churned, %d rows per day and status", runs, exhausted, churned, len(want))
	if n, err := s.RecountRunCohorts(ctx); err != nil || n != 0 {
		t.Errorf("RecountRunCohorts corrected %d rows (%v), want 0: the triggers kept the aggregates exact", n, err)
	}
}

// TestRecountRunCohortsRepairs: rows changed with the triggers off leave
// the aggregates wrong; the recount finds and fixes exactly those.
func TestRecountRunCohortsRepairs(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-a", "inv-a"))
	mustOpenRun(t, s, newRun("wf-b", "inv-b"))
	if err := s.CloseRun(ctx, "wf-a", "recovered", "paid", t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RecountRunCohorts(ctx); err != nil || n != 0 {
		t.Fatalf("RecountRunCohorts corrected %d rows (%v) before any damage, want 0", n, err)
	}
	// A restore that bypassed the triggers.
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SET LOCAL session_replication_role = replica`,
		`UPDATE runs SET status = 'exhausted', closed_at = $1 WHERE workflow_id = 'wf-b'`,
	} {
		var args []any
		if q[0] == 'U' {
			args = append(args, t0.Add(24*time.Hour))
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// wf-b's open row goes and its exhausted row comes, in each of the 8
	// dimensions of run_cohorts, and it gains a duration row: 17.
	if n, err := s.RecountRunCohorts(ctx); err != nil || n != 17 {
		t.Errorf("RecountRunCohorts corrected %d rows (%v), want 17", n, err)
	}
	if n, err := s.RecountRunCohorts(ctx); err != nil || n != 0 {
		t.Errorf("second RecountRunCohorts corrected %d rows (%v), want 0", n, err)
	}
	var exhausted int64
	if err := s.Pool().QueryRow(ctx, `SELECT COALESCE(sum(runs), 0)::bigint FROM run_cohorts WHERE dimension = 'all' AND status = 'exhausted'`).Scan(&exhausted); err != nil {
		t.Fatal(err)
	}
	if exhausted != 1 {
		t.Errorf("exhausted runs in run_cohorts after the repair = %d, want 1", exhausted)
	}
}

// rowsOfQuery is every row of sql, each printed as its values.
func rowsOfQuery(t *testing.T, s *ledger.Store, sql string) []string {
	t.Helper()
	rows, err := s.Pool().Query(ctxFor(t), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
