package intake

import (
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/workflows"
)

// DeclineCounter hears of each decline the API handed to a run.
type DeclineCounter interface {
	DeclineReceived(in decline.Input)
}

// WithDeclineCounter counts every decline a run accepted (a new run, or a
// later decline signalled to the open run) once, after Temporal took it: a
// refused report (bad input, a flood, a conflicting amount) counts nothing,
// and a request replayed under its Idempotency-Key is answered without
// reaching the run. Every route that reports declines (POST /v1/declines,
// Stripe's webhooks) starts runs through startRun.
//
// It is an option rather than a wrapper around Runs so that the handler
// still sees everything its Runs can do (readiness, reminders, consent
// holds, visibility): a wrapper would hide those methods.
func WithDeclineCounter(c DeclineCounter) Option {
	return func(h *handler) { h.declines = c }
}

// countDecline tells the counter, if any, of an accepted decline.
func (h *handler) countDecline(in workflows.Input) {
	if h.declines == nil {
		return
	}
	d := in.Decline
	h.declines.DeclineReceived(decline.Input{Gateway: d.Gateway, DeclineCode: d.Code, AdviceCode: d.AdviceCode,
		NetworkDeclineCode: d.NetworkDeclineCode, NetworkAdviceCode: d.NetworkAdviceCode, Network: in.Card.Network})
}
