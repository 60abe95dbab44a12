package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Outbox statuses. A pending event waits for a dispatcher; delivered means
// the billing system answered 2xx; failed means it refused the event (4xx,
// a redirect, an address we may not connect to), which no retry can fix,
// so ops have to look at it; skipped means the tenant has no event endpoint
// configured. Redeliver sets any of the last three back to pending.
const (
	OutboxPending   = "pending"
	OutboxDelivered = "delivered"
	OutboxFailed    = "failed"
	OutboxSkipped   = "skipped"
)

// OutboxLease is how long ClaimDue reserves an event for the dispatcher that
// claimed it. A dispatcher must record the answer within the lease: once it
// runs out another dispatcher may claim the event again, which is what makes
// a crashed dispatcher's events go out (at least once) rather than never.
const OutboxLease = 5 * time.Minute

// OutboxEvent is one event for the billing system, recorded in the same
// transaction as the ledger row it reports.
type OutboxEvent struct {
	ID int64
	// IdempotencyKey identifies the event; the webhook-id every attempt
	// carries is derived from it (billing.WebhookID).
	IdempotencyKey string
	WorkflowID     string
	// Tenant decides where the event goes: the dispatcher looks the
	// tenant's endpoint up when it sends, so no URL is stored with it.
	Tenant string
	Kind   string // the event's type, e.g. service.state_changed
	// Version is the version of Body's schema (1 when zero on enqueue).
	Version int
	// Body is the event's data, sent inside the envelope on every attempt.
	// Read back it is PostgreSQL's canonical jsonb text.
	Body          json.RawMessage
	Status        string // pending, delivered, failed, skipped
	Attempts      int    // answers (or transport errors) recorded so far
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	LastAttemptAt time.Time // zero before the first recorded attempt
	DeliveredAt   time.Time // zero until delivered
}

const outboxColumns = `id, idempotency_key, workflow_id, tenant, kind, version, body, status, attempts,
	next_attempt_at, last_error, created_at, last_attempt_at, delivered_at`

func scanOutboxEvent(row pgx.Row) (OutboxEvent, error) {
	var (
		e                  OutboxEvent
		body               []byte
		lastAttempt, deliv *time.Time
	)
	err := row.Scan(&e.ID, &e.IdempotencyKey, &e.WorkflowID, &e.Tenant, &e.Kind, &e.Version, &body, &e.Status, &e.Attempts,
		&e.NextAttemptAt, &e.LastError, &e.CreatedAt, &lastAttempt, &deliv)
	if err != nil {
		return OutboxEvent{}, err
	}
	e.Body = json.RawMessage(body)
	e.NextAttemptAt, e.CreatedAt = e.NextAttemptAt.UTC(), e.CreatedAt.UTC()
	e.LastAttemptAt, e.DeliveredAt = nullTime(lastAttempt), nullTime(deliv)
	return e, nil
}

func collectOutboxEvents(rows pgx.Rows) ([]OutboxEvent, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutboxEvent, error) { return scanOutboxEvent(row) })
}

func validateOutboxEvent(e OutboxEvent) error {
	switch {
	case e.IdempotencyKey == "":
		return invalid("outbox event for %s: idempotency key is required", e.WorkflowID)
	case e.WorkflowID == "" || e.Kind == "" || e.Tenant == "":
		return invalid("outbox event %s: workflow ID, tenant and kind are required", e.IdempotencyKey)
	case e.Version < 0:
		return invalid("outbox event %s: version %d", e.IdempotencyKey, e.Version)
	case !json.Valid(e.Body):
		return invalid("outbox event %s: body is not valid JSON", e.IdempotencyKey)
	}
	return nil
}

// Enqueue records an event that belongs to no other ledger write and
// returns the stored row; see enqueue. Events that report a ledger write go
// through that write's ...WithEvent method instead, so both commit together.
func (s *Store) Enqueue(ctx context.Context, e OutboxEvent) (OutboxEvent, error) {
	if err := validateOutboxEvent(e); err != nil {
		return OutboxEvent{}, err
	}
	return enqueue(ctx, s.pool, e)
}

// enqueue inserts e as pending and due at its creation time, unless its key
// is taken, and returns the stored row either way: a repeated call changes
// nothing, so the body stored first is the one every attempt sends. A key
// holding an event of another run or kind is ErrConflict.
func enqueue(ctx context.Context, q querier, e OutboxEvent) (OutboxEvent, error) {
	created := orNow(e.CreatedAt)
	_, err := q.Exec(ctx, `INSERT INTO outbox
		(idempotency_key, workflow_id, tenant, kind, version, body, status, attempts, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'pending', 0, $7, $7)
		ON CONFLICT (idempotency_key) DO NOTHING`,
		e.IdempotencyKey, e.WorkflowID, e.Tenant, e.Kind, max(e.Version, 1), string(e.Body), created)
	if err != nil {
		return OutboxEvent{}, fmt.Errorf("ledger: enqueue %s: %w", e.IdempotencyKey, err)
	}
	stored, err := scanOutboxEvent(q.QueryRow(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE idempotency_key = $1`, e.IdempotencyKey))
	if err != nil {
		return OutboxEvent{}, fmt.Errorf("ledger: enqueue %s: %w", e.IdempotencyKey, err)
	}
	if stored.WorkflowID != e.WorkflowID || stored.Kind != e.Kind {
		return stored, fmt.Errorf("ledger: enqueue %s: the key holds %s of run %s: %w",
			e.IdempotencyKey, stored.Kind, stored.WorkflowID, ErrConflict)
	}
	return stored, nil
}

// eventFor checks an event that reports a ledger row keyed key of run
// workflowID, filling in the key and run when left empty.
func eventFor(e *OutboxEvent, key, workflowID string) error {
	if e.IdempotencyKey == "" {
		e.IdempotencyKey = key
	}
	if e.WorkflowID == "" {
		e.WorkflowID = workflowID
	}
	if e.IdempotencyKey != key || e.WorkflowID != workflowID {
		return invalid("outbox event %s of run %s: it reports %s of run %s", e.IdempotencyKey, e.WorkflowID, key, workflowID)
	}
	return validateOutboxEvent(*e)
}

// RecordServiceChangeWithEvent records the change and, when ev is not nil,
// its event for the billing system in one transaction, so a crash never
// leaves one without the other. The event's key is the change's key.
//
// With an event the change is recorded with callback status "pending" (the
// dispatcher moves it to delivered or failed, or to "none" when the tenant
// has no event endpoint); without one c.CallbackStatus is recorded as
// given, "none" when empty.
// Repeating the call changes nothing and returns the stored change, whose
// CallbackStatus says how far delivery got. A change still "pending" without
// an event (recorded before the outbox existed) gets ev now, so it is not
// stranded. Errors are RecordServiceChange's.
func (s *Store) RecordServiceChangeWithEvent(ctx context.Context, c ServiceChange, ev *OutboxEvent) (ServiceChange, error) {
	if ev != nil {
		c.CallbackStatus, c.CallbackDetail = "pending", ""
	}
	if err := validateServiceChange(c); err != nil {
		return ServiceChange{}, err
	}
	if ev != nil {
		e := *ev // the caller's event stays as given
		if err := eventFor(&e, c.IdempotencyKey, c.WorkflowID); err != nil {
			return ServiceChange{}, err
		}
		ev = &e
	}
	var stored ServiceChange
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if stored, err = recordServiceChange(ctx, tx, c); err != nil {
			return err
		}
		if err := recordDecisions(ctx, tx, c.Decisions, nil); err != nil {
			stored = ServiceChange{}
			return err
		}
		if ev != nil && stored.CallbackStatus == "pending" {
			if _, err := enqueue(ctx, tx, *ev); err != nil {
				stored = ServiceChange{} // rolled back with the event
				return err
			}
		}
		return nil
	})
	return stored, err
}

// CloseRunWithEvent closes the run as CloseRun does and, when ev is not nil,
// enqueues its run.closed event in the same transaction. Closing again with
// the same status is a no-op whose event, already stored under its key,
// stays as it was; closing with another status is ErrRunClosed and enqueues
// nothing.
func (s *Store) CloseRunWithEvent(ctx context.Context, workflowID, status, reason string, at time.Time, ev *OutboxEvent) error {
	return s.CloseRunRecording(ctx, workflowID, status, reason, at, ev, nil)
}

// CloseRunRecording is CloseRunWithEvent that also records the run's last
// audit-trail entries (the decision to close, and what the run heard since
// its last step) in the same transaction.
func (s *Store) CloseRunRecording(ctx context.Context, workflowID, status, reason string, at time.Time, ev *OutboxEvent, ds []Decision) error {
	if err := validateClose(workflowID, status); err != nil {
		return err
	}
	if ev != nil {
		e := *ev // the caller's event stays as given
		if e.WorkflowID == "" {
			e.WorkflowID = workflowID
		}
		if e.WorkflowID != workflowID {
			return invalid("outbox event %s of run %s: it reports the close of run %s", e.IdempotencyKey, e.WorkflowID, workflowID)
		}
		if err := validateOutboxEvent(e); err != nil {
			return err
		}
		ev = &e
	}
	var closed *Run
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if closed, err = closeRun(ctx, tx, workflowID, status, reason, at); err != nil {
			return err
		}
		if err := recordDecisions(ctx, tx, ds, nil); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		_, err = enqueue(ctx, tx, *ev)
		return err
	})
	if err == nil && closed != nil {
		s.observe(func(o Observer) { o.RunClosed(ctx, *closed) })
	}
	return err
}

// RecordServiceCreditWithEvent records the credit as RecordServiceCredit
// does and, when ev is not nil, its event under the credit's key in the same
// transaction. Repeating the call changes nothing and returns the stored
// credit.
func (s *Store) RecordServiceCreditWithEvent(ctx context.Context, c ServiceCredit, ev *OutboxEvent) (ServiceCredit, error) {
	if err := validateCredit(c); err != nil {
		return ServiceCredit{}, err
	}
	if ev != nil {
		e := *ev // the caller's event stays as given
		if err := eventFor(&e, c.IdempotencyKey, c.WorkflowID); err != nil {
			return ServiceCredit{}, err
		}
		ev = &e
	}
	var stored ServiceCredit
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if stored, err = recordServiceCredit(ctx, tx, c); err != nil {
			return err
		}
		if ev != nil {
			if _, err := enqueue(ctx, tx, *ev); err != nil {
				stored = ServiceCredit{} // rolled back with the event
				return err
			}
		}
		return nil
	})
	return stored, err
}

// OutboxEvent returns the event stored under key, or ErrNotFound.
func (s *Store) OutboxEvent(ctx context.Context, key string) (OutboxEvent, error) {
	e, err := scanOutboxEvent(s.pool.QueryRow(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE idempotency_key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return OutboxEvent{}, fmt.Errorf("ledger: outbox event %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return OutboxEvent{}, fmt.Errorf("ledger: outbox event %s: %w", key, err)
	}
	return e, nil
}

// OutboxEvents lists a run's events, oldest first.
func (s *Store) OutboxEvents(ctx context.Context, workflowID string) ([]OutboxEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE workflow_id = $1 ORDER BY id`, workflowID)
	if err != nil {
		return nil, fmt.Errorf("ledger: outbox events of %s: %w", workflowID, err)
	}
	events, err := collectOutboxEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("ledger: outbox events of %s: %w", workflowID, err)
	}
	return events, nil
}

// ClaimDue hands out up to limit pending events due at now, oldest first,
// and leases them to the caller until now + OutboxLease by moving their
// next_attempt_at, so no other dispatcher claims them meanwhile. FOR UPDATE
// SKIP LOCKED lets several dispatchers claim at once without waiting on, or
// double-claiming, each other's rows.
//
// Events of one run go out in order: an event is due only when no older
// event of its run is still pending (a failed one does not hold the run up),
// so the billing system never hears "suspended" before "paused".
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int) ([]OutboxEvent, error) {
	if limit < 1 {
		return nil, invalid("claim due outbox events: limit %d must be positive", limit)
	}
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT o.id AS due_id FROM outbox o
			WHERE o.status = 'pending' AND o.next_attempt_at <= $1
			  AND NOT EXISTS (SELECT 1 FROM outbox older
			                  WHERE older.workflow_id = o.workflow_id AND older.status = 'pending' AND older.id < o.id)
			ORDER BY o.next_attempt_at, o.id
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		)
		UPDATE outbox SET next_attempt_at = $3
		FROM due WHERE outbox.id = due.due_id
		RETURNING `+outboxColumns,
		now, limit, now.Add(OutboxLease))
	if err != nil {
		return nil, fmt.Errorf("ledger: claim due outbox events: %w", err)
	}
	events, err := collectOutboxEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("ledger: claim due outbox events: %w", err)
	}
	// RETURNING has no order; the dispatcher logs and sends oldest first.
	slices.SortFunc(events, func(a, b OutboxEvent) int { return cmp.Compare(a.ID, b.ID) })
	return events, nil
}

// MarkDelivered records that the billing system accepted the event (2xx)
// and marks the service change it reports, if any, delivered. Marking a
// delivered event again is a no-op: a late answer from a dispatcher whose
// lease ran out changes nothing. A 2xx also overrides an earlier failure,
// because the billing system's acceptance is the last word. An unknown key is
// ErrNotFound.
func (s *Store) MarkDelivered(ctx context.Context, key string) error {
	if key == "" {
		return invalid("mark outbox event delivered: idempotency key is required")
	}
	var changed int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET status = 'delivered', attempts = attempts + 1, last_error = '',
			last_attempt_at = now(), delivered_at = now()
			WHERE idempotency_key = $1 AND status <> 'delivered'`, key)
		if err != nil {
			return err
		}
		if changed = tag.RowsAffected(); changed == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE service_changes SET callback_status = 'delivered', callback_detail = ''
			WHERE idempotency_key = $1`, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("ledger: mark outbox event %s delivered: %w", key, err)
	}
	if changed == 0 {
		return s.explainFinish(ctx, "outbox", "outbox event", key, OutboxDelivered)
	}
	return nil
}

// MarkRetry records a transient failure (5xx, 408, 429, timeout, no
// connection) and schedules the next attempt at next. The service change it
// reports stays "pending" and shows the error as its detail. Only a pending
// event is rescheduled: a finished one is ErrConflict, an unknown key
// ErrNotFound.
func (s *Store) MarkRetry(ctx context.Context, key, lastErr string, next time.Time) error {
	if key == "" {
		return invalid("mark outbox event for retry: idempotency key is required")
	}
	var changed int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,
			last_attempt_at = now()
			WHERE idempotency_key = $1 AND status = 'pending'`, key, lastErr, next)
		if err != nil {
			return err
		}
		if changed = tag.RowsAffected(); changed == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE service_changes SET callback_detail = $2
			WHERE idempotency_key = $1 AND callback_status = 'pending'`, key, lastErr)
		return err
	})
	if err != nil {
		return fmt.Errorf("ledger: mark outbox event %s for retry: %w", key, err)
	}
	if changed == 0 {
		return s.explainFinish(ctx, "outbox", "outbox event", key, OutboxPending)
	}
	return nil
}

// MarkFailed records that the event cannot be delivered as things stand
// (the billing system refused it with a 4xx, answered with a redirect, or
// the endpoint's address is one we may not connect to): no retry can fix it, so it is never sent again and UndeliveredEvents lists it
// for ops. The service change it reports becomes "failed" with lastErr as
// its detail. Failing a failed event again is a no-op; a delivered one is
// ErrConflict; an unknown key ErrNotFound.
func (s *Store) MarkFailed(ctx context.Context, key, lastErr string) error {
	if key == "" {
		return invalid("mark outbox event failed: idempotency key is required")
	}
	var changed int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = $2,
			last_attempt_at = now()
			WHERE idempotency_key = $1 AND status = 'pending'`, key, lastErr)
		if err != nil {
			return err
		}
		if changed = tag.RowsAffected(); changed == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE service_changes SET callback_status = 'failed', callback_detail = $2
			WHERE idempotency_key = $1 AND callback_status <> 'delivered'`, key, lastErr)
		return err
	})
	if err != nil {
		return fmt.Errorf("ledger: mark outbox event %s failed: %w", key, err)
	}
	if changed == 0 {
		return s.explainFinish(ctx, "outbox", "outbox event", key, OutboxFailed)
	}
	return nil
}

// MarkSkipped records that the event has nowhere to go: its tenant has no
// event endpoint configured. That is not a failure: the event is not
// retried, UndeliveredEvents does not list it, and the service change it
// reports gets callback status "none" with reason as its detail. Once the
// tenant has an endpoint, Redeliver sends it. Skipping a skipped event
// again is a no-op; a delivered or failed one is ErrConflict; an unknown
// key ErrNotFound.
func (s *Store) MarkSkipped(ctx context.Context, key, reason string) error {
	if key == "" {
		return invalid("mark outbox event skipped: idempotency key is required")
	}
	var changed int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET status = 'skipped', last_error = $2
			WHERE idempotency_key = $1 AND status = 'pending'`, key, reason)
		if err != nil {
			return err
		}
		if changed = tag.RowsAffected(); changed == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE service_changes SET callback_status = 'none', callback_detail = $2
			WHERE idempotency_key = $1 AND callback_status = 'pending'`, key, reason)
		return err
	})
	if err != nil {
		return fmt.Errorf("ledger: mark outbox event %s skipped: %w", key, err)
	}
	if changed == 0 {
		return s.explainFinish(ctx, "outbox", "outbox event", key, OutboxSkipped)
	}
	return nil
}

// Redeliver sets a delivered, failed or skipped event back to pending, due
// at at, so a dispatcher sends it again: the same data, the same webhook-id
// (a receiver that processed it already recognises it), signed afresh. As
// ever, its run's younger pending events wait until it is sent. The service
// change it reports, if any, is pending again. An event still pending is
// returned as it is; an unknown key is ErrNotFound.
func (s *Store) Redeliver(ctx context.Context, key string, at time.Time) (OutboxEvent, error) {
	if key == "" {
		return OutboxEvent{}, invalid("redeliver outbox event: idempotency key is required")
	}
	var (
		e       OutboxEvent
		changed bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		e, err = scanOutboxEvent(tx.QueryRow(ctx, `UPDATE outbox
			SET status = 'pending', next_attempt_at = $2, delivered_at = NULL, last_error = ''
			WHERE idempotency_key = $1 AND status IN ('delivered', 'failed', 'skipped')
			RETURNING `+outboxColumns, key, at))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		changed = true
		_, err = tx.Exec(ctx, `UPDATE service_changes SET callback_status = 'pending', callback_detail = ''
			WHERE idempotency_key = $1`, key)
		return err
	})
	if err != nil {
		return OutboxEvent{}, fmt.Errorf("ledger: redeliver outbox event %s: %w", key, err)
	}
	if !changed {
		return s.OutboxEvent(ctx, key)
	}
	return e, nil
}

// EventFilter selects events for ListEvents; empty fields match all.
type EventFilter struct {
	Tenant string
	Status string // pending, delivered, failed or skipped
	// Limit caps the answer (100 when zero, at most 1000).
	Limit int
}

// ListEvents lists events, newest first, for ops.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]OutboxEvent, error) {
	switch f.Status {
	case "", OutboxPending, OutboxDelivered, OutboxFailed, OutboxSkipped:
	default:
		return nil, invalid("list outbox events: unknown status %q (pending, delivered, failed, skipped)", f.Status)
	}
	limit := f.Limit
	switch {
	case limit == 0:
		limit = 100
	case limit < 0 || limit > 1000:
		return nil, invalid("list outbox events: limit %d must be between 1 and 1000", f.Limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+outboxColumns+` FROM outbox
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR status = $2)
		ORDER BY id DESC LIMIT $3`, f.Tenant, f.Status, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: list outbox events: %w", err)
	}
	events, err := collectOutboxEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("ledger: list outbox events: %w", err)
	}
	return events, nil
}

// UndeliveredEvents lists, oldest first, what ops should look at: every
// event the billing system refused, and every event still pending that was
// created before olderThan (the billing system has been failing or
// unreachable for that long, or no dispatcher is running).
func (s *Store) UndeliveredEvents(ctx context.Context, olderThan time.Time) ([]OutboxEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+outboxColumns+` FROM outbox
		WHERE status = 'failed' OR (status = 'pending' AND created_at < $1)
		ORDER BY created_at, id`, olderThan)
	if err != nil {
		return nil, fmt.Errorf("ledger: undelivered outbox events: %w", err)
	}
	events, err := collectOutboxEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("ledger: undelivered outbox events: %w", err)
	}
	return events, nil
}
