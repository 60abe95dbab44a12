// Package outbox delivers the events the activities record for the billing
// system (service.state_changed, run.closed, service.credited, and any type
// added later).
//
// The activities write each event, with its tenant, into the ledger's
// outbox table in the same transaction as the change it reports, and never
// call the billing system themselves. A Dispatcher, running next to every
// worker, polls the table, looks up the tenant's event endpoint in the
// tenant configuration (never a URL stored with the event or given by a
// request), wraps the event's data in the generic envelope
// (billing.Envelope), POSTs it signed following Standard Webhooks, and
// records the answer: delivered on 2xx; retried with capped exponential
// backoff on anything transient (for as long as it takes); failed on a
// refusal no retry can fix (4xx, a redirect, an address we may not connect
// to), which ops must look at (ledger.Store.UndeliveredEvents, `dunning
// events list`); skipped when the tenant has no endpoint. Delivery is at
// least once: a dispatcher that dies mid-POST leaves the event to be sent
// again after its lease, and the billing system de-duplicates on the
// webhook-id, which is the same on every attempt.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
)

// Defaults for a Dispatcher's zero fields.
const (
	DefaultInterval    = time.Second
	DefaultBatch       = 20
	DefaultConcurrency = 4
	DefaultTimeout     = 15 * time.Second
	DefaultBackoffMin  = 5 * time.Second
	DefaultBackoffMax  = 10 * time.Minute
)

// markTimeout bounds recording an answer, and is kept free at the end of the
// lease: an answer recorded after the lease ran out may race a second
// dispatcher that already claimed the event again.
const markTimeout = 10 * time.Second

// Ledger is what the dispatcher needs from the ledger (*ledger.Store).
type Ledger interface {
	ClaimDue(ctx context.Context, now time.Time, limit int) ([]ledger.OutboxEvent, error)
	MarkDelivered(ctx context.Context, key string) error
	MarkRetry(ctx context.Context, key, lastErr string, next time.Time) error
	MarkFailed(ctx context.Context, key, lastErr string) error
	MarkSkipped(ctx context.Context, key, reason string) error
}

// Endpoints resolves where a tenant's events go; *tenants.Config is one.
// false means nowhere: the tenant's events are marked skipped.
type Endpoints interface {
	EventEndpoint(tenant string) (billing.Endpoint, bool)
}

// Backoff is the wait before retrying an event after a transient failure:
// Min after the first failed attempt, doubling after each further one, never
// more than Max. There is no last attempt: a billing system that is down for
// a day gets the event when it is back.
type Backoff struct {
	Min, Max time.Duration // DefaultBackoffMin and DefaultBackoffMax when zero
}

// Delay is the wait after the attempt-th failed attempt (1 for the first).
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultBackoffMin
	}
	if hi <= 0 {
		hi = DefaultBackoffMax
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// Dispatcher delivers due outbox events. Several dispatchers (one per worker
// replica) may run against one ledger: ClaimDue leases each event to one of
// them at a time.
type Dispatcher struct {
	Ledger Ledger
	// Endpoints is the tenant configuration, consulted on every attempt,
	// so a changed endpoint applies to events already waiting. nil sends
	// nothing: every event is skipped.
	Endpoints Endpoints
	// Callback sends the signed requests; a zero billing.Callback when nil.
	Callback *billing.Callback
	Logger   *slog.Logger // slog.Default() when nil
	// Interval is the pause between polls when nothing is left to send
	// (DefaultInterval when zero).
	Interval time.Duration
	// Batch is how many events one poll claims (DefaultBatch when zero).
	Batch   int
	Backoff Backoff
	// Concurrency bounds the POSTs in flight (DefaultConcurrency when zero).
	// One claim holds at most one event per run, so sending a batch in
	// parallel never reorders a run's events.
	Concurrency int
	// Timeout bounds one POST (DefaultTimeout when zero).
	Timeout time.Duration
	// Now is the clock that schedules retries; time.Now when nil.
	Now func() time.Time
}

// Run polls and delivers until ctx ends, then returns after the POSTs in
// flight finish (each bounded by Timeout). Ledger errors are logged and the
// next poll tries again, so Run never gives up on its own.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Ledger == nil {
		return errors.New("outbox: dispatcher has no ledger")
	}
	interval := d.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		n, err := d.DispatchOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.logger().Warn("outbox: dispatch pass failed; trying again next poll", "error", err)
		}
		next := interval
		if err == nil && n >= d.batch() {
			next = 0 // a full batch: more may be due, so drain without waiting
		}
		timer.Reset(next)
	}
}

// DispatchOnce claims up to Batch due events, sends them and records each
// answer. n is how many events it claimed and tried to send. err reports
// ledger failures (claiming, or recording an answer); what the billing system
// answered is recorded on the event, not returned.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (n int, err error) {
	if d.Ledger == nil {
		return 0, errors.New("outbox: dispatcher has no ledger")
	}
	claimed := time.Now() // the lease runs on the wall clock, whatever d.Now says
	events, err := d.Ledger.ClaimDue(ctx, d.now(), d.batch())
	if err != nil {
		return 0, fmt.Errorf("outbox: claim due events: %w", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, d.concurrency())
	)
	for _, e := range events {
		if ctx.Err() != nil {
			// Shutting down: what was not started stays leased and goes
			// out, from this or another dispatcher, once the lease ends.
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := d.deliver(ctx, e, claimed); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(events), errors.Join(errs...)
}

// deliver POSTs one claimed event to its tenant's endpoint and records the
// answer.
func (d *Dispatcher) deliver(ctx context.Context, e ledger.OutboxEvent, claimed time.Time) error {
	id := billing.WebhookID(e.IdempotencyKey)
	log := d.logger().With("key", e.IdempotencyKey, "webhook_id", id, "kind", e.Kind, "tenant", e.Tenant,
		"workflow_id", e.WorkflowID, "attempt", e.Attempts+1)
	// Answers are recorded even when ctx ends (shutdown), each within
	// markTimeout of when it is known.
	markCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	}

	// Looked up now, not when the event was recorded: whatever URL a run
	// or request once carried plays no part.
	var (
		ep billing.Endpoint
		ok bool
	)
	if d.Endpoints != nil {
		ep, ok = d.Endpoints.EventEndpoint(e.Tenant)
	}
	if !ok {
		reason := fmt.Sprintf("no event endpoint configured for tenant %q", e.Tenant)
		mctx, cancel := markCtx()
		defer cancel()
		if err := d.Ledger.MarkSkipped(mctx, e.IdempotencyKey, reason); err != nil {
			return fmt.Errorf("outbox: event %s has no endpoint, and recording it failed: %w", e.IdempotencyKey, err)
		}
		log.Info("outbox: event skipped: its tenant has no event endpoint")
		return nil
	}
	body, err := billing.Envelope{Type: e.Kind, Version: e.Version, Timestamp: e.CreatedAt, Data: e.Body}.Encode()
	if err != nil {
		mctx, cancel := markCtx()
		defer cancel()
		if err := d.Ledger.MarkFailed(mctx, e.IdempotencyKey, "the stored event does not encode"); err != nil {
			return fmt.Errorf("outbox: event %s does not encode, and recording it failed: %w", e.IdempotencyKey, err)
		}
		log.Error("outbox: stored event does not encode; flagged for ops", "error", err)
		return nil
	}

	// Send only while the lease leaves time to record the answer; past it
	// another dispatcher may send the event too.
	budget := ledger.OutboxLease - time.Since(claimed) - markTimeout
	if budget <= 0 {
		log.Warn("outbox: lease nearly over before sending; the event goes out after it")
		return nil
	}
	// An in-flight POST finishes even when ctx ends (shutdown), so its
	// answer is recorded rather than the billing system hearing it twice.
	postCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(d.timeout(), budget))
	postErr := d.callback().Send(postCtx, ep, id, body)
	cancel()

	mctx, cancel := markCtx()
	defer cancel()
	switch {
	case postErr == nil:
		if err := d.Ledger.MarkDelivered(mctx, e.IdempotencyKey); err != nil {
			return fmt.Errorf("outbox: event %s delivered, but recording it failed: %w", e.IdempotencyKey, err)
		}
		log.Debug("outbox: event delivered")
	case errors.Is(postErr, billing.ErrRejected):
		if err := d.Ledger.MarkFailed(mctx, e.IdempotencyKey, postErr.Error()); err != nil {
			return fmt.Errorf("outbox: event %s refused (%v), and recording it failed: %w", e.IdempotencyKey, postErr, err)
		}
		log.Error("outbox: event refused; it will not be retried and is flagged for ops", "endpoint", ep, "error", postErr)
	default:
		wait := d.Backoff.Delay(e.Attempts + 1)
		if err := d.Ledger.MarkRetry(mctx, e.IdempotencyKey, postErr.Error(), d.now().Add(wait)); err != nil {
			return fmt.Errorf("outbox: event %s not delivered (%v), and scheduling its retry failed: %w", e.IdempotencyKey, postErr, err)
		}
		log.Warn("outbox: event not delivered; retrying", "endpoint", ep, "error", postErr, "retry_in", wait.String())
	}
	return nil
}

// defaultCallback serves dispatchers without their own: one connection
// pool per process.
var defaultCallback = &billing.Callback{}

func (d *Dispatcher) callback() *billing.Callback {
	if d.Callback != nil {
		return d.Callback
	}
	return defaultCallback
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

func (d *Dispatcher) batch() int {
	if d.Batch > 0 {
		return d.Batch
	}
	return DefaultBatch
}

func (d *Dispatcher) concurrency() int {
	if d.Concurrency > 0 {
		return d.Concurrency
	}
	return DefaultConcurrency
}

func (d *Dispatcher) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return DefaultTimeout
}
