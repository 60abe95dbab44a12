package starter

import (
	"context"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// StartReminders starts the reminders for one invoice due date or one
// expiring card (see workflows.ReminderInput). A start for a subject whose
// reminder run is open returns that run rather than starting a second one.
// The policy is pinned in the run's input like Start does.
func (c *Client) StartReminders(ctx context.Context, in workflows.ReminderInput) (StartResult, error) {
	in, err := c.opts.Rules.Reminder(in)
	if err != nil {
		return StartResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	in, err = c.pinReminderPolicy(in)
	if err != nil {
		return StartResult{}, err
	}
	if err := in.Validate(); err != nil { // the run's own check
		return StartResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	attrs := []temporal.SearchAttributeUpdate{
		workflows.SATenant.ValueSet(in.Tenant),
		workflows.SACustomerID.ValueSet(in.Customer.ID),
		workflows.SAPolicy.ValueSet(in.PolicyName),
	}
	if in.InvoiceID != "" {
		attrs = append(attrs, workflows.SAInvoiceID.ValueSet(in.InvoiceID))
	}
	id := workflows.ReminderWorkflowID(in)
	run, err := c.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: c.opts.TaskQueue,
		// A repeated start (a retried request, a second billing event)
		// reaches the open run; it never sends the reminders twice.
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(attrs...),
	}, workflows.ReminderWorkflowName, in)
	if err != nil {
		return StartResult{}, fmt.Errorf("start reminder run %s: %w", id, err)
	}
	return StartResult{WorkflowID: run.GetID(), RunID: run.GetRunID()}, nil
}

// pinReminderPolicy pins the named (or selected) catalog policy in the
// input, as pinPolicy does for dunning runs.
func (c *Client) pinReminderPolicy(in workflows.ReminderInput) (workflows.ReminderInput, error) {
	p, _, err := c.choosePolicy(in.Policy, in.PolicyName, policy.Subject{Tenant: in.Tenant, Currency: in.Currency, CustomerID: in.Customer.ID})
	if err != nil {
		return in, err
	}
	if in.Policy == nil {
		in.Policy = &p
	}
	if in.PolicyName == "" {
		in.PolicyName = p.Name
	}
	return in, nil
}

// ReminderStatus asks a reminder run (ID "reminders/...") where it stands.
func (c *Client) ReminderStatus(ctx context.Context, workflowID string) (workflows.ReminderStatus, error) {
	if err := checkReminderID(workflowID); err != nil {
		return workflows.ReminderStatus{}, err
	}
	v, err := c.tc.QueryWorkflow(ctx, workflowID, "", workflows.QueryStatus)
	if err != nil {
		return workflows.ReminderStatus{}, workflowError(err, "query status of", workflowID, workflowID)
	}
	var st workflows.ReminderStatus
	if err := v.Get(&st); err != nil {
		return workflows.ReminderStatus{}, fmt.Errorf("decode status of %s: %w", workflowID, err)
	}
	return st, nil
}

// CancelReminders stops a reminder run.
func (c *Client) CancelReminders(ctx context.Context, workflowID string, req workflows.CancelRequest) error {
	if err := checkReminderID(workflowID); err != nil {
		return err
	}
	if err := validation.Cancel(req); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := c.tc.SignalWorkflow(ctx, workflowID, "", workflows.SignalCancel, req); err != nil {
		return workflowError(err, "cancel", workflowID, workflowID)
	}
	return nil
}

func checkReminderID(id string) error {
	if !strings.HasPrefix(id, "reminders/") || len(id) > 512 {
		return fmt.Errorf("%w: %q is not a reminder run ID (reminders/<tenant>/<kind>/...)", ErrInvalid, id)
	}
	return nil
}
