package intake

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"

	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

type startOnly struct {
	Runs
	err error
}

func (s startOnly) Start(context.Context, workflows.Input) (starter.StartResult, error) {
	return starter.StartResult{WorkflowID: "dunning/acme/inv-1"}, s.err
}

// readyRuns can say whether Temporal answers, like the real starter client.
type downRuns struct{ startOnly }

func (downRuns) Ready(context.Context) error { return errors.New("temporal unreachable") }

type declineTally []decline.Input

func (d *declineTally) DeclineReceived(in decline.Input) { *d = append(*d, in) }

// Only reports a run accepted are counted, once each, through the API.
func TestDeclineCounterCountsOnlyAcceptedReports(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		status int
		want   int
	}{
		{"accepted", nil, http.StatusAccepted, 1},
		{"refused", starter.ErrInvalid, http.StatusUnprocessableEntity, 0},
		{"Temporal unavailable", errors.New("unavailable"), http.StatusInternalServerError, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var tally declineTally
			h := NewHandler(startOnly{err: tt.err}, slog.New(slog.DiscardHandler), withTestKeys(), WithDeclineCounter(&tally))
			rec := post(t, h, "/v1/declines", acmeKey, "", reportWith(t, func(m map[string]any) {}))
			if rec.Code != tt.status {
				t.Fatalf("POST = %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if len(tally) != tt.want {
				t.Fatalf("counted %d, want %d", len(tally), tt.want)
			}
			if tt.want == 1 && (tally[0].DeclineCode != "insufficient_funds" || tally[0].Gateway != "stripe") {
				t.Errorf("counted %+v", tally[0])
			}
		})
	}
}

// Counting declines must not hide what the handler's runs can do: a
// timeout while Temporal is down is still told apart from a slow run.
func TestDeclineCounterKeepsTheRunsCapabilities(t *testing.T) {
	var tally declineTally
	h := NewHandler(downRuns{startOnly{err: context.DeadlineExceeded}}, slog.New(slog.DiscardHandler), withTestKeys(), WithDeclineCounter(&tally))
	rec := post(t, h, "/v1/declines", acmeKey, "", reportWith(t, func(m map[string]any) {}))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("POST with Temporal down = %d (Retry-After %q) %s, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}
