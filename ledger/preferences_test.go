package ledger_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

func TestSMSOptOut(t *testing.T) {
	const phone = "+48600100200"
	type event struct {
		optedOut bool
		keyword  string
		at       time.Time
	}
	tests := []struct {
		name        string
		events      []event
		wantOptOut  bool
		wantKeyword string
	}{
		{name: "unknown number"},
		{
			name:       "opted out",
			events:     []event{{true, "STOP", t0}},
			wantOptOut: true, wantKeyword: "STOP",
		},
		{
			name:       "opted back in",
			events:     []event{{true, "STOP", t0}, {false, "START", t0.Add(time.Hour)}},
			wantOptOut: false, wantKeyword: "START",
		},
		{
			name:       "opted out again",
			events:     []event{{true, "STOP", t0}, {false, "START", t0.Add(time.Hour)}, {true, "QUIT", t0.Add(2 * time.Hour)}},
			wantOptOut: true, wantKeyword: "QUIT",
		},
		{
			name:       "late opt-in older than the opt-out is ignored",
			events:     []event{{true, "STOP", t0.Add(time.Hour)}, {false, "START", t0}},
			wantOptOut: true, wantKeyword: "STOP",
		},
		{
			name:       "late opt-out older than the opt-in is ignored",
			events:     []event{{false, "UNSTOP", t0.Add(time.Hour)}, {true, "STOP", t0}},
			wantOptOut: false, wantKeyword: "UNSTOP",
		},
		{
			name:       "event at the same time replaces",
			events:     []event{{true, "STOP", t0}, {false, "START", t0}},
			wantOptOut: false, wantKeyword: "START",
		},
		{
			name:       "repeated event",
			events:     []event{{true, "STOP", t0}, {true, "STOP", t0}},
			wantOptOut: true, wantKeyword: "STOP",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ledgertest.NewStore(t)
			ctx := ctxFor(t)
			for _, e := range tt.events {
				if err := s.SetSMSOptOut(ctx, phone, e.optedOut, e.keyword, "twilio-inbound", e.at); err != nil {
					t.Fatalf("SetSMSOptOut(%v, %s): %v", e.optedOut, e.keyword, err)
				}
			}
			optedOut, keyword, err := s.SMSOptOut(ctx, phone)
			if err != nil {
				t.Fatalf("SMSOptOut: %v", err)
			}
			if optedOut != tt.wantOptOut || keyword != tt.wantKeyword {
				t.Errorf("SMSOptOut = %v, %q; want %v, %q", optedOut, keyword, tt.wantOptOut, tt.wantKeyword)
			}
			// Other numbers are unaffected.
			if optedOut, keyword, err := s.SMSOptOut(ctx, "+48600100201"); err != nil || optedOut || keyword != "" {
				t.Errorf("SMSOptOut of another number = %v, %q, %v; want false, \"\", nil", optedOut, keyword, err)
			}
		})
	}
}

func TestEmailSuppression(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)

	check := func(t *testing.T, email string, want bool, wantReason string) {
		t.Helper()
		got, reason, err := s.EmailSuppressed(ctx, email)
		if err != nil {
			t.Fatalf("EmailSuppressed(%s): %v", email, err)
		}
		if got != want || reason != wantReason {
			t.Errorf("EmailSuppressed(%s) = %v, %q; want %v, %q", email, got, reason, want, wantReason)
		}
	}

	check(t, "jane@example.com", false, "")
	if err := s.SuppressEmail(ctx, "Jane@Example.COM", "bounce", "sendgrid-events", t0); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"jane@example.com", "JANE@EXAMPLE.COM", " jane@example.com "} {
		check(t, email, true, "bounce")
	}
	check(t, "john@example.com", false, "")

	// Suppressing again keeps the first reason.
	if err := s.SuppressEmail(ctx, "jane@example.com", "spamreport", "sendgrid-events", t0.Add(time.Hour)); err != nil {
		t.Fatalf("second SuppressEmail: %v", err)
	}
	check(t, "jane@example.com", true, "bounce")

	if err := s.UnsuppressEmail(ctx, "JANE@example.com"); err != nil {
		t.Fatal(err)
	}
	check(t, "jane@example.com", false, "")
	if err := s.UnsuppressEmail(ctx, "jane@example.com"); err != nil {
		t.Errorf("UnsuppressEmail of an address not suppressed: %v", err)
	}

	if err := s.SuppressEmail(ctx, "jane@example.com", "unsubscribe", "sendgrid-events", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	check(t, "jane@example.com", true, "unsubscribe")
}

func TestPreferencesRejectInvalidInput(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)

	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"opt-out of a local number", func() error { return s.SetSMSOptOut(ctx, "600100200", true, "STOP", "test", t0) }},
		{"opt-out with a leading zero", func() error { return s.SetSMSOptOut(ctx, "+0600100200", true, "STOP", "test", t0) }},
		{"opt-out of a short number", func() error { return s.SetSMSOptOut(ctx, "+123456", true, "STOP", "test", t0) }},
		{"opt-out of a long number", func() error { return s.SetSMSOptOut(ctx, "+1234567890123456", true, "STOP", "test", t0) }},
		{"opt-out with spaces", func() error { return s.SetSMSOptOut(ctx, "+48 600 100 200", true, "STOP", "test", t0) }},
		{"opt-out without keyword", func() error { return s.SetSMSOptOut(ctx, "+48600100200", true, "", "test", t0) }},
		{"opt-out without source", func() error { return s.SetSMSOptOut(ctx, "+48600100200", true, "STOP", "", t0) }},
		{"opt-out lookup of a local number", func() error { _, _, err := s.SMSOptOut(ctx, "600100200"); return err }},
		{"suppress without @", func() error { return s.SuppressEmail(ctx, "jane.example.com", "bounce", "test", t0) }},
		{"suppress empty address", func() error { return s.SuppressEmail(ctx, "", "bounce", "test", t0) }},
		{"suppress without reason", func() error { return s.SuppressEmail(ctx, "jane@example.com", "", "test", t0) }},
		{"suppress without source", func() error { return s.SuppressEmail(ctx, "jane@example.com", "bounce", "", t0) }},
		{"unsuppress without @", func() error { return s.UnsuppressEmail(ctx, "jane.example.com") }},
		{"suppression lookup without @", func() error { _, _, err := s.EmailSuppressed(ctx, "jane.example.com"); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ledger.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, personal := range []string{"600100200", "jane"} {
				if strings.Contains(err.Error(), personal) {
					t.Errorf("error %q contains the address", err)
				}
			}
		})
	}

	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM sms_consent) + (SELECT count(*) FROM email_suppressions)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("invalid input wrote %d rows", n)
	}
}
