package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/policy"
)

// NotifyInput asks for one customer message on one channel.
type NotifyInput struct {
	WorkflowID string `json:"workflow_id"`
	// IdempotencyKey is the run's ID plus the step's key, e.g.
	// "dunning/acme/inv-1/attempt-1-failed/email".
	IdempotencyKey string      `json:"idempotency_key"`
	Kind           string      `json:"kind"`
	Channel        string      `json:"channel"`
	Recipient      string      `json:"recipient"`
	Locale         string      `json:"locale"`
	Data           notify.Data `json:"data"`
	// SMSWindow, for a text, is the local time of day texts may go out in
	// Zone (an IANA time zone); checked right before the provider call, so
	// a send that was retried for hours never lands at night.
	SMSWindow policy.Window `json:"sms_window,omitzero"`
	Zone      string        `json:"zone,omitempty"`
}

// NotifyOutput says what happened to the message.
type NotifyOutput struct {
	Status      string `json:"status"` // sent, dry-run, skipped, or deferred (a text outside its window)
	Provider    string `json:"provider,omitempty"`
	ProviderRef string `json:"provider_ref,omitempty"`
	Detail      string `json:"detail,omitempty"`
	// NotBefore is when a deferred text may go out.
	NotBefore time.Time `json:"not_before,omitzero"`
}

// Notifications sends customer messages, each at most once.
type Notifications struct {
	Email  notify.Notifier
	SMS    notify.Notifier
	Ledger Ledger
	// CardLinks, when set, puts a signed card-update link in every message
	// that asks the customer to act.
	CardLinks *cardlink.Signer
	Logger    *slog.Logger
	// PendingConsents, when set, is asked before every text: a STOP that
	// Temporal holds while the ledger was down counts as an opt-out.
	PendingConsents PendingConsents
}

// Notify renders and sends one message. The ledger row, with the rendered
// content, is written before the first provider call and finished after the
// answer: a retry after a finished send returns the recorded result without
// sending again, and a retry of a pending one sends the stored content. A
// retry after a call whose answer was never recorded (a crash after the
// provider accepted, a lost or late answer) first asks the provider whether
// it holds the message (see send).
func (a *Notifications) Notify(ctx context.Context, in NotifyInput) (NotifyOutput, error) {
	if in.IdempotencyKey == "" {
		return NotifyOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("notify for %s: idempotency key is required", in.WorkflowID))
	}
	var sender notify.Notifier
	switch in.Channel {
	case "email":
		sender = a.Email
	case "sms":
		sender = a.SMS
	default:
		return NotifyOutput{}, permanent(ErrTypeInvalidInput, fmt.Errorf("notify %s: unknown channel %q", in.IdempotencyKey, in.Channel))
	}
	// The message is rendered once, when its ledger row is first written,
	// and every try sends the row's content: the same card-update token,
	// subject, text and HTML, whatever this worker would render now
	// (another card-link secret or TTL, changed templates). PostgreSQL
	// keeps microseconds.
	issued := time.Now().UTC().Truncate(time.Microsecond)
	msg, err := a.render(in, issued)
	if err != nil {
		return NotifyOutput{}, err
	}
	row, err := a.Ledger.BeginMessage(ctx, ledger.Message{
		IdempotencyKey: in.IdempotencyKey,
		WorkflowID:     in.WorkflowID,
		Kind:           in.Kind,
		Channel:        in.Channel,
		Recipient:      in.Recipient,
		Locale:         in.Locale,
		Subject:        msg.Subject,
		Body:           msg.Text,
		HTML:           msg.HTML,
		Status:         "pending",
		CreatedAt:      issued,
	})
	if err != nil {
		return NotifyOutput{}, ledgerErr(err, "notify %s: record message", in.IdempotencyKey)
	}
	if msg, err = a.storedContent(in, row); err != nil {
		return NotifyOutput{}, err
	}
	switch row.Status {
	case "sent", "dry-run", "skipped":
		return NotifyOutput{Status: row.Status, Provider: row.Provider, ProviderRef: row.ProviderRef, Detail: row.Detail}, nil
	case "failed":
		return NotifyOutput{}, permanent(ErrTypeMessageRejected, fmt.Errorf("notify %s: provider rejected it earlier: %s", in.IdempotencyKey, row.Detail))
	}
	if in.Recipient == "" || sender == nil {
		detail := "no " + in.Channel + " address for the customer"
		if sender == nil {
			detail = "no " + in.Channel + " provider configured"
		}
		if err := a.Ledger.FinishMessage(ctx, in.IdempotencyKey, "skipped", "", "", detail, time.Now().UTC()); err != nil {
			return NotifyOutput{}, ledgerErr(err, "notify %s: record skip", in.IdempotencyKey)
		}
		return NotifyOutput{Status: "skipped", Detail: detail}, nil
	}
	// Preferences are checked on every attempt, after the row is known to
	// be pending, so an opt-out that arrives while a send is being retried
	// still stops it, and a message already sent is reported as sent.
	detail, err := a.blockedByPreference(ctx, in.Channel, in.Recipient)
	if err != nil {
		return NotifyOutput{}, ledgerErr(err, "notify %s: check %s preferences", in.IdempotencyKey, in.Channel)
	}
	if detail != "" {
		if err := a.Ledger.FinishMessage(ctx, in.IdempotencyKey, "skipped", "", "", detail, time.Now().UTC()); err != nil {
			return NotifyOutput{}, ledgerErr(err, "notify %s: record skip", in.IdempotencyKey)
		}
		a.logger().InfoContext(ctx, "message skipped by the recipient's preferences",
			"key", in.IdempotencyKey, "channel", in.Channel, "detail", detail)
		return NotifyOutput{Status: "skipped", Detail: detail}, nil
	}
	if in.Channel == "sms" && !in.SMSWindow.IsZero() {
		// The run planned the text inside the window, but the send may
		// have been retried since; a text is deferred, never sent late.
		// The row stays pending, so the run's next try sends it once.
		loc, err := time.LoadLocation(in.Zone)
		if err != nil {
			loc = time.UTC
		}
		now := time.Now()
		if open := in.SMSWindow.NextOpen(now, loc); open.After(now) {
			return NotifyOutput{Status: "deferred", NotBefore: open.UTC(),
				Detail: "outside the SMS window in " + loc.String() + " until " + open.In(loc).Format("15:04")}, nil
		}
	}
	return a.send(ctx, in, sender, row, notify.Message{
		IdempotencyKey: in.IdempotencyKey, Kind: in.Kind, Channel: in.Channel, To: in.Recipient,
		Locale: in.Locale, Subject: msg.Subject, Body: msg.Text, HTML: msg.HTML,
		WorkflowID: in.WorkflowID, Step: strings.TrimPrefix(in.IdempotencyKey, in.WorkflowID+"/"),
	})
}

// storedContent is the content a pending or finished row holds: what the
// first try rendered. Rows written before the ledger kept the HTML part get
// it rendered for the moment the row was first written, as then.
func (a *Notifications) storedContent(in NotifyInput, row ledger.Message) (notify.Rendered, error) {
	stored := notify.Rendered{Subject: row.Subject, Text: row.Body, HTML: row.HTML}
	if row.HTMLStored || in.Channel != "email" {
		return stored, nil
	}
	then, err := a.render(in, row.CreatedAt)
	if err != nil {
		return notify.Rendered{}, err
	}
	stored.HTML = then.HTML
	return stored, nil
}

// sendReserve is kept from the activity's deadline for recording the
// provider's answer: a provider call is cut that much before the deadline,
// so the try itself records what it knows rather than being timed out with
// the answer in flight.
const sendReserve = 3 * time.Second

// send delivers a pending message once. When an earlier try's provider call
// may have reached the provider without its answer being recorded, the
// provider is asked first (notify.Finder) and a message it holds is recorded
// as sent, not sent again. A provider that cannot be asked gets the message
// again, and the row says so.
func (a *Notifications) send(ctx context.Context, in NotifyInput, sender notify.Notifier, row ledger.Message, m notify.Message) (NotifyOutput, error) {
	var resent string // why a message with an unknown outcome is sent again
	if row.OutcomeUnknown() {
		finder, ok := sender.(notify.Finder)
		if !ok {
			resent = "sent again after an unknown outcome: the provider offers no lookup"
		} else {
			// A lookup sooner than the provider's listing settles may
			// miss the message: wait it out, as a retry with the same key.
			if wait := time.Until(row.UnknownSince.Add(finder.Settle())); wait > 0 {
				return NotifyOutput{}, temporal.NewApplicationErrorWithOptions(
					fmt.Sprintf("notify %s: an earlier send's outcome is unknown; asking the provider in %s, once its listing has settled",
						in.IdempotencyKey, wait.Round(time.Second)),
					ErrTypeMessageOutcomeUnknown, temporal.ApplicationErrorOptions{NextRetryDelay: wait})
			}
			receipt, found, err := finder.Find(ctx, m, row.FirstSendAt.Add(-lookupSkew))
			switch {
			case errors.Is(err, notify.ErrLookupUnavailable):
				resent = "sent again after an unknown outcome without a lookup: " + err.Error()
			case err != nil:
				return NotifyOutput{}, fmt.Errorf("notify %s: look the earlier send up: %w", in.IdempotencyKey, err)
			case found:
				detail := fmt.Sprintf("found at the provider after an unknown outcome (%d call(s)); not sent again", row.SendAttempts)
				if err := a.Ledger.FinishMessage(ctx, in.IdempotencyKey, "sent", receipt.Provider, receipt.Ref, detail, time.Now().UTC()); err != nil {
					return NotifyOutput{}, ledgerErr(err, "notify %s: record the message found", in.IdempotencyKey)
				}
				a.logger().InfoContext(ctx, "message found at the provider after an unknown outcome; not sent again",
					"key", in.IdempotencyKey, "channel", in.Channel, "ref", receipt.Ref)
				return NotifyOutput{Status: "sent", Provider: receipt.Provider, ProviderRef: receipt.Ref, Detail: detail}, nil
			default:
				resent = fmt.Sprintf("sent again: not found at the provider after an unknown outcome (%d call(s))", row.SendAttempts)
			}
		}
		a.logger().WarnContext(ctx, "message with an unknown outcome sent again", "key", in.IdempotencyKey, "channel", in.Channel, "why", resent)
	}
	if _, err := a.Ledger.StartMessageSend(ctx, in.IdempotencyKey, time.Now().UTC()); err != nil {
		return NotifyOutput{}, ledgerErr(err, "notify %s: record send start", in.IdempotencyKey)
	}
	sendCtx := ctx
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) > 2*sendReserve {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithDeadline(ctx, deadline.Add(-sendReserve))
		defer cancel()
	}
	receipt, err := sender.Send(sendCtx, m)
	if err != nil {
		switch {
		case errors.Is(err, notify.ErrRejected):
			if ferr := a.Ledger.FinishMessage(ctx, in.IdempotencyKey, "failed", "", "", err.Error(), time.Now().UTC()); ferr != nil {
				return NotifyOutput{}, ledgerErr(ferr, "notify %s: record rejection", in.IdempotencyKey)
			}
			return NotifyOutput{}, permanent(ErrTypeMessageRejected, fmt.Errorf("notify %s: %w", in.IdempotencyKey, err))
		case errors.Is(err, notify.ErrNotAccepted):
			if ferr := a.Ledger.MessageSendNotAccepted(ctx, in.IdempotencyKey); ferr != nil {
				return NotifyOutput{}, ledgerErr(ferr, "notify %s: record refusal", in.IdempotencyKey)
			}
		}
		return NotifyOutput{}, fmt.Errorf("notify %s: %w", in.IdempotencyKey, err)
	}
	// A dry-run notifier (no provider configured) only logged the message:
	// the ledger and the run's status say so rather than "sent".
	status := "sent"
	if receipt.Provider == notify.DryRunProvider {
		status = "dry-run"
	}
	if err := a.Ledger.FinishMessage(ctx, in.IdempotencyKey, status, receipt.Provider, receipt.Ref, resent, time.Now().UTC()); err != nil {
		return NotifyOutput{}, ledgerErr(err, "notify %s: record send", in.IdempotencyKey)
	}
	return NotifyOutput{Status: status, Provider: receipt.Provider, ProviderRef: receipt.Ref, Detail: resent}, nil
}

// lookupSkew widens a provider lookup's start for clock differences between
// our hosts and the provider's.
const lookupSkew = 2 * time.Minute

// render renders the message as of issued, with a card-update link issued
// then when the message asks the customer to act.
func (a *Notifications) render(in NotifyInput, issued time.Time) (notify.Rendered, error) {
	if a.CardLinks != nil && in.Kind != "payment_recovered" && in.Data.CardUpdateURL == "" {
		link, err := a.CardLinks.URL(in.WorkflowID, in.Data.CustomerID, issued)
		if err != nil {
			return notify.Rendered{}, permanent(ErrTypeInvalidInput, fmt.Errorf("notify %s: card-update link: %w", in.IdempotencyKey, err))
		}
		in.Data.CardUpdateURL = link
	}
	msg, err := notify.Render(in.Kind, in.Channel, in.Locale, in.Data)
	if err != nil {
		return notify.Rendered{}, permanent(ErrTypeInvalidInput, fmt.Errorf("notify %s: %w", in.IdempotencyKey, err))
	}
	return msg, nil
}

// blockedByPreference returns why the recipient must not get a message on
// the channel, or "" if it may be sent: an SMS number that replied STOP (or
// another opt-out keyword) and has not opted back in, or an email address
// the email provider reported as bouncing or unwanted.
func (a *Notifications) blockedByPreference(ctx context.Context, channel, recipient string) (string, error) {
	switch channel {
	case "sms":
		if a.PendingConsents != nil {
			optedOut, found, err := a.PendingConsents.PendingSMSOptOut(ctx, recipient)
			if err != nil {
				return "", err
			}
			if found && optedOut {
				return "recipient opted out of SMS (not yet in the ledger)", nil
			}
		}
		optedOut, keyword, err := a.Ledger.SMSOptOut(ctx, recipient)
		if err != nil || !optedOut {
			return "", err
		}
		if keyword == "" {
			return "recipient opted out of SMS", nil
		}
		return "recipient opted out of SMS (" + keyword + ")", nil
	case "email":
		suppressed, reason, err := a.Ledger.EmailSuppressed(ctx, recipient)
		if err != nil || !suppressed {
			return "", err
		}
		if reason == "" {
			return "email address suppressed", nil
		}
		return "email address suppressed (" + reason + ")", nil
	}
	return "", nil
}

func (a *Notifications) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// NotifyStepInput is one message step: the same message on each of its
// channels, sent by one activity so a step costs one activity however many
// channels it uses.
type NotifyStepInput struct {
	Messages []NotifyInput `json:"messages"`
	// Journal is the run's audit-trail entries since its last step (the
	// decision to send these messages among them), recorded before any
	// message is sent.
	Journal []JournalEntry `json:"journal,omitempty"`
}

// NotifyStepOutput holds one result per message, in the input's order.
type NotifyStepOutput struct {
	Results []NotifyStepResult `json:"results"`
}

// NotifyStepResult is what happened to one message of a step; a message the
// provider refused for good is "failed" with the reason, without failing the
// other channels.
type NotifyStepResult struct {
	NotifyOutput
	Key string `json:"key"`
}

// NotifyStep sends every message of a step through Notify. Each message keeps
// its own idempotency key, so when one channel fails for a reason worth
// retrying, the retried step returns the messages already sent without
// sending them again and tries only the one that failed.
func (a *Notifications) NotifyStep(ctx context.Context, in NotifyStepInput) (NotifyStepOutput, error) {
	out := NotifyStepOutput{Results: make([]NotifyStepResult, len(in.Messages))}
	if len(in.Journal) > 0 && len(in.Messages) > 0 && a.Ledger != nil {
		if err := recordJournal(ctx, a.Ledger, in.Messages[0].WorkflowID, in.Journal); err != nil {
			return NotifyStepOutput{}, err
		}
	}
	var retry []error
	for i, m := range in.Messages {
		res, err := a.Notify(ctx, m)
		out.Results[i] = NotifyStepResult{NotifyOutput: res, Key: m.IdempotencyKey}
		switch {
		case err == nil:
		case isPermanent(err):
			out.Results[i].Status, out.Results[i].Detail = "failed", err.Error()
		default:
			retry = append(retry, err)
		}
	}
	if len(retry) > 0 {
		return NotifyStepOutput{}, stepRetryError(retry)
	}
	return out, nil
}

// stepRetryError joins the errors of the messages worth retrying. When each
// of them names how long to wait (a lookup waiting for the provider's
// listing to settle), the step waits the shortest of those: Temporal reads
// the delay only from an application error returned as it is, not from one
// wrapped in a join.
func stepRetryError(errs []error) error {
	joined := fmt.Errorf("notify step: %w", errors.Join(errs...))
	var wait time.Duration
	for _, err := range errs {
		appErr, ok := errors.AsType[*temporal.ApplicationError](err)
		if !ok || appErr.NextRetryDelay() <= 0 {
			return joined
		}
		if wait == 0 || appErr.NextRetryDelay() < wait {
			wait = appErr.NextRetryDelay()
		}
	}
	return temporal.NewApplicationErrorWithOptions(joined.Error(), ErrTypeMessageOutcomeUnknown,
		temporal.ApplicationErrorOptions{NextRetryDelay: wait, Cause: joined})
}

// isPermanent reports whether err is an application error no retry can fix.
func isPermanent(err error) bool {
	appErr, ok := errors.AsType[*temporal.ApplicationError](err)
	return ok && appErr.NonRetryable()
}
