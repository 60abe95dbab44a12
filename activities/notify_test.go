package activities_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/policy"
)

// fakeNotifier records every send and answers with err, or a receipt.
type fakeNotifier struct {
	provider string
	mu       sync.Mutex
	err      error
	sent     []notify.Message
}

func (n *fakeNotifier) Send(_ context.Context, m notify.Message) (notify.Receipt, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, m)
	if n.err != nil {
		return notify.Receipt{}, n.err
	}
	return notify.Receipt{Provider: n.provider, Ref: fmt.Sprintf("%s-%d", n.provider, len(n.sent))}, nil
}

func (n *fakeNotifier) setErr(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.err = err
}

func (n *fakeNotifier) messages() []notify.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.sent)
}

type notifyFixture struct {
	store         *ledger.Store
	email, sms    *fakeNotifier
	notifications *activities.Notifications
}

func newNotifyFixture(t *testing.T) *notifyFixture {
	t.Helper()
	f := &notifyFixture{
		store: newLedger(t),
		email: &fakeNotifier{provider: "mailer"},
		sms:   &fakeNotifier{provider: "texter"},
	}
	f.notifications = &activities.Notifications{Email: f.email, SMS: f.sms, Ledger: f.store, Logger: quietLogger}
	return f
}

func (f *notifyFixture) message(t *testing.T, key string) ledger.Message {
	t.Helper()
	msgs, err := f.store.Messages(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	for _, m := range msgs {
		if m.IdempotencyKey == key {
			return m
		}
	}
	t.Fatalf("no message %q in the ledger (have %d)", key, len(msgs))
	return ledger.Message{}
}

func notifyInput(channel, recipient string) activities.NotifyInput {
	return activities.NotifyInput{
		WorkflowID:     testWorkflowID,
		IdempotencyKey: testWorkflowID + "/attempt-1-failed/" + channel,
		Kind:           "payment_failed",
		Channel:        channel,
		Recipient:      recipient,
		Locale:         "pl-PL",
		Data: notify.Data{
			CustomerID: "cus_1", InvoiceID: "inv-1", Amount: "49.90", Currency: "EUR",
			NextRetryAt: t0, TimeZone: "Europe/Warsaw", Attempt: 1,
		},
	}
}

func TestNotifySendsOnce(t *testing.T) {
	tests := []struct {
		channel, recipient string
		wantProvider       string
	}{
		{"email", "jane@example.com", "mailer"},
		{"sms", "+48600100200", "texter"},
	}
	for _, tt := range tests {
		t.Run(tt.channel, func(t *testing.T) {
			f := newNotifyFixture(t)
			in := notifyInput(tt.channel, tt.recipient)
			sender, other := f.email, f.sms
			if tt.channel == "sms" {
				sender, other = f.sms, f.email
			}
			rendered, err := notify.Render(in.Kind, in.Channel, in.Locale, in.Data)
			wantSubject, wantBody := rendered.Subject, rendered.Text
			if err != nil {
				t.Fatalf("Render: %v", err)
			}

			out, err := f.notifications.Notify(ctxFor(t), in)
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
			want := activities.NotifyOutput{Status: "sent", Provider: tt.wantProvider, ProviderRef: tt.wantProvider + "-1"}
			if out != want {
				t.Errorf("Notify = %+v, want %+v", out, want)
			}

			sent := sender.messages()
			if len(sent) != 1 {
				t.Fatalf("%s provider sends = %d, want 1", tt.channel, len(sent))
			}
			wantMsg := notify.Message{
				IdempotencyKey: in.IdempotencyKey, Kind: "payment_failed", Channel: tt.channel, To: tt.recipient,
				Locale: "pl-PL", Subject: wantSubject, Body: wantBody, HTML: rendered.HTML,
				WorkflowID: in.WorkflowID, Step: "attempt-1-failed/" + tt.channel,
			}
			if sent[0] != wantMsg {
				t.Errorf("sent %+v, want %+v", sent[0], wantMsg)
			}
			if got := len(other.messages()); got != 0 {
				t.Errorf("the other channel's provider sent %d messages, want 0", got)
			}

			row := f.message(t, in.IdempotencyKey)
			if row.Status != "sent" || row.Provider != tt.wantProvider || row.ProviderRef != tt.wantProvider+"-1" || row.FinishedAt.IsZero() {
				t.Errorf("ledger message = status %q provider %q ref %q finished %v, want sent by %s",
					row.Status, row.Provider, row.ProviderRef, row.FinishedAt, tt.wantProvider)
			}
			if row.Subject != wantSubject || row.Body != wantBody {
				t.Errorf("ledger subject/body = %q / %q, want the rendered %q / %q", row.Subject, row.Body, wantSubject, wantBody)
			}
			if row.Recipient != tt.recipient || row.Kind != "payment_failed" || row.Channel != tt.channel || row.Locale != "pl-PL" {
				t.Errorf("ledger message = %+v, want recipient, kind, channel and locale of the input", row)
			}

			again, err := f.notifications.Notify(ctxFor(t), in)
			if err != nil {
				t.Fatalf("repeated Notify: %v", err)
			}
			if again != want {
				t.Errorf("repeated Notify = %+v, want the recorded %+v", again, want)
			}
			if got := len(sender.messages()); got != 1 {
				t.Errorf("provider sends after repeat = %d, want 1", got)
			}
			assertCount(t, f.store, "messages", 1)
		})
	}
}

func TestNotifyRenderedText(t *testing.T) {
	f := newNotifyFixture(t)
	in := notifyInput("email", "jane@example.com")
	if _, err := f.notifications.Notify(ctxFor(t), in); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	row := f.message(t, in.IdempotencyKey)
	// The customer's locale is pl-PL: Polish text, amount and date.
	if want := "Płatność za fakturę inv-1 nie powiodła się"; row.Subject != want {
		t.Errorf("ledger subject = %q, want %q", row.Subject, want)
	}
	for _, want := range []string{"49,90\u00a0€", "inv-1", "czwartek, 5 marca 2026, 09:00 CET"} {
		if !strings.Contains(row.Body, want) {
			t.Errorf("ledger body %q does not contain %q", row.Body, want)
		}
	}
}

func TestNotifySkipped(t *testing.T) {
	tests := []struct {
		name       string
		channel    string
		recipient  string
		noProvider bool
		wantDetail string
	}{
		{name: "no email address", channel: "email", recipient: "", wantDetail: "no email address for the customer"},
		{name: "no phone number", channel: "sms", recipient: "", wantDetail: "no sms address for the customer"},
		{name: "no sms provider", channel: "sms", recipient: "+48600100200", noProvider: true, wantDetail: "no sms provider configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNotifyFixture(t)
			if tt.noProvider {
				f.notifications.SMS = nil
			}
			in := notifyInput(tt.channel, tt.recipient)

			out, err := f.notifications.Notify(ctxFor(t), in)
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
			want := activities.NotifyOutput{Status: "skipped", Detail: tt.wantDetail}
			if out != want {
				t.Errorf("Notify = %+v, want %+v", out, want)
			}
			if got := len(f.email.messages()) + len(f.sms.messages()); got != 0 {
				t.Errorf("provider sends = %d, want 0", got)
			}
			row := f.message(t, in.IdempotencyKey)
			if row.Status != "skipped" || row.Detail != tt.wantDetail || row.FinishedAt.IsZero() {
				t.Errorf("ledger message = status %q detail %q finished %v, want skipped %q", row.Status, row.Detail, row.FinishedAt, tt.wantDetail)
			}

			again, err := f.notifications.Notify(ctxFor(t), in)
			if err != nil || again != want {
				t.Errorf("repeated Notify = %+v, %v; want %+v", again, err, want)
			}
		})
	}
}

func TestNotifyRejected(t *testing.T) {
	f := newNotifyFixture(t)
	f.email.setErr(fmt.Errorf("mailer: 550 mailbox does not exist: %w", notify.ErrRejected))
	in := notifyInput("email", "nobody@example.invalid")

	_, err := f.notifications.Notify(ctxFor(t), in)
	assertPermanent(t, err, activities.ErrTypeMessageRejected)

	row := f.message(t, in.IdempotencyKey)
	if row.Status != "failed" || row.FinishedAt.IsZero() || !strings.Contains(row.Detail, "550 mailbox does not exist") {
		t.Errorf("ledger message = status %q detail %q finished %v, want failed with the provider's reason", row.Status, row.Detail, row.FinishedAt)
	}

	// The provider would now accept it, but a rejected message is final.
	f.email.setErr(nil)
	_, err = f.notifications.Notify(ctxFor(t), in)
	assertPermanent(t, err, activities.ErrTypeMessageRejected)
	if got := len(f.email.messages()); got != 1 {
		t.Errorf("provider sends = %d, want 1", got)
	}
	if row := f.message(t, in.IdempotencyKey); row.Status != "failed" {
		t.Errorf("ledger status after repeat = %q, want failed", row.Status)
	}
}

func TestNotifyTransientErrorRetries(t *testing.T) {
	f := newNotifyFixture(t)
	f.email.setErr(errors.New("mailer: 503 service unavailable"))
	in := notifyInput("email", "jane@example.com")

	_, err := f.notifications.Notify(ctxFor(t), in)
	assertRetryable(t, err)
	if row := f.message(t, in.IdempotencyKey); row.Status != "pending" || !row.FinishedAt.IsZero() {
		t.Errorf("ledger message = %q (finished %v), want pending", row.Status, row.FinishedAt)
	}

	f.email.setErr(nil)
	out, err := f.notifications.Notify(ctxFor(t), in)
	if err != nil {
		t.Fatalf("retried Notify: %v", err)
	}
	if out.Status != "sent" || out.ProviderRef != "mailer-2" {
		t.Errorf("retried Notify = %+v, want sent as mailer-2", out)
	}
	sent := f.email.messages()
	if len(sent) != 2 || sent[0].IdempotencyKey != in.IdempotencyKey || sent[1].IdempotencyKey != in.IdempotencyKey {
		t.Errorf("provider saw %d sends, want 2 under key %s", len(sent), in.IdempotencyKey)
	}
	if row := f.message(t, in.IdempotencyKey); row.Status != "sent" || row.ProviderRef != "mailer-2" {
		t.Errorf("ledger message = %q %q, want sent mailer-2", row.Status, row.ProviderRef)
	}
	assertCount(t, f.store, "messages", 1)
}

func TestNotifyInvalidInput(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*activities.NotifyInput)
	}{
		{"no idempotency key", func(in *activities.NotifyInput) { in.IdempotencyKey = "" }},
		{"unknown channel", func(in *activities.NotifyInput) { in.Channel = "fax" }},
		{"unknown kind", func(in *activities.NotifyInput) { in.Kind = "payment_exploded" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNotifyFixture(t)
			in := notifyInput("email", "jane@example.com")
			tt.mutate(&in)

			_, err := f.notifications.Notify(ctxFor(t), in)
			assertPermanent(t, err, activities.ErrTypeInvalidInput)
			assertCount(t, f.store, "messages", 0)
			if got := len(f.email.messages()); got != 0 {
				t.Errorf("provider sends = %d, want 0", got)
			}
		})
	}
}

func TestNotifyAfterRunClosed(t *testing.T) {
	f := newNotifyFixture(t)
	closeRun(t, f.store, testWorkflowID)
	in := notifyInput("email", "jane@example.com")
	in.Kind, in.IdempotencyKey = "payment_recovered", testWorkflowID+"/recovered/email"
	in.Data.NextRetryAt = time.Time{}

	out, err := f.notifications.Notify(ctxFor(t), in)
	if err != nil {
		t.Fatalf("Notify after close: %v", err)
	}
	if out.Status != "sent" {
		t.Errorf("Notify after close = %+v, want sent", out)
	}
	if row := f.message(t, in.IdempotencyKey); row.Status != "sent" || row.Subject != "Otrzymaliśmy płatność za fakturę inv-1, dziękujemy" {
		t.Errorf("ledger message = %q %q", row.Status, row.Subject)
	}
}

// A text whose send was retried past its window is deferred, not sent at
// night; the run's next try, inside the window, sends it once.
func TestNotifyDefersTextsOutsideTheWindow(t *testing.T) {
	f := newNotifyFixture(t)
	now := time.Now().UTC()
	// A fixed-offset zone where it is 12:xx now (Etc/GMT-3 is UTC+3).
	zone := fmt.Sprintf("Etc/GMT%+d", now.Hour()-12)
	if now.Hour() == 12 {
		zone = "Etc/GMT"
	}
	in := notifyInput("sms", "+48600100200")
	in.Zone = zone
	// A window that opens at 14:00, about two hours from now.
	in.SMSWindow = policy.Window{Start: "14:00", End: "15:00"}
	out, err := f.notifications.Notify(ctxFor(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != "deferred" || out.NotBefore.Before(now.Add(time.Hour)) || len(f.sms.messages()) != 0 {
		t.Fatalf("outside the window: %+v, %d texts sent; want deferred by about two hours, none sent", out, len(f.sms.messages()))
	}
	if m := f.message(t, in.IdempotencyKey); m.Status != "pending" {
		t.Errorf("ledger row = %s, want pending until the text goes out", m.Status)
	}
	// A window that holds now.
	in.SMSWindow = policy.Window{Start: "10:00", End: "14:00"}
	for range 2 {
		if out, err = f.notifications.Notify(ctxFor(t), in); err != nil || out.Status != "sent" {
			t.Fatalf("inside the window: %+v, %v", out, err)
		}
	}
	if n := len(f.sms.messages()); n != 1 {
		t.Errorf("texts sent = %d, want 1", n)
	}
}

// A retried send repeats exactly what the first try rendered and stored:
// the same card-update link, subject and text, even a second later.
func TestNotifyRetrySendsTheSameMessage(t *testing.T) {
	f := newNotifyFixture(t)
	f.notifications.CardLinks = &cardlink.Signer{Secret: []byte(strings.Repeat("k", 32)), BaseURL: "https://billing.example.com/update-card", TTL: time.Hour}
	f.email.setErr(errors.New("mailer: 503 service unavailable"))
	in := notifyInput("email", "jane@example.com")
	if _, err := f.notifications.Notify(ctxFor(t), in); err == nil {
		t.Fatal("first try succeeded, want a retryable error")
	}
	time.Sleep(1100 * time.Millisecond) // a new link minted now would differ
	f.email.setErr(nil)
	if _, err := f.notifications.Notify(ctxFor(t), in); err != nil {
		t.Fatal(err)
	}
	sent := f.email.messages()
	if len(sent) != 2 || sent[0].Body != sent[1].Body || sent[0].HTML != sent[1].HTML || sent[0].Subject != sent[1].Subject {
		t.Fatalf("the retry sent another message:\n%q\n%q", sent[0].Body, sent[len(sent)-1].Body)
	}
	if !strings.Contains(sent[1].Body, "https://billing.example.com/update-card?token=") {
		t.Errorf("body has no card-update link: %q", sent[1].Body)
	}
	if row := f.message(t, in.IdempotencyKey); row.Body != sent[1].Body {
		t.Errorf("ledger body differs from what was sent")
	}
}

// A retry sends the content the ledger holds, byte for byte, even when the
// worker that retries renders differently (another card-link secret or TTL
// during a rollout, or changed templates): the stored subject, text and HTML
// are what the customer gets, never a fresh rendering.
func TestNotifyRetrySendsTheStoredContent(t *testing.T) {
	f := newNotifyFixture(t)
	f.notifications.CardLinks = &cardlink.Signer{Secret: []byte(strings.Repeat("k", 32)), BaseURL: "https://billing.example.com/update-card", TTL: time.Hour}
	f.email.setErr(errors.New("mailer: 503 service unavailable"))
	in := notifyInput("email", "jane@example.com")
	if _, err := f.notifications.Notify(ctxFor(t), in); err == nil {
		t.Fatal("first try succeeded, want a retryable error")
	}
	stored := f.message(t, in.IdempotencyKey)
	first := f.email.messages()[0]
	if stored.HTML == "" || stored.HTML != first.HTML {
		t.Fatalf("ledger HTML = %q, want the HTML the first try sent", stored.HTML)
	}

	// The retry lands on a worker configured with another link secret and
	// TTL: what it would render now differs from what was stored.
	retrying := *f.notifications
	retrying.CardLinks = &cardlink.Signer{Secret: []byte(strings.Repeat("z", 32)), BaseURL: "https://billing.example.com/update-card", TTL: 2 * time.Hour}
	f.email.setErr(nil)
	if _, err := retrying.Notify(ctxFor(t), in); err != nil {
		t.Fatal(err)
	}
	sent := f.email.messages()
	if len(sent) != 2 {
		t.Fatalf("provider saw %d sends, want 2", len(sent))
	}
	got := sent[1]
	if got.Subject != stored.Subject || got.Body != stored.Body || got.HTML != stored.HTML {
		t.Errorf("the retry sent content that differs from the ledger:\nsent   %q\nstored %q", got.Body, stored.Body)
	}
}

// A provider that answered "not this time" (rate limited) took nothing: the
// retry sends without asking it first. Any other failure leaves the outcome
// unknown, and a provider without a lookup gets the message again, noted.
func TestNotifyRetryAfterAnswerOrUnknownOutcome(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantDetail string
	}{
		{"rate limited", fmt.Errorf("mailer: HTTP 429: %w", notify.ErrNotAccepted), ""},
		{"server error", errors.New("mailer: HTTP 500"), "sent again after an unknown outcome: the provider offers no lookup"},
		{"connection dropped", errors.New("mailer: unexpected EOF"), "sent again after an unknown outcome: the provider offers no lookup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNotifyFixture(t)
			in := notifyInput("email", "jane@example.com")
			f.email.setErr(tt.err)
			if _, err := f.notifications.Notify(ctxFor(t), in); err == nil {
				t.Fatal("first try succeeded")
			}
			if row := f.message(t, in.IdempotencyKey); row.SendAttempts != 1 || row.OutcomeUnknown() != (tt.wantDetail != "") {
				t.Errorf("after the first try: %d calls, outcome unknown %v", row.SendAttempts, row.OutcomeUnknown())
			}
			f.email.setErr(nil)
			out, err := f.notifications.Notify(ctxFor(t), in)
			if err != nil || out.Status != "sent" || out.Detail != tt.wantDetail {
				t.Fatalf("retry = %+v, %v; want sent with detail %q", out, err, tt.wantDetail)
			}
			if row := f.message(t, in.IdempotencyKey); row.Detail != tt.wantDetail || row.SendAttempts != 2 {
				t.Errorf("ledger detail %q after %d calls, want %q after 2", row.Detail, row.SendAttempts, tt.wantDetail)
			}
		})
	}
}
