package starter

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/workflows"
)

// HoldSMSConsent hands an inbound STOP or START to Temporal when the ledger
// cannot take it: it signals, starting it if needed, the consent workflow
// of the number (workflows.SMSConsentWorkflow), which writes it to the
// ledger once PostgreSQL is back. A nil error means Temporal has it
// durably.
func (c *Client) HoldSMSConsent(ctx context.Context, consent activities.SMSConsent) error {
	id := workflows.SMSConsentWorkflowID(consent.Phone)
	_, err := c.tc.SignalWithStartWorkflow(ctx, id, workflows.SignalSMSConsent, consent, client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: c.opts.TaskQueue,
	}, workflows.SMSConsentWorkflowName, workflows.SMSConsentInput{})
	if err != nil {
		return fmt.Errorf("hand the SMS consent to %s: %w", id, err)
	}
	return nil
}

// PendingSMSOptOut reports the newest consent of phone that Temporal holds
// and the ledger does not have yet: found is false when none is pending.
// It implements activities.PendingConsents for the SMS send path.
func (c *Client) PendingSMSOptOut(ctx context.Context, phone string) (optedOut, found bool, err error) {
	id := workflows.SMSConsentWorkflowID(phone)
	resp, err := c.tc.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID: id,
		QueryType:  workflows.QueryPendingSMSConsent,
		Args:       []any{phone},
		// An ended consent workflow holds nothing: it is not replayed to
		// say so.
		QueryRejectCondition: enumspb.QUERY_REJECT_CONDITION_NOT_OPEN,
	})
	if _, ok := errors.AsType[*serviceerror.NotFound](err); ok {
		return false, false, nil // never started, or past retention
	}
	if err != nil {
		return false, false, fmt.Errorf("ask %s for pending SMS consents: %w", id, err)
	}
	if resp.QueryRejected != nil || resp.QueryResult == nil || !resp.QueryResult.HasValue() {
		return false, false, nil
	}
	var pending *activities.SMSConsent
	if err := resp.QueryResult.Get(&pending); err != nil {
		return false, false, fmt.Errorf("read the pending SMS consents of %s: %w", id, err)
	}
	if pending == nil {
		return false, false, nil
	}
	return pending.OptedOut, true, nil
}

var _ activities.PendingConsents = (*Client)(nil)
