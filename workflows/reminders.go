package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/policy"
)

// ReminderWorkflowName is the reminder run's workflow type: part of the
// public API, like WorkflowName. Reminder runs answer QueryStatus and take
// SignalCancel and SignalPaidOutOfBand.
const ReminderWorkflowName = "ReminderWorkflow"

// Reminder kinds (see policy.Reminders).
const (
	ReminderPreDue     = policy.ReminderPreDue
	ReminderCardExpiry = policy.ReminderCardExpiry
)

// Message kinds reminders send.
const (
	MessagePaymentDue   = "payment_due"
	MessageCardExpiring = "card_expiring"
)

// ReminderInput starts the reminders for one invoice due date (kind
// "pre-due") or one card's expiry or the subscription's renewal (kind
// "card-expiry").
type ReminderInput struct {
	Tenant   string   `json:"tenant"`
	Kind     string   `json:"kind"`
	Customer Customer `json:"customer"`
	// InvoiceID, Amount and Currency describe the invoice due (pre-due).
	InvoiceID string `json:"invoice_id,omitempty"`
	Amount    string `json:"amount,omitempty"`
	Currency  string `json:"currency,omitempty"`
	// Card is the expiring card (card-expiry); its fingerprint tells the
	// customer's cards apart.
	Card Card `json:"card,omitzero"`
	// Anchor is the due date (pre-due) or the expiry or renewal date
	// (card-expiry); its calendar day in the customer's time zone counts.
	Anchor time.Time `json:"anchor"`
	// PolicyName picks a catalog policy; empty means "default".
	PolicyName string `json:"policy,omitempty"`
	// Policy, when set, is used as is; the starter pins the named policy here.
	Policy *policy.Policy `json:"policy_inline,omitempty"`
}

// Validate checks the input without I/O; a reminder run never starts on bad
// input.
func (in ReminderInput) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !idPattern.MatchString(in.Tenant) {
		add("tenant must be 1-128 characters of letters, digits and . _ : @ -")
	}
	if !idPattern.MatchString(in.Customer.ID) {
		add("customer.id must be 1-128 characters of letters, digits and . _ : @ -")
	}
	problems = append(problems, in.Customer.contactProblems()...)
	switch in.Kind {
	case ReminderPreDue:
		if !idPattern.MatchString(in.InvoiceID) {
			add("invoice_id must be 1-128 characters of letters, digits and . _ : @ -")
		}
		if in.Amount == "" {
			add("amount is required")
		} else if in.Currency == "" {
			add("currency is required")
		} else if _, err := money.Parse(in.Amount, in.Currency); err != nil {
			add("%v", err)
		}
	case ReminderCardExpiry:
		if !idPattern.MatchString(in.Card.Fingerprint) {
			add("card.fingerprint must be 1-128 characters of letters, digits and . _ : @ -")
		}
		if in.Amount != "" {
			if _, err := money.Parse(in.Amount, in.Currency); err != nil {
				add("%v", err)
			}
		}
	default:
		add("kind %q is not %q or %q", in.Kind, ReminderPreDue, ReminderCardExpiry)
	}
	if in.Anchor.IsZero() {
		add("anchor is required")
	}
	if in.Policy != nil {
		if err := in.Policy.Validate(); err != nil {
			add("%v", err)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidInput, strings.Join(problems, "; "))
	}
	return nil
}

// SubjectID is what the reminders are about: the invoice (pre-due) or the
// customer's card, "<customer id>/<card fingerprint>" (card-expiry).
func (in ReminderInput) SubjectID() string {
	if in.Kind == ReminderCardExpiry {
		// The date keeps next year's expiry (or renewal) a run of its own,
		// with message keys of its own.
		return in.Customer.ID + "/" + in.Card.Fingerprint + "/" + in.Anchor.UTC().Format(time.DateOnly)
	}
	return in.InvoiceID
}

// ReminderWorkflowID is the reminder run's stable ID,
// "reminders/<tenant>/<kind>/<subject id>": one run per invoice due date or
// per customer's card and expiry date.
func ReminderWorkflowID(in ReminderInput) string {
	return "reminders/" + in.Tenant + "/" + in.Kind + "/" + in.SubjectID()
}

// Reminder run states; the last three are final.
const (
	ReminderWaiting   = "waiting"
	ReminderCompleted = "completed"
	ReminderPaid      = "paid"
	ReminderCancelled = "cancelled"
)

// ReminderStatus is a reminder run's status query answer.
type ReminderStatus struct {
	WorkflowID string    `json:"workflow_id"`
	Tenant     string    `json:"tenant"`
	Kind       string    `json:"kind"`
	CustomerID string    `json:"customer_id"`
	InvoiceID  string    `json:"invoice_id,omitempty"`
	Anchor     time.Time `json:"anchor"`
	Policy     string    `json:"policy"`
	State      string    `json:"state"`
	// Sent lists the messages sent (or skipped, or failed), one per step and
	// channel; Pending the steps still to come.
	Sent          []MessageRecord       `json:"sent"`
	Pending       []policy.ReminderStep `json:"pending"`
	StartedAt     time.Time             `json:"started_at"`
	ClosedAt      time.Time             `json:"closed_at,omitzero"`
	ClosingReason string                `json:"closing_reason,omitempty"`
}

// ReminderResult is what a reminder run returns when it ends.
type ReminderResult struct {
	// Outcome is ReminderCompleted, ReminderPaid or ReminderCancelled.
	Outcome  string    `json:"outcome"`
	Reason   string    `json:"reason,omitempty"`
	Sent     int       `json:"sent"`
	ClosedAt time.Time `json:"closed_at"`
}

// reminderRun is the reminder workflow's state; everything in it comes from
// the history.
type reminderRun struct {
	id     string
	in     ReminderInput
	loc    *time.Location
	status ReminderStatus
	cancel *CancelRequest
	paid   *PaidOutOfBand
	// lean runs (workflow version "reminder-lean" 1) share the dunning
	// run's signal receiver and message path; see lean.go.
	lean bool
}

// ReminderWorkflow sends the policy's reminders for one due date or one
// expiring card: it sleeps on a durable timer until each reminder's time
// (09:00 in the customer's time zone) and sends it on the policy's channels.
// A cancel signal ends it; a paid signal ends pre-due reminders.
func ReminderWorkflow(ctx workflow.Context, in ReminderInput) (ReminderResult, error) {
	if err := in.Validate(); err != nil {
		return ReminderResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
	}
	pol, err := resolvePolicy(ctx, in.Policy, in.PolicyName)
	if err != nil {
		return ReminderResult{}, err
	}
	info := workflow.GetInfo(ctx)
	now := workflow.Now(ctx)
	r := &reminderRun{id: info.WorkflowExecution.ID, in: in, loc: in.Customer.location()}
	// Version 1 of "reminder-lean": one goroutine receives every signal
	// and each reminder sends all its channels in one activity, through the
	// path dunning runs use.
	r.lean = workflow.GetVersion(ctx, "reminder-lean", workflow.DefaultVersion, 1) >= 1
	steps := pol.Reminders.Schedule(in.Kind, in.Anchor, now, r.loc)
	r.status = ReminderStatus{
		WorkflowID: r.id,
		Tenant:     in.Tenant,
		Kind:       in.Kind,
		CustomerID: in.Customer.ID,
		InvoiceID:  in.InvoiceID,
		Anchor:     in.Anchor,
		Policy:     pol.Ref(),
		State:      ReminderWaiting,
		Sent:       []MessageRecord{},
		Pending:    steps,
		StartedAt:  now,
	}
	if err := r.registerHandlers(ctx); err != nil {
		return ReminderResult{}, err
	}
	for len(r.status.Pending) > 0 {
		step := r.status.Pending[0]
		if wait := step.At.Sub(workflow.Now(ctx)); wait > 0 {
			_, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
				Timeout:      wait,
				TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("reminder %s (%s)", step.Key, step.At.In(r.loc).Format(time.DateOnly))},
			}, r.stopped)
			if err != nil {
				return ReminderResult{}, err
			}
		}
		if r.stopped() {
			break
		}
		if r.lean {
			r.send(ctx, step)
		} else {
			for _, ch := range step.Channels {
				r.notify(ctx, step, ch)
			}
		}
		r.status.Pending = r.status.Pending[1:]
	}
	return r.close(ctx), nil
}

func (r *reminderRun) stopped() bool {
	return r.cancel != nil || r.paid != nil
}

func (r *reminderRun) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (ReminderStatus, error) {
		return r.status, nil
	}); err != nil {
		return err
	}
	if r.lean {
		receiveSignals(ctx,
			onSignal(SignalCancel, r.onCancel),
			onSignal(SignalPaidOutOfBand, r.onPaid))
		return nil
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalCancel)
		for {
			var req CancelRequest
			ch.Receive(ctx, &req)
			r.onCancel(ctx, req)
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalPaidOutOfBand)
		for {
			var req PaidOutOfBand
			ch.Receive(ctx, &req)
			r.onPaid(ctx, req)
		}
	})
	return nil
}

func (r *reminderRun) onCancel(_ workflow.Context, req CancelRequest) {
	if r.cancel == nil {
		r.cancel = &req
	}
}

// onPaid ends pre-due reminders; a card still expires whatever was paid.
func (r *reminderRun) onPaid(_ workflow.Context, req PaidOutOfBand) {
	if r.in.Kind == ReminderPreDue && r.paid == nil {
		r.paid = &req
	}
}

// send sends one reminder on all its channels in one activity.
func (r *reminderRun) send(ctx workflow.Context, step policy.ReminderStep) {
	kind, data := r.message()
	msgs := make([]outgoing, len(step.Channels))
	for i, ch := range step.Channels {
		msgs[i] = outgoing{key: step.Key + "/" + string(ch), kind: kind, channel: ch, data: data}
	}
	sent, _ := sendMessages(ctx, messageCtx(ctx), r.id, r.in.Customer, smsWindow{}, msgs, nil)
	for _, m := range sent {
		r.status.Sent = append(r.status.Sent, m.MessageRecord)
	}
}

// message is the reminder's kind and the data its templates need.
func (r *reminderRun) message() (policy.MessageKind, notify.Data) {
	kind := MessagePaymentDue
	if r.in.Kind == ReminderCardExpiry {
		kind = MessageCardExpiring
	}
	data := notify.Data{
		CustomerID: r.in.Customer.ID,
		InvoiceID:  r.in.InvoiceID,
		TimeZone:   r.in.Customer.TimeZone,
	}
	if r.in.Amount != "" {
		if amount, err := money.Parse(r.in.Amount, r.in.Currency); err == nil {
			data.Amount, data.Currency = amount.Decimal(), amount.Currency.Code
		}
	}
	return policy.MessageKind(kind), data
}

func (r *reminderRun) notify(ctx workflow.Context, step policy.ReminderStep, channel policy.Channel) {
	recipient := r.in.Customer.Email
	if channel == policy.SMS {
		recipient = r.in.Customer.Phone
	}
	kind, data := r.message()
	var out activities.NotifyOutput
	err := workflow.ExecuteActivity(messageCtx(ctx), notifications.Notify, activities.NotifyInput{
		WorkflowID: r.id, IdempotencyKey: r.id + "/" + step.Key + "/" + string(channel), Kind: string(kind), Channel: string(channel),
		Recipient: recipient, Locale: r.in.Customer.Locale, Data: data,
	}).Get(ctx, &out)
	rec := MessageRecord{Key: step.Key, Kind: kind, Channel: channel, At: workflow.Now(ctx), Status: out.Status, Detail: out.Detail}
	if err != nil {
		// A reminder that cannot be sent is recorded; the run goes on.
		rec.Status, rec.Detail = "failed", rootMessage(err)
	}
	r.status.Sent = append(r.status.Sent, rec)
}

func (r *reminderRun) close(ctx workflow.Context) ReminderResult {
	res := ReminderResult{Outcome: ReminderCompleted, ClosedAt: workflow.Now(ctx)}
	switch {
	case r.cancel != nil:
		res.Outcome, res.Reason = ReminderCancelled, "cancelled: "+r.cancel.Reason
	case r.paid != nil:
		res.Outcome, res.Reason = ReminderPaid, "paid"
		if r.paid.Reference != "" {
			res.Reason += ": " + r.paid.Reference
		}
	}
	for _, m := range r.status.Sent {
		if m.Status == "sent" {
			res.Sent++
		}
	}
	r.status.State, r.status.ClosedAt, r.status.ClosingReason = res.Outcome, res.ClosedAt, res.Reason
	return res
}
