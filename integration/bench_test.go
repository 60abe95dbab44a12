package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/dunningco/dunning/workflows"
)

// runCost is what one finished run cost on the Temporal server.
type runCost struct {
	events, actions int
	// byType counts events per type, for finding what a run spends.
	byType map[string]int
}

// cost reads a run's history and counts its events and its billable
// actions as Temporal Cloud counts them: the start, each signal, update,
// timer, search-attribute upsert, side effect, each activity attempt
// (retries included) and each local activity. Version markers are not
// actions (their search attribute is exempt).
func (p *platform) cost(tb testing.TB, workflowID string) runCost {
	tb.Helper()
	it := p.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	c := runCost{byType: map[string]int{}}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			tb.Fatalf("history of %s: %v", workflowID, err)
		}
		c.events++
		c.actions += actionsOf(ev)
		name := strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_")
		if m := ev.GetMarkerRecordedEventAttributes(); m != nil {
			name += "/" + m.GetMarkerName()
		}
		c.byType[name]++
	}
	return c
}

func actionsOf(ev *historypb.HistoryEvent) int {
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
		enumspb.EVENT_TYPE_TIMER_STARTED:
		return 1
	case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		// The SDK's own upsert of TemporalChangeVersion for a version
		// marker is exempt.
		for name := range ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields() {
			if name != "TemporalChangeVersion" {
				return 1
			}
		}
		return 0
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
		return int(ev.GetActivityTaskStartedEventAttributes().GetAttempt())
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		switch ev.GetMarkerRecordedEventAttributes().GetMarkerName() {
		case "SideEffect", "LocalActivity":
			return 1
		}
	}
	return 0
}

// BenchmarkRunShapes starts the platform and runs each run shape with the
// default policy compressed to seconds, reporting history events and
// billable actions per run:
//
//	go test -run '^$' -bench RunShapes -benchtime 3x ./integration/
func BenchmarkRunShapes(b *testing.B) {
	p := start(b)
	shapes := []struct {
		name, paymentMethod string
	}{
		{"recovered_on_attempt_2", "sim:succeed-on=2;code=do_not_honor"},
		{"exhausted", "sim:decline;code=insufficient_funds"},
	}
	for _, shape := range shapes {
		b.Run(shape.name, func(b *testing.B) {
			var total runCost
			for i := 0; b.Loop(); i++ {
				invoice := fmt.Sprintf("bench-%s-%d", shape.name, i)
				if code, body := p.do(b, http.MethodPost, "/v1/declines", decline(invoice, shape.paymentMethod, "it-fast")); code != http.StatusAccepted {
					b.Fatalf("start: %d %v", code, body)
				}
				p.result(b, invoice)
				c := p.cost(b, workflows.WorkflowID("acme", invoice))
				total.events += c.events
				total.actions += c.actions
				if i == 0 && testing.Verbose() {
					b.Logf("%s: %d events, %d actions: %v", shape.name, c.events, c.actions, c.byType)
				}
			}
			b.ReportMetric(float64(total.events)/float64(b.N), "events/run")
			b.ReportMetric(float64(total.actions)/float64(b.N), "actions/run")
		})
	}
}
