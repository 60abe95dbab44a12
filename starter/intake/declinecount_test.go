package intake

import (
	"context"
	"errors"
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

type declineTally []decline.Input

func (d *declineTally) DeclineReceived(in decline.Input) { *d = append(*d, in) }

func TestCountDeclinesCountsOnlyAcceptedReports(t *testing.T) {
	in := workflows.Input{Tenant: "acme", InvoiceID: "inv-1", Card: workflows.Card{Network: "visa"},
		Decline: workflows.Decline{Gateway: "stripe", Code: "insufficient_funds", NetworkDeclineCode: "51"}}
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"accepted", nil, 1},
		{"refused", starter.ErrInvalid, 0},
		{"Temporal unavailable", errors.New("unavailable"), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var tally declineTally
			_, err := CountDeclines(startOnly{err: tt.err}, &tally).Start(context.Background(), in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Start error = %v, want %v passed through", err, tt.err)
			}
			if len(tally) != tt.want {
				t.Fatalf("counted %d, want %d", len(tally), tt.want)
			}
			if tt.want == 1 && (tally[0].DeclineCode != "insufficient_funds" || tally[0].Network != "visa" || tally[0].Gateway != "stripe") {
				t.Errorf("counted %+v", tally[0])
			}
		})
	}
}
