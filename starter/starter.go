// Package starter is the Go client billing systems use to start dunning runs
// and to talk to them while they are open.
//
// Every failed invoice has exactly one run, identified by
// workflows.WorkflowID(tenant, invoiceID). Reporting a decline for an invoice
// whose run is open adds the decline to that run; reporting one for an invoice
// whose run already ended is refused, because a closed invoice is never
// dunned twice. A run whose workflow failed (rather than ended) can be
// started again by the next decline.
package starter

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// Errors callers branch on. Returned errors wrap them, so test with errors.Is.
var (
	// ErrInvalid marks a request that can never succeed as sent.
	ErrInvalid = errors.New("invalid dunning request")
	// ErrUnknownPolicy marks a policy name the catalog does not hold; it is
	// also an ErrInvalid.
	ErrUnknownPolicy = fmt.Errorf("%w: unknown policy", ErrInvalid)
	// ErrRunNotFound means the invoice has no dunning run.
	ErrRunNotFound = errors.New("dunning run not found")
	// ErrRunClosed means the invoice's dunning run has already ended.
	ErrRunClosed = errors.New("dunning run already ended")
	// ErrRejected means the run refused the request (for example an
	// expedite when no attempt is left); the error carries the run's reason.
	ErrRejected = errors.New("rejected by the dunning run")
	// ErrConflict means a decline for an invoice whose run is open reports
	// another amount or currency than the run dunns; the error names both.
	// Nothing is delivered: one of the two reports is wrong, and guessing
	// which would charge the customer the wrong amount.
	ErrConflict = errors.New("decline conflicts with the open dunning run")
	// ErrRunAborted means the run's latest workflow execution ended without
	// completing (terminated, failed, timed out or cancelled): a status
	// query replayed on it would report where the workflow stopped, not how
	// the run ended, which only the ledger knows. The error is an
	// *AbortedError naming the execution's end.
	ErrRunAborted = errors.New("dunning run's workflow ended without completing")
)

// AbortedError is the error Status returns for a run whose latest
// execution ended without completing.
type AbortedError struct {
	WorkflowID string
	// Execution is how the execution ended: terminated, failed,
	// timed_out or canceled.
	Execution string
}

func (e *AbortedError) Error() string {
	return fmt.Sprintf("%v: %s ended %s", ErrRunAborted, e.WorkflowID, e.Execution)
}

func (e *AbortedError) Unwrap() error { return ErrRunAborted }

// ExecutionEnd names a closed execution's status the way the API and the
// ledger spell it: "terminated", "timed_out".
func ExecutionEnd(s enumspb.WorkflowExecutionStatus) string {
	name, ok := enumspb.WorkflowExecutionStatus_name[int32(s)]
	if !ok {
		return "unknown"
	}
	return strings.ToLower(strings.TrimPrefix(name, "WORKFLOW_EXECUTION_STATUS_"))
}

// DefaultPolicy is the policy a run follows when it names none and the
// catalog has no selection.
const DefaultPolicy = "default"

// Options configures a Client.
type Options struct {
	// TaskQueue the runs are started on; defaults to workflows.TaskQueue.
	TaskQueue string
	// Policies holds the policy names runs may use; defaults to
	// policy.Builtin().
	Policies *policy.Catalog
	// AllowInlinePolicy lets Start accept Input.Policy. Off by default so
	// production runs only follow reviewed catalog policies.
	AllowInlinePolicy bool
	// Rules are the intake rules of the deployment (configured gateways,
	// amount limits); the zero value accepts every gateway the platform
	// ships and the default amount limits. The HTTP intake and the CLI
	// check requests with the same rules.
	Rules validation.Rules
}

// Client starts dunning runs and sends them requests. It is safe for
// concurrent use.
type Client struct {
	tc      client.Client
	opts    Options
	reports reportLimits
}

// NewClient wraps a connected Temporal client.
func NewClient(tc client.Client, opts Options) *Client {
	if opts.TaskQueue == "" {
		opts.TaskQueue = workflows.TaskQueue
	}
	if opts.Policies == nil {
		opts.Policies = policy.Builtin()
	}
	return &Client{tc: tc, opts: opts}
}

// StartResult identifies the run a decline reached.
type StartResult struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

// Start reports a failed payment. The first decline for an invoice starts its
// run with the decline in its input; a later one while the run is open is
// delivered to that run as a decline signal. The start is atomic on the
// server, so concurrent reports for the same invoice never start two runs:
// the one that loses the race becomes a signal. A plain start costs one
// billed action fewer than signal-with-start, which would also deliver the
// first decline a second time.
//
// The input is checked with Options.Rules and normalized (e.g. the phone
// number to E.164) before anything is sent; an invalid one wraps ErrInvalid
// and a *validation.Error naming each bad field. A decline whose amount or
// currency differs from the open run's wraps ErrConflict.
func (c *Client) Start(ctx context.Context, in workflows.Input) (StartResult, error) {
	in, err := c.opts.Rules.Decline(in)
	if err != nil {
		return StartResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	in, err = c.pinPolicy(in)
	if err != nil {
		return StartResult{}, err
	}
	if err := in.Validate(); err != nil { // the run's own check, inline policy included
		return StartResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	amount, err := money.Parse(in.Amount, in.Currency)
	if err != nil {
		return StartResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	amountMinor, err := amount.MinorUnits()
	if err != nil {
		return StartResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	saInput := in
	if in.Policy != nil && saInput.PolicyName == "" {
		// Ops filter on the policy the run follows, not on the default name.
		saInput.PolicyName = in.Policy.Name
	}
	id := workflows.WorkflowID(in.Tenant, in.InvoiceID)
	run, err := c.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: c.opts.TaskQueue,
		// A run that ended (recovered, exhausted or cancelled: the workflow
		// completed) must not be replaced by a new one for the same
		// invoice; an open one is reported to, not started twice. A run
		// whose workflow failed, timed out or was terminated never
		// decided anything, so a new decline may start it again under the
		// same ID; the ledger still refuses an invoice whose run closed.
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without it the SDK answers an existing run as if it had just
		// started this one, and the decline would be dropped unseen.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    workflows.InitialSearchAttributes(saInput, amountMinor),
	}, workflows.WorkflowName, in)
	if err == nil {
		return StartResult{WorkflowID: run.GetID(), RunID: run.GetRunID()}, nil
	}
	started, ok := errors.AsType[*serviceerror.WorkflowExecutionAlreadyStarted](err)
	if !ok {
		return StartResult{}, fmt.Errorf("start dunning run %s: %w", id, err)
	}
	// A flood of reports for one invoice is refused here, before it
	// reaches the run's history.
	if wait, ok := c.reports.allow(id, time.Now()); !ok {
		return StartResult{}, &TooManyReportsError{Wait: wait, Invoice: in.InvoiceID}
	}
	// The invoice has a run: an open one takes the decline if it is about
	// the same debt; a closed one answers not found, and a closed invoice
	// is never dunned twice.
	if err := c.checkSameDebt(ctx, in, started.RunId, amount); err != nil {
		return StartResult{}, err
	}
	if err := c.tc.SignalWorkflow(ctx, id, started.RunId, workflows.SignalDecline, in.Decline); err != nil {
		if _, ok := errors.AsType[*serviceerror.NotFound](err); ok {
			return StartResult{}, closedInvoice(in)
		}
		return StartResult{}, fmt.Errorf("report decline to dunning run %s: %w", id, err)
	}
	return StartResult{WorkflowID: id, RunID: started.RunId}, nil
}

func closedInvoice(in workflows.Input) error {
	return fmt.Errorf("%w: invoice %q of tenant %q; a closed invoice is never dunned twice", ErrRunClosed, in.InvoiceID, in.Tenant)
}

// checkSameDebt refuses a decline for an open run whose amount or currency
// differs from the run's: the run would otherwise take the decline and go
// on charging its own amount, and the difference would be lost. The run's
// amount comes from the search attributes it started with, which the
// server answers without a worker; a run without them is asked its status.
func (c *Client) checkSameDebt(ctx context.Context, in workflows.Input, runID string, reported money.Amount) error {
	id := workflows.WorkflowID(in.Tenant, in.InvoiceID)
	desc, err := c.tc.DescribeWorkflow(ctx, id, runID)
	if err != nil {
		return runError(err, "describe", in.Tenant, in.InvoiceID)
	}
	if desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return closedInvoice(in)
	}
	open, err := c.openAmount(ctx, in, desc)
	if err != nil {
		return err
	}
	if open.Currency.Code != reported.Currency.Code || !open.Value.Equal(reported.Value) {
		return fmt.Errorf("%w: the run for invoice %q of tenant %q dunns %s; this decline reports %s",
			ErrConflict, in.InvoiceID, in.Tenant, open, reported)
	}
	return nil
}

// openAmount is the amount the open run dunns.
func (c *Client) openAmount(ctx context.Context, in workflows.Input, desc *client.WorkflowExecutionDescription) (money.Amount, error) {
	minor, okMinor := desc.TypedSearchAttributes.GetInt64(workflows.SAAmountMinor)
	code, okCode := desc.TypedSearchAttributes.GetKeyword(workflows.SACurrency)
	if okMinor && okCode {
		if cur, err := money.LookupCurrency(code); err == nil {
			return money.FromMinorUnits(minor, cur), nil
		}
	}
	st, err := c.Status(ctx, in.Tenant, in.InvoiceID)
	if err != nil {
		return money.Amount{}, err
	}
	a, err := money.Parse(st.Amount, st.Currency)
	if err != nil {
		return money.Amount{}, fmt.Errorf("read the amount of dunning run %s: %w", st.WorkflowID, err)
	}
	return a, nil
}

// pinPolicy pins the policy's content in the run's input: the run follows
// exactly what was reviewed when it started, whatever later releases of the
// catalog say, and the input shows it in the Web UI. An inline policy (when
// the client allows them) is used as is; a named catalog policy wins over
// selection; with no name, the catalog's selection picks one from the
// tenant, plan, segment, currency and customer, and the input records the
// experiment and variant when an experiment decided.
func (c *Client) pinPolicy(in workflows.Input) (workflows.Input, error) {
	p, a, err := c.choosePolicy(in.Policy, in.PolicyName, policy.Subject{
		Tenant: in.Tenant, Plan: in.Plan, Segment: in.Segment, Currency: in.Currency, CustomerID: in.Customer.ID,
	})
	if err != nil {
		return in, err
	}
	if in.Policy == nil {
		in.PolicyName, in.Policy = p.Name, &p
	}
	in.Experiment, in.Variant = a.Experiment, a.Variant
	return in, nil
}

// choosePolicy is the policy a run starts with: the inline one (when the
// client allows them), else the named catalog policy, else the catalog's
// selection for subject, with its A/B assignment.
func (c *Client) choosePolicy(inline *policy.Policy, name string, subject policy.Subject) (policy.Policy, policy.Assignment, error) {
	switch {
	case inline != nil:
		if !c.opts.AllowInlinePolicy {
			return policy.Policy{}, policy.Assignment{}, fmt.Errorf("%w: inline policies are not accepted; name a catalog policy (%s)",
				ErrInvalid, strings.Join(c.opts.Policies.Names(), ", "))
		}
		return *inline, policy.Assignment{}, nil // the input's Validate has checked it
	case name != "":
		if err := CheckPolicyName(c.opts.Policies, name); err != nil {
			return policy.Policy{}, policy.Assignment{}, err
		}
		p, _ := c.opts.Policies.Lookup(name)
		return p, policy.Assignment{}, nil
	}
	p, a, err := c.opts.Policies.Select(subject)
	if err != nil {
		return policy.Policy{}, policy.Assignment{}, fmt.Errorf("%w: %w; known policies: %s", ErrUnknownPolicy, err, strings.Join(c.opts.Policies.Names(), ", "))
	}
	return p, a, nil
}

// CheckPolicyName reports whether catalog holds name. Empty means "let the
// catalog select", which needs a selection or a "default" policy.
func CheckPolicyName(catalog *policy.Catalog, name string) error {
	if name == "" {
		if _, _, err := catalog.Select(policy.Subject{}); err != nil {
			return fmt.Errorf("%w: %w; known policies: %s", ErrUnknownPolicy, err, strings.Join(catalog.Names(), ", "))
		}
		return nil
	}
	if _, ok := catalog.Lookup(name); !ok {
		return fmt.Errorf("%w %q; known policies: %s", ErrUnknownPolicy, name, strings.Join(catalog.Names(), ", "))
	}
	return nil
}

// Status asks the run where it stands. A run whose latest execution
// completed (or continued as new) answers too. One whose latest execution
// ended without completing returns an *AbortedError (ErrRunAborted): the
// server refuses to replay the query on it, since the replayed answer would
// describe the moment the workflow stopped (still "recovering") rather
// than how the run ended; the ledger's read model answers for it.
func (c *Client) Status(ctx context.Context, tenant, invoiceID string) (workflows.Status, error) {
	if err := ValidateRunKey(tenant, invoiceID); err != nil {
		return workflows.Status{}, err
	}
	id := workflows.WorkflowID(tenant, invoiceID)
	resp, err := c.tc.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID: id, QueryType: workflows.QueryStatus,
		QueryRejectCondition: enumspb.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY,
	})
	if err != nil {
		return workflows.Status{}, runError(err, "query status of", tenant, invoiceID)
	}
	if rej := resp.QueryRejected; rej != nil {
		return workflows.Status{}, &AbortedError{WorkflowID: id, Execution: ExecutionEnd(rej.GetStatus())}
	}
	if resp.QueryResult == nil {
		return workflows.Status{}, fmt.Errorf("query status of %s: the server returned no result", id)
	}
	var st workflows.Status
	if err := resp.QueryResult.Get(&st); err != nil {
		return workflows.Status{}, fmt.Errorf("decode status of %s: %w", id, err)
	}
	return st, nil
}

// Cancel stops the run; the reason (required) is recorded in its history.
func (c *Client) Cancel(ctx context.Context, tenant, invoiceID string, req workflows.CancelRequest) error {
	if err := validation.Cancel(req); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c.signal(ctx, tenant, invoiceID, workflows.SignalCancel, req)
}

// PaymentMethodUpdated tells the run the customer has a new payment method,
// which it retries soon.
func (c *Client) PaymentMethodUpdated(ctx context.Context, tenant, invoiceID string, req workflows.PaymentMethodUpdate) error {
	if err := c.opts.Rules.PaymentMethodUpdate(req); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c.signal(ctx, tenant, invoiceID, workflows.SignalPaymentMethodUpdated, req)
}

// Paid tells the run the invoice was paid outside dunning (bank transfer,
// another card), so it ends as recovered without charging.
func (c *Client) Paid(ctx context.Context, tenant, invoiceID string, req workflows.PaidOutOfBand) error {
	if err := validation.Paid(req); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c.signal(ctx, tenant, invoiceID, workflows.SignalPaidOutOfBand, req)
}

// Ready reports whether the Temporal server answers, for readiness checks.
func (c *Client) Ready(ctx context.Context) error {
	if _, err := c.tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal health check: %w", err)
	}
	return nil
}

// Visibility is what Temporal's visibility store says of a run: the search
// attributes the run sets when it parks. It answers without a worker.
type Visibility struct {
	Running    bool
	Phase      workflows.Phase
	NextAction string
	NextAt     time.Time
	Attention  string
	Attempts   int64
}

// Visibility reads the run's search attributes (DescribeWorkflow), which
// the server keeps whether or not a worker is polling.
func (c *Client) Visibility(ctx context.Context, tenant, invoiceID string) (Visibility, error) {
	if err := ValidateRunKey(tenant, invoiceID); err != nil {
		return Visibility{}, err
	}
	desc, err := c.tc.DescribeWorkflow(ctx, workflows.WorkflowID(tenant, invoiceID), "")
	if err != nil {
		return Visibility{}, runError(err, "describe", tenant, invoiceID)
	}
	sa := desc.TypedSearchAttributes
	v := Visibility{Running: desc.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}
	phase, _ := sa.GetKeyword(workflows.SAStatus)
	v.Phase = workflows.Phase(phase)
	v.NextAction, _ = sa.GetKeyword(workflows.SANextAction)
	v.NextAt, _ = sa.GetTime(workflows.SANextActionAt)
	v.Attention, _ = sa.GetKeyword(workflows.SAAttention)
	v.Attempts, _ = sa.GetInt64(workflows.SAAttempts)
	return v, nil
}

// Resume puts a run that needs attention back on schedule once ops fixed the
// cause; the run records a resume it did not need.
func (c *Client) Resume(ctx context.Context, tenant, invoiceID string, req workflows.ResumeRequest) error {
	if err := validation.Resume(req); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c.signal(ctx, tenant, invoiceID, workflows.SignalResume, req)
}

func (c *Client) signal(ctx context.Context, tenant, invoiceID, name string, arg any) error {
	if err := ValidateRunKey(tenant, invoiceID); err != nil {
		return err
	}
	id := workflows.WorkflowID(tenant, invoiceID)
	if err := c.tc.SignalWorkflow(ctx, id, "", name, arg); err != nil {
		return runError(err, "send "+name+" to", tenant, invoiceID)
	}
	return nil
}

// Expedite asks the run to retry the charge now and waits for the attempt's
// record. A run with nothing left to try refuses: the error wraps
// ErrRejected with the run's reason.
func (c *Client) Expedite(ctx context.Context, tenant, invoiceID string, req workflows.ExpediteRequest) (workflows.AttemptRecord, error) {
	if err := ValidateRunKey(tenant, invoiceID); err != nil {
		return workflows.AttemptRecord{}, err
	}
	if err := validation.Expedite(req); err != nil {
		return workflows.AttemptRecord{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	id := workflows.WorkflowID(tenant, invoiceID)
	h, err := c.tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   workflows.UpdateExpedite,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return workflows.AttemptRecord{}, runError(err, "expedite", tenant, invoiceID)
	}
	var rec workflows.AttemptRecord
	if err := h.Get(ctx, &rec); err != nil {
		// The run's validator or handler refused; its message says why.
		if appErr, ok := errors.AsType[*temporal.ApplicationError](err); ok {
			return workflows.AttemptRecord{}, fmt.Errorf("%w: %s", ErrRejected, appErr.Message())
		}
		return workflows.AttemptRecord{}, runError(err, "expedite", tenant, invoiceID)
	}
	return rec, nil
}

// Result waits for the run to end and returns how it ended.
func (c *Client) Result(ctx context.Context, tenant, invoiceID string) (workflows.Result, error) {
	if err := ValidateRunKey(tenant, invoiceID); err != nil {
		return workflows.Result{}, err
	}
	var res workflows.Result
	err := c.tc.GetWorkflow(ctx, workflows.WorkflowID(tenant, invoiceID), "").Get(ctx, &res)
	if err != nil {
		return workflows.Result{}, runError(err, "wait for the result of", tenant, invoiceID)
	}
	return res, nil
}

// runKeyPattern is the tenant and invoice ID rule of workflows.Input.Validate.
var runKeyPattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

// ValidateRunKey checks a tenant and invoice ID with the rule every run was
// ever started with, so a malformed key is refused before any server call.
// It is the run's own rule (workflows.Input.Validate), not the stricter
// intake rule (package validation): runs started before the intake
// tightened must stay reachable.
func ValidateRunKey(tenant, invoiceID string) error {
	var problems []validation.FieldError
	if !runKeyPattern.MatchString(tenant) {
		problems = append(problems, validation.FieldError{Pointer: "/tenant",
			Detail: fmt.Sprintf("%.64q must be 1-128 characters of letters, digits and . _ : @ -", tenant)})
	}
	if !runKeyPattern.MatchString(invoiceID) {
		problems = append(problems, validation.FieldError{Pointer: "/invoice",
			Detail: fmt.Sprintf("%.64q must be 1-128 characters of letters, digits and . _ : @ -", invoiceID)})
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, &validation.Error{Problems: problems})
	}
	return nil
}

// runError maps a Temporal error about an existing run onto the package's
// sentinels.
func runError(err error, op, tenant, invoiceID string) error {
	return workflowError(err, op, workflows.WorkflowID(tenant, invoiceID), fmt.Sprintf("tenant %q invoice %q", tenant, invoiceID))
}

// workflowError maps a Temporal error about workflow id onto the package's
// sentinels; subject names the run in the message.
func workflowError(err error, op, id, subject string) error {
	if nf, ok := errors.AsType[*serviceerror.NotFound](err); ok {
		// Signals and updates to an ended run come back as NotFound too; the
		// server says so in the message only.
		if strings.Contains(nf.Message, "already completed") {
			return fmt.Errorf("%w: %s", ErrRunClosed, subject)
		}
		return fmt.Errorf("%w: %s", ErrRunNotFound, subject)
	}
	return fmt.Errorf("%s %s: %w", op, id, err)
}
