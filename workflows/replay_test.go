package workflows

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from real runs
// (testdata/histories): recovered, exhausted, expedited then cancelled,
// card updated, paid out of band, from before the SMS window and
// decline-aware versions; v2-* recorded with both (soft and hard declines,
// Visa and Mastercard cards, the shared retry budget); v3-* recorded with
// the charge gate; v4-* recorded with lean runs (charge-gate 2: local
// activities, one NotifyStep per message step, the operations hold) and
// reminder runs (reminder-lean 1). Integration tests record them with
// RECORD_HISTORIES set. A change to DunningWorkflow or ReminderWorkflow that
// would break running workflows fails here: guard it with
// workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 21 {
		t.Fatalf("found %d recorded histories, want at least 21", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(DunningWorkflow, workflow.RegisterOptions{Name: WorkflowName})
			r.RegisterWorkflowWithOptions(ReminderWorkflow, workflow.RegisterOptions{Name: ReminderWorkflowName})
			logger := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
			if os.Getenv("REPLAY_VERBOSE") != "" {
				logger = tlog.NewStructuredLogger(slog.Default())
			}
			if err := r.ReplayWorkflowHistoryFromJSONFile(logger, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
