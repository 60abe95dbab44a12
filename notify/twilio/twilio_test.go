package twilio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/notify/twilio"
)

const (
	testSID       = "AC0123456789abcdef0123456789abcdef"
	testToken     = "f00dfeedcafebabe5eed0fbadc0ffee1"
	testService   = "MG0123456789abcdef0123456789abcdef"
	testRecipient = "+15551234567"
	testSMSSid    = "SM0123456789abcdef0123456789abcdef"
)

// captured is one request as the fake Twilio saw it.
type captured struct {
	method, path, contentType string
	user, password            string
	basicAuth                 bool
	form                      url.Values
}

// fakeTwilio answers every request with status and body, and records what
// it received.
func fakeTwilio(t *testing.T, status int, body string) (*httptest.Server, func() []captured) {
	t.Helper()
	var (
		mu   sync.Mutex
		reqs []captured
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		user, pass, ok := r.BasicAuth()
		mu.Lock()
		reqs = append(reqs, captured{r.Method, r.URL.Path, r.Header.Get("Content-Type"), user, pass, ok, r.PostForm})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
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

func created() string {
	return fmt.Sprintf(`{"sid":%q,"account_sid":%q,"status":"queued","to":%q}`, testSMSSid, testSID, testRecipient)
}

func message() notify.Message {
	return notify.Message{
		IdempotencyKey: "dunning/acme/inv-1/attempt-1-failed/sms",
		Kind:           "payment_failed",
		Channel:        "sms",
		To:             testRecipient,
		Locale:         "en",
		Body:           "Your payment for invoice INV-1 did not go through.",
		WorkflowID:     "dunning/acme/inv-1",
		Step:           "attempt-1-failed/sms",
	}
}

func newNotifier(t *testing.T, cfg twilio.Config) *twilio.Notifier {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := twilio.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return n
}

func TestNewValidatesConfig(t *testing.T) {
	valid := twilio.Config{AccountSID: testSID, AuthToken: testToken, From: "+15557654321"}
	tests := []struct {
		name    string
		edit    func(*twilio.Config)
		wantErr string
	}{
		{"valid with from", func(*twilio.Config) {}, ""},
		{"valid with service and callback", func(c *twilio.Config) {
			c.From = ""
			c.MessagingServiceSID = testService
			c.StatusCallbackURL = "https://hooks.example.com/twilio/status"
			c.BaseURL = "http://127.0.0.1:4010"
		}, ""},
		{"missing SID", func(c *twilio.Config) { c.AccountSID = "" }, "account SID"},
		{"SID too short", func(c *twilio.Config) { c.AccountSID = "AC123" }, "account SID"},
		{"SID not hex", func(c *twilio.Config) { c.AccountSID = "AC0123456789abcdef0123456789abcdez" }, "account SID"},
		{"SID of another kind", func(c *twilio.Config) { c.AccountSID = "SK0123456789abcdef0123456789abcdef" }, "account SID"},
		{"missing token", func(c *twilio.Config) { c.AuthToken = "" }, "auth token"},
		{"token with symbols", func(c *twilio.Config) { c.AuthToken = "tok:en" }, "auth token"},
		{"no sender", func(c *twilio.Config) { c.From = "" }, "messaging service SID or a from number"},
		{"bad service SID", func(c *twilio.Config) { c.MessagingServiceSID = "MG123" }, "messaging service SID must match"},
		{"relative callback", func(c *twilio.Config) { c.StatusCallbackURL = "/twilio/status" }, "status callback URL"},
		{"bad base URL", func(c *twilio.Config) { c.BaseURL = "127.0.0.1:4010" }, "base URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			_, err := twilio.New(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("New: no error, want one containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("New: %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q reveals the auth token", err)
			}
		})
	}
}

func TestSendRequestShape(t *testing.T) {
	tests := []struct {
		name     string
		cfg      twilio.Config
		wantForm url.Values
	}{
		{
			name: "messaging service and status callback",
			cfg: twilio.Config{
				MessagingServiceSID: testService,
				From:                "+15557654321", // the service wins
				StatusCallbackURL:   "https://hooks.example.com/twilio/status?tenant=acme",
			},
			wantForm: url.Values{
				"To":                  {testRecipient},
				"Body":                {message().Body},
				"MessagingServiceSid": {testService},
				// The callback names the message it reports on.
				"StatusCallback": {"https://hooks.example.com/twilio/status?idempotency_key=" +
					url.QueryEscape(message().IdempotencyKey) + "&tenant=acme"},
			},
		},
		{
			name: "from number",
			cfg:  twilio.Config{From: "+15557654321"},
			wantForm: url.Values{
				"To":   {testRecipient},
				"Body": {message().Body},
				"From": {"+15557654321"},
			},
		},
		{
			name: "alphanumeric sender",
			cfg:  twilio.Config{From: "AcmeBill"},
			wantForm: url.Values{
				"To":   {testRecipient},
				"Body": {message().Body},
				"From": {"AcmeBill"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, requests := fakeTwilio(t, http.StatusCreated, created())
			tt.cfg.AccountSID, tt.cfg.AuthToken, tt.cfg.BaseURL = testSID, testToken, srv.URL
			receipt, err := newNotifier(t, tt.cfg).Send(context.Background(), message())
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if want := (notify.Receipt{Provider: "twilio", Ref: testSMSSid}); receipt != want {
				t.Errorf("receipt = %+v, want %+v", receipt, want)
			}
			reqs := requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if want := "/2010-04-01/Accounts/" + testSID + "/Messages.json"; r.method != http.MethodPost || r.path != want {
				t.Errorf("request = %s %s, want POST %s", r.method, r.path, want)
			}
			if !r.basicAuth || r.user != testSID || r.password != testToken {
				t.Errorf("basic auth = %v %q, want the account SID and auth token", r.basicAuth, r.user)
			}
			if r.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type = %q, want application/x-www-form-urlencoded", r.contentType)
			}
			if !reflect.DeepEqual(r.form, tt.wantForm) {
				t.Errorf("form = %v, want %v", r.form, tt.wantForm)
			}
		})
	}
}

func TestSendBaseURLWithPath(t *testing.T) {
	srv, requests := fakeTwilio(t, http.StatusCreated, created())
	n := newNotifier(t, twilio.Config{AccountSID: testSID, AuthToken: testToken, From: "+15557654321", BaseURL: srv.URL + "/twilio/"})
	if _, err := n.Send(context.Background(), message()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got, want := requests()[0].path, "/twilio/2010-04-01/Accounts/"+testSID+"/Messages.json"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
}

func TestSendErrors(t *testing.T) {
	apiError := func(status, code int, msg string) string {
		return fmt.Sprintf(`{"code":%d,"message":%q,"more_info":"https://www.twilio.com/docs/errors/%d","status":%d}`, code, msg, code, status)
	}
	tests := []struct {
		name         string
		status       int
		body         string
		wantRejected bool
		wantInError  string
	}{
		{"invalid To", 400, apiError(400, 21211, "The 'To' number "+testRecipient+" is not a valid phone number."), true, "error 21211: The 'To' number [recipient] is not"},
		{"unsubscribed recipient", 400, apiError(400, 21610, "Attempt to send to unsubscribed recipient"), true, "error 21610"},
		{"authentication", 401, apiError(401, 20003, "Authenticate"), true, "HTTP 401, error 20003"},
		{"forbidden", 403, apiError(403, 20403, "Permission denied"), true, "error 20403"},
		{"unknown account", 404, apiError(404, 20404, "The requested resource was not found"), true, "error 20404"},
		{"validation problem", 422, `{"type":"about:blank","title":"Invalid request","status":422}`, true, "HTTP 422"},
		{"payload too large", 413, apiError(413, 0, "Request Entity Too Large"), true, "HTTP 413"},
		{"request timeout", 408, apiError(408, 0, "Request Timeout"), false, "HTTP 408"},
		{"rate limited", 429, apiError(429, 20429, "Too Many Requests"), false, "error 20429"},
		{"internal error", 500, apiError(500, 20500, "Internal Server Error"), false, "error 20500"},
		{"unavailable", 503, apiError(503, 20503, "Service Unavailable"), false, "HTTP 503"},
		{"bad gateway with HTML", 502, "<html>bad gateway</html>", false, "502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeTwilio(t, tt.status, tt.body)
			var logs bytes.Buffer
			n := newNotifier(t, twilio.Config{
				AccountSID: testSID, AuthToken: testToken, MessagingServiceSID: testService, BaseURL: srv.URL,
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
			n := newNotifier(t, twilio.Config{AccountSID: testSID, AuthToken: testToken, From: "+15557654321", BaseURL: tt.baseURL})
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
	srv, requests := fakeTwilio(t, http.StatusCreated, created())
	n := newNotifier(t, twilio.Config{AccountSID: testSID, AuthToken: testToken, From: "+15557654321", BaseURL: srv.URL})
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
	srv, _ := fakeTwilio(t, http.StatusCreated, created())
	var logs bytes.Buffer
	n := newNotifier(t, twilio.Config{
		AccountSID: testSID, AuthToken: testToken, From: "+15557654321", BaseURL: srv.URL,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	m := message()
	if _, err := n.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, m.IdempotencyKey) || !strings.Contains(out, testSMSSid) {
		t.Errorf("log %s lacks the key or the message SID", out)
	}
	assertNoSecrets(t, out)
}

// assertNoSecrets fails when s reveals the auth token or the recipient.
func assertNoSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{testToken, testRecipient} {
		if strings.Contains(s, secret) {
			t.Errorf("output reveals %q: %s", secret, s)
		}
	}
}

// Find lists the Messages to the recipient and picks ours: created since
// the first send, from our sender, with exactly the stored body.
func TestFind(t *testing.T) {
	since := time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)
	listed := func(edit func(map[string]any)) map[string]any {
		m := map[string]any{
			"sid": testSMSSid, "to": testRecipient, "body": message().Body, "messaging_service_sid": testService,
			"direction": "outbound-api", "status": "queued", "date_sent": nil,
			"date_created": since.Add(time.Second).Format(time.RFC1123Z),
		}
		if edit != nil {
			edit(m)
		}
		return m
	}
	tests := []struct {
		name      string
		messages  []map[string]any
		status    int
		wantFound bool
		wantErr   bool
	}{
		{"ours, still queued", []map[string]any{listed(nil)}, http.StatusOK, true, false},
		{"nothing to the number", nil, http.StatusOK, false, false},
		{"another body", []map[string]any{listed(func(m map[string]any) { m["body"] = "Your payment went through." })}, http.StatusOK, false, false},
		{"another sender", []map[string]any{listed(func(m map[string]any) { m["messaging_service_sid"] = "MGffffffffffffffffffffffffffffffff" })}, http.StatusOK, false, false},
		{"before the first send", []map[string]any{listed(func(m map[string]any) {
			m["date_created"] = since.Add(-time.Hour).Format(time.RFC1123Z)
		})}, http.StatusOK, false, false},
		{"an inbound text", []map[string]any{listed(func(m map[string]any) { m["direction"] = "inbound" })}, http.StatusOK, false, false},
		{"twilio fails", nil, http.StatusInternalServerError, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotQuery url.Values
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotQuery = r.URL.Query()
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				if tt.status != http.StatusOK {
					_, _ = io.WriteString(w, `{"code":20500,"message":"Internal Server Error","status":500}`)
					return
				}
				msgs := tt.messages
				if msgs == nil {
					msgs = []map[string]any{}
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"messages": msgs, "next_page_uri": nil})
			}))
			defer srv.Close()
			n := newNotifier(t, twilio.Config{AccountSID: testSID, AuthToken: testToken, MessagingServiceSID: testService, BaseURL: srv.URL})
			receipt, found, err := n.Find(context.Background(), message(), since)
			if (err != nil) != tt.wantErr || found != tt.wantFound {
				t.Fatalf("Find = %+v, found %v, err %v; want found %v, error %v", receipt, found, err, tt.wantFound, tt.wantErr)
			}
			if found && (receipt.Provider != "twilio" || receipt.Ref != testSMSSid) {
				t.Errorf("receipt = %+v", receipt)
			}
			if gotQuery.Get("To") != testRecipient {
				t.Errorf("query = %v, want To the recipient", gotQuery)
			}
		})
	}
}
