package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

const messagePending = "pending"

var (
	messageChannels = []string{"email", "sms"}
	// "dry-run": rendered and recorded while no provider was configured;
	// nothing went out.
	finalMessageStatuses = []string{"sent", "dry-run", "skipped", "failed"}
)

// Message is one notification to the customer.
type Message struct {
	IdempotencyKey, WorkflowID                      string
	Kind, Channel, Recipient, Locale, Subject, Body string
	// HTML is an email's HTML part as first rendered; HTMLStored is false
	// on rows written before the ledger kept it.
	HTML                          string
	HTMLStored                    bool
	Status                        string // pending, sent, dry-run, skipped, failed
	Provider, ProviderRef, Detail string
	CreatedAt, FinishedAt         time.Time
	// SendAttempts counts the provider calls started for the message;
	// FirstSendAt is when the first one started.
	SendAttempts int
	FirstSendAt  time.Time
	// UnknownSince, on a pending message, is when a provider call started
	// whose answer was never recorded: the provider may hold the message.
	UnknownSince time.Time
}

// OutcomeUnknown reports whether a provider call for the pending message
// may have reached the provider without its answer being recorded.
func (m Message) OutcomeUnknown() bool {
	return m.Status == messagePending && !m.UnknownSince.IsZero()
}

const messageColumns = `idempotency_key, workflow_id, kind, channel, recipient, locale, subject, body, html,
	status, provider, provider_ref, detail, created_at, finished_at, send_attempts, first_send_at, unknown_since`

func scanMessage(row pgx.Row) (Message, error) {
	var (
		m                   Message
		html                *string
		created             time.Time
		finished, firstSend *time.Time
		unknown             *time.Time
	)
	err := row.Scan(&m.IdempotencyKey, &m.WorkflowID, &m.Kind, &m.Channel, &m.Recipient, &m.Locale, &m.Subject, &m.Body, &html,
		&m.Status, &m.Provider, &m.ProviderRef, &m.Detail, &created, &finished, &m.SendAttempts, &firstSend, &unknown)
	if err != nil {
		return Message{}, err
	}
	if html != nil {
		m.HTML, m.HTMLStored = *html, true
	}
	m.CreatedAt, m.FinishedAt = created.UTC(), nullTime(finished)
	m.FirstSendAt, m.UnknownSince = nullTime(firstSend), nullTime(unknown)
	return m, nil
}

func validateMessage(m Message) error {
	switch {
	case m.IdempotencyKey == "":
		return invalid("message for %s: idempotency key is required", m.WorkflowID)
	case m.WorkflowID == "":
		return invalid("message %s: workflow ID is required", m.IdempotencyKey)
	case m.Kind == "":
		return invalid("message %s: kind is required", m.IdempotencyKey)
	case !slices.Contains(messageChannels, m.Channel):
		return invalid("message %s: channel %q is not one of %v", m.IdempotencyKey, m.Channel, messageChannels)
	case m.Status != "" && m.Status != messagePending:
		return invalid("message %s: a message begins %q, not %q", m.IdempotencyKey, messagePending, m.Status)
	}
	return nil
}

// BeginMessage records a pending message if its key is new and returns the
// stored row either way, so a retried activity sees whether it was already
// sent. The workflow ID need not be a dunning run (reminder runs send
// messages too); a key holding a different message is ErrConflict. Messages may still be recorded after the run closed (a
// "payment recovered" notice follows the close). A zero CreatedAt is
// recorded as now. The content (subject, body, HTML) is kept as first
// given: the stored row is what every try sends.
func (s *Store) BeginMessage(ctx context.Context, m Message) (Message, error) {
	if err := validateMessage(m); err != nil {
		return Message{}, err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO messages
		(idempotency_key, workflow_id, kind, channel, recipient, locale, subject, body, html, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10)
		ON CONFLICT (idempotency_key) DO NOTHING`,
		m.IdempotencyKey, m.WorkflowID, m.Kind, m.Channel, m.Recipient, m.Locale, m.Subject, m.Body, m.HTML, orNow(m.CreatedAt))
	if err != nil {
		return Message{}, fmt.Errorf("ledger: begin message %s: %w", m.IdempotencyKey, err)
	}
	stored, err := scanMessage(s.pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE idempotency_key = $1`, m.IdempotencyKey))
	if err != nil {
		return Message{}, fmt.Errorf("ledger: begin message %s: %w", m.IdempotencyKey, err)
	}
	if stored.WorkflowID != m.WorkflowID || stored.Kind != m.Kind || stored.Channel != m.Channel {
		return stored, fmt.Errorf("ledger: begin message %s: the key holds a %s %s of run %s: %w",
			m.IdempotencyKey, stored.Channel, stored.Kind, stored.WorkflowID, ErrConflict)
	}
	return stored, nil
}

// FinishMessage moves a pending message to its final status. Finishing it
// again with the same status is a no-op; a different status is ErrConflict.
// A zero at is recorded as now.
func (s *Store) FinishMessage(ctx context.Context, key, status, provider, providerRef, detail string, at time.Time) error {
	if key == "" {
		return invalid("finish message: idempotency key is required")
	}
	if !slices.Contains(finalMessageStatuses, status) {
		return invalid("finish message %s: status %q is not one of %v", key, status, finalMessageStatuses)
	}
	// RETURNING tells a first finish (a row) from a repeated one (none);
	// the run's rollup changes in the same statement, only on that first
	// finish.
	finished, err := scanMessage(s.pool.QueryRow(ctx, `WITH f AS (UPDATE messages
		SET status = $2, provider = $3, provider_ref = $4, detail = $5, finished_at = $6
		WHERE idempotency_key = $1 AND status = 'pending'
		RETURNING *)`+messageRollup+`
		SELECT `+messageColumns+` FROM f`,
		key, status, provider, providerRef, detail, orNow(at)))
	switch {
	case err == nil:
		s.observe(func(o Observer) { o.MessageFinished(ctx, finished) })
		return nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("ledger: finish message %s: %w", key, err)
	}
	return s.explainFinish(ctx, "messages", "message", key, status)
}

// StartMessageSend records, right before a provider call, that the call is
// starting: one more send attempt, the first one's time, and an outcome
// unknown until the provider's answer is recorded. It returns the row as it
// was before, so the caller sees whether an earlier call's outcome was
// unknown. Only a pending message can start a send (ErrConflict otherwise,
// ErrNotFound for no such key). A zero at is recorded as now.
func (s *Store) StartMessageSend(ctx context.Context, key string, at time.Time) (Message, error) {
	if key == "" {
		return Message{}, invalid("start message send: idempotency key is required")
	}
	prev, err := scanMessage(s.pool.QueryRow(ctx, `WITH prev AS (
			SELECT `+messageColumns+` FROM messages WHERE idempotency_key = $1 AND status = 'pending' FOR UPDATE
		), upd AS (
			UPDATE messages m SET send_attempts = m.send_attempts + 1,
				first_send_at = COALESCE(m.first_send_at, $2), unknown_since = $2
			FROM prev WHERE m.idempotency_key = prev.idempotency_key
		)
		SELECT * FROM prev`, key, orNow(at)))
	if errors.Is(err, pgx.ErrNoRows) {
		if err := s.explainFinish(ctx, "messages", "message", key, messagePending); err != nil {
			return Message{}, fmt.Errorf("ledger: start message send: %w", err)
		}
		return Message{}, fmt.Errorf("ledger: start message send %s: the message is no longer pending: %w", key, ErrConflict)
	}
	if err != nil {
		return Message{}, fmt.Errorf("ledger: start message send %s: %w", key, err)
	}
	return prev, nil
}

// MessageSendNotAccepted records that the provider answered the latest call
// without accepting the message (e.g. rate limited), so the outcome is known
// again and the next try need not ask the provider first. A message no
// longer pending is left as it is.
func (s *Store) MessageSendNotAccepted(ctx context.Context, key string) error {
	if key == "" {
		return invalid("message send not accepted: idempotency key is required")
	}
	if _, err := s.pool.Exec(ctx, `UPDATE messages SET unknown_since = NULL
		WHERE idempotency_key = $1 AND status = 'pending'`, key); err != nil {
		return fmt.Errorf("ledger: message send %s not accepted: %w", key, err)
	}
	return nil
}

// Messages returns a run's messages ordered by creation time, then key.
func (s *Store) Messages(ctx context.Context, workflowID string) ([]Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE workflow_id = $1
		ORDER BY created_at, idempotency_key`, workflowID)
	if err != nil {
		return nil, fmt.Errorf("ledger: messages of %s: %w", workflowID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Message, error) { return scanMessage(row) })
	if err != nil {
		return nil, fmt.Errorf("ledger: messages of %s: %w", workflowID, err)
	}
	return out, nil
}
