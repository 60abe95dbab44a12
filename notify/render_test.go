package notify_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/notify"
)

var kinds = []string{
	"payment_failed", "retry_failed", "service_paused",
	"service_suspended", "service_cancelled", "payment_recovered",
}

func sampleData() notify.Data {
	return notify.Data{
		CustomerID:  "cus_42",
		InvoiceID:   "INV-2026-0042",
		Amount:      "49.90",
		Currency:    "EUR",
		NextRetryAt: time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC),
		TimeZone:    "Europe/Warsaw",
		Attempt:     2,
	}
}

// assertClean fails when a template left a placeholder or a missing field behind.
func assertClean(t *testing.T, what, s string) {
	t.Helper()
	for _, bad := range []string{"{{", "}}", "<no value>", "%!"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s %q contains %q", what, s, bad)
		}
	}
}

func TestRenderEmail(t *testing.T) {
	d := sampleData()
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			rendered, err := notify.Render(kind, "email", "en", d)
			subject, body := rendered.Subject, rendered.Text
			if err != nil {
				t.Fatalf("Render(%s, email): %v", kind, err)
			}
			if !strings.Contains(subject, d.InvoiceID) {
				t.Errorf("subject %q does not mention invoice %s", subject, d.InvoiceID)
			}
			for _, want := range []string{d.InvoiceID, d.Amount} {
				if !strings.Contains(body, want) {
					t.Errorf("body %q does not mention %q", body, want)
				}
			}
			if strings.Contains(subject, "\n") {
				t.Errorf("subject %q spans lines", subject)
			}
			assertClean(t, "subject", subject)
			assertClean(t, "body", body)
		})
	}
}

func TestRenderSMS(t *testing.T) {
	d := sampleData()
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			rendered, err := notify.Render(kind, "sms", "en", d)
			subject, body := rendered.Subject, rendered.Text
			if err != nil {
				t.Fatalf("Render(%s, sms): %v", kind, err)
			}
			if subject != "" {
				t.Errorf("SMS subject = %q, want none", subject)
			}
			if strings.TrimSpace(body) == "" || body == "." {
				t.Fatalf("SMS body %q is empty", body)
			}
			if n := len([]rune(body)); n > 160 {
				t.Errorf("SMS body is %d characters, want at most one 160-character segment: %q", n, body)
			}
			if !strings.Contains(body, d.InvoiceID) {
				t.Errorf("SMS body %q does not mention invoice %s", body, d.InvoiceID)
			}
			if !strings.HasSuffix(body, ".") || strings.HasSuffix(body, "..") {
				t.Errorf("SMS body %q should end with one full stop", body)
			}
			email, err := notify.Render(kind, "email", "en", d)
			emailSubject := email.Subject
			if err != nil {
				t.Fatalf("Render(%s, email): %v", kind, err)
			}
			if want := emailSubject + "."; body != want {
				t.Errorf("SMS body = %q, want the email subject's gist %q", body, want)
			}
			assertClean(t, "SMS body", body)
		})
	}
}

func TestRenderExactText(t *testing.T) {
	tests := []struct {
		kind, channel     string
		data              notify.Data
		wantSubject, want string
	}{
		{
			kind: "payment_failed", channel: "email", data: sampleData(),
			wantSubject: "Your payment for invoice INV-2026-0042 did not go through",
			want: "We could not collect 49.90 EUR for invoice INV-2026-0042. We will try again on Thursday 5 March 2026 at 09:00 CET." +
				" If your card has changed, please update your payment details.",
		},
		{
			kind: "retry_failed", channel: "email", data: sampleData(),
			wantSubject: "We still could not collect your payment for invoice INV-2026-0042",
			want: "Attempt 2 to collect 49.90 EUR for invoice INV-2026-0042 was declined. We will try again on Thursday 5 March 2026 at 09:00 CET." +
				" Please update your payment details to keep your service running.",
		},
		{
			kind: "retry_failed", channel: "email",
			data:        notify.Data{InvoiceID: "INV-7", Amount: "1200", Currency: "JPY", Attempt: 4},
			wantSubject: "We still could not collect your payment for invoice INV-7",
			want:        "Attempt 4 to collect 1200 JPY for invoice INV-7 was declined. Please update your payment details to keep your service running.",
		},
		{
			kind: "payment_recovered", channel: "sms", data: sampleData(),
			wantSubject: "",
			want:        "Payment received for invoice INV-2026-0042, thank you.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.channel, func(t *testing.T) {
			rendered, err := notify.Render(tt.kind, tt.channel, "en", tt.data)
			subject, body := rendered.Subject, rendered.Text
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if subject != tt.wantSubject {
				t.Errorf("subject = %q, want %q", subject, tt.wantSubject)
			}
			if body != tt.want {
				t.Errorf("body = %q, want %q", body, tt.want)
			}
		})
	}
}

func TestRenderNextRetryInCustomerTimeZone(t *testing.T) {
	tests := []struct {
		name     string
		at       time.Time
		timeZone string
		want     string
	}{
		{"Warsaw winter", time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC), "Europe/Warsaw", "Thursday 5 March 2026 at 09:00 CET"},
		{"Warsaw summer", time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC), "Europe/Warsaw", "Wednesday 1 July 2026 at 10:00 CEST"},
		{"New York", time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC), "America/New_York", "Thursday 5 March 2026 at 03:00 EST"},
		{"date changes", time.Date(2026, 3, 5, 23, 30, 0, 0, time.UTC), "Asia/Tokyo", "Friday 6 March 2026 at 08:30 JST"},
		{"input zone ignored", time.Date(2026, 3, 5, 8, 0, 0, 0, time.FixedZone("X", -5*3600)), "Europe/Warsaw", "Thursday 5 March 2026 at 14:00 CET"},
		{"no zone is UTC", time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC), "", "Thursday 5 March 2026 at 08:00 UTC"},
		{"unknown zone is UTC", time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC), "Mars/Olympus_Mons", "Thursday 5 March 2026 at 08:00 UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := sampleData()
			d.NextRetryAt, d.TimeZone = tt.at, tt.timeZone
			rendered, err := notify.Render("payment_failed", "email", "en", d)
			_, body := rendered.Subject, rendered.Text
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if want := "We will try again on " + tt.want + "."; !strings.Contains(body, want) {
				t.Errorf("body %q does not contain %q", body, want)
			}
		})
	}
}

func TestRenderWithoutNextRetry(t *testing.T) {
	for _, kind := range []string{"payment_failed", "retry_failed"} {
		t.Run(kind, func(t *testing.T) {
			d := sampleData()
			d.NextRetryAt = time.Time{}
			rendered, err := notify.Render(kind, "email", "en", d)
			_, body := rendered.Subject, rendered.Text
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if strings.Contains(body, "try again") {
				t.Errorf("body %q announces a retry although none is scheduled", body)
			}
			if strings.Contains(body, "  ") || strings.Contains(body, "..") {
				t.Errorf("body %q has a gap where the retry sentence was", body)
			}
		})
	}
}

func TestRenderUnknownKind(t *testing.T) {
	tests := []struct{ kind, channel string }{
		{"payment_exploded", "email"},
		{"payment_exploded", "sms"},
		{"", "email"},
		{"Payment_Failed", "email"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.channel, func(t *testing.T) {
			rendered, err := notify.Render(tt.kind, tt.channel, "en", sampleData())
			subject, body := rendered.Subject, rendered.Text
			if err == nil {
				t.Fatalf("Render(%q, %q) = %q, %q; want an error", tt.kind, tt.channel, subject, body)
			}
			if !strings.Contains(err.Error(), "no template") {
				t.Errorf("error %q should say there is no template", err)
			}
			if subject != "" || body != "" {
				t.Errorf("Render returned text %q, %q with an error", subject, body)
			}
		})
	}
}

func TestDryRunSend(t *testing.T) {
	var logs bytes.Buffer
	d := notify.DryRun{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	var n notify.Notifier = d
	receipt, err := n.Send(context.Background(), notify.Message{
		IdempotencyKey: "dunning/acme/inv-1/attempt-1-failed/email", Kind: "payment_failed", Channel: "email",
		To: "jane@example.com", Subject: "Your payment", Body: "We could not collect",
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := notify.Receipt{Provider: "dry-run", Ref: "dry-run:dunning/acme/inv-1/attempt-1-failed/email"}
	if receipt != want {
		t.Errorf("receipt = %+v, want %+v", receipt, want)
	}
	if !strings.Contains(logs.String(), "dunning/acme/inv-1/attempt-1-failed/email") {
		t.Errorf("log %q does not name the key", logs.String())
	}
	if strings.Contains(logs.String(), "jane@example.com") {
		t.Errorf("log %q contains the recipient's address", logs.String())
	}
}
