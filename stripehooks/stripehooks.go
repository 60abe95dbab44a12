// Package stripehooks receives the events a tenant's Stripe account sends
// to its webhook endpoint and turns them into dunning: a failed invoice
// payment starts (or reaches) the invoice's run, a paid, voided or
// uncollectible invoice ends it, and a new or updated card wakes the
// customer's open runs. A billing system on Stripe then needs no code of
// its own to report declines.
//
// Each event is checked against the Stripe-Signature header with the
// tenant's endpoint secret (package tenants) before anything in it is
// read; the tenant is the endpoint's, never something the event says.
// Events are processed at most once: the ledger records each event ID, a
// delivery that fails (Temporal unavailable) hands the event back so
// Stripe's retry processes it, and a replay of a processed event changes
// nothing.
//
// The HTTP endpoint is the intake API's (starter/intake); this package is
// the verification, the mapping and the bookkeeping behind it.
package stripehooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	stripe "github.com/stripe/stripe-go/v85"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/tenants"
	"github.com/dunningco/dunning/workflows"
)

// Source names Stripe in the ledger's record of webhook events.
const Source = "stripe"

// SignatureHeader is the header Stripe signs each delivery in.
const SignatureHeader = "Stripe-Signature"

// MaxPayloadBytes bounds one event. Stripe's events hold one API object
// (an invoice lists at most its first lines), far below this.
const MaxPayloadBytes = 1 << 20

// Defaults of the options.
const (
	// DefaultTolerance is how old a signature's timestamp may be: Stripe's
	// own default, which bounds how long a captured delivery can be
	// replayed.
	DefaultTolerance = 5 * time.Minute
	// DefaultLease is how long a delivery holds an event it processes. A
	// delivery that dies holding it blocks Stripe's retries for this long;
	// it must outlast the longest request (the intake's 30-second timeout).
	DefaultLease = 2 * time.Minute
	// DefaultRetention is how long processed event IDs are kept. Stripe
	// retries for up to three days and resends by hand for 30 days; past
	// that an event cannot arrive again.
	DefaultRetention = 45 * 24 * time.Hour
)

// pruneEvery is how often the receiver deletes event IDs past retention.
const pruneEvery = time.Hour

// Errors the HTTP layer answers; other errors from Handle are starter's
// (ErrInvalid: 422, ErrConflict: 409) or wrap ErrUnavailable.
var (
	// ErrUnknownTenant: no such tenant, or it has no Stripe webhook secret.
	ErrUnknownTenant = errors.New("no Stripe webhook endpoint is configured for this tenant")
	// ErrSignature: the Stripe-Signature header is missing, malformed, does
	// not match the body, or is older than the tolerance.
	ErrSignature = errors.New("missing or invalid Stripe-Signature")
	// ErrMalformed: a correctly signed body that is not a Stripe event, or
	// whose object is not what its type says.
	ErrMalformed = errors.New("not a Stripe event this endpoint can read")
	// ErrBusy: another delivery of the same event is being processed;
	// Stripe should try again later.
	ErrBusy = errors.New("another delivery of this event is being processed")
	// ErrUnavailable: the event could not be processed now (Temporal, the
	// ledger or the runs unavailable); it is not marked processed, and
	// Stripe's retry processes it.
	ErrUnavailable = errors.New("the event cannot be processed right now")
)

// Runs is what the receiver asks of the dunning runs; *starter.Client
// implements it.
type Runs interface {
	Start(ctx context.Context, in workflows.Input) (starter.StartResult, error)
	Cancel(ctx context.Context, tenant, invoiceID string, req workflows.CancelRequest) error
	PaymentMethodUpdated(ctx context.Context, tenant, invoiceID string, req workflows.PaymentMethodUpdate) error
	Paid(ctx context.Context, tenant, invoiceID string, req workflows.PaidOutOfBand) error
}

var _ Runs = (*starter.Client)(nil)

// Store records processed events and finds a customer's runs; *ledger.Store
// implements it.
type Store interface {
	ClaimWebhookEvent(ctx context.Context, e ledger.WebhookEvent, lease time.Duration) (ledger.WebhookClaim, error)
	CompleteWebhookEvent(ctx context.Context, e ledger.WebhookEvent, outcome string) error
	ReleaseWebhookEvent(ctx context.Context, e ledger.WebhookEvent) error
	PruneWebhookEvents(ctx context.Context, cutoff time.Time) (int64, error)
	ListRunStatus(ctx context.Context, q ledger.RunStatusQuery) (ledger.RunStatusPage, error)
}

var _ Store = (*ledger.Store)(nil)

// Tenants holds each tenant's Stripe webhook secret; *tenants.Config
// implements it.
type Tenants interface {
	Tenant(id string) (tenants.Tenant, bool)
}

var _ Tenants = (*tenants.Config)(nil)

// Option configures a Receiver.
type Option func(*Receiver)

// WithTolerance sets how old a signature may be; default DefaultTolerance.
func WithTolerance(d time.Duration) Option {
	return func(r *Receiver) { r.tolerance = d }
}

// WithLease sets how long a delivery holds the event it processes; default
// DefaultLease.
func WithLease(d time.Duration) Option {
	return func(r *Receiver) { r.lease = d }
}

// WithRetention sets how long processed event IDs are kept; default
// DefaultRetention.
func WithRetention(d time.Duration) Option {
	return func(r *Receiver) { r.retention = d }
}

// WithLogger sets the logger; default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(r *Receiver) { r.logger = l }
}

// Receiver processes the Stripe events of every configured tenant. It is
// safe for concurrent use.
type Receiver struct {
	runs      Runs
	tenants   Tenants
	store     Store
	logger    *slog.Logger
	tolerance time.Duration
	lease     time.Duration
	retention time.Duration
	now       func() time.Time

	pruneMu   sync.Mutex
	lastPrune time.Time
	pruning   bool
}

// New returns a receiver that acts through runs on events signed with the
// secrets in cfg, recording them in store.
func New(runs Runs, cfg Tenants, store Store, opts ...Option) *Receiver {
	r := &Receiver{runs: runs, tenants: cfg, store: store, logger: slog.Default(),
		tolerance: DefaultTolerance, lease: DefaultLease, retention: DefaultRetention, now: time.Now}
	for _, opt := range opts {
		opt(r)
	}
	return r
}

// Action is what an event did.
type Action string

const (
	ActionDeclineReported      Action = "decline_reported"
	ActionPaid                 Action = "paid"
	ActionCancelled            Action = "cancelled"
	ActionPaymentMethodUpdated Action = "payment_method_updated"
)

// Outcome is the answer to one delivery.
type Outcome struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	// Action is what the event did; Runs the workflow IDs it reached.
	Action Action   `json:"action,omitempty"`
	Runs   []string `json:"runs,omitempty"`
	// Duplicate: the event was processed before; nothing was done.
	Duplicate bool `json:"duplicate,omitempty"`
	// Ignored: the event needs nothing of dunning (an unknown type, an
	// invoice without a run); Reason says why.
	Ignored bool   `json:"ignored,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// summary is what the ledger keeps of the outcome, for ops.
func (o Outcome) summary() string {
	switch {
	case o.Ignored:
		return "ignored: " + o.Reason
	case len(o.Runs) > 0:
		return fmt.Sprintf("%s: %v", o.Action, o.Runs)
	}
	return string(o.Action)
}

// Handle processes one delivery to tenant's endpoint: payload is the body
// exactly as received and signature the Stripe-Signature header. A tenant
// without a secret is ErrUnknownTenant; a bad signature ErrSignature; a
// body that is no readable event ErrMalformed. A replayed event answers
// Duplicate and does nothing. An error wrapping ErrUnavailable or ErrBusy
// leaves the event unprocessed for Stripe to deliver again; so do
// starter.ErrInvalid and starter.ErrConflict, which name what the run
// refused.
func (r *Receiver) Handle(ctx context.Context, tenant string, payload []byte, signature string) (Outcome, error) {
	t, ok := r.tenants.Tenant(tenant)
	if !ok || t.StripeWebhookSecret == "" {
		return Outcome{}, fmt.Errorf("%w: %q", ErrUnknownTenant, tenant)
	}
	ev, err := ParseEvent(payload, signature, string(t.StripeWebhookSecret), r.tolerance)
	if err != nil {
		return Outcome{}, err
	}
	// Read in full before the event is claimed: a body that cannot be
	// acted on leaves no trace.
	p, err := planEvent(tenant, ev)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{EventID: ev.ID, Type: string(ev.Type)}
	key := ledger.WebhookEvent{Source: Source, Tenant: tenant, EventID: ev.ID, Type: string(ev.Type)}
	claim, err := r.store.ClaimWebhookEvent(ctx, key, r.lease)
	switch {
	case err != nil:
		return Outcome{}, fmt.Errorf("%w: record event %s: %w", ErrUnavailable, ev.ID, err)
	case claim == ledger.WebhookProcessed:
		out.Duplicate = true
		return out, nil
	case claim == ledger.WebhookBusy:
		return Outcome{}, fmt.Errorf("%w: %s", ErrBusy, ev.ID)
	}

	for _, field := range p.dropped {
		r.logger.WarnContext(ctx, "Stripe event field unusable; left out of the run",
			"tenant", tenant, "event_id", ev.ID, "field", field)
	}
	out, err = r.execute(ctx, tenant, ev, p, out)
	// Bookkeeping outlives a caller that went away: the effect happened
	// (or did not) either way.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err != nil {
		if rerr := r.store.ReleaseWebhookEvent(bg, key); rerr != nil {
			// The claim expires with its lease; Stripe's retry then
			// processes the event.
			r.logger.ErrorContext(ctx, "releasing a Stripe event failed", "tenant", tenant, "event_id", ev.ID, "error", rerr)
		}
		return Outcome{}, err
	}
	if cerr := r.store.CompleteWebhookEvent(bg, key, out.summary()); cerr != nil {
		// The event took effect, so Stripe is told so. A manual resend
		// after the lease would act on it again; the runs take a repeated
		// decline, payment or cancel as a no-op.
		r.logger.ErrorContext(ctx, "recording a processed Stripe event failed", "tenant", tenant, "event_id", ev.ID, "error", cerr)
	}
	r.logger.InfoContext(ctx, "Stripe event processed", "tenant", tenant, "event_id", ev.ID, "type", string(ev.Type),
		"action", string(out.Action), "runs", out.Runs, "ignored", out.Ignored, "reason", out.Reason)
	r.maybePrune()
	return out, nil
}

// execute carries out a plan.
func (r *Receiver) execute(ctx context.Context, tenant string, ev stripe.Event, p plan, out Outcome) (Outcome, error) {
	ignore := func(reason string) (Outcome, error) {
		out.Ignored, out.Reason = true, reason
		return out, nil
	}
	switch p.kind {
	case kindIgnore:
		return ignore(p.reason)

	case kindStart:
		res, err := r.runs.Start(ctx, p.input)
		switch {
		case err == nil:
			out.Action, out.Runs = ActionDeclineReported, []string{res.WorkflowID}
			return out, nil
		case errors.Is(err, starter.ErrRunClosed):
			return ignore(fmt.Sprintf("the dunning run for invoice %s has already ended; a closed invoice is never dunned twice", p.invoice))
		case errors.Is(err, starter.ErrInvalid), errors.Is(err, starter.ErrConflict):
			return Outcome{}, err
		}
		return Outcome{}, fmt.Errorf("%w: report the decline of invoice %s: %w", ErrUnavailable, p.invoice, err)

	case kindPaid, kindCancel:
		var err error
		if p.kind == kindPaid {
			out.Action = ActionPaid
			err = r.runs.Paid(ctx, tenant, p.invoice, p.paid)
		} else {
			out.Action = ActionCancelled
			err = r.runs.Cancel(ctx, tenant, p.invoice, p.cancel)
		}
		switch {
		case err == nil:
			out.Runs = []string{workflows.WorkflowID(tenant, p.invoice)}
			return out, nil
		case errors.Is(err, starter.ErrRunNotFound):
			// Most paid invoices never failed; only some have a run.
			out.Action = ""
			return ignore(fmt.Sprintf("invoice %s has no dunning run", p.invoice))
		case errors.Is(err, starter.ErrRunClosed):
			out.Action = ""
			return ignore(fmt.Sprintf("the dunning run for invoice %s has already ended", p.invoice))
		case errors.Is(err, starter.ErrInvalid):
			return Outcome{}, err
		}
		return Outcome{}, fmt.Errorf("%w: %s invoice %s: %w", ErrUnavailable, out.Action, p.invoice, err)

	case kindCardUpdated:
		return r.cardUpdated(ctx, tenant, p, out)
	}
	return Outcome{}, fmt.Errorf("stripehooks: event %s: unknown plan %d", ev.ID, p.kind)
}

// finalPhases are the phases of runs that have ended.
var finalPhases = []string{string(workflows.PhaseRecovered), string(workflows.PhaseExhausted), string(workflows.PhaseCancelled)}

// maxCustomerPages bounds the read-model pages read for one customer: a
// customer with more open runs than this is a data problem, not dunning.
const maxCustomerPages = 10

// cardUpdated tells every open run of the customer about the new card.
// The read model finds them; its row lags a run by at most one report, so
// a run that has just ended may still be listed and answers closed.
func (r *Receiver) cardUpdated(ctx context.Context, tenant string, p plan, out Outcome) (Outcome, error) {
	var open []ledger.RunStatus
	q := ledger.RunStatusQuery{Tenant: tenant, CustomerID: p.customer, Limit: ledger.MaxListLimit}
	for range maxCustomerPages {
		page, err := r.store.ListRunStatus(ctx, q)
		if err != nil {
			return Outcome{}, fmt.Errorf("%w: find the open runs of customer %s: %w", ErrUnavailable, p.customer, err)
		}
		for _, run := range page.Runs {
			if !slices.Contains(finalPhases, run.Phase) {
				open = append(open, run)
			}
		}
		if page.Next.IsZero() {
			break
		}
		q.After = page.Next
	}
	for _, run := range open {
		err := r.runs.PaymentMethodUpdated(ctx, tenant, run.InvoiceID, p.update)
		switch {
		case err == nil:
			out.Runs = append(out.Runs, run.WorkflowID)
		case errors.Is(err, starter.ErrRunNotFound), errors.Is(err, starter.ErrRunClosed):
			// Ended since the read model last heard of it.
		case errors.Is(err, starter.ErrInvalid):
			return Outcome{}, err
		default:
			// Runs reached before this one hear of the card again on
			// Stripe's retry; a repeated update only moves their next
			// attempt to the same soon.
			return Outcome{}, fmt.Errorf("%w: tell %s about the new payment method: %w", ErrUnavailable, run.WorkflowID, err)
		}
	}
	if len(out.Runs) == 0 {
		out.Ignored, out.Reason = true, fmt.Sprintf("customer %s has no open dunning run", p.customer)
		return out, nil
	}
	out.Action = ActionPaymentMethodUpdated
	return out, nil
}

// maybePrune deletes event IDs past retention, at most once per
// pruneEvery and in the background, so no delivery waits for it.
func (r *Receiver) maybePrune() {
	now := r.now()
	r.pruneMu.Lock()
	if r.pruning || now.Sub(r.lastPrune) < pruneEvery {
		r.pruneMu.Unlock()
		return
	}
	r.pruning, r.lastPrune = true, now
	r.pruneMu.Unlock()
	go func() {
		defer func() {
			r.pruneMu.Lock()
			r.pruning = false
			r.pruneMu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n, err := r.store.PruneWebhookEvents(ctx, now.Add(-r.retention))
		if err != nil {
			r.logger.Warn("pruning old Stripe event IDs failed; the next event tries again", "error", err)
			r.pruneMu.Lock()
			r.lastPrune = time.Time{}
			r.pruneMu.Unlock()
			return
		}
		if n > 0 {
			r.logger.Info("old Stripe event IDs pruned", "deleted", n, "retention", r.retention.String())
		}
	}()
}
