package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time zones must resolve the same on every worker, or replays diverge

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/policy"
)

// Activity handles: nil receivers, used only for their method names.
var (
	charges       *activities.Charges
	notifications *activities.Notifications
	services      *activities.ServiceActions
	runs          *activities.Runs
	limits        *activities.NetworkLimits
)

// run is the workflow's state; everything in it comes from the history.
type run struct {
	id            string
	in            Input
	amount        money.Amount
	pol           policy.Policy
	paymentMethod string
	// loc is the customer's time zone; SMS waits for the policy's window in it.
	loc     *time.Location
	country string
	card    Card
	// declineAware runs read declines (workflow version "decline-aware");
	// decl is the latest decline on the current card.
	declineAware bool
	credits      bool
	// unknownDeclines counts declines no mapping recognised.
	unknownDeclines int
	decl            decline.Decline
	// notBefore is when the card-network budget allows the next attempt.
	notBefore time.Time

	status        Status
	attempts      []policy.Attempt
	sent          []string
	changes       []policy.ServiceChange
	cardUpdatedAt time.Time
	paidOutOfBand *PaidOutOfBand
	cancel        *CancelRequest

	// wake makes the main loop plan again (a signal or update changed things).
	wake bool
	// charging serialises attempts between the main loop and expedite.
	charging bool
	// opened is set once the ledger holds the run; no charge comes before.
	opened bool

	saPhase    Phase
	saAttempts int
	saNext     time.Time

	// gated runs (workflow version "charge-gate" 1) charge only from the
	// main loop, through policy.MayCharge; see gated.go.
	gated bool
	// lean runs (workflow version "charge-gate" 2) run ledger-only steps as
	// local activities, send each message step in one activity and continue
	// as new when their history grows; see lean.go.
	lean bool
	// runEvents runs (version "charge-gate" 3) record card updates and
	// holds as run events.
	runEvents bool
	// runs counts the continue-as-new hand-overs before this run.
	runs int
	// attention is set while the run holds for ops (hold.go); heldPhase is
	// the phase to return to, resumeReq the resume that ends the hold, and
	// repeat the try whose key the next attempt repeats.
	attention   *Attention
	heldPhase   Phase
	resumeReq   *ResumeRequest
	repeat      int
	saAttention string
	// smsNotBefore holds texts back after the send-time check deferred one.
	smsNotBefore time.Time
	// expedites wait for the loop to serve them, in arrival order.
	expedites []*expediteRequest
	// closing is set once the run decided to end; later signals are late.
	closing bool
	// blockedAt is when a decline ruled out the current card.
	blockedAt time.Time
	// noRetryUntil ends a card-network no-retry window on the current card.
	noRetryUntil time.Time
	// pendingBlocks are card blocks to write to the shared ledger.
	pendingBlocks []activities.BlockInput
	// pendingEvents are run events for the tenant to record in the outbox.
	pendingEvents []activities.EventInput
	// explain runs (version "charge-gate" 4) keep an audit trail: journal
	// holds the entries made since the last step, carried in the next
	// step's activity input (journal.go); journalSeq numbers them.
	explain    bool
	journal    []activities.JournalEntry
	journalSeq int
}

// DunningWorkflow recovers one failed invoice: it asks the policy engine for
// the next step, sleeps on a durable timer until it is due while listening
// for signals and updates, and runs the step's activity.
func DunningWorkflow(ctx workflow.Context, in Input) (Result, error) {
	if err := in.Validate(); err != nil {
		return Result{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
	}
	amount, _ := money.Parse(in.Amount, in.Currency) // validated above
	pol, err := resolvePolicy(ctx, in.Policy, in.PolicyName)
	if err != nil {
		return Result{}, err
	}
	info := workflow.GetInfo(ctx)
	now := workflow.Now(ctx)
	decline := in.Decline
	decline.ReceivedAt = now
	if decline.OccurredAt.IsZero() {
		decline.OccurredAt = now
	}
	r := &run{
		id:            info.WorkflowExecution.ID,
		in:            in,
		amount:        amount,
		pol:           pol,
		paymentMethod: in.PaymentMethod,
		status: Status{
			WorkflowID:   info.WorkflowExecution.ID,
			Tenant:       in.Tenant,
			InvoiceID:    in.InvoiceID,
			CustomerID:   in.Customer.ID,
			Phase:        PhaseRecovering,
			Amount:       amount.Decimal(),
			Currency:     amount.Currency.Code,
			Policy:       pol.Ref(),
			Experiment:   in.Experiment,
			Variant:      in.Variant,
			ServiceState: policy.ServiceActive,
			Declines:     []Decline{decline},
			Attempts:     []AttemptRecord{},
			Messages:     []MessageRecord{},
			ServiceLog:   []policy.ServiceChange{},
			StartedAt:    now,
		},
		saPhase: PhaseRecovering,
	}
	// Version 1 of "charge-gate": one charging path through policy.MayCharge,
	// shared sticky card blocks, clean exits (gated.go). It implies the SMS
	// window and decline-aware version 2, so gated runs ask one version
	// (every GetVersion is a history marker and a billed search-attribute
	// upsert) and older runs replay through the two they recorded.
	//
	// Version 2 is the lean run (lean.go): ledger-only steps as local
	// activities, one Notify per message step, continue-as-new.
	//
	// Version 3 also records the run events only the workflow sees (a card
	// update, a hold and its end) for the tenant's endpoint.
	//
	// Version 4 keeps the audit trail: every input, decision and refusal is
	// journaled and recorded by the step's own activity (journal.go), the
	// status shows what would change the next step, and an expedite the
	// gate refuses is accepted and refused by the loop, so the refusal is
	// recorded.
	gate := workflow.GetVersion(ctx, "charge-gate", workflow.DefaultVersion, 4)
	r.gated, r.lean, r.runEvents, r.explain = gate >= 1, gate >= 2, gate >= 3, gate >= 4
	if r.gated {
		r.declineAware, r.credits = true, true
	} else {
		// Runs started before the SMS window existed keep texting at any hour.
		if workflow.GetVersion(ctx, "sms-window", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			r.pol.SMSWindow = policy.Window{}
		}
		// Version 1 reads declines and keeps the card budget; 2 adds service
		// credits for suspended days.
		version := workflow.GetVersion(ctx, "decline-aware", workflow.DefaultVersion, 2)
		r.declineAware = version >= 1
		r.credits = version >= 2
	}
	r.card = in.Card
	r.country = customerCountry(in.Customer)
	r.loc = in.Customer.location()
	if in.Resume != nil {
		// A run continued as new: the ledger holds it and the intake
		// decline was read by the first run.
		if err := r.resume(in.Resume); err != nil {
			return Result{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
		}
		if err := r.registerGatedHandlers(ctx); err != nil {
			return Result{}, err
		}
		return r.loopGated(ctx)
	}
	open := activities.OpenRunInput{
		WorkflowID: r.id, Tenant: in.Tenant, InvoiceID: in.InvoiceID, CustomerID: in.Customer.ID,
		Amount: amount.Decimal(), Currency: amount.Currency.Code, Policy: pol.Ref(), OpenedAt: now,
	}
	switch {
	case r.gated:
		// A decline reported at intake is read like our own: a never-retry
		// decline blocks the card for every run from the first moment.
		r.readDecline(ctx, decline, r.id+"/decline-0")
		if len(r.pendingBlocks) > 0 {
			open.Block, r.pendingBlocks = &r.pendingBlocks[0], r.pendingBlocks[1:]
		}
	case r.declineAware:
		r.classify(in.Decline.Code, in.Decline.AdviceCode, in.Decline.NetworkDeclineCode, in.Decline.NetworkAdviceCode, false)
	}
	if r.explain {
		r.note(ctx, journalInput, SignalDecline, declineWords("decline reported at intake", decline), "", "")
		open.Journal = r.takeJournal()
		// What analytics group the run by (pure: classifying reads no state).
		open.Origin = activities.RunOrigin{DeclineCode: decline.Code, DeclineCategory: declineCategory(decline, r.card.Network), Gateway: decline.Gateway,
			CardNetwork: r.card.Network, Experiment: in.Experiment, Variant: in.Variant}
	}
	register := r.registerHandlers
	if r.gated {
		register = r.registerGatedHandlers
	}
	if err := register(ctx); err != nil {
		return Result{}, err
	}
	if err := r.ledger(ctx, runs.OpenRun, open).Get(ctx, nil); err != nil {
		return Result{}, fmt.Errorf("open run: %w", err)
	}
	r.recorded(open.Journal)
	r.opened = true
	if r.gated {
		return r.loopGated(ctx)
	}
	return r.loop(ctx)
}

// resolvePolicy is the pinned policy or, for runs started without one, the
// named catalog policy. Both run kinds use it.
func resolvePolicy(ctx workflow.Context, pinned *policy.Policy, name string) (policy.Policy, error) {
	if pinned != nil {
		return *pinned, nil
	}
	if name == "" {
		name = "default"
	}
	// Resolved once and recorded, so a later release that edits the catalog
	// does not change what a running workflow does.
	var pol policy.Policy
	err := workflow.SideEffect(ctx, func(workflow.Context) any {
		p, _ := policy.Builtin().Lookup(name)
		return p
	}).Get(&pol)
	if err != nil {
		return policy.Policy{}, fmt.Errorf("resolve policy %q: %w", name, err)
	}
	if pol.Name == "" {
		err := fmt.Errorf("unknown policy %q", name)
		return policy.Policy{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
	}
	return pol, nil
}

func (r *run) loop(ctx workflow.Context) (Result, error) {
	logger := workflow.GetLogger(ctx)
	for {
		if r.cancel != nil {
			return r.close(ctx, policy.Cancelled, "cancelled: "+r.cancel.Reason)
		}
		now := workflow.Now(ctx)
		state := r.engineState(now)
		step := r.pol.Next(state)
		r.status.NextStep = &step
		switch {
		case r.status.Phase == PhaseRecovering && state.CardBlocked():
			r.status.Phase = PhaseActionRequired
		case r.status.Phase == PhaseActionRequired && !state.CardBlocked():
			r.status.Phase = PhaseRecovering
		}
		r.upsertSearchAttributes(ctx, step.At)
		if wait := step.At.Sub(now); wait > 0 {
			woken, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
				Timeout:      wait,
				TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("%s: %s", step.Action, step.Why)},
			}, func() bool { return r.wake })
			if err != nil {
				return Result{}, err
			}
			if woken {
				r.wake = false
				continue
			}
		}
		// An expedited attempt may be in flight; plan again once it is done.
		if r.charging {
			if err := workflow.Await(ctx, func() bool { return !r.charging }); err != nil {
				return Result{}, err
			}
			continue
		}
		r.wake = false
		logger.Info("dunning step", "action", step.Action, "why", step.Why, "key", step.Key, "attempt", step.Attempt)
		switch step.Action {
		case policy.ActionNotify:
			r.notify(ctx, step)
		case policy.ActionRetry:
			r.charge(ctx, step.Reason)
		case policy.ActionService:
			r.setService(ctx, step)
		case policy.ActionClose:
			return r.close(ctx, step.Outcome, r.closingReason(step))
		default:
			return Result{}, fmt.Errorf("policy returned unknown action %q", step.Action)
		}
	}
}

// closingReason is why a close step closes the run, in words.
func (r *run) closingReason(step policy.Step) string {
	if r.paidOutOfBand == nil {
		return step.Why
	}
	if r.paidOutOfBand.Reference != "" {
		return "paid out of band (" + r.paidOutOfBand.Reference + ")"
	}
	return "paid out of band"
}

// creditSuspendedDays records the proration credit owed for the days the
// service was suspended, when the customer pays after a suspension.
func (r *run) creditSuspendedDays(ctx workflow.Context) {
	if !r.credits || r.in.PeriodDays < 1 || r.status.ServiceState != policy.ServiceSuspended || len(r.changes) == 0 {
		return
	}
	suspended := r.changes[len(r.changes)-1].At
	days := int((workflow.Now(ctx).Sub(suspended) + 24*time.Hour - 1) / (24 * time.Hour)) // started days count
	days = min(max(days, 1), r.in.PeriodDays)
	var out activities.CreditOutput
	err := r.ledger(ctx, services.RecordCredit, activities.CreditInput{
		WorkflowID: r.id, IdempotencyKey: r.id + "/credit-suspended", Tenant: r.in.Tenant, InvoiceID: r.in.InvoiceID,
		CustomerID: r.in.Customer.ID, PeriodCharge: r.amount.Decimal(), Currency: r.amount.Currency.Code,
		PeriodDays: r.in.PeriodDays, Days: days, Reason: fmt.Sprintf("service suspended %d of %d days", days, r.in.PeriodDays),
		CallbackURL: r.in.BillingCallbackURL,
	}).Get(ctx, &out)
	if err != nil {
		workflow.GetLogger(ctx).Error("service credit not recorded", "error", err)
		return
	}
	r.status.Credit = &Credit{Amount: out.Amount, Currency: out.Currency, Days: days}
}

// cardKey identifies the card for the shared retry budget: its fingerprint,
// else the payment method, else the customer's default card.
func (r *run) cardKey() string {
	switch {
	case r.card.Fingerprint != "":
		return "fp:" + r.card.Fingerprint
	case r.paymentMethod != "":
		return "pm:" + r.paymentMethod
	}
	return "customer:" + r.in.Tenant + "/" + r.in.Customer.ID
}

// classify reads a decline on the current card; the policy engine acts on it.
func (r *run) classify(code, advice, networkCode, networkAdvice string, requiresAction bool) {
	r.decl = decline.Classify(decline.Input{
		Gateway: r.in.Decline.Gateway, DeclineCode: code, AdviceCode: advice,
		NetworkDeclineCode: networkCode, NetworkAdviceCode: networkAdvice,
		Network: r.card.Network, RequiresAction: requiresAction,
	})
	d := r.decl
	r.status.Decline = &d
	if !d.Known {
		// Unknown codes get the safe default; counting them shows which
		// codes the taxonomy should learn next.
		r.unknownDeclines++
		r.status.UnknownDeclineCodes = r.unknownDeclines
	}
}

// customerCountry is the customer's country, or their locale's region
// ("fr-FR" -> "FR").
func customerCountry(c Customer) string {
	if c.Country != "" {
		return strings.ToUpper(c.Country)
	}
	if i := strings.LastIndexAny(c.Locale, "-_"); i > 0 && len(c.Locale)-i == 3 {
		return strings.ToUpper(c.Locale[i+1:])
	}
	return ""
}

func (r *run) engineState(now time.Time) policy.State {
	var reachable []policy.Channel
	if r.in.Customer.Email != "" {
		reachable = append(reachable, policy.Email)
	}
	if r.in.Customer.Phone != "" {
		reachable = append(reachable, policy.SMS)
	}
	declinedAt, attempts, changes, cardUpdatedAt, blockedAt := r.status.Declines[0].ReceivedAt, r.attempts, r.changes, r.cardUpdatedAt, r.blockedAt
	if len(r.status.Holds) > 0 {
		// Time stands still while the run held: every moment the schedule
		// counts from moves by the time held since it.
		declinedAt, cardUpdatedAt, blockedAt = r.onHold(declinedAt), r.onHold(cardUpdatedAt), r.onHold(blockedAt)
		attempts = slices.Clone(attempts)
		for i := range attempts {
			attempts[i].At = r.onHold(attempts[i].At)
		}
		changes = slices.Clone(changes)
		for i := range changes {
			changes[i].At = r.onHold(changes[i].At)
		}
	}
	return policy.State{
		DeclinedAt:      declinedAt,
		Now:             now,
		Attempts:        attempts,
		CardUpdatedAt:   cardUpdatedAt,
		PaidOutOfBand:   r.paidOutOfBand != nil,
		Sent:            r.sent,
		ServiceChanges:  changes,
		Reachable:       reachable,
		Location:        r.loc,
		Country:         r.country,
		DeclineReason:   r.decl.Reason,
		DeclineCategory: string(r.decl.Category),
		Advice:          r.decl.Advice,
		RetryAfter:      r.decl.RetryAfter,
		NotBefore:       r.notBefore,
		Gated:           r.gated,
		Card:            r.gatedCard(),
		NoRetryUntil:    r.noRetryUntil,
		BlockedAt:       blockedAt,
	}
}

// gatedCard is the current card's key for gated runs; older runs plan
// without one.
func (r *run) gatedCard() string {
	if !r.gated {
		return ""
	}
	return r.cardKey()
}

// charge makes the next attempt; the main loop and expedite both use it.
func (r *run) charge(ctx workflow.Context, reason policy.Reason) AttemptRecord {
	r.charging = true
	defer func() { r.charging = false; r.wake = true }()
	n := len(r.attempts) + 1
	rec := AttemptRecord{
		Number:         n,
		Reason:         reason,
		IdempotencyKey: fmt.Sprintf("%s/attempt-%d", r.id, n),
		StartedAt:      workflow.Now(ctx),
	}
	if r.declineAware {
		// The card-network budget is shared by every run on this card and is
		// reserved before the charge, atomically, in the ledger.
		var verdict activities.ReserveOutput
		err := workflow.ExecuteActivity(ledgerCtx(ctx), limits.Reserve, activities.ReserveInput{
			WorkflowID: r.id, IdempotencyKey: rec.IdempotencyKey, CardKey: r.cardKey(), Network: r.card.Network,
			Merchant: r.in.Tenant, Amount: r.amount.Decimal(), Currency: r.amount.Currency.Code, At: rec.StartedAt,
		}).Get(ctx, &verdict)
		if err != nil {
			verdict = activities.ReserveOutput{Rule: "retry budget unavailable: " + rootMessage(err)}
		}
		if !verdict.Allowed {
			rec.Outcome, rec.Message, rec.FinishedAt = gateway.Skipped, verdict.Rule, workflow.Now(ctx)
			r.notBefore = verdict.NotBefore
			if r.notBefore.IsZero() {
				// No moment within the rule's window: the schedule is over.
				r.notBefore = rec.StartedAt.Add((r.pol.Window + r.pol.Timing.MaxShift).D() + time.Second)
			}
			r.status.Attempts = append(r.status.Attempts, rec)
			return rec
		}
	}
	var out activities.ChargeOutput
	err := workflow.ExecuteActivity(chargeCtx(ctx), charges.Charge, activities.ChargeInput{
		WorkflowID: r.id, Tenant: r.in.Tenant, InvoiceID: r.in.InvoiceID, CustomerID: r.in.Customer.ID,
		Attempt: n, Reason: string(reason), IdempotencyKey: rec.IdempotencyKey,
		Amount: r.amount.Decimal(), Currency: r.amount.Currency.Code,
		Gateway: r.in.Decline.Gateway, PaymentMethod: r.paymentMethod,
	}).Get(ctx, &out)
	if err != nil {
		rec.Outcome = gateway.Failed
		rec.Message = rootMessage(err)
	} else {
		rec.Outcome = out.Outcome
		rec.DeclineCode, rec.AdviceCode, rec.Message, rec.GatewayRef = out.DeclineCode, out.AdviceCode, out.Message, out.GatewayRef
		rec.NetworkDeclineCode, rec.NetworkAdviceCode, rec.RequiresAction = out.NetworkDeclineCode, out.NetworkAdviceCode, out.RequiresAction
		if r.declineAware && out.Outcome == gateway.Declined {
			r.classify(out.DeclineCode, out.AdviceCode, out.NetworkDeclineCode, out.NetworkAdviceCode, out.RequiresAction)
			rec.Category, rec.Advice = string(r.decl.Category), string(r.decl.Advice)
		}
	}
	rec.FinishedAt = workflow.Now(ctx)
	if r.declineAware {
		settle := activities.SettleInput{IdempotencyKey: rec.IdempotencyKey, CardKey: r.cardKey(), Network: r.card.Network,
			Outcome: string(rec.Outcome), MerchantAdviceCode: rec.NetworkAdviceCode, At: rec.FinishedAt}
		if rec.Outcome == gateway.Declined {
			settle.NeverRetryFor = r.decl.NoRetryWindow
		}
		if err := workflow.ExecuteActivity(ledgerCtx(ctx), limits.Settle, settle).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("retry budget not settled", "key", rec.IdempotencyKey, "error", err)
		}
	}
	r.status.Attempts = append(r.status.Attempts, rec)
	r.attempts = append(r.attempts, policy.Attempt{Number: n, At: rec.StartedAt, Reason: reason, Succeeded: rec.Outcome == gateway.Succeeded})
	return rec
}

func (r *run) notify(ctx workflow.Context, step policy.Step) {
	recipient := r.in.Customer.Email
	if step.Channel == policy.SMS {
		recipient = r.in.Customer.Phone
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
	if next, ok := r.pol.NextRetry(r.engineState(workflow.Now(ctx))); ok {
		data.NextRetryAt = next.At
	}
	var out activities.NotifyOutput
	err := workflow.ExecuteActivity(messageCtx(ctx), notifications.Notify, activities.NotifyInput{
		WorkflowID: r.id, IdempotencyKey: r.id + "/" + step.Key, Kind: string(step.Message), Channel: string(step.Channel),
		Recipient: recipient, Locale: r.in.Customer.Locale, Data: data,
	}).Get(ctx, &out)
	rec := MessageRecord{Key: step.Key, Kind: step.Message, Channel: step.Channel, At: workflow.Now(ctx), Status: out.Status, Detail: out.Detail}
	if err != nil {
		// A message that cannot be sent is recorded; the run goes on.
		rec.Status, rec.Detail = "failed", rootMessage(err)
	}
	r.status.Messages = append(r.status.Messages, rec)
	r.sent = append(r.sent, step.Key)
}

func (r *run) setService(ctx workflow.Context, step policy.Step) {
	if step.State == policy.ServiceActive {
		r.creditSuspendedDays(ctx)
	}
	in := activities.ServiceInput{
		WorkflowID: r.id, IdempotencyKey: r.id + "/" + step.Key, Tenant: r.in.Tenant, InvoiceID: r.in.InvoiceID,
		CustomerID: r.in.Customer.ID, State: string(step.State), Reason: step.Why, CallbackURL: r.in.BillingCallbackURL,
	}
	if r.explain {
		r.decide(ctx, step, "", "")
		in.Journal = r.takeJournal()
	}
	err := r.ledger(ctx, services.SetServiceState, in).Get(ctx, nil)
	if err == nil {
		r.recorded(in.Journal)
	}
	if err != nil {
		// The ledger holds the change and the failed callback for ops; the
		// ladder still moves on so a broken callback cannot stall the run.
		workflow.GetLogger(ctx).Error("service change not delivered", "state", step.State, "error", err)
	}
	r.changes = append(r.changes, policy.ServiceChange{State: step.State, At: workflow.Now(ctx)})
	r.status.ServiceLog = append(r.status.ServiceLog, r.changes[len(r.changes)-1])
	r.status.ServiceState = step.State
	switch step.State {
	case policy.ServicePaused:
		r.status.Phase = PhasePaused
	case policy.ServiceSuspended, policy.ServiceCancelled:
		r.status.Phase = PhaseSuspended
	}
}

func (r *run) close(ctx workflow.Context, outcome policy.Outcome, reason string) (Result, error) {
	now := workflow.Now(ctx)
	switch outcome {
	case policy.Recovered:
		r.status.Phase = PhaseRecovered
	case policy.Exhausted:
		r.status.Phase = PhaseExhausted
	default:
		r.status.Phase = PhaseCancelled
	}
	r.status.NextStep = nil
	r.status.ClosedAt = now
	r.status.ClosingReason = reason
	r.upsertSearchAttributes(ctx, time.Time{})
	in := activities.CloseRunInput{
		WorkflowID: r.id, Tenant: r.in.Tenant, InvoiceID: r.in.InvoiceID, CustomerID: r.in.Customer.ID,
		Outcome: string(outcome), Reason: reason, Amount: r.amount.Decimal(), Currency: r.amount.Currency.Code,
		Attempts: len(r.attempts), ClosedAt: now, CallbackURL: r.in.BillingCallbackURL,
	}
	if r.explain {
		r.note(ctx, journalDecision, string(policy.ActionClose), "close as "+string(outcome)+": "+reason, "", "")
		in.Journal = r.takeJournal()
	}
	err := r.ledger(ctx, runs.CloseRun, in).Get(ctx, nil)
	if err != nil && !activities.IsType(err, activities.ErrTypeCallbackRejected) {
		return Result{}, fmt.Errorf("close run: %w", err)
	}
	return Result{
		Outcome: outcome, Reason: reason, Attempts: len(r.attempts),
		Amount: r.amount.Decimal(), Currency: r.amount.Currency.Code, ClosedAt: now,
	}, nil
}

// upsertSearchAttributes sends only what changed: every upsert is a billed
// action and a history event.
func (r *run) upsertSearchAttributes(ctx workflow.Context, next time.Time) {
	var updates []temporal.SearchAttributeUpdate
	if r.status.Phase != r.saPhase {
		r.saPhase = r.status.Phase
		updates = append(updates, SAStatus.ValueSet(string(r.saPhase)))
	}
	if len(r.attempts) != r.saAttempts {
		r.saAttempts = len(r.attempts)
		updates = append(updates, SAAttempts.ValueSet(int64(r.saAttempts)))
	}
	if cause := r.attentionCause(); cause != r.saAttention {
		r.saAttention = cause
		if cause == "" {
			updates = append(updates, SAAttention.ValueUnset())
		} else {
			updates = append(updates, SAAttention.ValueSet(cause))
		}
	}
	if !next.Equal(r.saNext) {
		r.saNext = next
		if next.IsZero() {
			updates = append(updates, SANextActionAt.ValueUnset())
		} else {
			updates = append(updates, SANextActionAt.ValueSet(next))
		}
		if r.lean {
			// The status read model answers "what next" from these two
			// without a worker.
			if next.IsZero() || r.status.NextStep == nil {
				updates = append(updates, SANextAction.ValueUnset())
			} else {
				updates = append(updates, SANextAction.ValueSet(string(r.status.NextStep.Action)))
			}
		}
	}
	if len(updates) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes not updated", "error", err)
	}
}

func (r *run) attentionCause() string {
	if r.attention == nil {
		return ""
	}
	return r.attention.Cause
}

func (r *run) closed() bool {
	return slices.Contains([]Phase{PhaseRecovered, PhaseExhausted, PhaseCancelled}, r.status.Phase)
}

// rootMessage is the innermost error's text, which is what ops want to read.
func rootMessage(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// chargeCtx: a charge whose outcome is unknown is never abandoned, because
// the next attempt would carry a new idempotency key. Transient gateway
// errors retry with the same key until the gateway answers.
func chargeCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, chargeOptions(10*time.Minute))
}

// chargeOptions retries a charge with the same key, backing off up to
// maxInterval between tries.
func chargeOptions(maxInterval time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        maxInterval,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	}
}

func messageCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Minute,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
}

func ledgerCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        2 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
}
