package intake

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/optout"
)

const (
	testAuthToken   = "twilio-auth-token-for-tests"
	testTwilioURL   = "https://hooks.example.com/v1/webhooks/twilio/sms"
	testPhone       = "+48600100200"
	testTwilioPath  = "/v1/webhooks/twilio/sms"
	testEventsPath  = "/v1/webhooks/sendgrid/events"
	testTwimlAnswer = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`
)

var webhookNow = time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)

// withClock fixes the time the webhooks record.
func withClock(now time.Time) Option {
	return func(h *handler) { h.webhooks.now = func() time.Time { return now } }
}

// preferenceCall is one write the webhooks made to the store.
type preferenceCall struct {
	Method   string
	Address  string
	OptedOut bool
	Detail   string // keyword or reason
	Source   string
	At       time.Time
}

// fakePreferences records consent and suppression writes; errFor answers
// with an error for an address.
type fakePreferences struct {
	mu     sync.Mutex
	calls  []preferenceCall
	errFor map[string]error
}

func (f *fakePreferences) note(c preferenceCall) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.errFor[c.Address]
}

func (f *fakePreferences) SetSMSOptOut(_ context.Context, phone string, optedOut bool, keyword, source string, at time.Time) error {
	return f.note(preferenceCall{"SetSMSOptOut", phone, optedOut, keyword, source, at})
}

func (f *fakePreferences) SuppressEmail(_ context.Context, email, reason, source string, at time.Time) error {
	return f.note(preferenceCall{"SuppressEmail", email, false, reason, source, at})
}

func (f *fakePreferences) Calls() []preferenceCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// logBuffer collects the handler's log output, to check no address leaks
// into it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newWebhookHandler(logs *logBuffer, opts ...Option) http.Handler {
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		logger = slog.New(slog.DiscardHandler)
	}
	return NewHandler(&fakeRuns{}, logger, append([]Option{withClock(webhookNow)}, opts...)...)
}

// twilioSignature is Twilio's documented request signature: HMAC-SHA1 with
// the auth token over the URL followed by each POST parameter's name and
// value in name order, base64-encoded.
func twilioSignature(token, fullURL string, params url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range params {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range params[k] {
			b.WriteString(k + v)
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// inboundSMS is the form Twilio posts for an inbound message.
func inboundSMS(body string) url.Values {
	return url.Values{
		"MessageSid":          {"SM0123456789abcdef0123456789abcdef"},
		"SmsSid":              {"SM0123456789abcdef0123456789abcdef"},
		"AccountSid":          {"AC0123456789abcdef0123456789abcdef"},
		"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"},
		"From":                {testPhone},
		"To":                  {"+48500900800"},
		"Body":                {body},
		"NumMedia":            {"0"},
		"NumSegments":         {"1"},
		"FromCountry":         {"PL"},
		"ApiVersion":          {"2010-04-01"},
	}
}

func postTwilio(t *testing.T, h http.Handler, form, signature string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, testTwilioPath, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func assertTwiML(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/xml" {
		t.Errorf("Content-Type = %q, want text/xml", ct)
	}
	if rec.Body.String() != testTwimlAnswer {
		t.Errorf("body = %q, want the empty TwiML response", rec.Body)
	}
}

func TestTwilioInboundKeywords(t *testing.T) {
	optOut := func(keyword string) []preferenceCall {
		return []preferenceCall{{"SetSMSOptOut", testPhone, true, keyword, "twilio-inbound", webhookNow}}
	}
	optIn := func(keyword string) []preferenceCall {
		return []preferenceCall{{"SetSMSOptOut", testPhone, false, keyword, "twilio-inbound", webhookNow}}
	}
	tests := []struct {
		body string
		want []preferenceCall
	}{
		{"STOP", optOut("STOP")},
		{"STOPALL", optOut("STOPALL")},
		{"UNSUBSCRIBE", optOut("UNSUBSCRIBE")},
		{"CANCEL", optOut("CANCEL")},
		{"END", optOut("END")},
		{"QUIT", optOut("QUIT")},
		{"REVOKE", optOut("REVOKE")},
		{"OPTOUT", optOut("OPTOUT")},
		{" stop! ", optOut("STOP")},
		{"Quit.", optOut("QUIT")},
		{"START", optIn("START")},
		{"UNSTOP", optIn("UNSTOP")},
		{"YES", optIn("YES")},
		{"yes!", optIn("YES")},
		{"HELP", nil},
		{"INFO", nil},
		{"stop please", nil},
		{"I paid yesterday, stop", nil},
		{"", nil},
	}
	// Every documented keyword is covered above.
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.body] = true
	}
	for _, a := range []optout.Action{optout.OptOut, optout.OptIn, optout.Help} {
		for _, k := range optout.Keywords(a) {
			if !covered[k] {
				t.Errorf("keyword %s has no test case", k)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			store := &fakePreferences{}
			logs := &logBuffer{}
			h := newWebhookHandler(logs, WithTwilioInbound(testAuthToken, testTwilioURL, store))
			form := inboundSMS(tt.body)

			rec := postTwilio(t, h, form.Encode(), twilioSignature(testAuthToken, testTwilioURL, form))
			assertTwiML(t, rec)
			if got := store.Calls(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("store calls = %+v, want %+v", got, tt.want)
			}
			if strings.Contains(logs.String(), testPhone) {
				t.Errorf("logs contain the full phone number:\n%s", logs)
			}
		})
	}
}

func TestTwilioInboundRefusesBadSignatures(t *testing.T) {
	signed := inboundSMS("STOP")
	good := twilioSignature(testAuthToken, testTwilioURL, signed)
	tampered := func(key, value string) string {
		f := inboundSMS("STOP")
		f.Set(key, value)
		return f.Encode()
	}
	tests := []struct {
		name, form, signature string
	}{
		{"missing signature", signed.Encode(), ""},
		{"garbage signature", signed.Encode(), "not-a-signature"},
		{"tampered body", tampered("Body", "START"), good},
		{"tampered sender", tampered("From", "+48600100201"), good},
		{"added parameter", tampered("OptOutType", "STOP"), good},
		{"removed parameter", func() string { f := inboundSMS("STOP"); f.Del("NumMedia"); return f.Encode() }(), good},
		{"signed with another token", signed.Encode(), twilioSignature("another-token", testTwilioURL, signed)},
		{"signed for another URL", signed.Encode(), twilioSignature(testAuthToken, "https://evil.example.com/v1/webhooks/twilio/sms", signed)},
		{"unsigned value first in a repeated parameter", "Body=START&" + signed.Encode(), good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakePreferences{}
			h := newWebhookHandler(nil, WithTwilioInbound(testAuthToken, testTwilioURL, store))
			rec := postTwilio(t, h, tt.form, tt.signature)
			if rec.Code != http.StatusForbidden {
				t.Errorf("status = %d, want 403; body %s", rec.Code, rec.Body)
			}
			if calls := store.Calls(); len(calls) != 0 {
				t.Errorf("store calls = %+v, want none", calls)
			}
		})
	}
}

func TestTwilioInboundRepeatedParameterUsesSignedValue(t *testing.T) {
	store := &fakePreferences{}
	h := newWebhookHandler(nil, WithTwilioInbound(testAuthToken, testTwilioURL, store))
	signed := inboundSMS("Thanks")
	// A STOP appended after the signed body is not what Twilio signed, and
	// must not be what is acted on.
	rec := postTwilio(t, h, signed.Encode()+"&Body=STOP", twilioSignature(testAuthToken, testTwilioURL, signed))
	assertTwiML(t, rec)
	if calls := store.Calls(); len(calls) != 0 {
		t.Errorf("store calls = %+v, want none", calls)
	}
}

func TestTwilioInboundURLWithPort(t *testing.T) {
	// Twilio may sign with or without the default port; the validator
	// accepts both.
	store := &fakePreferences{}
	h := newWebhookHandler(nil, WithTwilioInbound(testAuthToken, testTwilioURL, store))
	form := inboundSMS("STOP")
	sig := twilioSignature(testAuthToken, "https://hooks.example.com:443/v1/webhooks/twilio/sms", form)
	assertTwiML(t, postTwilio(t, h, form.Encode(), sig))
	if calls := store.Calls(); len(calls) != 1 {
		t.Errorf("store calls = %+v, want one", calls)
	}
}

func TestTwilioInboundStoreErrors(t *testing.T) {
	tests := []struct {
		name       string
		from       string
		err        error
		wantStatus int
	}{
		{"sender is not a phone number", "whatsapp:" + testPhone, fmt.Errorf("ledger: %w", ledger.ErrInvalid), http.StatusOK},
		{"ledger unavailable", testPhone, errors.New("connection refused"), http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakePreferences{errFor: map[string]error{tt.from: tt.err}}
			logs := &logBuffer{}
			h := newWebhookHandler(logs, WithTwilioInbound(testAuthToken, testTwilioURL, store))
			form := inboundSMS("STOP")
			form.Set("From", tt.from)
			rec := postTwilio(t, h, form.Encode(), twilioSignature(testAuthToken, testTwilioURL, form))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if len(store.Calls()) != 1 {
				t.Errorf("store calls = %+v, want one", store.Calls())
			}
			if strings.Contains(logs.String(), testPhone) {
				t.Errorf("logs contain the full phone number:\n%s", logs)
			}
		})
	}
}

func TestWebhookRoutes(t *testing.T) {
	store := &fakePreferences{}
	key, _ := newSendGridKey(t)
	tests := []struct {
		name       string
		opts       []Option
		method     string
		path       string
		wantStatus int
	}{
		{"twilio not configured", nil, http.MethodPost, testTwilioPath, http.StatusNotFound},
		{"sendgrid not configured", nil, http.MethodPost, testEventsPath, http.StatusNotFound},
		{"twilio GET", []Option{WithTwilioInbound(testAuthToken, testTwilioURL, store)}, http.MethodGet, testTwilioPath, http.StatusMethodNotAllowed},
		{"sendgrid GET", []Option{WithSendGridEvents(key, store)}, http.MethodGet, testEventsPath, http.StatusMethodNotAllowed},
		{"twilio without auth token", []Option{WithTwilioInbound("", testTwilioURL, store)}, http.MethodPost, testTwilioPath, http.StatusServiceUnavailable},
		{"twilio without public URL", []Option{WithTwilioInbound(testAuthToken, "", store)}, http.MethodPost, testTwilioPath, http.StatusServiceUnavailable},
		{"sendgrid without key", []Option{WithSendGridEvents("", store)}, http.MethodPost, testEventsPath, http.StatusServiceUnavailable},
		{"sendgrid with a malformed key", []Option{WithSendGridEvents("not base64!", store)}, http.MethodPost, testEventsPath, http.StatusServiceUnavailable},
		{"sendgrid with an RSA key", []Option{WithSendGridEvents(rsaPublicKey(t), store)}, http.MethodPost, testEventsPath, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newWebhookHandler(nil, tt.opts...)
			rec, _ := do(t, h, tt.method, tt.path, "", `[]`)
			if rec.Code != tt.wantStatus {
				t.Errorf("%s %s = %d, want %d; body %s", tt.method, tt.path, rec.Code, tt.wantStatus, rec.Body)
			}
		})
	}
	if calls := store.Calls(); len(calls) != 0 {
		t.Errorf("store calls = %+v, want none", calls)
	}
}

// newSendGridKey returns a P-256 key pair in the form SendGrid shows the
// verification key: base64 of the PKIX DER public key.
func newSendGridKey(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der), priv
}

func rsaPublicKey(t *testing.T) string {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// signSendGrid signs as SendGrid does: ECDSA over SHA-256 of the timestamp
// header followed by the raw body, ASN.1 DER, base64.
func signSendGrid(t *testing.T, priv *ecdsa.PrivateKey, timestamp string, payload []byte) string {
	t.Helper()
	digest := sha256.Sum256(append([]byte(timestamp), payload...))
	sig, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func postEvents(t *testing.T, h http.Handler, body []byte, signature, timestamp string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, testEventsPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("X-Twilio-Email-Event-Webhook-Signature", signature)
	}
	if timestamp != "" {
		req.Header.Set("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, checkAnswer(t, rec)
}

var eventTime = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// sendGridBatch is an event batch as SendGrid posts it: one JSON array,
// ending in CRLF.
func sendGridBatch(t *testing.T, events ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\r', '\n')
}

func event(email, name string, extra ...string) map[string]any {
	e := map[string]any{
		"email": email, "event": name, "timestamp": eventTime.Unix(),
		"sg_event_id": "evt-" + name, "sg_message_id": "msg-1", "workflow_id": "dunning/acme/inv-1",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i]] = extra[i+1]
	}
	return e
}

func TestSendGridEventsSuppress(t *testing.T) {
	key, priv := newSendGridKey(t)
	suppress := func(email, reason string) preferenceCall {
		return preferenceCall{"SuppressEmail", email, false, reason, "sendgrid-events", eventTime}
	}
	tests := []struct {
		name  string
		event map[string]any
		want  []preferenceCall
	}{
		{"hard bounce", event("a@example.com", "bounce", "type", "bounce", "reason", "550 5.1.1 no such user"), []preferenceCall{suppress("a@example.com", "bounce")}},
		{"blocked", event("b@example.com", "bounce", "type", "blocked", "reason", "451 try later"), nil},
		{"bounce without type", event("b@example.com", "bounce"), nil},
		{"dropped: bounced address", event("c@example.com", "dropped", "reason", "Bounced Address"), []preferenceCall{suppress("c@example.com", "dropped")}},
		{"dropped: unsubscribed address", event("d@example.com", "dropped", "reason", "Unsubscribed Address"), []preferenceCall{suppress("d@example.com", "dropped")}},
		{"dropped: spam reporting address", event("e@example.com", "dropped", "reason", "Spam Reporting Address"), []preferenceCall{suppress("e@example.com", "dropped")}},
		{"dropped: invalid header", event("f@example.com", "dropped", "reason", "Invalid SMTPAPI header"), nil},
		{"spam report", event("g@example.com", "spamreport"), []preferenceCall{suppress("g@example.com", "spamreport")}},
		{"unsubscribe", event("h@example.com", "unsubscribe"), []preferenceCall{suppress("h@example.com", "unsubscribe")}},
		{"group unsubscribe", event("i@example.com", "group_unsubscribe", "asm_group_id", "7"), []preferenceCall{suppress("i@example.com", "group_unsubscribe")}},
		{"processed", event("j@example.com", "processed"), nil},
		{"delivered", event("j@example.com", "delivered"), nil},
		{"deferred", event("j@example.com", "deferred"), nil},
		{"open", event("j@example.com", "open"), nil},
		{"click", event("j@example.com", "click"), nil},
		{"group resubscribe", event("j@example.com", "group_resubscribe"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakePreferences{}
			logs := &logBuffer{}
			h := newWebhookHandler(logs, WithSendGridEvents(key, store))
			body := sendGridBatch(t, tt.event)
			ts := strconv.FormatInt(webhookNow.Unix(), 10)

			rec, out := postEvents(t, h, body, signSendGrid(t, priv, ts, body), ts)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
			}
			if got := store.Calls(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("store calls = %+v, want %+v", got, tt.want)
			}
			if out["events"] != 1.0 || out["suppressed"] != float64(len(tt.want)) {
				t.Errorf("response = %v, want 1 event, %d suppressed", out, len(tt.want))
			}
			if email, _ := tt.event["email"].(string); strings.Contains(logs.String(), email) {
				t.Errorf("logs contain the full address:\n%s", logs)
			}
		})
	}
}

func TestSendGridEventsBatch(t *testing.T) {
	key, priv := newSendGridKey(t)
	store := &fakePreferences{errFor: map[string]error{"": fmt.Errorf("ledger: %w", ledger.ErrInvalid)}}
	h := newWebhookHandler(nil, WithSendGridEvents(key, store))
	noTime := event("k@example.com", "spamreport")
	delete(noTime, "timestamp")
	body := sendGridBatch(t,
		event("a@example.com", "delivered"),
		event("a@example.com", "bounce", "type", "bounce"),
		event("", "unsubscribe"), // unusable: skipped, the batch goes on
		noTime,
	)
	ts := strconv.FormatInt(webhookNow.Add(-time.Minute).Unix(), 10)
	rec, out := postEvents(t, h, body, signSendGrid(t, priv, ts, body), ts)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	want := []preferenceCall{
		{"SuppressEmail", "a@example.com", false, "bounce", "sendgrid-events", eventTime},
		{"SuppressEmail", "", false, "unsubscribe", "sendgrid-events", eventTime},
		{"SuppressEmail", "k@example.com", false, "spamreport", "sendgrid-events", webhookNow},
	}
	if got := store.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("store calls = %+v, want %+v", got, want)
	}
	if out["events"] != 4.0 || out["suppressed"] != 2.0 {
		t.Errorf("response = %v, want 4 events, 2 suppressed", out)
	}
}

func TestSendGridEventsRefusesBadSignatures(t *testing.T) {
	key, priv := newSendGridKey(t)
	_, otherPriv := newSendGridKey(t)
	body := sendGridBatch(t, event("a@example.com", "spamreport"))
	const ts = "1772697600"
	good := signSendGrid(t, priv, ts, body)
	tampered := bytes.Replace(body, []byte("a@example.com"), []byte("z@example.com"), 1)
	tests := []struct {
		name                 string
		body                 []byte
		signature, timestamp string
	}{
		{"unsigned", body, "", ""},
		{"no timestamp", body, good, ""},
		{"no signature", body, "", ts},
		{"tampered payload", tampered, good, ts},
		{"tampered timestamp", body, good, "1772697601"},
		{"signed by another key", body, signSendGrid(t, otherPriv, ts, body), ts},
		{"signature not base64", body, "%%%", ts},
		{"signature not ASN.1", body, base64.StdEncoding.EncodeToString([]byte("nope")), ts},
		{"payload without the trailing CRLF", bytes.TrimSuffix(body, []byte("\r\n")), good, ts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakePreferences{}
			h := newWebhookHandler(nil, WithSendGridEvents(key, store))
			rec, _ := postEvents(t, h, tt.body, tt.signature, tt.timestamp)
			if rec.Code != http.StatusForbidden {
				t.Errorf("status = %d, want 403; body %s", rec.Code, rec.Body)
			}
			if calls := store.Calls(); len(calls) != 0 {
				t.Errorf("store calls = %+v, want none", calls)
			}
		})
	}
}

func TestSendGridEventsUnsigned(t *testing.T) {
	key, _ := newSendGridKey(t)
	body := sendGridBatch(t, event("a@example.com", "spamreport"))
	tests := []struct {
		name       string
		opts       []Option
		wantStatus int
		wantCalls  int
	}{
		{"allowed without a key", []Option{WithSendGridEvents("", nil), WithUnsignedSendGridEvents()}, http.StatusOK, 1},
		{"allowed, option given first", []Option{WithUnsignedSendGridEvents(), WithSendGridEvents("", nil)}, http.StatusOK, 1},
		{"not allowed without a key", []Option{WithSendGridEvents("", nil)}, http.StatusServiceUnavailable, 0},
		{"a key always requires a signature", []Option{WithSendGridEvents(key, nil), WithUnsignedSendGridEvents()}, http.StatusForbidden, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakePreferences{}
			// The store is set last, so each case's options only choose
			// the key and whether unsigned batches are allowed.
			opts := append(slices.Clone(tt.opts), func(h *handler) { h.webhooks.suppressions = store })
			h := newWebhookHandler(nil, opts...)
			rec, _ := postEvents(t, h, body, "", "")
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := len(store.Calls()); got != tt.wantCalls {
				t.Errorf("store calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestSendGridEventsBadRequests(t *testing.T) {
	key, priv := newSendGridKey(t)
	tests := []struct {
		name        string
		body        string
		contentType string
		wantStatus  int
	}{
		{"not JSON", `[{"email": "a@example.com", "event": "spamreport"`, "application/json", http.StatusBadRequest},
		{"object, not array", `{"email": "a@example.com", "event": "spamreport"}`, "application/json", http.StatusBadRequest},
		{"timestamp not a number", `[{"email": "a@example.com", "event": "spamreport", "timestamp": "yesterday"}]`, "application/json", http.StatusBadRequest},
		{"empty body", ``, "application/json", http.StatusBadRequest},
		{"form body", `email=a@example.com`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"too large", `[` + strings.Repeat(" ", MaxEventBatchBytes) + `]`, "application/json", http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakePreferences{}
			h := newWebhookHandler(nil, WithSendGridEvents(key, store))
			const ts = "1772697600"
			req := httptest.NewRequest(http.MethodPost, testEventsPath, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("X-Twilio-Email-Event-Webhook-Signature", signSendGrid(t, priv, ts, []byte(tt.body)))
			req.Header.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "a@example.com") {
				t.Errorf("error response echoes the address: %s", rec.Body)
			}
			if calls := store.Calls(); len(calls) != 0 {
				t.Errorf("store calls = %+v, want none", calls)
			}
		})
	}
}

func TestSendGridEventsStoreFailure(t *testing.T) {
	key, priv := newSendGridKey(t)
	store := &fakePreferences{errFor: map[string]error{"a@example.com": errors.New("connection refused")}}
	h := newWebhookHandler(nil, WithSendGridEvents(key, store))
	body := sendGridBatch(t, event("a@example.com", "spamreport"), event("b@example.com", "spamreport"))
	const ts = "1772697600"
	// A 5xx makes SendGrid send the batch again; suppressing is idempotent.
	rec, _ := postEvents(t, h, body, signSendGrid(t, priv, ts, body), ts)
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500; body %s", rec.Code, rec.Body)
	}
}

// A validly signed batch outside the timestamp tolerance is a replay.
func TestSendGridEventsRefusesReplays(t *testing.T) {
	key, priv := newSendGridKey(t)
	body := sendGridBatch(t, event("a@example.com", "spamreport"))
	for _, tt := range []struct {
		name string
		at   time.Time
		want int
	}{
		{"400 days old", webhookNow.AddDate(0, 0, -400), http.StatusForbidden},
		{"11 minutes old", webhookNow.Add(-11 * time.Minute), http.StatusForbidden},
		{"from the future", webhookNow.Add(time.Hour), http.StatusForbidden},
		{"9 minutes old", webhookNow.Add(-9 * time.Minute), http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakePreferences{}
			h := newWebhookHandler(nil, WithSendGridEvents(key, store))
			ts := strconv.FormatInt(tt.at.Unix(), 10)
			rec, _ := postEvents(t, h, body, signSendGrid(t, priv, ts, body), ts)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.want, rec.Body)
			}
			if tt.want != http.StatusOK && len(store.Calls()) != 0 {
				t.Errorf("a replayed batch changed preferences: %+v", store.Calls())
			}
		})
	}
}

// eventfulPreferences is fakePreferences that also records which messages
// were acted on, as the ledger does.
type eventfulPreferences struct {
	fakePreferences
	mu   sync.Mutex
	done map[string]bool
}

func (p *eventfulPreferences) ClaimWebhookEvent(_ context.Context, e ledger.WebhookEvent, _ time.Duration) (ledger.WebhookClaim, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done[e.EventID] {
		return ledger.WebhookProcessed, nil
	}
	return ledger.WebhookClaimed, nil
}

func (p *eventfulPreferences) CompleteWebhookEvent(_ context.Context, e ledger.WebhookEvent, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		p.done = map[string]bool{}
	}
	p.done[e.EventID] = true
	return nil
}

func (p *eventfulPreferences) ReleaseWebhookEvent(context.Context, ledger.WebhookEvent) error {
	return nil
}

// A signed STOP replayed after the customer's START does not opt them out
// again: each MessageSid acts once.
func TestTwilioReplayedMessageActsOnce(t *testing.T) {
	store := &eventfulPreferences{}
	h := newWebhookHandler(nil, WithTwilioInbound(testAuthToken, testTwilioURL, store))
	send := func(sid, body string) int {
		form := url.Values{"From": {"+48123456789"}, "Body": {body}, "MessageSid": {sid}, "AccountSid": {"AC1"}}
		req := httptest.NewRequest(http.MethodPost, testTwilioPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", twilioSignature(testAuthToken, testTwilioURL, form))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, m := range []struct{ sid, body string }{{"SM1", "STOP"}, {"SM2", "START"}, {"SM1", "STOP"}} {
		if code := send(m.sid, m.body); code != http.StatusOK {
			t.Fatalf("%s %s: %d", m.sid, m.body, code)
		}
	}
	calls := store.Calls()
	if len(calls) != 2 || !calls[0].OptedOut || calls[1].OptedOut {
		t.Fatalf("consent calls = %+v, want STOP then START only", calls)
	}
}
