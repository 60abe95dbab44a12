package worker

import (
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/workflows"
)

// registerConsents adds the workflow that holds inbound SMS consents while
// the ledger is down, and the activity that writes them once it is back.
// A ledger without webhook records (test doubles) cannot apply them, and
// the workflow is left out.
func registerConsents(r sdkworker.Registry, d Deps) {
	l, ok := d.Ledger.(activities.ConsentLedger)
	if !ok {
		return
	}
	r.RegisterWorkflowWithOptions(workflows.SMSConsentWorkflow, workflow.RegisterOptions{Name: workflows.SMSConsentWorkflowName})
	r.RegisterActivity(&activities.Consents{Ledger: l})
}
