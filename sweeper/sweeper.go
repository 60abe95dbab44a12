// Package sweeper finds dunning runs whose workflow ended without closing
// them and closes them in the ledger as aborted.
//
// A run's workflow closes its ledger row on every way out it controls
// (recovered, exhausted, cancelled). It cannot when the execution is ended
// from outside: terminated by ops or by the server (a history past the
// size limit), failed, timed out, or cancelled before its close ran. The
// row then stays "open" for ever: the read model shows a run nobody works
// on and the billing system never hears how it ended.
//
// The sweeper runs beside every worker; a PostgreSQL advisory lock lets one
// replica sweep at a time. Each sweep pages through the open runs and asks
// Temporal about each one's workflow ID (the latest execution, so a run
// that continued as new is judged by its live continuation). A run whose
// latest execution is terminated, failed, timed out or cancelled is closed
// as "aborted" with a run.aborted event for the billing system, in one
// transaction, and its read-model row gets the phase "aborted".
//
// The sweeper never touches the customer's service or money. The run that
// ended decided nothing: its last service change (say, paused) is what the
// billing system was told and still holds, and an attempt it left pending
// may have reached the gateway. Restoring service or refunding would be a
// decision nobody made, and charging again could double charge; the
// run.aborted event says where things stand (service state, attempts,
// pending attempts) so the billing system, or the next decline, decides.
// The next decline for the invoice starts a fresh execution under the same
// workflow ID (Temporal's ALLOW_DUPLICATE_FAILED_ONLY reuse policy lets a
// terminated, failed, timed-out or cancelled execution be followed by a new
// one), which reopens the aborted run; its attempts reuse the ended
// execution's idempotency keys, so a charge left pending is asked again
// under its own key, never made twice.
package sweeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
)

// EventRunAborted is the billing event of a run the sweeper closed.
const EventRunAborted = "run.aborted"

// RunAbortedEvent is the data of run.aborted: the run's workflow ended
// without deciding the invoice, and what the ledger holds for it.
type RunAbortedEvent struct {
	Type       string `json:"type"` // "run.aborted"
	WorkflowID string `json:"workflow_id"`
	Tenant     string `json:"tenant"`
	InvoiceID  string `json:"invoice_id"`
	CustomerID string `json:"customer_id"`
	// Execution is how the workflow ended: terminated, failed, timed_out
	// or cancelled.
	Execution string `json:"execution"`
	Reason    string `json:"reason"`
	Amount    string `json:"amount"`
	Currency  string `json:"currency"`
	// Attempts are the charge attempts that finished (declined or
	// succeeded); PendingAttempts started and have no recorded outcome:
	// the gateway may have charged, and the next run asks it under the
	// same key.
	Attempts        int `json:"attempts"`
	PendingAttempts int `json:"pending_attempts"`
	// ServiceState is the service as the run last changed it (active when
	// it never did); the sweeper leaves it as it is.
	ServiceState string    `json:"service_state"`
	AbortedAt    time.Time `json:"aborted_at"`
}

// Ledger is what the sweeper needs from the ledger; *ledger.Store has it.
type Ledger interface {
	OpenRunsPage(ctx context.Context, before time.Time, after string, limit int) ([]ledger.Run, error)
	RunView(ctx context.Context, workflowID string) (ledger.RunView, error)
	AbortRun(ctx context.Context, a ledger.Abort) (bool, error)
}

// Temporal is what the sweeper asks Temporal; client.Client has it.
type Temporal interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	GetWorkflowHistory(ctx context.Context, workflowID, runID string, isLongPoll bool, filterType enumspb.HistoryEventFilterType) client.HistoryEventIterator
}

// Locker takes the lock that lets one sweeper run at a time; *pgxpool.Pool
// is one through PoolLocker.
type Locker interface {
	// TryLock reports whether the lock was taken; unlock gives it back.
	TryLock(ctx context.Context) (unlock func(), ok bool, err error)
}

// Defaults.
const (
	DefaultInterval = 5 * time.Minute
	// DefaultGrace leaves alone runs opened moments ago.
	DefaultGrace = time.Minute
	pageSize     = 200
)

// Sweeper closes runs whose workflow ended without closing them.
type Sweeper struct {
	Ledger   Ledger
	Temporal Temporal
	// Lock, when set, is taken for each sweep; a sweep that cannot take it
	// is skipped (another replica is sweeping).
	Lock   Locker
	Logger *slog.Logger
	// Interval between sweeps; DefaultInterval when zero.
	Interval time.Duration
	// Grace: runs opened less than Grace ago are not looked at;
	// DefaultGrace when zero, none when negative.
	Grace time.Duration
	Now   func() time.Time
}

// Report counts what one sweep found.
type Report struct {
	Checked int // open runs looked at
	Aborted int // closed as aborted
	// Unexplained are open runs whose workflow completed, or that Temporal
	// does not know (retention passed, another namespace): logged for ops,
	// never closed on a guess.
	Unexplained int
}

// Run sweeps every Interval until ctx ends. Errors of one sweep are
// logged; the next sweep tries again.
func (s *Sweeper) Run(ctx context.Context) error {
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if rep, err := s.SweepLocked(ctx); err != nil && ctx.Err() == nil {
			s.logger().Warn("sweep failed", "error", err, "checked", rep.Checked, "aborted", rep.Aborted)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SweepLocked sweeps once while holding Lock; without it (another replica
// holds it) it does nothing.
func (s *Sweeper) SweepLocked(ctx context.Context) (Report, error) {
	if s.Lock != nil {
		unlock, ok, err := s.Lock.TryLock(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("sweeper: take the lock: %w", err)
		}
		if !ok {
			return Report{}, nil
		}
		defer unlock()
	}
	return s.Sweep(ctx)
}

// Sweep looks at every open run once.
func (s *Sweeper) Sweep(ctx context.Context) (Report, error) {
	var rep Report
	grace := s.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	before := s.now().Add(-max(grace, 0))
	var errs []error
	after := ""
	for {
		runs, err := s.Ledger.OpenRunsPage(ctx, before, after, pageSize)
		if err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		for _, r := range runs {
			rep.Checked++
			outcome, err := s.check(ctx, r)
			switch {
			case err != nil:
				errs = append(errs, err)
				if ctx.Err() != nil {
					return rep, errors.Join(errs...)
				}
			case outcome == aborted:
				rep.Aborted++
			case outcome == unexplained:
				rep.Unexplained++
			}
		}
		if len(runs) < pageSize {
			break
		}
		after = runs[len(runs)-1].WorkflowID
	}
	if rep.Aborted > 0 || rep.Unexplained > 0 {
		s.logger().Info("sweep done", "checked", rep.Checked, "aborted", rep.Aborted, "unexplained", rep.Unexplained)
	}
	return rep, errors.Join(errs...)
}

type outcome int

const (
	alive outcome = iota
	aborted
	unexplained
)

// executionEnd names how an execution ended, for the ledger and the event,
// or "" when it has not ended without closing the run.
var executionEnd = map[enumspb.WorkflowExecutionStatus]string{
	enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED: "terminated",
	enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:     "failed",
	enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:  "timed_out",
	enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:   "cancelled",
}

// check asks Temporal about one open run and aborts it if its workflow
// ended.
func (s *Sweeper) check(ctx context.Context, r ledger.Run) (outcome, error) {
	// The latest execution of the workflow ID: a run that continued as new
	// is judged by its continuation, and one that a new decline restarted
	// by the restart.
	desc, err := s.Temporal.DescribeWorkflowExecution(ctx, r.WorkflowID, "")
	if _, ok := errors.AsType[*serviceerror.NotFound](err); ok {
		s.logger().Warn("open run unknown to Temporal; left open for ops (retention passed, or the wrong namespace?)",
			"workflow_id", r.WorkflowID, "opened_at", r.OpenedAt)
		return unexplained, nil
	}
	if err != nil {
		return alive, fmt.Errorf("sweeper: describe %s: %w", r.WorkflowID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	status := info.GetStatus()
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return alive, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		// Every completion closes the run first; one that did not is a
		// defect to look at, not a guess to make.
		s.logger().Warn("open run whose workflow completed; left open for ops",
			"workflow_id", r.WorkflowID, "run_id", info.GetExecution().GetRunId())
		return unexplained, nil
	}
	end, ok := executionEnd[status]
	if !ok {
		s.logger().Warn("open run whose workflow is in an unknown state; left open",
			"workflow_id", r.WorkflowID, "status", status.String())
		return unexplained, nil
	}
	runID := info.GetExecution().GetRunId()
	reason := "workflow " + strings.ReplaceAll(end, "_", " ")
	if why := s.closeReason(ctx, r.WorkflowID, runID); why != "" {
		reason += ": " + why
	}
	at := info.GetCloseTime().AsTime().UTC()
	if info.GetCloseTime() == nil {
		at = s.now().UTC()
	}
	ev, err := s.event(ctx, r, end, reason, at)
	if err != nil {
		return alive, err
	}
	done, err := s.Ledger.AbortRun(ctx, ledger.Abort{
		WorkflowID: r.WorkflowID, ExecutionRunID: r.ExecutionRunID, Aborts: r.Aborts,
		Reason: reason, At: at, Event: ev,
	})
	if err != nil {
		return alive, fmt.Errorf("sweeper: abort %s: %w", r.WorkflowID, err)
	}
	if !done {
		return alive, nil // reopened or closed since it was read
	}
	s.logger().Warn("run aborted: its workflow ended without closing it; the billing system is told",
		"workflow_id", r.WorkflowID, "run_id", runID, "execution", end, "reason", reason)
	return aborted, nil
}

// event is the run.aborted event of r, keyed by its abort count so each
// abort of a reopened run has its own.
func (s *Sweeper) event(ctx context.Context, r ledger.Run, end, reason string, at time.Time) (*ledger.OutboxEvent, error) {
	view, err := s.Ledger.RunView(ctx, r.WorkflowID)
	if err != nil {
		return nil, fmt.Errorf("sweeper: read run %s: %w", r.WorkflowID, err)
	}
	data := RunAbortedEvent{
		Type: EventRunAborted, WorkflowID: r.WorkflowID, Tenant: r.Tenant, InvoiceID: r.InvoiceID, CustomerID: r.CustomerID,
		Execution: end, Reason: reason, Amount: amountText(r), Currency: r.Currency,
		ServiceState: "active", AbortedAt: at,
	}
	for _, a := range view.Attempts {
		switch a.Status {
		case "succeeded", "declined":
			data.Attempts++
		case "pending":
			data.PendingAttempts++
		}
	}
	if n := len(view.ServiceChanges); n > 0 {
		data.ServiceState = view.ServiceChanges[n-1].State
	}
	body, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("sweeper: encode the event of %s: %w", r.WorkflowID, err)
	}
	return &ledger.OutboxEvent{
		IdempotencyKey: fmt.Sprintf("%s/aborted-%d", r.WorkflowID, r.Aborts+1),
		WorkflowID:     r.WorkflowID, Tenant: r.Tenant, Kind: EventRunAborted, Body: body,
	}, nil
}

// closeReason is what the execution's close event says (the termination
// reason, the failure's message), or "" when it cannot be read.
func (s *Sweeper) closeReason(ctx context.Context, workflowID, runID string) string {
	it := s.Temporal.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	var last *historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return ""
		}
		last = ev
	}
	switch {
	case last == nil:
		return ""
	case last.GetWorkflowExecutionTerminatedEventAttributes() != nil:
		return last.GetWorkflowExecutionTerminatedEventAttributes().GetReason()
	case last.GetWorkflowExecutionFailedEventAttributes() != nil:
		return last.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetMessage()
	}
	return ""
}

// amountText is the run's amount in its currency's decimals (49.90, not
// 49.9), as the other events carry it.
func amountText(r ledger.Run) string {
	if cur, err := money.LookupCurrency(r.Currency); err == nil {
		return money.Amount{Value: r.Amount, Currency: cur}.Decimal()
	}
	return r.Amount.String()
}

func (s *Sweeper) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sweeper) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
