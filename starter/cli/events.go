package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
)

// openOutbox opens the ledger at DATABASE_URL (else the local default).
func (a *app) openOutbox(ctx context.Context) (*ledger.Store, error) {
	dbURL := a.getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = ledger.DefaultURL
	}
	store, err := ledger.Open(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("open the ledger at DATABASE_URL: %w", err)
	}
	return store, nil
}

// listedEvent is one event as `events list -format json` prints it.
type listedEvent struct {
	IdempotencyKey string    `json:"idempotency_key"`
	WebhookID      string    `json:"webhook_id"`
	Tenant         string    `json:"tenant"`
	WorkflowID     string    `json:"workflow_id"`
	Type           string    `json:"type"`
	Version        int       `json:"version"`
	Status         string    `json:"status"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	NextAttemptAt  time.Time `json:"next_attempt_at,omitzero"`
	LastAttemptAt  time.Time `json:"last_attempt_at,omitzero"`
	DeliveredAt    time.Time `json:"delivered_at,omitzero"`
}

func newListedEvent(e ledger.OutboxEvent) listedEvent {
	le := listedEvent{
		IdempotencyKey: e.IdempotencyKey, WebhookID: billing.WebhookID(e.IdempotencyKey), Tenant: e.Tenant,
		WorkflowID: e.WorkflowID, Type: e.Kind, Version: e.Version, Status: e.Status, Attempts: e.Attempts,
		LastError: e.LastError, CreatedAt: e.CreatedAt, LastAttemptAt: e.LastAttemptAt, DeliveredAt: e.DeliveredAt,
	}
	if e.Status == ledger.OutboxPending {
		le.NextAttemptAt = e.NextAttemptAt // meaningless once finished
	}
	return le
}

func (a *app) eventsList(ctx context.Context, args []string) error {
	fs := a.newFlagSet("events list", "-tenant T [-status pending|delivered|failed|skipped] [-limit N] [-o table|json]")
	tenant := fs.String("tenant", "", "tenant whose events are listed (required)")
	status := fs.String("status", "", "only events in this status: pending, delivered, failed or skipped")
	limit := fs.Int("limit", 50, "at most this many events, newest first (1-1000)")
	format := fs.addOutput()
	fs.StringVar(format, "format", formatTable, "the same as -o (its earlier name); json prints one JSON object per line")
	if err := parse(fs, args, "tenant"); err != nil {
		return err
	}
	switch {
	case *limit < 1 || *limit > 1000:
		return usagef("-limit %d is not between 1 and 1000", *limit)
	}
	switch *status {
	case "", ledger.OutboxPending, ledger.OutboxDelivered, ledger.OutboxFailed, ledger.OutboxSkipped:
	default:
		return usagef("-status %q is not pending, delivered, failed or skipped", *status)
	}
	store, err := a.openOutbox(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	events, err := store.ListEvents(ctx, ledger.EventFilter{Tenant: *tenant, Status: *status, Limit: *limit})
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(a.stdout)
		for _, e := range events {
			if err := enc.Encode(newListedEvent(e)); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tTYPE\tSTATUS\tATTEMPTS\tKEY\tWEBHOOK-ID\tLAST ERROR")
	for _, e := range events {
		lastErr := e.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.CreatedAt.Format(time.RFC3339), e.Kind, e.Status, e.Attempts,
			e.IdempotencyKey, billing.WebhookID(e.IdempotencyKey), lastErr)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func (a *app) eventsRedeliver(ctx context.Context, args []string) error {
	fs := a.newFlagSet("events redeliver", "-key K [-o table|json]")
	key := fs.String("key", "", "the event's idempotency key, as events list shows it (required)")
	out := fs.addOutput()
	if err := parse(fs, args, "key"); err != nil {
		return err
	}
	store, err := a.openOutbox(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	before, err := store.OutboxEvent(ctx, *key)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("%w: no event has the key %q (see dunning events list)", errNotFound, *key)
	}
	if err != nil {
		return err
	}
	e, err := store.Redeliver(ctx, *key, time.Now())
	if err != nil {
		return err
	}
	if *out == formatJSON {
		return a.printJSON(newListedEvent(e))
	}
	if before.Status == ledger.OutboxPending {
		fmt.Fprintf(a.stdout, "%s (webhook-id %s) is still pending: next attempt at %s\n",
			e.IdempotencyKey, billing.WebhookID(e.IdempotencyKey), e.NextAttemptAt.Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(a.stdout, "%s (webhook-id %s) was %s and is pending again: a worker sends it within seconds\n",
		e.IdempotencyKey, billing.WebhookID(e.IdempotencyKey), before.Status)
	return nil
}
