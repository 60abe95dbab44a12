package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// This file records the events providers' webhooks deliver (table
// webhook_events), so each is acted on at most once although providers
// deliver at least once.

// WebhookEvent identifies one delivered event.
type WebhookEvent struct {
	Source  string // the provider, e.g. "stripe"
	Tenant  string // from the endpoint the provider posts to
	EventID string // the provider's event ID
	Type    string // the provider's event type
}

func (e WebhookEvent) validate() error {
	switch {
	case e.Source == "" || e.Tenant == "" || e.EventID == "" || e.Type == "":
		return invalid("webhook event: source, tenant, event ID and type are required")
	case len(e.EventID) > 255 || len(e.Type) > 255:
		return invalid("webhook event: event ID and type are at most 255 bytes")
	}
	return nil
}

// WebhookClaim is what ClaimWebhookEvent found.
type WebhookClaim int

const (
	// WebhookClaimed: this delivery holds the event and must complete or
	// release it.
	WebhookClaimed WebhookClaim = iota
	// WebhookProcessed: an earlier delivery processed the event; act on
	// nothing.
	WebhookProcessed
	// WebhookBusy: another delivery holds the event right now.
	WebhookBusy
)

func (c WebhookClaim) String() string {
	switch c {
	case WebhookClaimed:
		return "claimed"
	case WebhookProcessed:
		return "processed"
	case WebhookBusy:
		return "busy"
	}
	return fmt.Sprintf("WebhookClaim(%d)", int(c))
}

// ClaimWebhookEvent claims an event for the delivery about to act on it.
// The claim lasts lease: a delivery that dies without completing or
// releasing it leaves a claim that the provider's next delivery takes over
// once it has expired. Leases are measured on the database's clock, which
// every API instance shares.
func (s *Store) ClaimWebhookEvent(ctx context.Context, e WebhookEvent, lease time.Duration) (WebhookClaim, error) {
	if err := e.validate(); err != nil {
		return 0, err
	}
	if lease <= 0 {
		return 0, invalid("webhook event %s: lease %s must be positive", e.EventID, lease)
	}
	// A concurrent claim of the same event waits for the first one's
	// insert to commit, then finds the row and takes it only if its lease
	// has run out.
	var claimed bool
	err := s.pool.QueryRow(ctx, `INSERT INTO webhook_events (source, tenant, event_id, type, status, claimed_until)
		VALUES ($1, $2, $3, $4, 'processing', now() + $5 * interval '1 microsecond')
		ON CONFLICT (source, tenant, event_id) DO UPDATE SET
			claimed_until = EXCLUDED.claimed_until, type = EXCLUDED.type
		WHERE webhook_events.status = 'processing' AND webhook_events.claimed_until < now()
		RETURNING true`,
		e.Source, e.Tenant, e.EventID, e.Type, lease.Microseconds()).Scan(&claimed)
	switch {
	case err == nil:
		return WebhookClaimed, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("ledger: claim %s event %s: %w", e.Source, e.EventID, err)
	}
	var status string
	err = s.pool.QueryRow(ctx, `SELECT status FROM webhook_events WHERE source = $1 AND tenant = $2 AND event_id = $3`,
		e.Source, e.Tenant, e.EventID).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Released between the two statements: the caller's delivery
		// finds it busy and the provider delivers it again.
		return WebhookBusy, nil
	case err != nil:
		return 0, fmt.Errorf("ledger: claim %s event %s: %w", e.Source, e.EventID, err)
	case status == "processed":
		return WebhookProcessed, nil
	}
	return WebhookBusy, nil
}

// CompleteWebhookEvent marks a claimed event processed, with what was done
// (for ops). Later deliveries of it find it processed. It is idempotent.
func (s *Store) CompleteWebhookEvent(ctx context.Context, e WebhookEvent, outcome string) error {
	if err := e.validate(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_events SET status = 'processed', claimed_until = NULL,
			processed_at = COALESCE(processed_at, now()), outcome = $4
		WHERE source = $1 AND tenant = $2 AND event_id = $3`,
		e.Source, e.Tenant, e.EventID, truncateText(outcome, 1024))
	if err != nil {
		return fmt.Errorf("ledger: complete %s event %s: %w", e.Source, e.EventID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("ledger: complete %s event %s: %w", e.Source, e.EventID, ErrNotFound)
	}
	return nil
}

// ReleaseWebhookEvent gives up a claim without processing the event, so
// the provider's next delivery acts on it. A processed event stays
// processed.
func (s *Store) ReleaseWebhookEvent(ctx context.Context, e WebhookEvent) error {
	if err := e.validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM webhook_events
		WHERE source = $1 AND tenant = $2 AND event_id = $3 AND status = 'processing'`,
		e.Source, e.Tenant, e.EventID)
	if err != nil {
		return fmt.Errorf("ledger: release %s event %s: %w", e.Source, e.EventID, err)
	}
	return nil
}

// WebhookEventRecord is one event as the ledger keeps it.
type WebhookEventRecord struct {
	WebhookEvent
	Status      string // processing, processed
	Outcome     string
	ReceivedAt  time.Time
	ProcessedAt time.Time // zero while processing
}

// GetWebhookEvent returns the record of one event, or ErrNotFound.
func (s *Store) GetWebhookEvent(ctx context.Context, source, tenant, eventID string) (WebhookEventRecord, error) {
	var (
		r         WebhookEventRecord
		processed *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT source, tenant, event_id, type, status, outcome, received_at, processed_at
		FROM webhook_events WHERE source = $1 AND tenant = $2 AND event_id = $3`, source, tenant, eventID).
		Scan(&r.Source, &r.Tenant, &r.EventID, &r.Type, &r.Status, &r.Outcome, &r.ReceivedAt, &processed)
	if errors.Is(err, pgx.ErrNoRows) {
		return WebhookEventRecord{}, fmt.Errorf("ledger: %s event %s: %w", source, eventID, ErrNotFound)
	}
	if err != nil {
		return WebhookEventRecord{}, fmt.Errorf("ledger: %s event %s: %w", source, eventID, err)
	}
	r.ReceivedAt, r.ProcessedAt = r.ReceivedAt.UTC(), nullTime(processed)
	return r, nil
}

// PruneWebhookEvents deletes the events received before cutoff that no
// delivery holds any more; it returns how many it deleted. A provider that
// delivers one of them again afterwards has it acted on again, so cutoff
// must lie past the longest time the provider resends an event.
func (s *Store) PruneWebhookEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_events
		WHERE received_at < $1 AND (status = 'processed' OR claimed_until < now())`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("ledger: prune webhook events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// truncateText cuts s to at most n bytes without splitting a UTF-8
// sequence.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
