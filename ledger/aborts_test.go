package ledger_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// An aborted run is closed with its read-model row and event, and the next
// execution reopens it; an abort that lost the race to a new execution
// changes nothing.
func TestAbortRunAndReopen(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	r := newRun("wf-abort", "inv-abort")
	r.ExecutionRunID = "run-1"
	mustOpenRun(t, s, r)

	page, err := s.OpenRunsPage(ctx, t0.Add(time.Second), "", 10)
	if err != nil || len(page) != 1 || page[0].ExecutionRunID != "run-1" || page[0].Aborts != 0 {
		t.Fatalf("OpenRunsPage = %+v, %v", page, err)
	}
	if page, _ := s.OpenRunsPage(ctx, t0, "", 10); len(page) != 0 {
		t.Errorf("a run opened at the cutoff is listed: %+v", page)
	}

	// A sweeper that read the run before another execution took it over
	// must not close it.
	if ok, err := s.AbortRun(ctx, ledger.Abort{WorkflowID: r.WorkflowID, ExecutionRunID: "run-0", Reason: "terminated"}); err != nil || ok {
		t.Fatalf("stale AbortRun = %v, %v; want false", ok, err)
	}
	ev := &ledger.OutboxEvent{IdempotencyKey: r.WorkflowID + "/aborted-1", Tenant: "acme", Kind: "run.aborted", Body: []byte(`{"type":"run.aborted"}`)}
	ok, err := s.AbortRun(ctx, ledger.Abort{WorkflowID: r.WorkflowID, ExecutionRunID: "run-1", Reason: "workflow terminated: history size", At: t0.Add(1), Event: ev})
	if err != nil || !ok {
		t.Fatalf("AbortRun = %v, %v", ok, err)
	}
	if ok, err := s.AbortRun(ctx, ledger.Abort{WorkflowID: r.WorkflowID, ExecutionRunID: "run-1", Reason: "again", Event: ev}); err != nil || ok {
		t.Fatalf("second AbortRun = %v, %v; want false", ok, err)
	}
	got, err := s.GetRun(ctx, r.WorkflowID)
	if err != nil || got.Status != ledger.RunAborted || got.Aborts != 1 || got.ClosingReason != "workflow terminated: history size" || got.ClosedAt.IsZero() {
		t.Fatalf("aborted run = %+v, %v", got, err)
	}
	st, err := s.GetRunStatus(ctx, r.WorkflowID)
	if err != nil || st.Phase != "aborted" {
		t.Fatalf("read model = %+v, %v", st, err)
	}
	if e, err := s.OutboxEvent(ctx, ev.IdempotencyKey); err != nil || e.Kind != "run.aborted" || e.Status != ledger.OutboxPending {
		t.Fatalf("event = %+v, %v", e, err)
	}
	if page, _ := s.OpenRunsPage(ctx, t0.Add(time.Second), "", 10); len(page) != 0 {
		t.Errorf("an aborted run is listed as open: %+v", page)
	}
	// Closing an aborted run as the workflow would is refused: only a new
	// execution may pick it up.
	if err := s.CloseRun(ctx, r.WorkflowID, "recovered", "", t0); !errors.Is(err, ledger.ErrRunClosed) {
		t.Errorf("CloseRun of an aborted run = %v, want ErrRunClosed", err)
	}

	// The next execution reopens it, with what it dunns.
	again := newRun("wf-abort", "inv-abort")
	again.ExecutionRunID, again.Amount, again.OpenedAt = "run-2", dec("20.00"), t0.Add(2)
	reopened, err := s.OpenRun(ctx, again)
	if err != nil || reopened.Status != "open" || reopened.ExecutionRunID != "run-2" || reopened.Aborts != 1 ||
		exact(reopened.Amount) != "20.00" || !reopened.ClosedAt.IsZero() || reopened.ClosingReason != "" {
		t.Fatalf("reopened = %+v, %v", reopened, err)
	}
	if st, _ := s.GetRunStatus(ctx, r.WorkflowID); st.Phase != "recovering" {
		t.Errorf("read model after reopen = %+v", st)
	}
	// The ended execution's abort, read before the reopen, changes nothing.
	if ok, err := s.AbortRun(ctx, ledger.Abort{WorkflowID: r.WorkflowID, ExecutionRunID: "run-1", Aborts: 0, Reason: "late"}); err != nil || ok {
		t.Fatalf("late AbortRun = %v, %v; want false", ok, err)
	}
	// A closed run stays closed.
	if err := s.CloseRun(ctx, r.WorkflowID, "recovered", "paid", t0.Add(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenRun(ctx, again); !errors.Is(err, ledger.ErrRunClosed) {
		t.Errorf("OpenRun of a recovered run = %v, want ErrRunClosed", err)
	}
}

// A new execution that takes over a run still open (its previous one
// failed before any sweep) records itself as the run's holder.
func TestOpenRunTakenOverByNewExecution(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	r := newRun("wf-takeover", "inv-takeover")
	r.ExecutionRunID = "run-1"
	mustOpenRun(t, s, r)
	r.ExecutionRunID, r.OpenedAt = "run-2", t0.Add(1)
	got := mustOpenRun(t, s, r)
	if got.ExecutionRunID != "run-2" || got.Status != "open" {
		t.Fatalf("run = %+v", got)
	}
	if ok, _ := s.AbortRun(ctx, ledger.Abort{WorkflowID: r.WorkflowID, ExecutionRunID: "run-1"}); ok {
		t.Error("the abort of the ended execution closed the run its successor holds")
	}
}
