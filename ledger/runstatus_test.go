package ledger_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

func mustStatus(t *testing.T, s *ledger.Store, id string) ledger.RunStatus {
	t.Helper()
	st, err := s.GetRunStatus(ctxFor(t), id)
	if err != nil {
		t.Fatalf("GetRunStatus(%s): %v", id, err)
	}
	return st
}

func report(id, phase string, at time.Time) ledger.RunStatus {
	return ledger.RunStatus{WorkflowID: id, Phase: phase, ServiceState: "active", UpdatedAt: at}
}

func TestRunStatusFollowsTheRun(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))

	st := mustStatus(t, s, "wf-1")
	want := ledger.RunStatus{WorkflowID: "wf-1", Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		Phase: "recovering", ServiceState: "active", UpdatedAt: t0}
	if st != want {
		t.Fatalf("status after OpenRun = %+v, want %+v", st, want)
	}

	// The run parks waiting for its first retry, then pauses the service.
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	paused := ledger.RunStatus{WorkflowID: "wf-1", Phase: "paused", ServiceState: "paused", Attempts: 1,
		NextAction: "retry", NextAt: t0.Add(72 * time.Hour), UpdatedAt: t2,
		Tenant: "ignored", InvoiceID: "ignored", CustomerID: "ignored"}
	for _, r := range []ledger.RunStatus{
		{WorkflowID: "wf-1", Phase: "recovering", ServiceState: "active", NextAction: "retry", NextAt: t0.Add(24 * time.Hour), UpdatedAt: t1},
		paused,
	} {
		if err := s.ReportStatus(ctx, r); err != nil {
			t.Fatalf("ReportStatus(%s): %v", r.Phase, err)
		}
	}
	want = paused
	want.Tenant, want.InvoiceID, want.CustomerID = "acme", "inv-1", "cus_1"
	if st := mustStatus(t, s, "wf-1"); st != want {
		t.Fatalf("status = %+v, want %+v", st, want)
	}

	// Late and repeated deliveries: older reports change nothing, and
	// neither does a retried OpenRun of the same execution.
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"older report", func() error { return s.ReportStatus(ctx, report("wf-1", "recovering", t1)) }},
		{"same report again", func() error { return s.ReportStatus(ctx, paused) }},
		{"retried OpenRun", func() error { _, err := s.OpenRun(ctx, newRun("wf-1", "inv-1")); return err }},
	} {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if st := mustStatus(t, s, "wf-1"); st != want {
			t.Fatalf("after %s: status = %+v, want %+v", tc.name, st, want)
		}
	}

	// Our side fails: the run holds for ops.
	t3 := t0.Add(3 * time.Hour)
	held := ledger.RunStatus{WorkflowID: "wf-1", Phase: "needs_attention", ServiceState: "paused", Attempts: 1,
		AttentionCause: "gateway_auth", AttentionDetail: "the gateway refused our key", AttentionSince: t3, UpdatedAt: t3}
	if err := s.ReportStatus(ctx, held); err != nil {
		t.Fatal(err)
	}
	if st := mustStatus(t, s, "wf-1"); st.Phase != "needs_attention" || st.AttentionCause != "gateway_auth" ||
		!st.AttentionSince.Equal(t3) || st.NextAction != "" || !st.NextAt.IsZero() {
		t.Fatalf("held status = %+v", st)
	}

	// The close is the last word: final phase, nothing planned, no hold,
	// the ledger's own service state and attempt count.
	if _, err := s.BeginAttempt(ctx, ledger.Attempt{IdempotencyKey: "wf-1/attempt-1", WorkflowID: "wf-1", Number: 1,
		Reason: "scheduled", Amount: dec("12.50"), Currency: "EUR", Gateway: "simulator"}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAttempt(ctx, "wf-1/attempt-1", ledger.AttemptOutcome{Status: "declined", At: t1}); err != nil {
		t.Fatal(err)
	}
	if st := mustStatus(t, s, "wf-1"); st.Attempts != 1 {
		t.Fatalf("attempts after a finished attempt = %d, want 1 (counted by the ledger)", st.Attempts)
	}
	for i, state := range []string{"paused", "active"} {
		if _, err := s.RecordServiceChange(ctx, ledger.ServiceChange{IdempotencyKey: fmt.Sprintf("wf-1/svc-%d", i),
			WorkflowID: "wf-1", State: state, CreatedAt: t3.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	closedAt := t0.Add(90 * time.Minute) // the workflow's clock may lag a report's
	if err := s.CloseRun(ctx, "wf-1", "recovered", "paid", closedAt); err != nil {
		t.Fatal(err)
	}
	final := ledger.RunStatus{WorkflowID: "wf-1", Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		Phase: "recovered", ServiceState: "active", Attempts: 1, UpdatedAt: t3.Add(time.Minute)}
	if st := mustStatus(t, s, "wf-1"); st != final {
		t.Fatalf("status after CloseRun = %+v, want %+v", st, final)
	}
	// Nothing moves a closed run's row, however late the report.
	if err := s.ReportStatus(ctx, report("wf-1", "paused", t0.Add(1000*time.Hour))); err != nil {
		t.Fatalf("report after close: %v", err)
	}
	if err := s.CloseRun(ctx, "wf-1", "recovered", "again", t0.Add(1000*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st := mustStatus(t, s, "wf-1"); st != final {
		t.Fatalf("status after late writes = %+v, want %+v", st, final)
	}

	if err := s.ReportStatus(ctx, report("wf-nope", "paused", t1)); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("report for an unknown run: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetRunStatus(ctx, "wf-nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("GetRunStatus of an unknown run: err = %v, want ErrNotFound", err)
	}
}

func TestCloseRunWithEventSetsTheFinalPhase(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	if err := s.ReportStatus(ctx, ledger.RunStatus{WorkflowID: "wf-1", Phase: "suspended", ServiceState: "suspended",
		Attempts: 3, NextAction: "close", NextAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// The activities close through CloseRunWithEvent; without an event (no
	// billing endpoint) it is the same transaction.
	if err := s.CloseRunWithEvent(ctx, "wf-1", "exhausted", "gave up", t0.Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	// No service change is recorded, so the ledger knows the service as
	// active; the attempts reported stay (GREATEST with the ledger's none).
	st := mustStatus(t, s, "wf-1")
	if st.Phase != "exhausted" || st.NextAction != "" || !st.NextAt.IsZero() || st.Attempts != 3 || !st.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("status = %+v", st)
	}
}

// TestReopenedRunStartsOver: a workflow started again for the same run
// (its previous execution failed, the run stayed open) opens it again; the
// ledger accepts it and the read model starts over from its start time.
func TestReopenedRunStartsOver(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	first := mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	if err := s.ReportStatus(ctx, ledger.RunStatus{WorkflowID: "wf-1", Phase: "needs_attention", ServiceState: "paused",
		Attempts: 2, AttentionCause: "unavailable", AttentionSince: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	again := newRun("wf-1", "inv-1")
	again.OpenedAt = t0.Add(48 * time.Hour)
	got, err := s.OpenRun(ctx, again)
	if err != nil {
		t.Fatalf("OpenRun of the failed execution's run: %v", err)
	}
	if !sameRun(got, first) {
		t.Errorf("reopened run = %+v, want the stored %+v", got, first)
	}
	st := mustStatus(t, s, "wf-1")
	if st.Phase != "recovering" || st.AttentionCause != "" || !st.AttentionSince.IsZero() ||
		st.ServiceState != "paused" || st.Attempts != 2 || !st.UpdatedAt.Equal(again.OpenedAt) {
		t.Errorf("status after reopening = %+v", st)
	}

	// Closed for good: a new execution is refused and the row stays final.
	if err := s.CloseRun(ctx, "wf-1", "cancelled", "voided", t0.Add(49*time.Hour)); err != nil {
		t.Fatal(err)
	}
	later := newRun("wf-1", "inv-1")
	later.OpenedAt = t0.Add(96 * time.Hour)
	if _, err := s.OpenRun(ctx, later); !errors.Is(err, ledger.ErrRunClosed) {
		t.Errorf("OpenRun of a closed run: err = %v, want ErrRunClosed", err)
	}
	if st := mustStatus(t, s, "wf-1"); st.Phase != "cancelled" {
		t.Errorf("status after a refused reopen = %+v", st)
	}
}

func TestReportStatusRejectsInvalidReports(t *testing.T) {
	s := ledgertest.NewStore(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	valid := report("wf-1", "paused", t0.Add(time.Hour))
	tests := []struct {
		name string
		edit func(*ledger.RunStatus)
	}{
		{"no workflow ID", func(r *ledger.RunStatus) { r.WorkflowID = "" }},
		{"no phase", func(r *ledger.RunStatus) { r.Phase = "" }},
		{"phase not a name", func(r *ledger.RunStatus) { r.Phase = "Paused!" }},
		{"unknown service state", func(r *ledger.RunStatus) { r.ServiceState = "frozen" }},
		{"no service state", func(r *ledger.RunStatus) { r.ServiceState = "" }},
		{"negative attempts", func(r *ledger.RunStatus) { r.Attempts = -1 }},
		{"next time without action", func(r *ledger.RunStatus) { r.NextAt = t0 }},
		{"attention detail without cause", func(r *ledger.RunStatus) { r.AttentionDetail = "x" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid
			tt.edit(&r)
			if err := s.ReportStatus(ctxFor(t), r); !errors.Is(err, ledger.ErrInvalid) {
				t.Errorf("ReportStatus = %v, want ErrInvalid", err)
			}
		})
	}
	if st := mustStatus(t, s, "wf-1"); st.Phase != "recovering" {
		t.Errorf("an invalid report changed the row: %+v", st)
	}
}

// TestReportRacingCloseNeverReopens: whatever the interleaving, a run that
// closed keeps its final phase.
func TestReportRacingCloseNeverReopens(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	const runs = 20
	for i := range runs {
		mustOpenRun(t, s, newRun(fmt.Sprintf("wf-%d", i), fmt.Sprintf("inv-%d", i)))
	}
	var wg sync.WaitGroup
	for i := range runs {
		id := fmt.Sprintf("wf-%d", i)
		wg.Go(func() {
			// The report's time is later than the close's: only the run's
			// state keeps it out.
			if err := s.ReportStatus(ctx, report(id, "paused", t0.Add(time.Hour))); err != nil {
				t.Errorf("ReportStatus(%s): %v", id, err)
			}
		})
		wg.Go(func() {
			if err := s.CloseRun(ctx, id, "recovered", "paid", t0.Add(time.Minute)); err != nil {
				t.Errorf("CloseRun(%s): %v", id, err)
			}
		})
	}
	wg.Wait()
	for i := range runs {
		if st := mustStatus(t, s, fmt.Sprintf("wf-%d", i)); st.Phase != "recovered" {
			t.Errorf("run %d: phase %q after racing a close", i, st.Phase)
		}
	}
}

func TestListRunStatus(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	// Seven acme runs reported at distinct times, two sharing one time (the
	// workflow ID breaks the tie), and one run of another tenant.
	type seed struct {
		id, tenant, customer, phase string
		at                          time.Duration
	}
	seeds := []seed{
		{"wf-a", "acme", "cus_1", "paused", 5 * time.Minute},
		{"wf-b", "acme", "cus_2", "needs_attention", 1 * time.Minute},
		{"wf-c", "acme", "cus_1", "recovering", 3 * time.Minute},
		{"wf-d", "acme", "cus_3", "needs_attention", 3 * time.Minute},
		{"wf-e", "acme", "cus_1", "needs_attention", 7 * time.Minute},
		{"wf-f", "acme", "cus_2", "recovering", 2 * time.Minute},
		{"wf-g", "acme", "cus_3", "paused", 6 * time.Minute},
		{"wf-z", "globex", "cus_1", "needs_attention", 4 * time.Minute},
	}
	for _, sd := range seeds {
		r := newRun(sd.id, "inv-"+sd.id)
		r.Tenant, r.CustomerID = sd.tenant, sd.customer
		mustOpenRun(t, s, r)
		rep := report(sd.id, sd.phase, t0.Add(sd.at))
		if sd.phase == "needs_attention" {
			rep.AttentionCause = "unavailable"
		}
		if err := s.ReportStatus(ctx, rep); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name  string
		query ledger.RunStatusQuery
		want  []string
	}{
		{"tenant", ledger.RunStatusQuery{Tenant: "acme"}, []string{"wf-b", "wf-f", "wf-c", "wf-d", "wf-a", "wf-g", "wf-e"}},
		{"phase", ledger.RunStatusQuery{Tenant: "acme", Phase: "needs_attention"}, []string{"wf-b", "wf-d", "wf-e"}},
		{"customer", ledger.RunStatusQuery{Tenant: "acme", CustomerID: "cus_1"}, []string{"wf-c", "wf-a", "wf-e"}},
		{"phase and customer", ledger.RunStatusQuery{Tenant: "acme", Phase: "paused", CustomerID: "cus_3"}, []string{"wf-g"}},
		{"other tenant", ledger.RunStatusQuery{Tenant: "globex"}, []string{"wf-z"}},
		{"no match", ledger.RunStatusQuery{Tenant: "acme", Phase: "cancelled"}, nil},
		{"unknown tenant", ledger.RunStatusQuery{Tenant: "initech"}, nil},
	}
	for _, tt := range tests {
		for _, limit := range []int{0, 1, 2, 3, 500} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				q := tt.query
				q.Limit = limit
				var got []string
				for pages := 0; ; pages++ {
					if pages > len(seeds) {
						t.Fatalf("more pages than runs; got %v so far", got)
					}
					page, err := s.ListRunStatus(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if limit > 0 && len(page.Runs) > limit {
						t.Fatalf("page of %d runs, limit %d", len(page.Runs), limit)
					}
					for _, r := range page.Runs {
						if r.Tenant != q.Tenant {
							t.Errorf("run %s of tenant %s listed for %s", r.WorkflowID, r.Tenant, q.Tenant)
						}
						got = append(got, r.WorkflowID)
					}
					if page.Next.IsZero() {
						break
					}
					// The cursor travels as a string through the API.
					if q.After, err = ledger.ParseCursor(page.Next.String()); err != nil {
						t.Fatalf("ParseCursor(%q): %v", page.Next.String(), err)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("listed %v, want %v", got, tt.want)
				}
			})
		}
	}

	// A run that changes while a listing is paged moves to its end: seen
	// again, never skipped.
	page, err := s.ListRunStatus(ctx, ledger.RunStatusQuery{Tenant: "acme", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReportStatus(ctx, report("wf-b", "recovering", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	rest, err := s.ListRunStatus(ctx, ledger.RunStatusQuery{Tenant: "acme", After: page.Next, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rest.Runs); n != 6 || rest.Runs[n-1].WorkflowID != "wf-b" {
		t.Errorf("after wf-b changed, the rest of the listing is %d runs ending %s", n, rest.Runs[n-1].WorkflowID)
	}

	for _, tc := range []struct {
		name string
		q    ledger.RunStatusQuery
	}{
		{"no tenant", ledger.RunStatusQuery{}},
		{"limit too large", ledger.RunStatusQuery{Tenant: "acme", Limit: ledger.MaxListLimit + 1}},
		{"negative limit", ledger.RunStatusQuery{Tenant: "acme", Limit: -1}},
	} {
		if _, err := s.ListRunStatus(ctx, tc.q); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
}

func TestParseCursor(t *testing.T) {
	c := ledger.Cursor{UpdatedAt: t0.Add(123456 * time.Microsecond), WorkflowID: "dunning/acme/inv-1"}
	got, err := ledger.ParseCursor(c.String())
	if err != nil || got != c {
		t.Errorf("round trip = %+v, %v; want %+v", got, err, c)
	}
	if got, err := ledger.ParseCursor(""); err != nil || !got.IsZero() {
		t.Errorf(`ParseCursor("") = %+v, %v`, got, err)
	}
	if (ledger.Cursor{}).String() != "" {
		t.Error("the zero cursor encodes as non-empty")
	}
	for _, bad := range []string{"!!!", "e30", "eyJ4IjoxfQ", "bm90IGpzb24", string(make([]byte, 2000))} { // {}, {"x":1}, "not json"
		if _, err := ledger.ParseCursor(bad); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("ParseCursor(%.20q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRunView(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	if _, err := s.BeginAttempt(ctx, ledger.Attempt{IdempotencyKey: "wf-1/attempt-1", WorkflowID: "wf-1", Number: 1,
		Reason: "scheduled", Amount: dec("12.50"), Currency: "EUR", Gateway: "simulator", PaymentMethod: "sim:succeed", StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginMessage(ctx, ledger.Message{IdempotencyKey: "wf-1/m1", WorkflowID: "wf-1", Kind: "payment_failed",
		Channel: "email", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishMessage(ctx, "wf-1/m1", "dry-run", "dry-run", "dry-run:wf-1/m1", "", t0); err != nil {
		t.Fatalf("FinishMessage as dry-run: %v", err)
	}
	if _, err := s.RecordServiceChange(ctx, ledger.ServiceChange{IdempotencyKey: "wf-1/pause", WorkflowID: "wf-1", State: "paused", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	v, err := s.RunView(ctx, "wf-1")
	if err != nil {
		t.Fatal(err)
	}
	// The service change moved the phase in its own transaction.
	if v.Run.WorkflowID != "wf-1" || v.Status.Phase != "paused" || v.Status.ServiceState != "paused" || len(v.Attempts) != 1 || v.Attempts[0].Status != "pending" ||
		len(v.Messages) != 1 || v.Messages[0].Status != "dry-run" || len(v.ServiceChanges) != 1 || len(v.Credits) != 0 {
		t.Errorf("view = %+v", v)
	}

	// A run opened by a worker that predates the read model has no row.
	if _, err := s.Pool().Exec(ctx, `DELETE FROM run_status WHERE workflow_id = 'wf-1'`); err != nil {
		t.Fatal(err)
	}
	v, err = s.RunView(ctx, "wf-1")
	if err != nil || v.Status.Phase != "recovering" || v.Status.Tenant != "acme" || !v.Status.UpdatedAt.Equal(t0) {
		t.Errorf("view without a status row = %+v, %v", v.Status, err)
	}
	// Its next report creates the row.
	if err := s.ReportStatus(ctx, report("wf-1", "paused", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if st := mustStatus(t, s, "wf-1"); st.Phase != "paused" || st.Tenant != "acme" {
		t.Errorf("status after the first report = %+v", st)
	}

	if _, err := s.RunView(ctx, "wf-nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("RunView of an unknown run: err = %v, want ErrNotFound", err)
	}
}
