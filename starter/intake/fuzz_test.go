package intake

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/validation"
)

// FuzzDeclineIntake: whatever body arrives, decoding and validation never
// panic, and what they accept has an amount the gateway can be sent
// exactly (no overflow, within the limits).
func FuzzDeclineIntake(f *testing.F) {
	f.Add([]byte(`{"tenant":"acme","invoice_id":"inv-1","customer":{"id":"c1","email":"ada@example.com","phone":"+48123456789"},
		"amount":"49.90","currency":"EUR","payment_method":"sim:succeed","decline":{"gateway":"simulator","code":"insufficient_funds"}}`))
	f.Add([]byte(`{"tenant":"acme","invoice_id":"inv-1","customer":{"id":"c1"},"amount":"184467440737095516.17","currency":"EUR","decline":{"gateway":"simulator","code":"x"}}`))
	f.Add([]byte(`{"customer":{"email":"a@b.c\r\nBcc: x@y.z"}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		report, err := DecodeDeclineReport(body)
		if err != nil {
			return
		}
		in, err := validation.Rules{}.Decline(report.Input())
		if err != nil {
			return
		}
		a, err := money.Parse(in.Amount, in.Currency)
		if err != nil {
			t.Fatalf("accepted %q with an unreadable amount %q %s: %v", body, in.Amount, in.Currency, err)
		}
		if minor, err := a.MinorUnits(); err != nil || minor <= 0 {
			t.Fatalf("accepted %q with amount %s, minor units %d (%v)", body, a, minor, err)
		}
	})
}

// FuzzTwilioInbound: a correctly signed inbound message with any fields is
// answered without a server error.
func FuzzTwilioInbound(f *testing.F) {
	f.Add("+48123456789", "STOP", "SM123")
	f.Add("", "", "")
	f.Add("not a number", "start\x00", strings.Repeat("x", 300))
	f.Fuzz(func(t *testing.T, from, body, sid string) {
		store := &fakePreferences{}
		h := newWebhookHandler(nil, WithTwilioInbound(testAuthToken, testTwilioURL, store))
		form := url.Values{"From": {from}, "Body": {body}, "MessageSid": {sid}}
		req := httptest.NewRequest(http.MethodPost, testTwilioPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", twilioSignature(testAuthToken, testTwilioURL, form))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("from %q body %q: %d %s", from, body, rec.Code, rec.Body)
		}
	})
}

// FuzzSendGridEvents: a correctly signed batch with any content is
// answered without a server error.
func FuzzSendGridEvents(f *testing.F) {
	f.Add([]byte(`[{"email":"ada@example.com","event":"bounce","sg_event_id":"e1","timestamp":1772697600}]`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[{"event":null}]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		key, priv := newSendGridKey(t)
		h := newWebhookHandler(nil, WithSendGridEvents(key, &fakePreferences{}))
		ts := strconv.FormatInt(webhookNow.Unix(), 10)
		rec, _ := postEvents(t, h, payload, signSendGrid(t, priv, ts, payload), ts)
		if rec.Code >= 500 {
			t.Fatalf("payload %q: %d %s", payload, rec.Code, rec.Body)
		}
	})
}
