package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/policy"
)

// This file is the run core of runs started at workflow version
// "charge-gate" 1 and later. Where a decline becomes a retry:
// policy.Policy.Next plans the step; where a charge is allowed:
// policy.Policy.MayCharge, asked by chargeGated's callers below. The main
// loop (loopGated) is the only place a charge starts; signal and update
// handlers record what they were told and wake it.

// expediteRequest is an expedite Update waiting for the loop to serve it.
type expediteRequest struct {
	req  ExpediteRequest
	done bool
	rec  AttemptRecord
	err  error
}

// Refusal is a charge the gate turned down, kept so the run can explain it.
type Refusal struct {
	At     time.Time     `json:"at"`
	Reason policy.Reason `json:"reason"`
	Rule   string        `json:"rule"`
	Until  time.Time     `json:"until,omitzero"`
	By     string        `json:"by,omitempty"`
}

// LateSignal is a signal that arrived after the run decided to close, or
// that changed nothing; it is recorded rather than silently dropped.
type LateSignal struct {
	Signal string    `json:"signal"`
	At     time.Time `json:"at"`
	Note   string    `json:"note"`
}

// maxListed bounds each list in the status that outsiders can grow
// (declines reported, late signals, refusals); beyond it they are counted.
const maxListed = 50

// errClosing answers expedites once the run has decided to close.
var errClosing = errors.New("the run has decided to close; nothing more will be charged")

// registerGatedHandlers wires the query, the expedite Update and one
// goroutine that receives every signal.
func (r *run) registerGatedHandlers(ctx workflow.Context) error {
	if err := r.registerStatusQuery(ctx); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateExpedite,
		func(ctx workflow.Context, req ExpediteRequest) (AttemptRecord, error) {
			q := &expediteRequest{req: req}
			r.note(ctx, journalInput, UpdateExpedite, "expedite asked: "+orNone(req.Reason), req.By, "")
			r.expedites = append(r.expedites, q)
			r.wake = true
			if err := workflow.Await(ctx, func() bool { return q.done }); err != nil {
				return AttemptRecord{}, err
			}
			return q.rec, q.err
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ExpediteRequest) error {
			switch {
			case r.closing || r.closed():
				return errClosing
			case r.attention != nil:
				return errHeld
			case len(r.expedites) > 0:
				return errors.New("an expedited attempt is already queued; query status and try again when it has finished")
			}
			if r.explain {
				// The loop refuses it and records the refusal; a rejected
				// update would leave no trace.
				return nil
			}
			if v := r.pol.MayCharge(r.engineState(workflow.Now(ctx)), policy.ReasonExpedite); !v.Allowed {
				return fmt.Errorf("refused: %s", v.Rule)
			}
			return nil
		}},
	); err != nil {
		return err
	}
	receiveSignals(ctx,
		onSignal(SignalDecline, r.onDecline),
		onSignal(SignalCancel, r.onCancel),
		onSignal(SignalPaymentMethodUpdated, r.onCardUpdate),
		onSignal(SignalPaidOutOfBand, r.onPaid),
		onSignal(SignalResume, r.onResume))
	return nil
}

func (r *run) late(ctx workflow.Context, signal, note string) {
	if len(r.status.LateSignals) >= maxListed {
		r.status.LateSignalsNotListed++
		return
	}
	r.status.LateSignals = append(r.status.LateSignals, LateSignal{Signal: signal, At: workflow.Now(ctx), Note: note})
}

// onDecline records a decline the billing system reported and reads it as a
// decline on the current card: a never-retry decline stops the schedule and
// blocks the card for every run.
func (r *run) onDecline(ctx workflow.Context, d Decline) {
	if !r.recordDecline(ctx, d) {
		return
	}
	r.note(ctx, journalInput, SignalDecline, declineWords("decline reported", d), "", "")
	if r.closing || r.closed() {
		r.late(ctx, SignalDecline, "recorded after the run decided to close")
		return
	}
	r.readDecline(ctx, d, fmt.Sprintf("%s/decline-%d", r.id, len(r.status.Declines)-1))
	r.wake = true
}

// readDecline classifies a reported decline onto the current card and
// queues the shared block it calls for.
func (r *run) readDecline(ctx workflow.Context, d Decline, source string) {
	got := r.classifyGated(workflow.Now(ctx), d.Code, d.AdviceCode, d.NetworkDeclineCode, d.NetworkAdviceCode, false)
	if until := got.BlockFor(); until > 0 {
		now := workflow.Now(ctx)
		r.pendingBlocks = append(r.pendingBlocks, activities.BlockInput{
			CardKey: r.cardKey(), Network: r.card.Network, Reason: blockWhy(got), SourceKey: source,
			Until: now.Add(until), At: now,
		})
	}
}

// declineCategory is how the taxonomy reads a reported decline on a card of
// the network, for grouping runs in analytics.
func declineCategory(d Decline, network string) string {
	return string(decline.Classify(decline.Input{
		Gateway: d.Gateway, DeclineCode: d.Code, AdviceCode: d.AdviceCode,
		NetworkDeclineCode: d.NetworkDeclineCode, NetworkAdviceCode: d.NetworkAdviceCode, Network: network,
	}).Category)
}

func blockWhy(d decline.Decline) string {
	if len(d.Sources) > 0 {
		return fmt.Sprintf("%s decline (%s)", d.Category, d.Sources[0])
	}
	return fmt.Sprintf("%s decline (%s)", d.Category, d.Reason)
}

// classifyGated reads a decline on the current card. A card a decline ruled
// out stays ruled out: a later, milder decline does not lift it.
func (r *run) classifyGated(now time.Time, code, advice, networkCode, networkAdvice string, requiresAction bool) decline.Decline {
	got := decline.Classify(decline.Input{
		Gateway: r.in.Decline.Gateway, DeclineCode: code, AdviceCode: advice,
		NetworkDeclineCode: networkCode, NetworkAdviceCode: networkAdvice,
		Network: r.card.Network, RequiresAction: requiresAction,
	})
	if !got.Known {
		r.unknownDeclines++
		r.status.UnknownDeclineCodes = r.unknownDeclines
	}
	if r.cardRuledOut() && got.Retryable() {
		return got
	}
	wasOut := r.cardRuledOut()
	r.decl = got
	d := got
	r.status.Decline = &d
	if got.NoRetryWindow > 0 {
		r.noRetryUntil = later(r.noRetryUntil, now.Add(got.NoRetryWindow))
	}
	if !wasOut && r.cardRuledOut() {
		r.blockedAt = now
	}
	return got
}

func (r *run) cardRuledOut() bool { return r.decl.Advice.RulesOutCard() }

func (r *run) onCancel(ctx workflow.Context, req CancelRequest) {
	r.note(ctx, journalInput, SignalCancel, "cancel asked: "+orNone(req.Reason), req.By, "")
	switch {
	case r.closing || r.closed():
		r.late(ctx, SignalCancel, "the run had already decided to close ("+string(r.status.Phase)+"); nothing to cancel")
	case r.cancel != nil:
		r.late(ctx, SignalCancel, "already cancelled")
	default:
		if req.Reason == "" {
			req.Reason = "no reason given"
		}
		r.cancel = &req
		r.wake = true
	}
}

func (r *run) onPaid(ctx workflow.Context, req PaidOutOfBand) {
	r.note(ctx, journalInput, SignalPaidOutOfBand, strings.TrimSuffix("paid outside dunning: "+strings.TrimSpace(req.Reference+" "+req.Note), ": "), "", "")
	switch {
	case r.closing || r.closed():
		r.late(ctx, SignalPaidOutOfBand, "the run had already decided to close ("+string(r.status.Phase)+")")
	case r.paidOutOfBand != nil:
		r.late(ctx, SignalPaidOutOfBand, "already marked paid")
	default:
		r.paidOutOfBand = &req
		r.wake = true
	}
}

// onCardUpdate takes a new payment method. The same card (same
// fingerprint, or the same payment method when no fingerprint is known)
// keeps its decline and blocks: a customer saying "updated" does not make a
// stolen card chargeable.
func (r *run) onCardUpdate(ctx workflow.Context, req PaymentMethodUpdate) {
	if r.closing || r.closed() {
		r.late(ctx, SignalPaymentMethodUpdated, "the run had already decided to close ("+string(r.status.Phase)+")")
		return
	}
	oldKey := r.cardKey()
	if req.PaymentMethod != "" {
		r.paymentMethod = req.PaymentMethod
	}
	if req.Card != nil {
		r.card = *req.Card
	} else if req.PaymentMethod != "" {
		// A new payment method without card details: nothing says it is
		// the old card.
		r.card = Card{}
	}
	same := r.cardKey() == oldKey && (r.card.Fingerprint != "" || req.PaymentMethod != "")
	if r.explain {
		words := "payment method updated: a new card"
		if r.card.Network != "" {
			words += " (" + r.card.Network + ")"
		}
		if same {
			words = "payment method updated: the same card; its decline and blocks still apply"
		}
		r.note(ctx, journalInput, SignalPaymentMethodUpdated, words, "", "")
	}
	if same {
		r.late(ctx, SignalPaymentMethodUpdated, "the update names the same card; its decline and blocks still apply")
	} else {
		r.decl = decline.Decline{}
		r.status.Decline = nil
		r.notBefore, r.noRetryUntil, r.blockedAt = time.Time{}, time.Time{}, time.Time{}
	}
	r.cardUpdatedAt = workflow.Now(ctx)
	if r.runEvents {
		// The tenant hears of it from the loop (a local activity there, not
		// here, so the signal receiver never waits on the ledger).
		r.pendingEvents = append(r.pendingEvents, activities.EventInput{
			Kind: activities.EventCardUpdated, Key: fmt.Sprintf("%s/card-updated-%d", r.id, r.cardUpdatedAt.UnixMilli()),
			WorkflowID: r.id, Tenant: r.in.Tenant,
			Data: activities.CardUpdatedEvent{Type: activities.EventCardUpdated, WorkflowID: r.id, Tenant: r.in.Tenant,
				Network: r.card.Network, SameCard: same, At: r.cardUpdatedAt},
		})
	}
	r.wake = true
}

// loopGated is the run's main loop: the only place a charge starts.
func (r *run) loopGated(ctx workflow.Context) (Result, error) {
	logger := workflow.GetLogger(ctx)
	for {
		r.flushBlocks(ctx)
		if r.attention != nil {
			released, err := r.waitHeld(ctx)
			if err != nil {
				return Result{}, err
			}
			if released {
				r.release(ctx)
			}
			continue
		}
		now := workflow.Now(ctx)
		if r.cancel != nil && !r.engineState(now).Recovered() {
			return r.exit(ctx, policy.Cancelled, "cancelled: "+r.cancel.Reason)
		}
		if len(r.expedites) > 0 {
			q := r.expedites[0]
			r.expedites = r.expedites[1:]
			r.serveExpedite(ctx, q)
			continue
		}
		state := r.engineState(now)
		step := r.pol.Next(state)
		if step.Action == policy.ActionNotify && step.Channel == policy.SMS && step.At.Before(r.smsNotBefore) {
			step.At = r.smsNotBefore
		}
		r.status.NextStep = &step
		if r.explain {
			r.status.WhatIfs = r.pol.WhatIfs(state)
		}
		switch {
		case r.status.Phase == PhaseRecovering && state.CardBlocked():
			r.status.Phase = PhaseActionRequired
		case r.status.Phase == PhaseActionRequired && !state.CardBlocked():
			r.status.Phase = PhaseRecovering
		}
		if wait := step.At.Sub(now); wait > 0 {
			if r.shouldContinueAsNew(ctx) {
				return Result{}, r.continueAsNew(ctx)
			}
			// Search attributes change only when the loop parks: every
			// upsert is a billed action and a history event.
			r.upsertSearchAttributes(ctx, step.At)
			r.showDetails(ctx)
			tctx, stop := workflow.WithCancel(ctx)
			timer := workflow.NewTimerWithOptions(tctx, wait, workflow.TimerOptions{Summary: fmt.Sprintf("%s: %s", step.Action, step.Why)})
			if err := workflow.Await(ctx, func() bool { return r.wake || timer.IsReady() }); err != nil {
				return Result{}, err
			}
			if !timer.IsReady() {
				stop() // woken by a signal or update: the timer is stale
				r.wake = false
				continue
			}
			if r.lean && r.wokeLate(ctx, step.At) {
				// Our downtime moved the whole schedule; plan again.
				continue
			}
		}
		r.wake = false
		logger.Info("dunning step", "action", step.Action, "why", step.Why, "key", step.Key, "attempt", step.Attempt)
		// A step that takes long because the platform could not act (its
		// activity retried through an outage) moves the schedule; only the
		// step's own time counts, a late wake is wokeLate's.
		began := later(step.At, workflow.Now(ctx))
		switch step.Action {
		case policy.ActionNotify:
			if r.lean {
				r.notifyStep(ctx, step)
				r.actedLate(ctx, began)
			} else {
				r.notify(ctx, step)
			}
		case policy.ActionRetry:
			if v := r.pol.MayCharge(r.engineState(workflow.Now(ctx)), step.Reason); !v.Allowed {
				// Next plans through the same gate, so this means the state
				// moved between planning and now: hold, never charge.
				r.refuse(ctx, step.Reason, v, "")
				r.notBefore = later(v.Until, workflow.Now(ctx).Add(time.Hour))
				continue
			}
			r.chargeGated(ctx, step)
			r.actedLate(ctx, began)
		case policy.ActionService:
			r.setService(ctx, step)
		case policy.ActionClose:
			return r.exit(ctx, step.Outcome, r.closingReason(step))
		default:
			return Result{}, fmt.Errorf("policy returned unknown action %q", step.Action)
		}
	}
}

// serveExpedite charges now if the gate allows it, and answers the Update.
func (r *run) serveExpedite(ctx workflow.Context, q *expediteRequest) {
	defer func() { q.done = true }()
	v := r.pol.MayCharge(r.engineState(workflow.Now(ctx)), policy.ReasonExpedite)
	if !v.Allowed {
		r.refuse(ctx, policy.ReasonExpedite, v, q.req.By)
		q.err = fmt.Errorf("refused: %s", v.Rule)
		return
	}
	workflow.GetLogger(ctx).Info("expedited retry", "by", q.req.By, "reason", q.req.Reason)
	q.rec = r.chargeGated(ctx, policy.Step{Action: policy.ActionRetry, At: workflow.Now(ctx), Reason: policy.ReasonExpedite,
		Why: "expedited by " + orNone(q.req.By) + ": " + orNone(q.req.Reason)})
}

func (r *run) refuse(ctx workflow.Context, reason policy.Reason, v policy.Verdict, by string) {
	if e := r.note(ctx, journalRefusal, string(reason), fmt.Sprintf("%s attempt refused: %s", reason, v.Rule), by, v.Rule); e != nil {
		e.Card = r.cardKey()
	}
	if len(r.status.Refusals) >= maxListed {
		r.status.RefusalsNotListed++
		return
	}
	r.status.Refusals = append(r.status.Refusals, Refusal{At: workflow.Now(ctx), Reason: reason, Rule: v.Rule, Until: v.Until, By: by})
}

// flushBlocks writes queued card blocks to the shared card ledger, and
// queued run events to the outbox.
func (r *run) flushBlocks(ctx workflow.Context) {
	for len(r.pendingEvents) > 0 {
		if err := r.ledger(ctx, runs.Event, r.pendingEvents[0]).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("run event not recorded", "key", r.pendingEvents[0].Key, "error", err)
		}
		r.pendingEvents = r.pendingEvents[1:]
	}
	for len(r.pendingBlocks) > 0 {
		b := r.pendingBlocks[0]
		if err := r.ledger(ctx, limits.Block, b).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("card block not recorded in the shared ledger", "source", b.SourceKey, "error", err)
		}
		r.pendingBlocks = r.pendingBlocks[1:]
	}
}

// chargeGated makes one attempt on a snapshot of the card: the shared
// budget, the gateway call and the settlement happen in one activity, all
// on the card the attempt started with.
func (r *run) chargeGated(ctx workflow.Context, step policy.Step) AttemptRecord {
	reason := step.Reason
	r.charging = true
	defer func() { r.charging = false }()
	snap := activities.CardSnapshot{Key: r.cardKey(), Network: r.card.Network, PaymentMethod: r.paymentMethod}
	n := len(r.attempts) + 1
	seq := n
	if r.lean {
		// Every try has a key of its own (a held try is not an attempt but
		// its ledger row is kept), except the retry of a try an outage cut
		// short, which must repeat its key.
		seq = len(r.status.Attempts) + 1
		if r.repeat > 0 {
			seq, r.repeat = r.repeat, 0
		}
	}
	rec := AttemptRecord{
		Number:         seq,
		Reason:         reason,
		IdempotencyKey: fmt.Sprintf("%s/attempt-%d", r.id, seq),
		StartedAt:      workflow.Now(ctx),
		Card:           snap.Key,
	}
	var out activities.AttemptOutput
	actx := chargeCtx(ctx)
	if r.lean {
		actx = leanChargeCtx(ctx)
	}
	in := activities.AttemptInput{
		ChargeInput: activities.ChargeInput{
			WorkflowID: r.id, Tenant: r.in.Tenant, InvoiceID: r.in.InvoiceID, CustomerID: r.in.Customer.ID,
			Attempt: seq, Reason: string(reason), IdempotencyKey: rec.IdempotencyKey,
			Amount: r.amount.Decimal(), Currency: r.amount.Currency.Code,
			Gateway: r.in.Decline.Gateway, PaymentMethod: snap.PaymentMethod,
		},
		Card: snap, At: rec.StartedAt,
	}
	if r.explain {
		r.decide(ctx, step, snap.Key, rec.IdempotencyKey)
		in.Journal = r.takeJournal()
	}
	err := workflow.ExecuteActivity(actx, charges.Attempt, in).Get(ctx, &out)
	if err == nil {
		r.recorded(in.Journal)
	}
	switch {
	case err != nil && r.lean && holdCause(err) != "":
		// Our failure, not the customer's: no attempt is counted and the
		// run holds for ops.
		cause := holdCause(err)
		rec.Outcome, rec.Message, rec.FinishedAt, rec.Held = gateway.Failed, rootMessage(err), workflow.Now(ctx), true
		r.status.Attempts = append(r.status.Attempts, rec)
		repeat := 0
		if cause == CauseUnavailable {
			repeat = seq
		}
		r.hold(ctx, cause, rec.Message, repeat)
		return rec
	case err != nil:
		rec.Outcome, rec.Message = gateway.Failed, rootMessage(err)
	case out.Denied:
		rec.Outcome, rec.Message, rec.FinishedAt = gateway.Skipped, out.Rule, workflow.Now(ctx)
		if snap.Key == r.cardKey() {
			r.notBefore = out.NotBefore
			if r.notBefore.IsZero() {
				// No moment within the rule's window: the schedule is over.
				r.notBefore = rec.StartedAt.Add((r.pol.Window + r.pol.Timing.MaxShift).D() + time.Second)
			}
		}
		r.status.Attempts = append(r.status.Attempts, rec)
		return rec
	default:
		rec.Outcome = out.Outcome
		rec.DeclineCode, rec.AdviceCode, rec.Message, rec.GatewayRef = out.DeclineCode, out.AdviceCode, out.Message, out.GatewayRef
		rec.NetworkDeclineCode, rec.NetworkAdviceCode, rec.RequiresAction = out.NetworkDeclineCode, out.NetworkAdviceCode, out.RequiresAction
		if out.Outcome == gateway.Declined {
			if snap.Key == r.cardKey() {
				// Read onto the card the attempt charged; a card updated
				// meanwhile starts clean.
				d := r.classifyGated(workflow.Now(ctx), out.DeclineCode, out.AdviceCode, out.NetworkDeclineCode, out.NetworkAdviceCode, out.RequiresAction)
				rec.Category, rec.Advice = string(d.Category), string(d.Advice)
			} else if out.Decline != nil {
				rec.Category, rec.Advice = string(out.Decline.Category), string(out.Decline.Advice)
			}
		}
	}
	rec.FinishedAt = workflow.Now(ctx)
	r.status.Attempts = append(r.status.Attempts, rec)
	r.attempts = append(r.attempts, policy.Attempt{Number: n, At: rec.StartedAt, Reason: reason,
		Succeeded: rec.Outcome == gateway.Succeeded, Card: snap.Key})
	return rec
}

// exit ends the run the one way every outcome leaves: queued expedites are
// answered, late signals from now on are recorded as late, and the run
// waits until every handler has finished before it closes.
func (r *run) exit(ctx workflow.Context, outcome policy.Outcome, reason string) (Result, error) {
	r.closing = true
	for _, q := range r.expedites {
		q.err, q.done = errClosing, true
	}
	r.expedites = nil
	if err := workflow.Await(ctx, func() bool { return !r.charging && workflow.AllHandlersFinished(ctx) }); err != nil {
		return Result{}, err
	}
	r.flushBlocks(ctx)
	return r.close(ctx, outcome, reason)
}

// orNone is s, or "no reason given" when empty.
func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "no reason given"
	}
	return s
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
