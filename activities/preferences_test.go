package activities_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/ledger"
)

const (
	testPhone = "+48600100200"
	testEmail = "jane@example.com"
)

func TestNotifyRespectsPreferences(t *testing.T) {
	// Each setup records preferences as the webhooks would.
	type setup func(ctx context.Context, t *testing.T, s *ledger.Store)
	optOut := func(phone string, optedOut bool, keyword string, at time.Time) setup {
		return func(ctx context.Context, t *testing.T, s *ledger.Store) {
			if err := s.SetSMSOptOut(ctx, phone, optedOut, keyword, "twilio-inbound", at); err != nil {
				t.Fatalf("SetSMSOptOut: %v", err)
			}
		}
	}
	suppress := func(email, reason string) setup {
		return func(ctx context.Context, t *testing.T, s *ledger.Store) {
			if err := s.SuppressEmail(ctx, email, reason, "sendgrid-events", t0); err != nil {
				t.Fatalf("SuppressEmail: %v", err)
			}
		}
	}
	unsuppress := func(email string) setup {
		return func(ctx context.Context, t *testing.T, s *ledger.Store) {
			if err := s.UnsuppressEmail(ctx, email); err != nil {
				t.Fatalf("UnsuppressEmail: %v", err)
			}
		}
	}

	tests := []struct {
		name       string
		channel    string
		recipient  string
		setup      []setup
		wantStatus string
		wantDetail string
	}{
		{
			name: "sms to an opted-out number", channel: "sms", recipient: testPhone,
			setup:      []setup{optOut(testPhone, true, "STOP", t0)},
			wantStatus: "skipped", wantDetail: "recipient opted out of SMS (STOP)",
		},
		{
			name: "sms opted out with another keyword", channel: "sms", recipient: testPhone,
			setup:      []setup{optOut(testPhone, true, "QUIT", t0)},
			wantStatus: "skipped", wantDetail: "recipient opted out of SMS (QUIT)",
		},
		{
			name: "sms to a number that opted back in", channel: "sms", recipient: testPhone,
			setup:      []setup{optOut(testPhone, true, "STOP", t0), optOut(testPhone, false, "START", t0.Add(time.Hour))},
			wantStatus: "sent",
		},
		{
			name: "sms after a late opt-in older than the opt-out", channel: "sms", recipient: testPhone,
			setup:      []setup{optOut(testPhone, true, "STOP", t0.Add(time.Hour)), optOut(testPhone, false, "START", t0)},
			wantStatus: "skipped", wantDetail: "recipient opted out of SMS (STOP)",
		},
		{
			name: "sms when another number opted out", channel: "sms", recipient: testPhone,
			setup:      []setup{optOut("+48600100201", true, "STOP", t0)},
			wantStatus: "sent",
		},
		{
			name: "sms when the customer's email is suppressed", channel: "sms", recipient: testPhone,
			setup:      []setup{suppress(testEmail, "bounce")},
			wantStatus: "sent",
		},
		{
			name: "email to a suppressed address", channel: "email", recipient: testEmail,
			setup:      []setup{suppress(testEmail, "bounce")},
			wantStatus: "skipped", wantDetail: "email address suppressed (bounce)",
		},
		{
			name: "email to a suppressed address in other case", channel: "email", recipient: "Jane@Example.COM",
			setup:      []setup{suppress(testEmail, "spamreport")},
			wantStatus: "skipped", wantDetail: "email address suppressed (spamreport)",
		},
		{
			name: "email to an address no longer suppressed", channel: "email", recipient: testEmail,
			setup:      []setup{suppress(testEmail, "unsubscribe"), unsuppress(testEmail)},
			wantStatus: "sent",
		},
		{
			name: "email when another address is suppressed", channel: "email", recipient: testEmail,
			setup:      []setup{suppress("john@example.com", "bounce")},
			wantStatus: "sent",
		},
		{
			name: "email when the customer's phone opted out", channel: "email", recipient: testEmail,
			setup:      []setup{optOut(testPhone, true, "STOP", t0)},
			wantStatus: "sent",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNotifyFixture(t)
			ctx := ctxFor(t)
			for _, s := range tt.setup {
				s(ctx, t, f.store)
			}
			sender := f.email
			if tt.channel == "sms" {
				sender = f.sms
			}
			in := notifyInput(tt.channel, tt.recipient)

			out, err := f.notifications.Notify(ctx, in)
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
			wantSends := 0
			want := activities.NotifyOutput{Status: "skipped", Detail: tt.wantDetail}
			if tt.wantStatus == "sent" {
				wantSends = 1
				want = activities.NotifyOutput{Status: "sent", Provider: sender.provider, ProviderRef: sender.provider + "-1"}
			}
			if out != want {
				t.Errorf("Notify = %+v, want %+v", out, want)
			}
			if got := len(f.email.messages()) + len(f.sms.messages()); got != wantSends {
				t.Errorf("provider sends = %d, want %d", got, wantSends)
			}
			row := f.message(t, in.IdempotencyKey)
			if row.Status != tt.wantStatus || row.Detail != tt.wantDetail || row.FinishedAt.IsZero() {
				t.Errorf("ledger message = status %q detail %q finished %v, want %s %q",
					row.Status, row.Detail, row.FinishedAt, tt.wantStatus, tt.wantDetail)
			}

			again, err := f.notifications.Notify(ctx, in)
			if err != nil || again != want {
				t.Errorf("repeated Notify = %+v, %v; want %+v", again, err, want)
			}
			if got := len(f.email.messages()) + len(f.sms.messages()); got != wantSends {
				t.Errorf("provider sends after repeat = %d, want %d", got, wantSends)
			}
		})
	}
}

func TestNotifyReplayAfterOptOutStaysSent(t *testing.T) {
	f := newNotifyFixture(t)
	ctx := ctxFor(t)
	in := notifyInput("sms", testPhone)
	first, err := f.notifications.Notify(ctx, in)
	if err != nil || first.Status != "sent" {
		t.Fatalf("Notify = %+v, %v; want sent", first, err)
	}
	if err := f.store.SetSMSOptOut(ctx, testPhone, true, "STOP", "twilio-inbound", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// The message went out before the STOP: a replay reports what happened.
	replay, err := f.notifications.Notify(ctx, in)
	if err != nil || replay != first {
		t.Errorf("replayed Notify = %+v, %v; want the recorded %+v", replay, err, first)
	}
	if got := len(f.sms.messages()); got != 1 {
		t.Errorf("provider sends = %d, want 1", got)
	}
	if row := f.message(t, in.IdempotencyKey); row.Status != "sent" {
		t.Errorf("ledger status = %q, want sent", row.Status)
	}

	// The next message of the run is not sent.
	next := in
	next.IdempotencyKey = testWorkflowID + "/attempt-2-failed/sms"
	out, err := f.notifications.Notify(ctx, next)
	if err != nil || out.Status != "skipped" || out.Detail != "recipient opted out of SMS (STOP)" {
		t.Errorf("next Notify = %+v, %v; want skipped for the opt-out", out, err)
	}
	if got := len(f.sms.messages()); got != 1 {
		t.Errorf("provider sends = %d, want 1", got)
	}
}

func TestNotifyOptOutDuringRetries(t *testing.T) {
	f := newNotifyFixture(t)
	ctx := ctxFor(t)
	f.sms.setErr(errors.New("texter: 503 service unavailable"))
	in := notifyInput("sms", testPhone)

	_, err := f.notifications.Notify(ctx, in)
	assertRetryable(t, err)
	if err := f.store.SetSMSOptOut(ctx, testPhone, true, "STOP", "twilio-inbound", t0); err != nil {
		t.Fatal(err)
	}
	f.sms.setErr(nil)

	out, err := f.notifications.Notify(ctx, in)
	want := activities.NotifyOutput{Status: "skipped", Detail: "recipient opted out of SMS (STOP)"}
	if err != nil || out != want {
		t.Errorf("retried Notify = %+v, %v; want %+v", out, err, want)
	}
	if got := len(f.sms.messages()); got != 1 {
		t.Errorf("provider sends = %d, want only the failed first one", got)
	}
	if row := f.message(t, in.IdempotencyKey); row.Status != "skipped" {
		t.Errorf("ledger status = %q, want skipped", row.Status)
	}
}

// failingPreferences is the ledger with preference look-ups that fail.
type failingPreferences struct {
	*ledger.Store
	err error
}

func (l failingPreferences) SMSOptOut(context.Context, string) (bool, string, error) {
	return false, "", l.err
}

func (l failingPreferences) EmailSuppressed(context.Context, string) (bool, string, error) {
	return false, "", l.err
}

func TestNotifyPreferenceLookupFails(t *testing.T) {
	tests := []struct {
		name          string
		channel       string
		recipient     string
		err           error
		wantPermanent bool
	}{
		{"sms, ledger unavailable", "sms", testPhone, errors.New("connection refused"), false},
		{"email, ledger unavailable", "email", testEmail, errors.New("connection refused"), false},
		{"sms, invalid number", "sms", "600100200", ledger.ErrInvalid, true},
		{"email, invalid address", "email", "jane", ledger.ErrInvalid, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNotifyFixture(t)
			f.notifications.Ledger = failingPreferences{Store: f.store, err: tt.err}
			in := notifyInput(tt.channel, tt.recipient)

			_, err := f.notifications.Notify(ctxFor(t), in)
			if tt.wantPermanent {
				assertPermanent(t, err, activities.ErrTypeInvalidInput)
			} else {
				assertRetryable(t, err)
			}
			if got := len(f.email.messages()) + len(f.sms.messages()); got != 0 {
				t.Errorf("provider sends = %d, want 0", got)
			}
			if row := f.message(t, in.IdempotencyKey); row.Status != "pending" {
				t.Errorf("ledger status = %q, want pending", row.Status)
			}
		})
	}
}
