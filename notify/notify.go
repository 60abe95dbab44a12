// Package notify sends customer messages (email, SMS) through a small
// Notifier interface, and renders them from templates.
package notify

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Message is one rendered message for one recipient.
type Message struct {
	// IdempotencyKey is derived from the run and the step; providers that
	// support it de-duplicate on it.
	IdempotencyKey string
	Kind           string
	Channel        string // "email" or "sms"
	To             string
	Locale         string
	Subject        string // email only
	Body           string // plain text
	HTML           string // email only; empty sends text only
	// WorkflowID and Step travel with the message (e.g. SendGrid custom
	// args) so a delivery event can be traced to its run.
	WorkflowID string
	Step       string
}

// Receipt is the provider's acknowledgement.
type Receipt struct {
	Provider string
	Ref      string
}

// Notifier delivers messages on one channel. Wrap ErrRejected for messages
// the provider refuses for good (invalid recipient, bad credentials);
// other errors are retried.
type Notifier interface {
	Send(ctx context.Context, m Message) (Receipt, error)
}

// ErrRejected marks a message the provider will never accept.
var ErrRejected = errors.New("message rejected")

// ErrNotAccepted marks an answer in which the provider said it did not take
// the message this time (rate limited): nothing went out, and a retry may
// send without asking the provider first. Errors without it (timeouts,
// dropped connections, 5xx) leave the outcome unknown.
var ErrNotAccepted = errors.New("message not accepted")

// ErrLookupUnavailable marks a Finder that cannot look messages up (the
// account lacks the API, or it is turned off); the caller falls back to
// sending again and records that it did.
var ErrLookupUnavailable = errors.New("message lookup unavailable")

// Finder is a Notifier that can ask its provider whether a message was
// accepted, for a send whose outcome is unknown: a call that may have
// reached the provider but whose answer was lost (a crash, a timeout, a
// dropped connection). Sending again without asking would duplicate it.
type Finder interface {
	// Find returns the provider's receipt for m when the provider holds a
	// message for it created at or after since, and found false when it
	// holds none. ErrLookupUnavailable: the provider cannot be asked.
	Find(ctx context.Context, m Message, since time.Time) (r Receipt, found bool, err error)
	// Settle is how long after a send the provider's lookup can be trusted
	// to show it; a lookup sooner than that may miss it.
	Settle() time.Duration
}

// DryRunProvider is the provider name on a DryRun receipt; messages it
// handled are recorded with status "dry-run", not "sent".
const DryRunProvider = "dry-run"

// DryRun logs messages instead of sending them; the ledger still records
// what would have gone out. It is what runs when no provider key is set.
type DryRun struct {
	Logger *slog.Logger
}

// Send implements Notifier.
func (d DryRun) Send(ctx context.Context, m Message) (Receipt, error) {
	logger := d.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// The recipient is personal data: log the channel and key, not the address.
	logger.InfoContext(ctx, "dry-run message (no provider configured)",
		"channel", m.Channel, "kind", m.Kind, "key", m.IdempotencyKey, "locale", m.Locale, "subject", m.Subject)
	return Receipt{Provider: DryRunProvider, Ref: DryRunProvider + ":" + m.IdempotencyKey}, nil
}
