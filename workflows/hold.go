package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
)

// This file is the operations hold of lean runs: when a charge fails for a
// reason that is ours, not the customer's, the run stops where it is and
// waits for ops instead of burning an attempt, messaging the customer or
// moving their service.

// Causes of a hold, as the status and the DunningAttention search attribute
// name them.
const (
	CauseUnknownGateway = "unknown_gateway"
	CauseGatewayAuth    = "gateway_auth"
	CauseUnavailable    = "unavailable"
	// CauseLate is time the run could not act because the platform (its
	// worker or Temporal) was down: a timer that fired late.
	CauseLate = "late"
)

// Attention is why a run holds for ops.
type Attention struct {
	Cause  string    `json:"cause"`
	Detail string    `json:"detail"`
	Since  time.Time `json:"since"`
	// Repeat is the try an outage cut short: the retry after the hold uses
	// its idempotency key again, so a charge the gateway may have taken is
	// never made twice.
	Repeat int `json:"repeat_attempt,omitempty"`
}

// Hold is one past hold.
type Hold struct {
	Cause string    `json:"cause"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	// How it ended: "resumed by <who>", "retried after the outage",
	// "paid out of band", "cancelled".
	Ended string `json:"ended"`
}

// outageRetry is how often a run held by an outage tries again by itself.
const outageRetry = time.Hour

// errHeld answers expedites while the run holds.
var errHeld = errors.New("the run needs attention from ops; resume it once the cause is fixed")

// holdCause reads a failed attempt: the cause of a hold, or "" when the
// error is the customer's (the gateway refused this charge for good).
func holdCause(err error) string {
	var appErr *temporal.ApplicationError
	switch {
	case activities.IsType(err, activities.ErrTypeUnknownGateway):
		return CauseUnknownGateway
	case activities.IsType(err, activities.ErrTypeGatewayAuth):
		return CauseGatewayAuth
	case errors.As(err, &appErr) && appErr.NonRetryable():
		return ""
	}
	// Anything else was still worth retrying when the attempt's retry
	// budget ran out (the server reports a schedule-to-close timeout): the
	// ledger or the gateway did not answer.
	return CauseUnavailable
}

// hold stops the run for ops.
func (r *run) hold(ctx workflow.Context, cause, detail string, repeat int) {
	workflow.GetLogger(ctx).Warn("run needs attention", "cause", cause, "detail", detail)
	r.attention = &Attention{Cause: cause, Detail: detail, Since: workflow.Now(ctx), Repeat: repeat}
	r.status.Attention = r.attention
	if r.status.Phase != PhaseNeedsAttention {
		r.heldPhase = r.status.Phase
	}
	r.status.Phase = PhaseNeedsAttention
	r.reportHold(ctx)
}

// reportHold writes the hold (or its end) to the ledger's read model, so
// ops see it without a worker. Holds are rare; steps the ledger already
// records (attempts, service changes, the close) keep the read model by
// themselves, and the next step comes from the DunningNextAction search
// attributes.
func (r *run) reportHold(ctx workflow.Context) {
	rep := activities.StatusReport{WorkflowID: r.id, Phase: string(r.status.Phase), ServiceState: string(r.status.ServiceState),
		Attempts: len(r.attempts), At: workflow.Now(ctx)}
	if a := r.attention; a != nil {
		rep.AttentionCause, rep.AttentionDetail, rep.AttentionSince = a.Cause, a.Detail, a.Since
	}
	if err := r.ledger(ctx, runs.ReportStatus, rep).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("hold not recorded in the read model", "error", err)
	}
	// The tenant hears of the hold and of its end (one event per hold,
	// keyed by when it began).
	ev := activities.EventInput{WorkflowID: r.id, Tenant: r.in.Tenant}
	if a := r.attention; a != nil {
		ev.Kind, ev.Key = activities.EventNeedsAttention, fmt.Sprintf("%s/hold-%d", r.id, a.Since.UnixMilli())
		ev.Data = activities.AttentionEvent{Type: ev.Kind, WorkflowID: r.id, Tenant: r.in.Tenant, Cause: a.Cause, Detail: a.Detail, Since: a.Since, At: rep.At}
	} else if n := len(r.status.Holds); n > 0 {
		h := r.status.Holds[n-1]
		ev.Kind, ev.Key = activities.EventResumed, fmt.Sprintf("%s/hold-%d/resumed", r.id, h.From.UnixMilli())
		ev.Data = activities.AttentionEvent{Type: ev.Kind, WorkflowID: r.id, Tenant: r.in.Tenant, Cause: h.Cause, Detail: h.Ended, Since: h.From, At: rep.At}
	}
	if ev.Kind == "" || !r.runEvents {
		return
	}
	if err := r.ledger(ctx, runs.Event, ev).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("hold event not recorded", "error", err)
	}
}

// waitHeld parks a held run until ops resume it, the customer pays out of
// band, the run is cancelled or, after an outage, the hourly retry is due.
// It reports false when the run should stay held and plan again.
func (r *run) waitHeld(ctx workflow.Context) (bool, error) {
	for _, q := range r.expedites {
		q.err, q.done = errHeld, true
	}
	r.expedites = nil
	if r.resumeReq != nil || r.paidOutOfBand != nil || r.cancel != nil {
		return true, nil
	}
	r.upsertSearchAttributes(ctx, time.Time{})
	r.showDetails(ctx)
	ready := func() bool { return r.wake }
	var timer workflow.Future
	tctx, stop := workflow.WithCancel(ctx)
	defer stop()
	if r.attention.Cause == CauseUnavailable {
		timer = workflow.NewTimerWithOptions(tctx, outageRetry, workflow.TimerOptions{Summary: "retry after an outage"})
		ready = func() bool { return r.wake || timer.IsReady() }
	}
	if err := workflow.Await(ctx, ready); err != nil {
		return false, err
	}
	r.wake = false
	return r.resumeReq != nil || r.paidOutOfBand != nil || r.cancel != nil || (timer != nil && timer.IsReady()), nil
}

// release ends the hold; the schedule's clock is extended by its length.
func (r *run) release(ctx workflow.Context) {
	now := workflow.Now(ctx)
	ended := "retried after the outage"
	switch {
	case r.cancel != nil:
		ended = "cancelled"
	case r.paidOutOfBand != nil:
		ended = "paid out of band"
	case r.resumeReq != nil:
		ended = "resumed"
		if r.resumeReq.By != "" {
			ended += " by " + r.resumeReq.By
		}
		if r.resumeReq.Reason != "" {
			ended += ": " + r.resumeReq.Reason
		}
	}
	r.status.Holds = append(r.status.Holds, Hold{Cause: r.attention.Cause, From: r.attention.Since, To: now, Ended: ended})
	r.repeat = r.attention.Repeat
	r.attention, r.status.Attention, r.resumeReq = nil, nil, nil
	r.status.Phase = r.heldPhase
	r.reportHold(ctx)
}

// onResume takes ops' word that the cause of a hold is fixed.
func (r *run) onResume(ctx workflow.Context, req ResumeRequest) {
	r.note(ctx, journalInput, SignalResume, "resume asked: "+orNone(req.Reason), req.By, "")
	switch {
	case r.closing || r.closed():
		r.late(ctx, SignalResume, "the run had already decided to close ("+string(r.status.Phase)+")")
	case r.attention == nil:
		r.late(ctx, SignalResume, "the run was not holding; nothing to resume")
	default:
		r.resumeReq = &req
		r.wake = true
	}
}

// onHold shifts a moment of the schedule by the time held since it, so
// holds extend the schedule rather than compress it into a burst.
func (r *run) onHold(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	var d time.Duration
	for _, h := range r.status.Holds {
		if !h.From.Before(t) {
			d += h.To.Sub(h.From)
		}
	}
	return t.Add(d)
}

// leanChargeCtx gives an attempt a bounded retry budget: past it the run
// holds for ops (an outage of the ledger or the gateway) instead of
// retrying unseen for ever. The hold keeps the attempt's key, so the retry
// after it can never charge twice.
func leanChargeCtx(ctx workflow.Context) workflow.Context {
	opts := chargeOptions(5 * time.Minute)
	opts.ScheduleToCloseTimeout = 30 * time.Minute
	return workflow.WithActivityOptions(ctx, opts)
}

// lateAfter is how late a timer may fire before the delay counts as our
// downtime rather than ordinary scheduling latency.
const lateAfter = 10 * time.Minute

// wokeLate records a timer that fired well after its time (the worker or
// the server was down) as time the schedule does not count: every planned
// step moves by the delay, so a retry the outage made late still runs,
// spaced by the minimum gap, and the policy's window is extended rather
// than spent. It reports whether it moved the schedule.
func (r *run) wokeLate(ctx workflow.Context, planned time.Time) bool {
	now := workflow.Now(ctx)
	if now.Sub(planned) <= r.lateAfter() {
		return false
	}
	r.recordLate(ctx, "woke late; the schedule moves by the delay", planned, now)
	return true
}

// lateAfter is the delay past which a step counts as late because of us.
// Explained runs (charge-gate 4) scale it to the policy: a hundredth of the
// window, between 5 s and lateAfter, so a policy that runs in minutes is
// protected from a 30 s outage as a month-long one is from an hour's.
// Older runs keep the fixed bound they recorded.
func (r *run) lateAfter() time.Duration {
	if !r.explain {
		return lateAfter
	}
	return min(max(time.Duration(r.pol.Window)/100, 5*time.Second), lateAfter)
}

// actedLate records the time a step took past its moment when the delay
// was ours: a charge or a message step that waited out a ledger, gateway or
// provider outage in its activity's retries. The schedule then moves by the delay like after a
// late timer, so the outage neither spends the policy's window nor packs
// the next retries closer together. Only explained runs (charge-gate 4).
func (r *run) actedLate(ctx workflow.Context, planned time.Time) {
	if !r.explain || planned.IsZero() {
		return
	}
	now := workflow.Now(ctx)
	if now.Sub(planned) <= r.lateAfter() {
		return
	}
	r.recordLate(ctx, "step finished late; the schedule moves by the delay", planned, now)
}

// recordLate keeps [planned, now] as time the platform could not act: every
// later moment of the schedule moves by it (onHold).
func (r *run) recordLate(ctx workflow.Context, msg string, planned, now time.Time) {
	workflow.GetLogger(ctx).Warn(msg, "planned", planned, "delay", now.Sub(planned))
	r.status.Holds = append(r.status.Holds, Hold{Cause: CauseLate, From: planned, To: now, Ended: "the platform could not act on time"})
}
