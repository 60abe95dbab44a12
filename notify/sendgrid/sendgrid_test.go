package sendgrid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/notify/sendgrid"
)

const (
	testKey       = "SG.test-key-do-not-log"
	testRecipient = "jane.doe@example.com"
)

// mailSend mirrors the documented Mail Send request body, as far as this
// package uses it.
type mailSend struct {
	Personalizations []struct {
		To []struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		} `json:"to"`
		CustomArgs          map[string]string `json:"custom_args"`
		DynamicTemplateData map[string]any    `json:"dynamic_template_data"`
	} `json:"personalizations"`
	From    address  `json:"from"`
	ReplyTo *address `json:"reply_to"`
	Subject string   `json:"subject"`
	Content []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"content"`
	TemplateID string            `json:"template_id"`
	Categories []string          `json:"categories"`
	CustomArgs map[string]string `json:"custom_args"`
}

type address struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// captured is one request as the fake SendGrid saw it.
type captured struct {
	method, path, auth, contentType string
	body                            []byte
}

// fakeSendGrid answers every request with status, header and body, and
// records what it received.
func fakeSendGrid(t *testing.T, status int, header http.Header, body string) (*httptest.Server, func() []captured) {
	t.Helper()
	var (
		mu   sync.Mutex
		reqs []captured
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		mu.Lock()
		reqs = append(reqs, captured{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b})
		mu.Unlock()
		for k, vs := range header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), reqs...)
	}
}

func message() notify.Message {
	return notify.Message{
		IdempotencyKey: "dunning/acme/inv-1/attempt-1-failed/email",
		Kind:           "payment_failed",
		Channel:        "email",
		To:             testRecipient,
		Locale:         "en",
		Subject:        "Your payment for invoice INV-1 did not go through",
		Body:           "We could not collect 49.90 EUR for invoice INV-1.",
		WorkflowID:     "dunning/acme/inv-1",
		Step:           "attempt-1-failed/email",
	}
}

func newNotifier(t *testing.T, cfg sendgrid.Config) *sendgrid.Notifier {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := sendgrid.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return n
}

func TestNewValidatesConfig(t *testing.T) {
	valid := sendgrid.Config{APIKey: testKey, FromEmail: "billing@example.com"}
	tests := []struct {
		name    string
		edit    func(*sendgrid.Config)
		wantErr string
	}{
		{"valid", func(*sendgrid.Config) {}, ""},
		{"valid with everything", func(c *sendgrid.Config) {
			c.BaseURL = "https://api.eu.sendgrid.com/"
			c.FromName = "Acme Billing"
			c.ReplyTo = "help@example.com"
			c.Categories = []string{"dunning", "billing"}
			c.TemplateIDs = map[string]string{"payment_failed": "d-123"}
		}, ""},
		{"missing API key", func(c *sendgrid.Config) { c.APIKey = " " }, "API key is required"},
		{"missing from", func(c *sendgrid.Config) { c.FromEmail = "" }, "from address is required"},
		{"invalid from", func(c *sendgrid.Config) { c.FromEmail = "billing" }, "from address"},
		{"from with display name", func(c *sendgrid.Config) { c.FromEmail = "Billing <billing@example.com>" }, "bare address"},
		{"invalid reply-to", func(c *sendgrid.Config) { c.ReplyTo = "help@" }, "reply-to address"},
		{"base URL without scheme", func(c *sendgrid.Config) { c.BaseURL = "api.sendgrid.com" }, "base URL"},
		{"base URL with query", func(c *sendgrid.Config) { c.BaseURL = "https://api.sendgrid.com?x=1" }, "base URL"},
		{"empty category", func(c *sendgrid.Config) { c.Categories = []string{""} }, "empty category"},
		{"long category", func(c *sendgrid.Config) { c.Categories = []string{strings.Repeat("c", 256)} }, "longer than 255"},
		{"too many categories", func(c *sendgrid.Config) {
			c.Categories = strings.Split("a,b,c,d,e,f,g,h,i,j", ",")
		}, "at most 9"},
		{"empty template ID", func(c *sendgrid.Config) { c.TemplateIDs = map[string]string{"payment_failed": ""} }, "template ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			_, err := sendgrid.New(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("New: no error, want one containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("New: %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q reveals the API key", err)
			}
		})
	}
}

func TestSendRequestShape(t *testing.T) {
	withHTML := message()
	withHTML.HTML = "<p>We could not collect <b>49.90 EUR</b>.</p>"

	tests := []struct {
		name   string
		cfg    sendgrid.Config
		msg    notify.Message
		check  func(t *testing.T, got mailSend, m notify.Message)
		wantCt []string // content types in order; nil for a template send
	}{
		{
			name:   "text only",
			cfg:    sendgrid.Config{FromEmail: "billing@example.com"},
			msg:    message(),
			wantCt: []string{"text/plain"},
			check: func(t *testing.T, got mailSend, m notify.Message) {
				if got.ReplyTo != nil {
					t.Errorf("reply_to = %+v, want none", got.ReplyTo)
				}
				if want := []string{"payment_failed"}; !reflect.DeepEqual(got.Categories, want) {
					t.Errorf("categories = %q, want %q", got.Categories, want)
				}
			},
		},
		{
			name: "text and HTML, reply-to, categories",
			cfg: sendgrid.Config{
				FromEmail: "billing@example.com", FromName: "Acme Billing", ReplyTo: "help@example.com",
				Categories: []string{"dunning", "payment_failed", "dunning"},
			},
			msg:    withHTML,
			wantCt: []string{"text/plain", "text/html"},
			check: func(t *testing.T, got mailSend, m notify.Message) {
				if got.From != (address{Email: "billing@example.com", Name: "Acme Billing"}) {
					t.Errorf("from = %+v", got.From)
				}
				if got.ReplyTo == nil || got.ReplyTo.Email != "help@example.com" {
					t.Errorf("reply_to = %+v, want help@example.com", got.ReplyTo)
				}
				if want := []string{"dunning", "payment_failed"}; !reflect.DeepEqual(got.Categories, want) {
					t.Errorf("categories = %q, want %q (unique, kind once)", got.Categories, want)
				}
				if got.Content[1].Value != m.HTML {
					t.Errorf("html content = %q, want %q", got.Content[1].Value, m.HTML)
				}
			},
		},
		{
			name: "dynamic template",
			cfg: sendgrid.Config{
				FromEmail:   "billing@example.com",
				TemplateIDs: map[string]string{"payment_failed": "d-0123456789abcdef"},
			},
			msg: withHTML,
			check: func(t *testing.T, got mailSend, m notify.Message) {
				if got.TemplateID != "d-0123456789abcdef" {
					t.Errorf("template_id = %q", got.TemplateID)
				}
				if got.Subject != "" {
					t.Errorf("subject = %q, want none with a template", got.Subject)
				}
				want := map[string]any{"subject": m.Subject, "text": m.Body, "html": m.HTML, "kind": m.Kind, "locale": m.Locale}
				if d := got.Personalizations[0].DynamicTemplateData; !reflect.DeepEqual(d, want) {
					t.Errorf("dynamic_template_data = %v, want %v", d, want)
				}
			},
		},
		{
			name: "template configured for another kind",
			cfg: sendgrid.Config{
				FromEmail:   "billing@example.com",
				TemplateIDs: map[string]string{"service_paused": "d-0123456789abcdef"},
			},
			msg:    message(),
			wantCt: []string{"text/plain"},
			check: func(t *testing.T, got mailSend, m notify.Message) {
				if got.TemplateID != "" || got.Personalizations[0].DynamicTemplateData != nil {
					t.Errorf("template_id %q / data %v sent for a kind without a template",
						got.TemplateID, got.Personalizations[0].DynamicTemplateData)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, requests := fakeSendGrid(t, http.StatusAccepted, http.Header{"X-Message-Id": {"msg-ref-1"}}, "")
			tt.cfg.APIKey = testKey
			tt.cfg.BaseURL = srv.URL
			receipt, err := newNotifier(t, tt.cfg).Send(context.Background(), tt.msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if want := (notify.Receipt{Provider: "sendgrid", Ref: "msg-ref-1"}); receipt != want {
				t.Errorf("receipt = %+v, want %+v", receipt, want)
			}

			reqs := requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != "/v3/mail/send" {
				t.Errorf("request = %s %s, want POST /v3/mail/send", r.method, r.path)
			}
			if r.auth != "Bearer "+testKey {
				t.Errorf("Authorization = %q, want the bearer API key", r.auth)
			}
			if r.contentType != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", r.contentType)
			}

			var got mailSend
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("decode body %s: %v", r.body, err)
			}
			if len(got.Personalizations) != 1 || len(got.Personalizations[0].To) != 1 ||
				got.Personalizations[0].To[0].Email != tt.msg.To {
				t.Fatalf("personalizations = %+v, want one with to = the recipient", got.Personalizations)
			}
			wantArgs := map[string]string{
				"workflow_id":     tt.msg.WorkflowID,
				"step":            tt.msg.Step,
				"idempotency_key": tt.msg.IdempotencyKey,
			}
			if args := got.Personalizations[0].CustomArgs; !reflect.DeepEqual(args, wantArgs) {
				t.Errorf("personalizations[0].custom_args = %v, want %v", args, wantArgs)
			}
			if got.From.Email != "billing@example.com" {
				t.Errorf("from = %+v", got.From)
			}
			if tt.wantCt != nil {
				if got.Subject != tt.msg.Subject {
					t.Errorf("subject = %q, want %q", got.Subject, tt.msg.Subject)
				}
				var types []string
				for _, c := range got.Content {
					types = append(types, c.Type)
				}
				if !reflect.DeepEqual(types, tt.wantCt) {
					t.Errorf("content types = %q, want %q", types, tt.wantCt)
				}
				if len(got.Content) > 0 && got.Content[0].Value != tt.msg.Body {
					t.Errorf("text content = %q, want %q", got.Content[0].Value, tt.msg.Body)
				}
			} else if len(got.Content) != 0 {
				t.Errorf("content = %+v, want none with a template", got.Content)
			}
			tt.check(t, got, tt.msg)
		})
	}
}

func TestSendErrors(t *testing.T) {
	sgErrors := func(msgs ...string) string {
		type e struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
		}
		var out struct {
			Errors []e `json:"errors"`
		}
		for _, m := range msgs {
			out.Errors = append(out.Errors, e{Message: m})
		}
		b, _ := json.Marshal(out)
		return string(b)
	}
	tests := []struct {
		name         string
		status       int
		body         string
		wantRejected bool
		wantInError  string
	}{
		{"bad request", 400, `{"errors":[{"field":"from.email","message":"The from email does not contain a valid address."}]}`, true, "from.email: The from email does not contain a valid address."},
		{"two errors", 400, sgErrors("The subject is required.", "The content value must be a string at least one character in length."), true, "The subject is required.; The content value"},
		{"message repeats the recipient", 400, sgErrors("Invalid address Jane.Doe@example.com"), true, "Invalid address [recipient]"},
		{"unauthorised", 401, sgErrors("The provided authorization grant is invalid, expired, or revoked"), true, "authorization grant"},
		{"forbidden", 403, sgErrors("access forbidden"), true, "access forbidden"},
		{"not found", 404, "", true, "Not Found"},
		{"payload too large", 413, sgErrors("too big"), true, "too big"},
		{"request timeout", 408, "", false, "Request Timeout"},
		{"rate limited", 429, sgErrors("too many requests"), false, "too many requests"},
		{"internal error", 500, sgErrors("internal error"), false, "internal error"},
		{"bad gateway with HTML", 502, "<html>bad gateway</html>", false, "Bad Gateway"},
		{"unavailable", 503, "", false, "Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeSendGrid(t, tt.status, http.Header{"Content-Type": {"application/json"}}, tt.body)
			var logs bytes.Buffer
			n := newNotifier(t, sendgrid.Config{
				APIKey: testKey, BaseURL: srv.URL, FromEmail: "billing@example.com",
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			_, err := n.Send(context.Background(), message())
			if err == nil {
				t.Fatal("Send: no error")
			}
			if got := errors.Is(err, notify.ErrRejected); got != tt.wantRejected {
				t.Errorf("errors.Is(%v, ErrRejected) = %v, want %v", err, got, tt.wantRejected)
			}
			// Only a rate limit says the provider took nothing; any other
			// failure leaves the outcome unknown, to be looked up.
			if got := errors.Is(err, notify.ErrNotAccepted); got != (tt.status == http.StatusTooManyRequests) {
				t.Errorf("errors.Is(%v, ErrNotAccepted) = %v, want %v", err, got, !got)
			}
			if !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("error %q does not contain %q", err, tt.wantInError)
			}
			assertNoSecrets(t, err.Error()+logs.String())
		})
	}
}

func TestSendNetworkErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body so the server notices when the client goes away.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)

	tests := []struct {
		name    string
		baseURL string
		timeout time.Duration
		wantIs  error
	}{
		{"connection refused", closed.URL, time.Second, nil},
		{"context deadline", slow.URL, 50 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNotifier(t, sendgrid.Config{APIKey: testKey, BaseURL: tt.baseURL, FromEmail: "billing@example.com"})
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			_, err := n.Send(ctx, message())
			if err == nil {
				t.Fatal("Send: no error")
			}
			if errors.Is(err, notify.ErrRejected) {
				t.Errorf("network error %v is marked rejected; it must be retried", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v, want it to wrap %v", err, tt.wantIs)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Send took %s; it should stop with the context", d)
			}
			assertNoSecrets(t, err.Error())
		})
	}
}

func TestSendWithoutRecipient(t *testing.T) {
	srv, requests := fakeSendGrid(t, http.StatusAccepted, nil, "")
	n := newNotifier(t, sendgrid.Config{APIKey: testKey, BaseURL: srv.URL, FromEmail: "billing@example.com"})
	m := message()
	m.To = ""
	if _, err := n.Send(context.Background(), m); !errors.Is(err, notify.ErrRejected) {
		t.Fatalf("Send without recipient: %v, want ErrRejected", err)
	}
	if got := len(requests()); got != 0 {
		t.Errorf("%d requests sent, want none", got)
	}
}

func TestSendLogsNoSecrets(t *testing.T) {
	srv, _ := fakeSendGrid(t, http.StatusAccepted, http.Header{"X-Message-Id": {"msg-ref-1"}}, "")
	var logs bytes.Buffer
	n := newNotifier(t, sendgrid.Config{
		APIKey: testKey, BaseURL: srv.URL, FromEmail: "billing@example.com",
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	m := message()
	if _, err := n.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, m.IdempotencyKey) || !strings.Contains(out, "msg-ref-1") {
		t.Errorf("log %s lacks the key or the provider ref", out)
	}
	assertNoSecrets(t, out)
}

// assertNoSecrets fails when s reveals the API key or the recipient.
func assertNoSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{testKey, testRecipient, strings.ToLower(testRecipient)} {
		if strings.Contains(strings.ToLower(s), strings.ToLower(secret)) {
			t.Errorf("output reveals %q: %s", secret, s)
		}
	}
}

// Find asks the Email Activity API for the message carrying our key and
// picks the one to our recipient; without the add-on it says the lookup is
// unavailable, so the caller can send and record that it did.
func TestFind(t *testing.T) {
	tests := []struct {
		name        string
		activity    bool
		status      int
		body        string
		wantFound   bool
		wantUnavail bool
		wantErr     bool
		wantCalls   int
	}{
		{"found", true, http.StatusOK, `{"messages":[{"msg_id":"abc.filter1","to_email":"Jane.Doe@example.com","status":"processed"}]}`, true, false, false, 1},
		{"not yet indexed", true, http.StatusOK, `{"messages":[]}`, false, false, false, 1},
		{"another recipient", true, http.StatusOK, `{"messages":[{"msg_id":"x","to_email":"bob@example.com"}]}`, false, false, false, 1},
		{"add-on off in config", false, http.StatusOK, `{"messages":[]}`, false, true, true, 0},
		{"key without access", true, http.StatusForbidden, `{"errors":[{"message":"access forbidden"}]}`, false, true, true, 1},
		{"rate limited", true, http.StatusTooManyRequests, `{"errors":[{"message":"too many requests"}]}`, false, false, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu    sync.Mutex
				calls []*http.Request
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				calls = append(calls, r)
				mu.Unlock()
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			n := newNotifier(t, sendgrid.Config{APIKey: "SG.key", BaseURL: srv.URL, FromEmail: "billing@example.com", EmailActivity: tt.activity})
			m := message()
			m.To = "jane.doe@example.com"
			receipt, found, err := n.Find(context.Background(), m, time.Now().Add(-time.Minute))
			if found != tt.wantFound || (err != nil) != tt.wantErr || errors.Is(err, notify.ErrLookupUnavailable) != tt.wantUnavail {
				t.Fatalf("Find = %+v, found %v, err %v", receipt, found, err)
			}
			if found && (receipt.Provider != "sendgrid" || receipt.Ref != "abc.filter1") {
				t.Errorf("receipt = %+v", receipt)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != tt.wantCalls {
				t.Fatalf("%d calls, want %d", len(calls), tt.wantCalls)
			}
			if len(calls) == 1 {
				r := calls[0]
				want := `unique_args['idempotency_key']="` + m.IdempotencyKey + `"`
				if r.Method != http.MethodGet || r.URL.Path != "/v3/messages" || r.URL.Query().Get("query") != want ||
					r.Header.Get("Authorization") != "Bearer SG.key" {
					t.Errorf("request = %s %s query %q auth %q; want GET /v3/messages query %q", r.Method, r.URL.Path,
						r.URL.Query().Get("query"), r.Header.Get("Authorization"), want)
				}
			}
		})
	}
}
