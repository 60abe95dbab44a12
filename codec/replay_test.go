package codec_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/workflows"
)

// Runs started before encryption was turned on have plain payloads in
// their histories. A worker with the codec must carry them on: every
// recorded fixture replays through the codec's data converter, new commands
// sealed, old events read as they are.
func TestPlainHistoriesReplayWithTheCodec(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "workflows", "testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories found")
	}
	k, err := codec.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.New(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: codec.DataConverter(c)})
			if err != nil {
				t.Fatal(err)
			}
			r.RegisterWorkflowWithOptions(workflows.DunningWorkflow, workflow.RegisterOptions{Name: workflows.WorkflowName})
			r.RegisterWorkflowWithOptions(workflows.ReminderWorkflow, workflow.RegisterOptions{Name: workflows.ReminderWorkflowName})
			if err := r.ReplayWorkflowHistoryFromJSONFile(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)), f); err != nil {
				t.Fatalf("replay %s with the codec: %v", f, err)
			}
		})
	}
}
