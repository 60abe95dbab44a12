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
	Status                                          string // pending, sent, dry-run, skipped, failed
	Provider, ProviderRef, Detail                   string
	CreatedAt, FinishedAt                           time.Time
}

const messageColumns = `idempotency_key, workflow_id, kind, channel, recipient, locale, subject, body,
	status, provider, provider_ref, detail, created_at, finished_at`

func scanMessage(row pgx.Row) (Message, error) {
	var (
		m        Message
		created  time.Time
		finished *time.Time
	)
	err := row.Scan(&m.IdempotencyKey, &m.WorkflowID, &m.Kind, &m.Channel, &m.Recipient, &m.Locale, &m.Subject, &m.Body,
		&m.Status, &m.Provider, &m.ProviderRef, &m.Detail, &created, &finished)
	if err != nil {
		return Message{}, err
	}
	m.CreatedAt, m.FinishedAt = created.UTC(), nullTime(finished)
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
// recorded as now.
func (s *Store) BeginMessage(ctx context.Context, m Message) (Message, error) {
	if err := validateMessage(m); err != nil {
		return Message{}, err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO messages
		(idempotency_key, workflow_id, kind, channel, recipient, locale, subject, body, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)
		ON CONFLICT (idempotency_key) DO NOTHING`,
		m.IdempotencyKey, m.WorkflowID, m.Kind, m.Channel, m.Recipient, m.Locale, m.Subject, m.Body, orNow(m.CreatedAt))
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
	// RETURNING tells a first finish (a row) from a repeated one (none).
	finished, err := scanMessage(s.pool.QueryRow(ctx, `UPDATE messages
		SET status = $2, provider = $3, provider_ref = $4, detail = $5, finished_at = $6
		WHERE idempotency_key = $1 AND status = 'pending'
		RETURNING `+messageColumns,
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
