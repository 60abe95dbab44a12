package sweeper_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/sweeper"
)

// fakeTemporal answers Describe with a fixed status per workflow ID.
type fakeTemporal struct {
	status map[string]enumspb.WorkflowExecutionStatus // missing: NotFound
}

func (f fakeTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	st, ok := f.status[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: st}}, nil
}

func (fakeTemporal) GetWorkflowHistory(context.Context, string, string, bool, enumspb.HistoryEventFilterType) client.HistoryEventIterator {
	return emptyHistory{}
}

type emptyHistory struct{}

func (emptyHistory) HasNext() bool                          { return false }
func (emptyHistory) Next() (*historypb.HistoryEvent, error) { return nil, nil }

// Each Temporal status of an open run's workflow, and what the sweeper
// does with the run.
func TestSweepByExecutionStatus(t *testing.T) {
	tests := []struct {
		name      string
		status    enumspb.WorkflowExecutionStatus
		known     bool
		wantRun   string // the run's status after the sweep
		execution string // the event's execution, when aborted
	}{
		{"running", enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, true, "open", ""},
		{"continued as new", enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, true, "open", ""},
		{"completed without closing", enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, true, "open", ""},
		{"unknown to Temporal", 0, false, "open", ""},
		{"terminated", enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, true, "aborted", "terminated"},
		{"failed", enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, true, "aborted", "failed"},
		{"timed out", enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, true, "aborted", "timed_out"},
		{"cancelled", enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, true, "aborted", "cancelled"},
	}
	store := ledgertest.NewStore(t)
	ctx := context.Background()
	temporal := fakeTemporal{status: map[string]enumspb.WorkflowExecutionStatus{}}
	opened := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i, tt := range tests {
		id := "dunning/acme/inv-" + string(rune('a'+i))
		if _, err := store.OpenRun(ctx, ledger.Run{WorkflowID: id, Tenant: "acme", InvoiceID: "inv-" + string(rune('a'+i)), CustomerID: "cus-1",
			Amount: decimal.RequireFromString("12.5"), Currency: "EUR", Policy: "default", OpenedAt: opened, ExecutionRunID: "run-1"}); err != nil {
			t.Fatal(err)
		}
		if tt.known {
			temporal.status[id] = tt.status
		}
	}
	sw := &sweeper.Sweeper{Ledger: store, Temporal: temporal, Now: func() time.Time { return opened.Add(time.Hour) }}
	rep, err := sw.Sweep(ctx)
	if err != nil || rep.Checked != len(tests) || rep.Aborted != 4 || rep.Unexplained != 2 {
		t.Fatalf("sweep = %+v, %v", rep, err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "dunning/acme/inv-" + string(rune('a'+i))
			run, err := store.GetRun(ctx, id)
			if err != nil || run.Status != tt.wantRun {
				t.Fatalf("run = %+v, %v; want %s", run, err, tt.wantRun)
			}
			ev, err := store.OutboxEvent(ctx, id+"/aborted-1")
			if tt.execution == "" {
				if err == nil {
					t.Errorf("event %s for a run left open", ev.Kind)
				}
				return
			}
			var data sweeper.RunAbortedEvent
			if err != nil || json.Unmarshal(ev.Body, &data) != nil || data.Execution != tt.execution || data.Amount != "12.50" ||
				data.ServiceState != "active" || ev.Kind != sweeper.EventRunAborted {
				t.Fatalf("event = %+v %s, %v", ev, ev.Body, err)
			}
		})
	}
	// Runs opened within the grace period are not looked at.
	sw.Now = func() time.Time { return opened.Add(30 * time.Second) }
	if rep, err := sw.Sweep(ctx); err != nil || rep.Checked != 0 {
		t.Fatalf("sweep within the grace period = %+v, %v", rep, err)
	}
}

// One replica sweeps at a time.
func TestPoolLockerIsExclusive(t *testing.T) {
	store := ledgertest.NewStore(t)
	ctx := context.Background()
	l := sweeper.PoolLocker{Pool: store.Pool()}
	unlock, ok, err := l.TryLock(ctx)
	if err != nil || !ok {
		t.Fatalf("first TryLock = %v, %v", ok, err)
	}
	if _, ok, err := l.TryLock(ctx); err != nil || ok {
		t.Fatalf("second TryLock while held = %v, %v; want false", ok, err)
	}
	unlock()
	unlock2, ok, err := l.TryLock(ctx)
	if err != nil || !ok {
		t.Fatalf("TryLock after unlock = %v, %v", ok, err)
	}
	unlock2()
}
