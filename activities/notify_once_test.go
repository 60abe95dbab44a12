package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/notify/sendgrid"
	"github.com/dunningco/dunning/notify/twilio"
)

// fault is what a fake provider does to the first call for each key.
type fault int

const (
	// faultLoseAnswer: the provider accepts the message, then the
	// connection drops before the answer reaches us.
	faultLoseAnswer fault = iota + 1
	// faultSlow: the provider accepts the message and answers after
	// slowAnswer, beyond the time the activity has left.
	faultSlow
	// faultCrashAfterAccept: the provider answers normally; the worker dies
	// before it records the answer (played by the ledger, below).
	faultCrashAfterAccept
)

const slowAnswer = 5 * time.Second

// fakeProvider stands in for SendGrid or Twilio over HTTP: it counts the
// messages it accepted per idempotency key and answers lookups from what it
// holds, each visible lag after it was accepted (an index that settles).
type fakeProvider struct {
	fault    fault
	lag      time.Duration
	activity bool // SendGrid: the account has the Email Activity API

	mu       sync.Mutex
	accepted map[string]int // per key
	held     []heldMessage
	lookups  int
}

type heldMessage struct {
	key, sid, to, body, service string
	created                     time.Time
}

func (p *fakeProvider) accept(key, to, body, service string) (heldMessage, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.accepted == nil {
		p.accepted = map[string]int{}
	}
	p.accepted[key]++
	m := heldMessage{key: key, sid: fmt.Sprintf("SM%032x", len(p.held)+1), to: to, body: body, service: service, created: time.Now().UTC()}
	p.held = append(p.held, m)
	return m, p.accepted[key] == 1
}

// visible returns the held messages a lookup can see now, newest first.
func (p *fakeProvider) visible() []heldMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lookups++
	var out []heldMessage
	for i := len(p.held) - 1; i >= 0; i-- {
		if time.Since(p.held[i].created) >= p.lag {
			out = append(out, p.held[i])
		}
	}
	return out
}

func (p *fakeProvider) counts() (total, maxPerKey, keys int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.accepted {
		total += n
		keys++
		maxPerKey = max(maxPerKey, n)
	}
	return total, maxPerKey, keys
}

// misbehave plays the fault on the first call for a key; it reports false
// when the answer was lost (the handler must not write).
func (p *fakeProvider) misbehave(w http.ResponseWriter, first bool) bool {
	if !first {
		return true
	}
	switch p.fault {
	case faultLoseAnswer:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return false
	case faultSlow:
		time.Sleep(slowAnswer)
	}
	return true
}

var activityKey = regexp.MustCompile(`^unique_args\['idempotency_key'\]="(.*)"$`)

// sendGrid serves POST /v3/mail/send and GET /v3/messages.
func (p *fakeProvider) sendGrid(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v3/mail/send":
			var body struct {
				Personalizations []struct {
					To         []struct{ Email string } `json:"to"`
					CustomArgs map[string]string        `json:"custom_args"`
				} `json:"personalizations"`
				Content []struct{ Value string } `json:"content"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Personalizations) != 1 || len(body.Content) == 0 {
				http.Error(w, `{"errors":[{"message":"bad request"}]}`, http.StatusBadRequest)
				return
			}
			pz := body.Personalizations[0]
			m, first := p.accept(pz.CustomArgs["idempotency_key"], pz.To[0].Email, body.Content[0].Value, "")
			if p.misbehave(w, first) {
				w.Header().Set("X-Message-Id", "x"+m.sid)
				w.WriteHeader(http.StatusAccepted)
			}
		case r.Method == http.MethodGet && r.URL.Path == "/v3/messages":
			if !p.activity {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"errors":[{"message":"access forbidden"}]}`)
				return
			}
			match := activityKey.FindStringSubmatch(r.URL.Query().Get("query"))
			if match == nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"errors":[{"message":"invalid syntax"}]}`)
				return
			}
			type row struct {
				MsgID   string `json:"msg_id"`
				ToEmail string `json:"to_email"`
				Status  string `json:"status"`
			}
			out := struct {
				Messages []row `json:"messages"`
			}{Messages: []row{}}
			for _, m := range p.visible() {
				if m.key == match[1] {
					out.Messages = append(out.Messages, row{MsgID: "x" + m.sid + ".filter", ToEmail: m.to, Status: "processed"})
				}
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(out)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// twilio serves the Messages resource: create (POST) and list (GET).
func (p *fakeProvider) twilio(t *testing.T) *httptest.Server {
	path := "/2010-04-01/Accounts/" + onceAccountSID + "/Messages.json"
	resource := func(m heldMessage) map[string]any {
		return map[string]any{
			"sid": m.sid, "to": m.to, "body": m.body, "messaging_service_sid": m.service, "status": "queued",
			"direction": "outbound-api", "date_created": m.created.Format(time.RFC1123Z), "date_sent": nil,
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case http.MethodPost:
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			cb, err := url.Parse(r.PostForm.Get("StatusCallback"))
			key := ""
			if err == nil {
				key = cb.Query().Get(twilio.CallbackKeyParam)
			}
			m, first := p.accept(key, r.PostForm.Get("To"), r.PostForm.Get("Body"), r.PostForm.Get("MessagingServiceSid"))
			if p.misbehave(w, first) {
				w.WriteHeader(http.StatusCreated)
				json.NewEncoder(w).Encode(resource(m))
			}
		case http.MethodGet:
			to := r.URL.Query().Get("To")
			list := []map[string]any{}
			for _, m := range p.visible() {
				if m.to == to {
					list = append(list, resource(m))
				}
			}
			json.NewEncoder(w).Encode(map[string]any{"messages": list, "next_page_uri": nil, "page": 0, "page_size": len(list)})
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

const (
	onceAccountSID = "AC0123456789abcdef0123456789abcdef"
	onceServiceSID = "MG0123456789abcdef0123456789abcdef"
)

// crashingLedger plays a worker killed right after the provider accepted:
// the answer is never recorded.
type crashingLedger struct {
	activities.Ledger
}

var errKilled = errors.New("worker killed before recording the provider's answer")

func (l crashingLedger) FinishMessage(context.Context, string, string, string, string, string, time.Time) error {
	return errKilled
}

// deliver runs Notify as Temporal would: each try with its own deadline,
// retried after a retryable error (after the delay the error asks for)
// until it returns a result. The first try runs on notifications, which
// may play a crash; later ones on retrying.
func deliver(t *testing.T, first, retrying *activities.Notifications, in activities.NotifyInput, timeout time.Duration) (activities.NotifyOutput, int) {
	t.Helper()
	n := first
	for try := 1; try <= 20; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		out, err := n.Notify(ctx, in)
		cancel()
		if err == nil {
			return out, try
		}
		if isPermanentErr(err) {
			t.Fatalf("Notify %s, try %d: %v", in.IdempotencyKey, try, err)
		}
		n = retrying
		wait := 10 * time.Millisecond
		if appErr, ok := errors.AsType[*temporal.ApplicationError](err); ok && appErr.NextRetryDelay() > 0 {
			wait = appErr.NextRetryDelay()
		}
		time.Sleep(wait)
	}
	t.Fatalf("Notify %s: no result after 20 tries", in.IdempotencyKey)
	return activities.NotifyOutput{}, 0
}

func isPermanentErr(err error) bool {
	appErr, ok := errors.AsType[*temporal.ApplicationError](err)
	return ok && appErr.NonRetryable()
}

// TestMessagesSentOnce counts, with fake providers reached over HTTP by the
// real SendGrid and Twilio notifiers and the real ledger, the messages each
// key produced when the first call's answer is lost, arrives too late, or
// is never recorded because the worker died. With a lookup the provider
// receives exactly one message per key; the rows without one measure the
// duplicate window that remains.
func TestMessagesSentOnce(t *testing.T) {
	const keys = 5
	tests := []struct {
		name     string
		channel  string
		fault    fault
		activity bool          // SendGrid's Email Activity API
		lag      time.Duration // the provider's listing lags a send by this
		settle   time.Duration // how long the notifier waits before it trusts a lookup
		keys     int
		wantMax  int // messages per key
		wantNote string
	}{
		{"twilio/answer lost", "sms", faultLoseAnswer, false, 0, time.Millisecond, keys, 1, "found at the provider"},
		{"twilio/crash after accept", "sms", faultCrashAfterAccept, false, 0, time.Millisecond, keys, 1, "found at the provider"},
		{"twilio/slow answer", "sms", faultSlow, false, 0, time.Millisecond, 2, 1, "found at the provider"},
		{"twilio/list lags the settle time", "sms", faultLoseAnswer, false, 500 * time.Millisecond, time.Millisecond, keys, 2, "not found at the provider"},
		{"twilio/settle covers the list lag", "sms", faultLoseAnswer, false, 500 * time.Millisecond, 700 * time.Millisecond, keys, 1, "found at the provider"},
		{"sendgrid+activity/answer lost", "email", faultLoseAnswer, true, 300 * time.Millisecond, 500 * time.Millisecond, keys, 1, "found at the provider"},
		{"sendgrid+activity/crash after accept", "email", faultCrashAfterAccept, true, 300 * time.Millisecond, 500 * time.Millisecond, keys, 1, "found at the provider"},
		{"sendgrid+activity/slow answer", "email", faultSlow, true, 300 * time.Millisecond, 500 * time.Millisecond, 2, 1, "found at the provider"},
		{"sendgrid+activity/index lags the settle time", "email", faultLoseAnswer, true, time.Second, 100 * time.Millisecond, keys, 2, "not found at the provider"},
		{"sendgrid without activity/answer lost", "email", faultLoseAnswer, false, 0, 0, keys, 2, "without a lookup"},
		{"sendgrid without activity/crash after accept", "email", faultCrashAfterAccept, false, 0, 0, keys, 2, "without a lookup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newLedger(t)
			provider := &fakeProvider{fault: tt.fault, lag: tt.lag, activity: tt.activity}
			var sender notify.Notifier
			recipient := "jane@example.com"
			if tt.channel == "email" {
				n, err := sendgrid.New(sendgrid.Config{
					APIKey: "SG.test", BaseURL: provider.sendGrid(t).URL, FromEmail: "billing@example.com",
					EmailActivity: tt.activity, Settle: tt.settle, Logger: quietLogger,
				})
				if err != nil {
					t.Fatal(err)
				}
				sender = n
			} else {
				recipient = "+48123456789"
				n, err := twilio.New(twilio.Config{
					AccountSID: onceAccountSID, AuthToken: "f00dfeedcafebabe5eed0fbadc0ffee1", MessagingServiceSID: onceServiceSID,
					StatusCallbackURL: "https://hooks.example.com/twilio/status?tenant=acme",
					BaseURL:           provider.twilio(t).URL, Settle: tt.settle, Logger: quietLogger,
				})
				if err != nil {
					t.Fatal(err)
				}
				sender = n
			}
			worker := &activities.Notifications{Email: sender, SMS: sender, Ledger: store, Logger: quietLogger}
			first := worker
			if tt.fault == faultCrashAfterAccept {
				first = &activities.Notifications{Email: sender, SMS: sender, Ledger: crashingLedger{store}, Logger: quietLogger}
			}
			timeout := 30 * time.Second
			if tt.fault == faultSlow {
				// The provider answers after the time the try has left
				// (less the reserve kept for recording the answer).
				timeout = slowAnswer + 2*time.Second
			}
			start := time.Now()
			var tries int
			for i := range tt.keys {
				in := notifyInput(tt.channel, recipient)
				in.IdempotencyKey = fmt.Sprintf("%s/attempt-%d-failed/%s", testWorkflowID, i+1, tt.channel)
				in.Data.Attempt = i + 1
				out, n := deliver(t, first, worker, in, timeout)
				tries += n
				if out.Status != "sent" {
					t.Errorf("%s: %+v, want sent", in.IdempotencyKey, out)
				}
				row := storedMessage(t, store, in.IdempotencyKey)
				if row.Status != "sent" || !strings.Contains(row.Detail, tt.wantNote) {
					t.Errorf("%s: ledger %s %q, want sent noting %q", in.IdempotencyKey, row.Status, row.Detail, tt.wantNote)
				}
			}
			total, maxPerKey, seen := provider.counts()
			t.Logf("MEASURE %-46s keys=%d provider_messages=%d max_per_key=%d lookups=%d tries=%d elapsed=%s",
				tt.name, seen, total, maxPerKey, provider.lookups, tries, time.Since(start).Round(time.Millisecond))
			if seen != tt.keys || maxPerKey != tt.wantMax {
				t.Errorf("provider got %d messages over %d keys, at most %d per key; want %d keys, %d per key",
					total, seen, maxPerKey, tt.keys, tt.wantMax)
			}
			assertCount(t, store, "messages", int64(tt.keys))
		})
	}
}

func storedMessage(t *testing.T, store *ledger.Store, key string) ledger.Message {
	t.Helper()
	msgs, err := store.Messages(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.IdempotencyKey == key {
			return m
		}
	}
	t.Fatalf("no message %s in the ledger", key)
	return ledger.Message{}
}

// A step whose message waits for the provider's listing to settle asks
// Temporal for that delay: the error it returns is an application error as
// it is, the only form whose retry delay Temporal reads.
func TestNotifyStepWaitsForTheLookup(t *testing.T) {
	store := newLedger(t)
	provider := &fakeProvider{fault: faultLoseAnswer, activity: true}
	n, err := sendgrid.New(sendgrid.Config{
		APIKey: "SG.test", BaseURL: provider.sendGrid(t).URL, FromEmail: "billing@example.com",
		EmailActivity: true, Settle: time.Minute, Logger: quietLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &activities.Notifications{Email: n, SMS: n, Ledger: store, Logger: quietLogger}
	step := activities.NotifyStepInput{Messages: []activities.NotifyInput{notifyInput("email", "jane@example.com")}}
	if _, err := a.NotifyStep(ctxFor(t), step); err == nil {
		t.Fatal("first try succeeded; want the lost answer to fail it")
	}
	_, err = a.NotifyStep(ctxFor(t), step)
	appErr, ok := errors.AsType[*temporal.ApplicationError](err)
	if !ok || appErr.Type() != activities.ErrTypeMessageOutcomeUnknown || appErr.NonRetryable() ||
		appErr.NextRetryDelay() <= 50*time.Second || appErr.NextRetryDelay() > time.Minute {
		t.Fatalf("second try = %v; want a retryable %s asking for about a minute", err, activities.ErrTypeMessageOutcomeUnknown)
	}
	if total, _, _ := provider.counts(); total != 1 || provider.lookups != 0 {
		t.Errorf("provider got %d messages and %d lookups; want 1 and none before the listing settles", total, provider.lookups)
	}
}
