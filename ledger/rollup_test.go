package ledger_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// rollup is a run's rollup columns (migration 0017), amount as text.
type rollup struct {
	Answered, Charged int
	ChargedAmount     string
	WinAttempt        int
	WinReason         string
	Sent              int
}

func rollups(t *testing.T, s *ledger.Store) map[string]rollup {
	t.Helper()
	rows, err := s.Pool().Query(ctxFor(t), `SELECT workflow_id, answered_attempts, charged_attempts, charged_amount::text,
		win_attempt, win_reason, sent_messages FROM runs`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]rollup{}
	for rows.Next() {
		var (
			id string
			r  rollup
		)
		if err := rows.Scan(&id, &r.Answered, &r.Charged, &r.ChargedAmount, &r.WinAttempt, &r.WinReason, &r.Sent); err != nil {
			t.Fatal(err)
		}
		r.ChargedAmount = exact(dec(r.ChargedAmount))
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// recount computes every run's rollup from the detail tables, written here
// on its own rather than with the ledger's statements.
func recount(t *testing.T, s *ledger.Store) map[string]rollup {
	t.Helper()
	rows, err := s.Pool().Query(ctxFor(t), `SELECT r.workflow_id,
		(SELECT count(*) FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.status IN ('succeeded', 'declined')),
		(SELECT count(*) FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.status = 'succeeded'),
		(SELECT COALESCE(sum(amount), 0)::text FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.status = 'succeeded'),
		COALESCE((SELECT attempt FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.status = 'succeeded' ORDER BY attempt LIMIT 1), 0),
		COALESCE((SELECT reason FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.status = 'succeeded' ORDER BY attempt LIMIT 1), ''),
		(SELECT count(*) FROM messages m WHERE m.workflow_id = r.workflow_id AND m.status IN ('sent', 'dry-run'))
		FROM runs r`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]rollup{}
	for rows.Next() {
		var (
			id string
			r  rollup
		)
		if err := rows.Scan(&id, &r.Answered, &r.Charged, &r.ChargedAmount, &r.WinAttempt, &r.WinReason, &r.Sent); err != nil {
			t.Fatal(err)
		}
		r.ChargedAmount = exact(dec(r.ChargedAmount))
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunRollupCountsEachFinishOnce drives runs through the ledger's own
// writes, repeating finishes as retried activities do (one after another
// and at the same time), and checks the runs' rollups against hand-counted
// figures and against a recount from the detail tables.
func TestRunRollupCountsEachFinishOnce(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	for _, id := range []string{"wf-a", "wf-b", "wf-c"} {
		mustOpenRun(t, s, newRun(id, "inv-"+id))
	}
	attempt := func(wf string, n int, reason, status string, finishes int) {
		t.Helper()
		a := newAttempt(wf, n, wf+"/attempt-"+string(rune('0'+n)))
		a.Reason = reason
		if _, err := s.BeginAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
		// Repeated finishes race each other, as two tries of one activity
		// may: exactly one is the first.
		var wg sync.WaitGroup
		errs := make([]error, finishes)
		for i := range finishes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.FinishAttempt(ctx, a.IdempotencyKey, ledger.AttemptOutcome{Status: status, At: a.StartedAt.Add(time.Second)})
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		// A repeat after the fact, too.
		if err := s.FinishAttempt(ctx, a.IdempotencyKey, ledger.AttemptOutcome{Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	message := func(wf, key, status string, finishes int) {
		t.Helper()
		if _, err := s.BeginMessage(ctx, newMessage(wf, key, t0)); err != nil {
			t.Fatal(err)
		}
		for range finishes {
			if err := s.FinishMessage(ctx, key, status, "sendgrid", "ref-"+key, "", time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	attempt("wf-a", 1, "scheduled", "declined", 2)
	attempt("wf-a", 2, "scheduled", "failed", 1) // no answer from the gateway: not answered
	attempt("wf-a", 3, "card_updated", "succeeded", 3)
	message("wf-a", "wf-a/m1", "sent", 3)
	message("wf-a", "wf-a/m2", "dry-run", 2)
	message("wf-a", "wf-a/m3", "skipped", 1)
	message("wf-a", "wf-a/m4", "failed", 2)
	message("wf-a", "wf-a/m5", "sent", 0) // still pending
	for range 2 {
		if err := s.CloseRun(ctx, "wf-a", "recovered", "attempt 3 succeeded", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	message("wf-a", "wf-a/recovered", "sent", 2) // the notice after the close counts

	attempt("wf-b", 1, "scheduled", "declined", 1)
	attempt("wf-b", 2, "expedite", "succeeded", 2)
	// A finish with another outcome is refused and changes nothing.
	if err := s.FinishAttempt(ctx, "wf-b/attempt-2", ledger.AttemptOutcome{Status: "declined"}); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("finish with another outcome: %v, want ErrConflict", err)
	}
	if err := s.FinishMessage(ctx, "wf-a/m1", "failed", "", "", "", time.Time{}); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("finish message with another status: %v, want ErrConflict", err)
	}

	message("wf-c", "wf-c/m1", "sent", 1)
	message("reminder/acme/inv-9", "reminder/m1", "sent", 2) // not a run

	want := map[string]rollup{
		"wf-a": {Answered: 2, Charged: 1, ChargedAmount: "12.50", WinAttempt: 3, WinReason: "card_updated", Sent: 3},
		"wf-b": {Answered: 2, Charged: 1, ChargedAmount: "12.50", WinAttempt: 2, WinReason: "expedite", Sent: 0},
		"wf-c": {ChargedAmount: "0", Sent: 1},
	}
	got := rollups(t, s)
	for id, w := range want {
		if got[id] != w {
			t.Errorf("rollup of %s = %+v, want %+v", id, got[id], w)
		}
	}
	if re := recount(t, s); len(re) != len(got) {
		t.Errorf("recount has %d runs, rollup %d", len(re), len(got))
	} else {
		for id, r := range re {
			if got[id] != r {
				t.Errorf("rollup of %s = %+v, recount from the detail tables %+v", id, got[id], r)
			}
		}
	}
	if n, err := s.RecountRunRollups(ctx); err != nil || n != 0 {
		t.Errorf("RecountRunRollups corrected %d runs (%v), want 0: the writes kept it exact", n, err)
	}
}

// TestRecountRunRollups corrects the rollup of rows written around the
// ledger (a bulk import), and only theirs.
func TestRecountRunRollups(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-a", "inv-a"))
	mustOpenRun(t, s, newRun("wf-b", "inv-b"))
	if _, err := s.Pool().Exec(ctx, `INSERT INTO attempts (idempotency_key, workflow_id, attempt, reason, amount, currency, gateway, status, started_at, finished_at)
		VALUES ('a1', 'wf-a', 1, 'scheduled', 12.50, 'EUR', 'sim', 'declined', $1, $1),
		       ('a2', 'wf-a', 2, 'expedite', 12.50, 'EUR', 'sim', 'succeeded', $1, $1),
		       ('a3', 'wf-a', 3, 'scheduled', 7.25, 'EUR', 'sim', 'succeeded', $1, $1)`, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `INSERT INTO messages (idempotency_key, workflow_id, kind, channel, status, created_at, finished_at)
		VALUES ('m1', 'wf-a', 'k', 'email', 'sent', $1, $1), ('m2', 'wf-a', 'k', 'sms', 'pending', $1, NULL)`, t0); err != nil {
		t.Fatal(err)
	}
	n, err := s.RecountRunRollups(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RecountRunRollups corrected %d runs (%v), want 1 (wf-a)", n, err)
	}
	got := rollups(t, s)
	if w := (rollup{Answered: 3, Charged: 2, ChargedAmount: "19.75", WinAttempt: 2, WinReason: "expedite", Sent: 1}); got["wf-a"] != w {
		t.Errorf("rollup of wf-a = %+v, want %+v", got["wf-a"], w)
	}
	if w := (rollup{ChargedAmount: "0"}); got["wf-b"] != w {
		t.Errorf("rollup of wf-b = %+v, want %+v", got["wf-b"], w)
	}
}
