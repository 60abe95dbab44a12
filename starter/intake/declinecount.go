package intake

import (
	"context"

	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

// DeclineCounter hears of each decline the API handed to a run.
type DeclineCounter interface {
	DeclineReceived(in decline.Input)
}

// CountDeclines wraps runs so that every decline a run accepted (a new run,
// or a later decline signalled to the open run) is counted once, after
// Temporal took it: a refused report (bad input, a flood, a conflicting
// amount) counts nothing, and a request replayed under its Idempotency-Key
// is answered without reaching runs. Every route that reports declines
// (POST /v1/declines, Stripe's webhooks) goes through Start.
func CountDeclines(runs Runs, c DeclineCounter) Runs {
	return countingRuns{Runs: runs, counter: c}
}

type countingRuns struct {
	Runs
	counter DeclineCounter
}

func (r countingRuns) Start(ctx context.Context, in workflows.Input) (starter.StartResult, error) {
	res, err := r.Runs.Start(ctx, in)
	if err == nil {
		d := in.Decline
		r.counter.DeclineReceived(decline.Input{Gateway: d.Gateway, DeclineCode: d.Code, AdviceCode: d.AdviceCode,
			NetworkDeclineCode: d.NetworkDeclineCode, NetworkAdviceCode: d.NetworkAdviceCode, Network: in.Card.Network})
	}
	return res, err
}
