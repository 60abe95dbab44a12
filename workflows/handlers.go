package workflows

import (
	"errors"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/policy"
)

// registerHandlers wires the query, the update and the signals. Handlers
// only change state and wake the main loop; the loop decides what happens.
func (r *run) registerHandlers(ctx workflow.Context) error {
	if err := r.registerStatusQuery(ctx); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateExpedite,
		func(ctx workflow.Context, req ExpediteRequest) (AttemptRecord, error) {
			// The validator saw no attempt in flight, but the main loop may
			// have started one since: queue behind it.
			if err := workflow.Await(ctx, func() bool { return r.opened && !r.charging }); err != nil {
				return AttemptRecord{}, err
			}
			if r.closed() || r.recoveredOrClosing() {
				return AttemptRecord{}, errors.New("the run has already recovered or closed; nothing to retry")
			}
			workflow.GetLogger(ctx).Info("expedited retry", "by", req.By, "reason", req.Reason)
			return r.charge(ctx, policy.ReasonExpedite), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ExpediteRequest) error {
			switch {
			case r.closed() || r.recoveredOrClosing():
				return errors.New("the run has already recovered or closed; nothing to retry")
			case r.charging:
				return errors.New("a charge attempt is in progress; query status and try again when it has finished")
			}
			return nil
		}},
	); err != nil {
		return err
	}

	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalDecline)
		for {
			var d Decline
			ch.Receive(ctx, &d)
			r.recordDecline(ctx, d)
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalCancel)
		for {
			var req CancelRequest
			ch.Receive(ctx, &req)
			if r.cancel == nil && !r.closed() {
				if strings.TrimSpace(req.Reason) == "" {
					req.Reason = "no reason given"
				}
				r.cancel = &req
				r.wake = true
			}
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalPaymentMethodUpdated)
		for {
			var req PaymentMethodUpdate
			ch.Receive(ctx, &req)
			if req.PaymentMethod != "" {
				r.paymentMethod = req.PaymentMethod
			}
			if req.Card != nil {
				r.card = *req.Card
			}
			// A new payment method starts clean: the old card's decline no
			// longer rules out retrying.
			if r.declineAware {
				r.decl = decline.Decline{}
				r.status.Decline = nil
				r.notBefore = time.Time{}
			}
			r.cardUpdatedAt = workflow.Now(ctx)
			r.wake = true
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalPaidOutOfBand)
		for {
			var req PaidOutOfBand
			ch.Receive(ctx, &req)
			if r.paidOutOfBand == nil {
				r.paidOutOfBand = &req
				r.wake = true
			}
		}
	})
	return nil
}

// recoveredOrClosing is true once money is in or the invoice was settled
// elsewhere: no further charge may be made.
func (r *run) recoveredOrClosing() bool {
	if r.paidOutOfBand != nil || r.cancel != nil {
		return true
	}
	for _, a := range r.attempts {
		if a.Succeeded {
			return true
		}
	}
	return false
}

// recordDecline keeps a repeated decline once: signal-with-start delivers the
// starting decline as a signal too, and billing systems resend.
func (r *run) recordDecline(ctx workflow.Context, d Decline) bool {
	for _, seen := range r.status.Declines {
		if sameDecline(seen, d) {
			return false
		}
	}
	d.ReceivedAt = workflow.Now(ctx)
	if d.OccurredAt.IsZero() {
		d.OccurredAt = d.ReceivedAt
	}
	if len(r.status.Declines) >= maxListed {
		// A flood of reports must not grow the status (and the history
		// that carries it) without bound: it is counted, not listed.
		r.status.DeclinesNotListed++
		return true
	}
	r.status.Declines = append(r.status.Declines, d)
	return true
}

func sameDecline(a, b Decline) bool {
	if a.ID != "" || b.ID != "" {
		return a.ID == b.ID
	}
	return a.Gateway == b.Gateway && a.Code == b.Code && a.AdviceCode == b.AdviceCode &&
		(b.OccurredAt.IsZero() || a.OccurredAt.Equal(b.OccurredAt))
}

// registerStatusQuery answers the status query with the run's status.
func (r *run) registerStatusQuery(ctx workflow.Context) error {
	return workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) {
		st := r.status
		st.Unrecorded = r.takeJournal()
		return st, nil
	})
}
