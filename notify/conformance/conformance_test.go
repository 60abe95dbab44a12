//go:build unix

package conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/notify/prismtest"
	"github.com/dunningco/dunning/notify/sendgrid"
	"github.com/dunningco/dunning/notify/twilio"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "f00dfeedcafebabe5eed0fbadc0ffee1"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
)

func withoutCredentials(h http.Header, body []byte) []byte {
	h.Del("Authorization")
	return body
}

func withoutFormField(name string) prismtest.Tamper {
	return func(h http.Header, body []byte) []byte {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return body
		}
		form.Del(name)
		return []byte(form.Encode())
	}
}

// requestViolations returns Prism's violations located in the request
// (its sl-violations header also lists those in its own answer).
func requestViolations(t *testing.T, header string) string {
	t.Helper()
	if header == "" {
		return ""
	}
	var all []struct {
		Location []string `json:"location"`
		Message  string   `json:"message"`
	}
	if err := json.Unmarshal([]byte(header), &all); err != nil {
		t.Fatalf("sl-violations %q: %v", header, err)
	}
	var out []string
	for _, v := range all {
		if len(v.Location) > 0 && v.Location[0] == "request" {
			out = append(out, strings.Join(v.Location, ".")+": "+v.Message)
		}
	}
	return strings.Join(out, "; ")
}

func sampleData() notify.Data {
	return notify.Data{
		CustomerID:    "cus_42",
		InvoiceID:     "INV-2026-0042",
		Amount:        "49.90",
		Currency:      "EUR",
		NextRetryAt:   time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC),
		TimeZone:      "Europe/Warsaw",
		Attempt:       2,
		CardUpdateURL: "https://billing.example.com/card/cus_42?sig=abc",
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mailSend is the part of a Mail Send request body the tests look at.
type mailSend struct {
	Personalizations []struct {
		To []struct {
			Email string `json:"email"`
		} `json:"to"`
		CustomArgs map[string]string `json:"custom_args"`
	} `json:"personalizations"`
	From    struct{ Email, Name string } `json:"from"`
	ReplyTo *struct{ Email string }      `json:"reply_to"`
	Subject string                       `json:"subject"`
	Content []struct {
		Type, Value string
	} `json:"content"`
	Categories []string `json:"categories"`
}

func TestSendGridConformance(t *testing.T) {
	t.Parallel()
	// The spec's server is http://api.sendgrid.com/v3; the proxy plays the
	// /v3 part, which Prism does not match.
	proxy := prismtest.Start(t, "sendgrid-v3.json")

	n, err := sendgrid.New(sendgrid.Config{
		APIKey:     "SG.conformance-test-key",
		BaseURL:    proxy.URL(),
		FromEmail:  "billing@example.com",
		FromName:   "Acme Billing",
		ReplyTo:    "help@example.com",
		Categories: []string{"dunning"},
		Logger:     discard(),
	})
	if err != nil {
		t.Fatalf("sendgrid.New: %v", err)
	}
	ctx := context.Background()

	for _, kind := range notify.Kinds() {
		for _, locale := range notify.Locales() {
			t.Run(kind+"/"+locale, func(t *testing.T) {
				r, err := notify.Render(kind, "email", locale, sampleData())
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				m := notify.Message{
					IdempotencyKey: "dunning/acme/inv-42/" + kind + "/email",
					Kind:           kind,
					Channel:        "email",
					To:             "jane.doe@example.com",
					Locale:         locale,
					Subject:        r.Subject,
					Body:           r.Text,
					HTML:           r.HTML,
					WorkflowID:     "dunning/acme/inv-42",
					Step:           kind + "/email",
				}
				receipt, err := n.Send(ctx, m)
				ex := proxy.Last(t)
				if err != nil {
					t.Fatalf("Send: %v (Prism: HTTP %d, violations %s)", err, ex.Status, ex.Violations)
				}
				if ex.Status != http.StatusAccepted || ex.Violations != "" {
					t.Errorf("Prism: HTTP %d, violations %s; want 202 and none", ex.Status, ex.Violations)
				}
				if receipt.Provider != "sendgrid" {
					t.Errorf("receipt = %+v", receipt)
				}
				if ex.Method != http.MethodPost || ex.Path != "/v3/mail/send" {
					t.Errorf("request = %s %s, want POST /v3/mail/send", ex.Method, ex.Path)
				}

				var body mailSend
				if err := json.Unmarshal(ex.Body, &body); err != nil {
					t.Fatalf("decode request body: %v", err)
				}
				if len(body.Personalizations) != 1 || len(body.Personalizations[0].To) != 1 ||
					body.Personalizations[0].To[0].Email != m.To {
					t.Fatalf("personalizations = %+v, want one to the recipient", body.Personalizations)
				}
				wantArgs := map[string]string{"workflow_id": m.WorkflowID, "step": m.Step, "idempotency_key": m.IdempotencyKey}
				if got := body.Personalizations[0].CustomArgs; !reflect.DeepEqual(got, wantArgs) {
					t.Errorf("custom_args = %v, want %v", got, wantArgs)
				}
				if want := []string{"dunning", kind}; !reflect.DeepEqual(body.Categories, want) {
					t.Errorf("categories = %q, want %q", body.Categories, want)
				}
				if body.Subject != r.Subject || body.From.Email != "billing@example.com" ||
					body.ReplyTo == nil || body.ReplyTo.Email != "help@example.com" {
					t.Errorf("subject %q, from %+v, reply_to %+v", body.Subject, body.From, body.ReplyTo)
				}
				wantTypes := []string{"text/plain"}
				if r.HTML != "" {
					wantTypes = append(wantTypes, "text/html")
				}
				var types []string
				for _, c := range body.Content {
					types = append(types, c.Type)
				}
				if !reflect.DeepEqual(types, wantTypes) {
					t.Errorf("content types = %q, want %q", types, wantTypes)
				}
			})
		}
	}

	// The lookup after an unknown outcome asks the Email Activity API for
	// our key (GET /v3/messages?query=...). The spec's example lists other
	// recipients' messages, so nothing is found.
	t.Run("lookup", func(t *testing.T) {
		withActivity, err := sendgrid.New(sendgrid.Config{
			APIKey: "SG.conformance-test-key", BaseURL: proxy.URL(), FromEmail: "billing@example.com",
			EmailActivity: true, Logger: discard(),
		})
		if err != nil {
			t.Fatal(err)
		}
		m := notify.Message{
			IdempotencyKey: "dunning/acme/inv-42/attempt-1-failed/email", Kind: "payment_failed", Channel: "email",
			To: "jane.doe@example.com", Subject: "Subject", Body: "Body", WorkflowID: "dunning/acme/inv-42",
		}
		_, found, err := withActivity.Find(ctx, m, time.Now().Add(-time.Hour))
		ex := proxy.Last(t)
		if err != nil || found {
			t.Fatalf("Find = found %v, %v (Prism: HTTP %d, violations %s); want not found", found, err, ex.Status, ex.Violations)
		}
		if ex.Status != http.StatusOK || ex.Violations != "" {
			t.Errorf("Prism: HTTP %d, violations %s; want 200 and none", ex.Status, ex.Violations)
		}
		if ex.Method != http.MethodGet || ex.Path != "/v3/messages" {
			t.Errorf("request = %s %s, want GET /v3/messages", ex.Method, ex.Path)
		}
		if want := `unique_args['idempotency_key']="` + m.IdempotencyKey + `"`; ex.Query.Get("query") != want {
			t.Errorf("query = %q, want %q", ex.Query.Get("query"), want)
		}
		if got := ex.Header.Get("Authorization"); got != "Bearer SG.conformance-test-key" {
			t.Errorf("Authorization = %q", got)
		}

		// Without the add-on the notifier says so instead of asking.
		_, _, err = n.Find(ctx, m, time.Now().Add(-time.Hour))
		if !errors.Is(err, notify.ErrLookupUnavailable) {
			t.Errorf("Find without Email Activity = %v, want notify.ErrLookupUnavailable", err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		valid := notify.Message{
			IdempotencyKey: "dunning/acme/inv-42/refused/email", Kind: "payment_failed", Channel: "email",
			To: "jane.doe@example.com", Locale: "en", Subject: "Subject", Body: "Body",
			WorkflowID: "dunning/acme/inv-42", Step: "refused/email",
		}
		tests := []struct {
			name       string
			edit       func(*notify.Message)
			tamper     prismtest.Tamper
			wantStatus int
		}{
			{"invalid recipient address", func(m *notify.Message) { m.To = "jane.doe-at-example.com" }, nil, http.StatusBadRequest},
			{"empty subject", func(m *notify.Message) { m.Subject = "" }, nil, http.StatusBadRequest},
			{"credentials refused", func(*notify.Message) {}, withoutCredentials, http.StatusUnauthorized},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				proxy.SetTamper(tt.tamper)
				defer proxy.SetTamper(nil)
				m := valid
				tt.edit(&m)
				_, err := n.Send(ctx, m)
				ex := proxy.Last(t)
				if ex.Status != tt.wantStatus {
					t.Errorf("Prism: HTTP %d (violations %s), want %d", ex.Status, ex.Violations, tt.wantStatus)
				}
				if !errors.Is(err, notify.ErrRejected) {
					t.Errorf("Send: %v, want notify.ErrRejected", err)
				}
			})
		}
	})
}

func TestTwilioConformance(t *testing.T) {
	t.Parallel()
	proxy := prismtest.Start(t, "twilio-api-v2010.json")

	const callback = "https://hooks.example.com/twilio/status"
	newNotifier := func(t *testing.T, cfg twilio.Config) *twilio.Notifier {
		t.Helper()
		cfg.AccountSID, cfg.AuthToken, cfg.BaseURL, cfg.Logger = accountSID, authToken, proxy.URL(), discard()
		n, err := twilio.New(cfg)
		if err != nil {
			t.Fatalf("twilio.New: %v", err)
		}
		return n
	}
	viaService := newNotifier(t, twilio.Config{MessagingServiceSID: serviceSID, StatusCallbackURL: callback})
	viaNumber := newNotifier(t, twilio.Config{From: "+15557654321"})
	messagePath := "/2010-04-01/Accounts/" + accountSID + "/Messages.json"
	sidPattern := regexp.MustCompile(`^SM[0-9a-fA-F]{32}$`)
	ctx := context.Background()

	send := func(t *testing.T, n *twilio.Notifier, m notify.Message, wantForm url.Values) {
		t.Helper()
		receipt, err := n.Send(ctx, m)
		ex := proxy.Last(t)
		if err != nil {
			t.Fatalf("Send: %v (Prism: HTTP %d, violations %s)", err, ex.Status, ex.Violations)
		}
		if ex.Status != http.StatusCreated || ex.Violations != "" {
			t.Errorf("Prism: HTTP %d, violations %s; want 201 and none", ex.Status, ex.Violations)
		}
		if receipt.Provider != "twilio" || !sidPattern.MatchString(receipt.Ref) {
			t.Errorf("receipt = %+v, want provider twilio and a message SID", receipt)
		}
		if ex.Method != http.MethodPost || ex.Path != messagePath {
			t.Errorf("request = %s %s, want POST %s", ex.Method, ex.Path, messagePath)
		}
		if user, _, ok := (&http.Request{Header: ex.Header}).BasicAuth(); !ok || user != accountSID {
			t.Errorf("basic auth user %q (present %v), want the account SID", user, ok)
		}
		form, err := url.ParseQuery(string(ex.Body))
		if err != nil {
			t.Fatalf("parse form %q: %v", ex.Body, err)
		}
		if !reflect.DeepEqual(form, wantForm) {
			t.Errorf("form = %v, want %v", form, wantForm)
		}
	}

	for _, kind := range notify.Kinds() {
		for _, locale := range notify.Locales() {
			t.Run(kind+"/"+locale, func(t *testing.T) {
				r, err := notify.Render(kind, "sms", locale, sampleData())
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				m := notify.Message{
					IdempotencyKey: "dunning/acme/inv-42/" + kind + "/sms", Kind: kind, Channel: "sms",
					To: "+15551234567", Locale: locale, Body: r.Text,
					WorkflowID: "dunning/acme/inv-42", Step: kind + "/sms",
				}
				send(t, viaService, m, url.Values{
					"To": {m.To}, "Body": {r.Text}, "MessagingServiceSid": {serviceSID},
					"StatusCallback": {callback + "?idempotency_key=" + url.QueryEscape(m.IdempotencyKey)},
				})
			})
		}
	}

	valid := notify.Message{
		IdempotencyKey: "dunning/acme/inv-42/payment_failed/sms", Kind: "payment_failed", Channel: "sms",
		To: "+15551234567", Locale: "en", Body: "Your payment did not go through.",
		WorkflowID: "dunning/acme/inv-42", Step: "payment_failed/sms",
	}
	t.Run("from number", func(t *testing.T) {
		send(t, viaNumber, valid, url.Values{"To": {valid.To}, "Body": {valid.Body}, "From": {"+15557654321"}})
	})

	// The lookup after an unknown outcome lists the Messages to the
	// number (twilio-go's ListMessage). Prism answers with the spec's
	// empty-page example: the full-page example links a next page, which
	// the client would follow.
	t.Run("lookup", func(t *testing.T) {
		proxy.SetTamper(func(h http.Header, body []byte) []byte {
			h.Set("Prefer", "example=readEmptySentdateGreater")
			return body
		})
		defer proxy.SetTamper(nil)
		// Prism judges the request, then its own example answer, whose
		// relative page URIs break the spec's "uri" format (a 500 that
		// says so); only the request is ours to check.
		_, found, _ := viaService.Find(ctx, valid, time.Now().Add(-time.Hour))
		ex := proxy.Last(t)
		if found || ex.Status == http.StatusUnprocessableEntity || requestViolations(t, ex.Violations) != "" {
			t.Errorf("Prism: HTTP %d, violations %s; want the request accepted", ex.Status, ex.Violations)
		}
		if ex.Method != http.MethodGet || ex.Path != messagePath {
			t.Errorf("request = %s %s, want GET %s", ex.Method, ex.Path, messagePath)
		}
		if got := ex.Query.Get("To"); got != valid.To {
			t.Errorf("To = %q, want the recipient", got)
		}
		if user, _, ok := (&http.Request{Header: ex.Header}).BasicAuth(); !ok || user != accountSID {
			t.Errorf("basic auth user %q (present %v), want the account SID", user, ok)
		}
	})

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name       string
			tamper     prismtest.Tamper
			wantStatus int
		}{
			{"credentials refused", withoutCredentials, http.StatusUnauthorized},
			{"missing To", withoutFormField("To"), http.StatusUnprocessableEntity},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				proxy.SetTamper(tt.tamper)
				defer proxy.SetTamper(nil)
				_, err := viaService.Send(ctx, valid)
				ex := proxy.Last(t)
				if ex.Status != tt.wantStatus {
					t.Errorf("Prism: HTTP %d (violations %s), want %d", ex.Status, ex.Violations, tt.wantStatus)
				}
				if !errors.Is(err, notify.ErrRejected) {
					t.Errorf("Send: %v, want notify.ErrRejected", err)
				}
			})
		}
	})
}
