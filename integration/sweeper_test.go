package integration

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/sweeper"
	"github.com/dunningco/dunning/workflows"
)

// TestAbortedRunIsSwept: a run whose workflow ends without closing its
// ledger row (terminated, as the server terminates a run whose history
// grew past its limit) stays open until the sweeper finds it; the sweeper
// closes it as aborted, tells the billing system (a signed run.aborted
// event through the outbox) and updates the read model, leaving service
// and money alone; a new decline then starts a fresh run that reopens it.
func TestAbortedRunIsSwept(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	const invoice = "inv-terminated"
	id := workflows.WorkflowID("acme", invoice)
	// The default policy waits three days before its first retry: the run
	// sits open.
	if code, body := p.do(t, http.MethodPost, "/v1/declines", decline(invoice, "sim:decline;code=insufficient_funds", "default")); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, body)
	}
	waitFor(t, func() bool {
		run, err := p.store.GetRun(ctx, id)
		return err == nil && run.Status == "open" && run.ExecutionRunID != ""
	})
	first, err := p.store.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.temporal.TerminateWorkflow(ctx, id, "", "history size exceeds limit"); err != nil {
		t.Fatal(err)
	}
	sw := &sweeper.Sweeper{Ledger: p.store, Temporal: p.temporal, Lock: sweeper.PoolLocker{Pool: p.store.Pool()}, Grace: -1}

	// Nothing else closes it: the row stays open.
	time.Sleep(time.Second)
	if run, err := p.store.GetRun(ctx, id); err != nil || run.Status != "open" {
		t.Fatalf("after terminate: %+v, %v; want the row still open", run, err)
	}

	rep, err := sw.SweepLocked(ctx)
	if err != nil || rep.Aborted != 1 {
		t.Fatalf("sweep = %+v, %v; want one run aborted", rep, err)
	}
	run, err := p.store.GetRun(ctx, id)
	if err != nil || run.Status != ledger.RunAborted || run.ClosingReason != "workflow terminated: history size exceeds limit" || run.Aborts != 1 {
		t.Fatalf("after sweep: %+v, %v", run, err)
	}
	// The billing system is told, signed like every event (the test's
	// billing endpoint counts only events whose signature verifies).
	var ev ledger.OutboxEvent
	waitFor(t, func() bool {
		ev, err = p.store.OutboxEvent(ctx, id+"/aborted-1")
		return err == nil && ev.Status == ledger.OutboxDelivered
	})
	var data sweeper.RunAbortedEvent
	if err := json.Unmarshal(ev.Body, &data); err != nil || ev.Kind != "run.aborted" || data.Execution != "terminated" ||
		data.Amount != "49.90" || data.Currency != "EUR" || data.ServiceState != "active" || data.InvoiceID != invoice {
		t.Fatalf("event %s %s: %+v, %v", ev.Kind, ev.Body, data, err)
	}
	// The read model says where it ended.
	if st, err := p.store.GetRunStatus(ctx, id); err != nil || st.Phase != "aborted" {
		t.Fatalf("read model after sweep: %+v, %v", st, err)
	}
	// No service change and no charge were made for the abort.
	if changes, _ := p.store.ServiceChanges(ctx, id); len(changes) != 0 {
		t.Errorf("service changes = %+v, want none", changes)
	}
	if attempts, _ := p.store.Attempts(ctx, id); len(attempts) != 0 {
		t.Errorf("attempts = %+v, want none", attempts)
	}
	// A second sweep finds nothing more to do.
	if rep, err := sw.SweepLocked(ctx); err != nil || rep.Aborted != 0 {
		t.Fatalf("second sweep = %+v, %v", rep, err)
	}

	// A new decline starts a fresh run, which reopens the ledger row.
	code, body := p.do(t, http.MethodPost, "/v1/declines", decline(invoice, "sim:decline;code=insufficient_funds", "default"))
	if code != http.StatusAccepted || body["run_id"] == first.ExecutionRunID {
		t.Fatalf("new decline after the sweep: %d %v; want 202 and a fresh run", code, body)
	}
	waitFor(t, func() bool {
		run, err := p.store.GetRun(ctx, id)
		return err == nil && run.Status == "open" && run.ExecutionRunID == body["run_id"]
	})
	d, err := p.temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("the fresh run: %v, %v", d.GetWorkflowExecutionInfo().GetStatus(), err)
	}
	if _, err := p.store.OutboxEvent(ctx, id+"/started-1"); err != nil {
		t.Errorf("the reopened run's run.started event: %v", err)
	}
	// The live run is left alone by the sweeper.
	if rep, err := sw.SweepLocked(ctx); err != nil || rep.Aborted != 0 {
		t.Fatalf("sweep with the fresh run open = %+v, %v", rep, err)
	}
	if err := p.temporal.CancelWorkflow(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
}

// TestTerminatedRunRestartsWithoutSweep: the reuse policy
// ALLOW_DUPLICATE_FAILED_ONLY lets a new decline start a fresh execution
// after a terminated one even before any sweep; the fresh execution takes
// over the still-open ledger row (and records itself as its holder), so a
// later sweep leaves it alone.
func TestTerminatedRunRestartsWithoutSweep(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	const invoice = "inv-restarted"
	id := workflows.WorkflowID("acme", invoice)
	_, body := p.do(t, http.MethodPost, "/v1/declines", decline(invoice, "sim:decline;code=insufficient_funds", "default"))
	waitFor(t, func() bool {
		run, err := p.store.GetRun(ctx, id)
		return err == nil && run.Status == "open" && run.ExecutionRunID == body["run_id"]
	})
	if err := p.temporal.TerminateWorkflow(ctx, id, "", "by ops"); err != nil {
		t.Fatal(err)
	}
	code, again := p.do(t, http.MethodPost, "/v1/declines", decline(invoice, "sim:decline;code=insufficient_funds", "default"))
	t.Logf("new decline after terminate, before any sweep: %d %v", code, again)
	if code != http.StatusAccepted || again["run_id"] == body["run_id"] {
		t.Fatalf("new decline: %d %v; want 202 and a fresh execution", code, again)
	}
	waitFor(t, func() bool {
		run, err := p.store.GetRun(ctx, id)
		return err == nil && run.Status == "open" && run.ExecutionRunID == again["run_id"]
	})
	sw := &sweeper.Sweeper{Ledger: p.store, Temporal: p.temporal, Grace: -1}
	if rep, err := sw.Sweep(ctx); err != nil || rep.Aborted != 0 {
		t.Fatalf("sweep = %+v, %v; want the restarted run left alone", rep, err)
	}
	if err := p.temporal.CancelWorkflow(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
}

// TestAbortedRunStatusFromReadModel: once the sweeper has closed a
// terminated run as aborted, its status is the ledger's (phase aborted),
// not a query replayed on the ended workflow, which would still say the
// run is recovering; the answer names how the execution ended.
func TestAbortedRunStatusFromReadModel(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	const invoice = "inv-aborted-status"
	id := workflows.WorkflowID("acme", invoice)
	if code, body := p.do(t, http.MethodPost, "/v1/declines", decline(invoice, "sim:decline;code=insufficient_funds", "default")); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, body)
	}
	waitFor(t, func() bool {
		run, err := p.store.GetRun(ctx, id)
		return err == nil && run.Status == "open" && run.ExecutionRunID != ""
	})
	// While it runs, the run answers itself.
	if code, st := p.do(t, http.MethodGet, "/v1/runs/acme/"+invoice, ""); code != http.StatusOK || st["source"] != "live" || st["execution"] != nil {
		t.Fatalf("open run's status: %d %v; want the live answer without an execution field", code, st)
	}
	if err := p.temporal.TerminateWorkflow(ctx, id, "", "history size exceeds limit"); err != nil {
		t.Fatal(err)
	}
	sw := &sweeper.Sweeper{Ledger: p.store, Temporal: p.temporal, Lock: sweeper.PoolLocker{Pool: p.store.Pool()}, Grace: -1}
	if rep, err := sw.SweepLocked(ctx); err != nil || rep.Aborted != 1 {
		t.Fatalf("sweep = %+v, %v; want one run aborted", rep, err)
	}
	// The API without a read model cannot say how the run ended: it says
	// so rather than replaying the ended workflow.
	if code, st := p.do(t, http.MethodGet, "/v1/runs/acme/"+invoice, ""); code != http.StatusConflict {
		t.Fatalf("aborted run's status without a read model: %d %v; want 409", code, st)
	}
	// dunning serve answers from the ledger's read model.
	api := httptest.NewServer(intake.NewHandler(starter.NewClient(p.temporal, starter.Options{}), slog.New(slog.DiscardHandler),
		intake.WithAuthenticator(p.keys), intake.WithReadModel(p.store)))
	t.Cleanup(api.Close)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.URL+"/v1/runs/acme/"+invoice, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if code := resp.StatusCode; code != http.StatusOK || st["phase"] != "aborted" || st["source"] != "read_model" || st["execution"] != "terminated" ||
		st["closing_reason"] != "workflow terminated: history size exceeds limit" {
		t.Fatalf("aborted run's status: %d %v; want phase aborted from the read model, execution terminated", code, st)
	}
}
