package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	historypb "go.temporal.io/api/history/v1"
)

// recordHistory writes a finished run's history as a replay fixture when
// RECORD_HISTORIES names a directory (e.g. ../workflows/testdata/histories);
// the workflows package replays every fixture there on each test run, so a
// change that would break running workflows fails CI.
func (p *platform) recordHistory(t *testing.T, workflowID, name string) {
	t.Helper()
	dir := os.Getenv("RECORD_HISTORIES")
	if dir == "" {
		return
	}
	ctx := context.Background()
	it := p.temporal.GetWorkflowHistory(ctx, workflowID, "", false, 0)
	var h historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		h.Events = append(h.Events, ev)
	}
	raw, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events) to %s", workflowID, len(h.Events), path)
}
