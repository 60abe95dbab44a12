package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/policy"
)

// This file holds what makes a run lean (workflow version "charge-gate" 2):
// every history event and billed action is paid on every run, so steps that
// only write our own ledger run as local activities (a marker in the
// history, no task round trip), a message step sends all its channels in
// one activity, and a run whose history grows past a bound continues as new
// with its whole state.

// ledger runs a step that only writes our own ledger (open, card block,
// service change, credit, close; callbacks to the billing system leave
// through the ledger's outbox). Lean runs run it as a local activity; older
// runs replay the regular activity they recorded.
func (r *run) ledger(ctx workflow.Context, activity any, arg any) workflow.Future {
	if r.lean {
		return workflow.ExecuteLocalActivity(localLedgerCtx(ctx), activity, arg)
	}
	return workflow.ExecuteActivity(ledgerCtx(ctx), activity, arg)
}

// localLedgerCtx retries a ledger write until it lands: an outage is
// waited out, never turned into a lost write or a failed run (money already
// recovered must close as recovered, however long the ledger was away).
// Only a write that can never succeed fails. Past the SDK's local retry
// threshold the backoff becomes a timer, so a long outage does not hold the
// workflow task.
func localLedgerCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		// The SDK needs a bound; no outage lasts this long.
		ScheduleToCloseTimeout: 90 * 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
}

// outgoing is one message to send on one channel; both run kinds build
// their messages as outgoing and send them through sendMessages.
type outgoing struct {
	// key is unique within the run and names the channel, e.g.
	// "attempt-1-failed/email"; the idempotency key is the run's ID plus it.
	key     string
	kind    policy.MessageKind
	channel policy.Channel
	data    notify.Data
}

// sentMessage is a message's record and, for a deferred text, when it may
// go out.
type sentMessage struct {
	MessageRecord
	notBefore time.Time
}

// smsWindow is when texts may go out, in the customer's time zone.
type smsWindow struct {
	window policy.Window
	zone   string
}

// messageStepCtx bounds one try of a message step. Explained runs
// (charge-gate 4) give a try two minutes: a step sends up to two messages,
// each a provider call of up to 30 s plus, after an unknown outcome, a
// lookup of the same bound, so a slow provider answers inside the try
// instead of being called again. Older runs keep the 30 s they recorded.
func (r *run) messageStepCtx(ctx workflow.Context) workflow.Context {
	if !r.explain {
		return messageCtx(ctx)
	}
	return workflow.WithStartToCloseTimeout(messageCtx(ctx), 2*time.Minute)
}

// sendMessages sends one message step, all channels in one activity, and
// returns a record per message. A message that cannot be sent is recorded
// as failed; the run goes on.
func sendMessages(ctx workflow.Context, mctx workflow.Context, workflowID string, c Customer, sms smsWindow, msgs []outgoing, journal []activities.JournalEntry) ([]sentMessage, bool) {
	in := activities.NotifyStepInput{Messages: make([]activities.NotifyInput, len(msgs)), Journal: journal}
	for i, m := range msgs {
		recipient := c.Email
		if m.channel == policy.SMS {
			recipient = c.Phone
		}
		in.Messages[i] = activities.NotifyInput{
			WorkflowID: workflowID, IdempotencyKey: workflowID + "/" + m.key, Kind: string(m.kind), Channel: string(m.channel),
			Recipient: recipient, Locale: c.Locale, Data: m.data,
		}
		if m.channel == policy.SMS {
			in.Messages[i].SMSWindow, in.Messages[i].Zone = sms.window, sms.zone
		}
	}
	var out activities.NotifyStepOutput
	err := workflow.ExecuteActivity(mctx, notifications.NotifyStep, in).Get(ctx, &out)
	now := workflow.Now(ctx)
	recs := make([]sentMessage, len(msgs))
	for i, m := range msgs {
		recs[i].MessageRecord = MessageRecord{Key: m.key, Kind: m.kind, Channel: m.channel, At: now}
		switch {
		case err != nil:
			recs[i].Status, recs[i].Detail = "failed", rootMessage(err)
		case i < len(out.Results):
			recs[i].Status, recs[i].Detail, recs[i].notBefore = out.Results[i].Status, out.Results[i].Detail, out.Results[i].NotBefore
		default:
			recs[i].Status, recs[i].Detail = "failed", "no result for this message"
		}
	}
	return recs, err == nil
}

// notifyStep sends the due message step and, in the same activity, the
// same message on every other channel that is due now (a text outside the
// SMS window still waits for it).
func (r *run) notifyStep(ctx workflow.Context, step policy.Step) {
	now := workflow.Now(ctx)
	steps := []policy.Step{step}
	base := messageBase(step.Key)
	state := r.engineState(now)
	state.Sent = slices.Clone(r.sent)
	for {
		state.Sent = append(state.Sent, steps[len(steps)-1].Key)
		next := r.pol.Next(state)
		if next.Action != policy.ActionNotify || next.At.After(now) || messageBase(next.Key) != base {
			break
		}
		steps = append(steps, next)
	}
	data := notify.Data{
		CustomerID: r.in.Customer.ID,
		InvoiceID:  r.in.InvoiceID,
		Amount:     r.amount.Decimal(),
		Currency:   r.amount.Currency.Code,
		TimeZone:   r.in.Customer.TimeZone,
		Attempt:    len(r.attempts),
	}
	// Tell the customer when we try again, as the schedule stands once this
	// message is out.
	if next, ok := r.pol.NextRetry(state); ok {
		data.NextRetryAt = next.At
	}
	msgs := make([]outgoing, len(steps))
	for i, s := range steps {
		msgs[i] = outgoing{key: s.Key, kind: s.Message, channel: s.Channel, data: data}
		if r.explain {
			r.decide(ctx, s, "", "")
		}
	}
	journal := r.takeJournal()
	recs, ok := sendMessages(ctx, r.messageStepCtx(ctx), r.id, r.in.Customer, smsWindow{r.pol.SMSWindow, r.loc.String()}, msgs, journal)
	if ok {
		r.recorded(journal)
	}
	for i, rec := range recs {
		if rec.Status == "deferred" {
			// Not sent: the text is planned again once the provider-side
			// check says its window is open.
			r.smsNotBefore = later(r.smsNotBefore, recs[i].notBefore)
			continue
		}
		r.status.Messages = append(r.status.Messages, rec.MessageRecord)
		r.sent = append(r.sent, steps[i].Key)
	}
}

// messageBase is a message step's key without its channel.
func messageBase(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return key
}

// signalHandler receives one named signal.
type signalHandler struct {
	name   string
	handle func(workflow.Context, workflow.ReceiveChannel)
}

// onSignal handles the named signal's payload as a T.
func onSignal[T any](name string, fn func(workflow.Context, T)) signalHandler {
	return signalHandler{name: name, handle: func(ctx workflow.Context, c workflow.ReceiveChannel) {
		var v T
		c.Receive(ctx, &v)
		fn(ctx, v)
	}}
}

// receiveSignals starts the one goroutine that receives every signal of a
// run, of either kind, in arrival order, and hands each to its handler. One
// goroutine instead of one per signal keeps an open run small.
func receiveSignals(ctx workflow.Context, handlers ...signalHandler) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		for _, h := range handlers {
			sel.AddReceive(workflow.GetSignalChannel(ctx, h.name), func(c workflow.ReceiveChannel, _ bool) {
				h.handle(ctx, c)
			})
		}
		for {
			sel.Select(ctx)
		}
	})
}

// continueAsNewAfter bounds a run's history: past it the run continues as
// new at its next park. A normal run stays far below (about a hundred
// events); only floods of signals or updates reach it.
var continueAsNewAfter = 2000

// Carried is the whole state a lean run hands to the run that continues it.
type Carried struct {
	Status          Status                 `json:"status"`
	Attempts        []policy.Attempt       `json:"attempts"`
	Sent            []string               `json:"sent"`
	Changes         []policy.ServiceChange `json:"changes"`
	CardUpdatedAt   time.Time              `json:"card_updated_at,omitzero"`
	PaidOutOfBand   *PaidOutOfBand         `json:"paid_out_of_band,omitempty"`
	PaymentMethod   string                 `json:"payment_method"`
	Card            Card                   `json:"card"`
	Decline         decline.Decline        `json:"decline"`
	NotBefore       time.Time              `json:"not_before,omitzero"`
	NoRetryUntil    time.Time              `json:"no_retry_until,omitzero"`
	BlockedAt       time.Time              `json:"blocked_at,omitzero"`
	UnknownDeclines int                    `json:"unknown_declines"`
	SAPhase         Phase                  `json:"sa_phase"`
	SAAttempts      int                    `json:"sa_attempts"`
	SANext          time.Time              `json:"sa_next,omitzero"`
	Runs            int                    `json:"runs"`
	Attention       *Attention             `json:"attention,omitempty"`
	HeldPhase       Phase                  `json:"held_phase,omitempty"`
	Repeat          int                    `json:"repeat_attempt,omitempty"`
	SAAttention     string                 `json:"sa_attention,omitempty"`
	SMSNotBefore    time.Time              `json:"sms_not_before,omitzero"`
	// Journal is the audit trail not yet recorded; JournalSeq numbers it.
	Journal    []activities.JournalEntry `json:"journal,omitempty"`
	JournalSeq int                       `json:"journal_seq,omitempty"`
}

// shouldContinueAsNew reports whether the run should hand over to a fresh
// history now: the server suggests it, or the history passed the bound. The
// loop asks only where it parks, when no charge is in flight; a queued
// expedite or a handler still running (an expedite waiting for its answer)
// is served first.
func (r *run) shouldContinueAsNew(ctx workflow.Context) bool {
	if !r.lean || r.charging || len(r.expedites) > 0 || !workflow.AllHandlersFinished(ctx) {
		return false
	}
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > continueAsNewAfter
}

// continueAsNew hands the whole state to a new run of the same workflow ID.
// Signals that reach the server while this task completes make it fail and
// run again with them, so none is lost in the hand-over.
func (r *run) continueAsNew(ctx workflow.Context) error {
	in := r.in
	pol := r.pol
	in.Policy = &pol
	in.Resume = &Carried{
		Status: r.status, Attempts: r.attempts, Sent: r.sent, Changes: r.changes,
		CardUpdatedAt: r.cardUpdatedAt, PaidOutOfBand: r.paidOutOfBand,
		PaymentMethod: r.paymentMethod, Card: r.card, Decline: r.decl,
		NotBefore: r.notBefore, NoRetryUntil: r.noRetryUntil, BlockedAt: r.blockedAt,
		UnknownDeclines: r.unknownDeclines,
		SAPhase:         r.saPhase, SAAttempts: r.saAttempts, SANext: r.saNext,
		Runs: r.runs + 1, Attention: r.attention, HeldPhase: r.heldPhase, Repeat: r.repeat, SAAttention: r.saAttention,
		SMSNotBefore: r.smsNotBefore,
		Journal:      r.journal, JournalSeq: r.journalSeq,
	}
	workflow.GetLogger(ctx).Info("continuing as new", "history_length", workflow.GetInfo(ctx).GetCurrentHistoryLength(), "runs", in.Resume.Runs)
	return workflow.NewContinueAsNewError(ctx, WorkflowName, in)
}

// resume restores the state a previous run carried over.
func (r *run) resume(c *Carried) error {
	if c.Status.WorkflowID != r.id {
		return fmt.Errorf("carried state belongs to %s, not %s", c.Status.WorkflowID, r.id)
	}
	r.status = c.Status
	r.attempts, r.sent, r.changes = c.Attempts, c.Sent, c.Changes
	r.cardUpdatedAt, r.paidOutOfBand = c.CardUpdatedAt, c.PaidOutOfBand
	r.paymentMethod, r.card = c.PaymentMethod, c.Card
	r.decl = c.Decline
	r.notBefore, r.noRetryUntil, r.blockedAt = c.NotBefore, c.NoRetryUntil, c.BlockedAt
	r.unknownDeclines = c.UnknownDeclines
	r.saPhase, r.saAttempts, r.saNext = c.SAPhase, c.SAAttempts, c.SANext
	r.runs = c.Runs
	r.attention, r.heldPhase, r.repeat, r.saAttention = c.Attention, c.HeldPhase, c.Repeat, c.SAAttention
	r.smsNotBefore = c.SMSNotBefore
	r.journal, r.journalSeq = c.Journal, c.JournalSeq
	r.opened = true
	return nil
}

// showDetails tells the Temporal Web UI where the run stands and what comes
// next (the run's "current details"); it costs no history event.
func (r *run) showDetails(ctx workflow.Context) {
	details := fmt.Sprintf("**%s** · %s %s · %d attempt(s)", r.status.Phase, r.amount.Decimal(), r.amount.Currency.Code, len(r.attempts))
	switch {
	case r.attention != nil:
		details += fmt.Sprintf("\n\nNeeds attention since %s: %s (%s). Send `resume` once fixed.",
			r.attention.Since.UTC().Format(time.RFC3339), r.attention.Detail, r.attention.Cause)
	case r.status.NextStep != nil:
		s := r.status.NextStep
		details += fmt.Sprintf("\n\nNext: %s at %s — %s", s.Action, s.At.UTC().Format(time.RFC3339), s.Why)
	}
	workflow.SetCurrentDetails(ctx, details)
}
