package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/devserver"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/worker"
	"github.com/dunningco/dunning/workflows"
)

// TestOptOutDuringLedgerOutage: a signed Twilio STOP that arrives while
// PostgreSQL is unreachable is answered 200 only once Temporal holds it,
// no text goes to the number meanwhile, the ledger gets it once PostgreSQL
// is reachable again, a START received after it ends right (the STOP,
// applied late, is older), a replay of the STOP changes nothing, and with
// Temporal unreachable too the API answers 503.
//
// The outage is real at the network level: the API's ledger and the
// worker's consent writer reach PostgreSQL through TCP proxies the test
// takes down (every connection cut, new ones refused) and brings back.
func TestOptOutDuringLedgerOutage(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("INTEGRATION_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx := context.Background()
	srv, err := devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributeTypes(), LogLevel: "error"})
	if err != nil {
		t.Fatalf("start Temporal: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace(), Logger: tlog.NewStructuredLogger(logger),
		DataConverter: codec.DataConverter(platformCodec)})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)

	// One database; the sender's side reaches it directly, the API and the
	// consent writer through proxies.
	dbURL := ledgertest.NewDatabaseURL(t)
	direct := openLedger(t, dbURL)
	apiProxy, writerProxy := ledgertest.NewProxy(t, "127.0.0.1:5432"), ledgertest.NewProxy(t, "127.0.0.1:5432")
	apiLedger := openLedger(t, ledgertest.ViaProxy(t, dbURL, apiProxy.Addr()))
	writerLedger := openLedger(t, ledgertest.ViaProxy(t, dbURL, writerProxy.Addr()))

	runs := starter.NewClient(c, starter.Options{})
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{})
	worker.Register(w, worker.Deps{Ledger: writerLedger, Email: notify.DryRun{Logger: logger}, SMS: notify.DryRun{Logger: logger},
		Logger: logger, PendingConsents: runs})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)

	const token, phone = "twilio-test-token", "+48600100200"
	api := httptest.NewUnstartedServer(nil)
	inboundURL := "http://" + api.Listener.Addr().String() + "/v1/webhooks/twilio/sms"
	api.Config.Handler = intake.NewHandler(runs, logger, intake.WithTwilioInbound(token, inboundURL, apiLedger))
	api.Start()
	t.Cleanup(api.Close)

	// The SMS send path, as the worker runs it: the ledger and Temporal's
	// pending consents decide, the fake provider counts what it receives.
	texts := &countingSender{}
	if _, err := direct.OpenRun(ctx, ledger.Run{WorkflowID: "dunning/acme/inv-optout", Tenant: "acme", InvoiceID: "inv-optout",
		CustomerID: "cus-1", Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Policy: "default"}); err != nil {
		t.Fatal(err)
	}
	sender := &activities.Notifications{SMS: texts, Ledger: direct, Logger: logger, PendingConsents: runs}
	text := func(step string) activities.NotifyOutput {
		t.Helper()
		out, err := sender.Notify(ctx, activities.NotifyInput{
			WorkflowID: "dunning/acme/inv-optout", IdempotencyKey: "dunning/acme/inv-optout/" + step + "/sms",
			Kind: "payment_failed", Channel: "sms", Recipient: phone, Locale: "en",
			Data: notify.Data{CustomerID: "cus-1", InvoiceID: "inv-optout", Amount: "49.90", Currency: "EUR", Attempt: 1},
		})
		if err != nil {
			t.Fatalf("text %s: %v", step, err)
		}
		return out
	}
	post := func(sid, body string) (int, string) {
		t.Helper()
		form := url.Values{"MessageSid": {sid}, "AccountSid": {"AC123"}, "From": {phone}, "To": {"+15005550006"}, "Body": {body}}
		req, _ := http.NewRequest(http.MethodPost, inboundURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", signTwilio(token, inboundURL, form))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// PostgreSQL goes away for the API and the consent writer.
	apiProxy.Down()
	writerProxy.Down()
	if code, body := post("SM-stop-1", "STOP"); code != http.StatusOK || !strings.Contains(body, "<Response>") {
		t.Fatalf("STOP during the outage: %d %s; want 200 once Temporal holds it", code, body)
	}
	// Twilio's retry of the same message during the outage is kept once.
	if code, _ := post("SM-stop-1", "STOP"); code != http.StatusOK {
		t.Fatalf("STOP retried during the outage: %d", code)
	}
	if out := text("attempt-1-failed"); out.Status != "skipped" || texts.count() != 0 {
		t.Fatalf("text while the STOP is held: %+v, provider received %d; want skipped, 0", out, texts.count())
	}

	// The API's ledger is back first: a START received now is recorded at
	// once, and is newer than the STOP still held.
	apiProxy.Up()
	if code, _ := post("SM-start-2", "START"); code != http.StatusOK {
		t.Fatalf("START after the outage: %d", code)
	}
	// Then the consent writer's: the held STOP is applied, and ignored as
	// older than the START.
	writerProxy.Up()
	id := workflows.SMSConsentWorkflowID(phone)
	waitFor(t, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	})
	if out, kw, err := direct.SMSOptOut(ctx, phone); err != nil || out || kw != "START" {
		t.Fatalf("ledger consent = opted out %v (%s), %v; want the later START", out, kw, err)
	}
	// The held STOP was recorded as acted on: a replay of it changes nothing.
	if code, _ := post("SM-stop-1", "STOP"); code != http.StatusOK {
		t.Fatalf("replayed STOP: %d", code)
	}
	if out, _, _ := direct.SMSOptOut(ctx, phone); out {
		t.Fatal("a replayed STOP opted the number out again")
	}
	if out := text("attempt-2-failed"); out.Status != "sent" || texts.count() != 1 {
		t.Fatalf("text after START: %+v, provider received %d; want sent, 1", out, texts.count())
	}

	// A STOP held and applied on its own: honoured from the ledger after.
	apiProxy.Down()
	writerProxy.Down()
	if code, _ := post("SM-stop-3", "STOP"); code != http.StatusOK {
		t.Fatalf("second STOP during the outage: %d", code)
	}
	if out := text("attempt-3-failed"); out.Status != "skipped" || texts.count() != 1 {
		t.Fatalf("text while the second STOP is held: %+v, provider received %d", out, texts.count())
	}
	writerProxy.Up()
	waitFor(t, func() bool {
		out, _, err := direct.SMSOptOut(ctx, phone)
		return err == nil && out
	})
	if out := text("attempt-4-failed"); out.Status != "skipped" || texts.count() != 1 {
		t.Fatalf("text after the STOP reached the ledger: %+v, provider received %d", out, texts.count())
	}

	// PostgreSQL and Temporal both unreachable: nothing can keep it, 503.
	dead, err := client.NewLazyClient(client.Options{HostPort: closedAddr(t), Namespace: srv.Namespace(), Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	deadAPI := httptest.NewUnstartedServer(nil)
	deadURL := "http://" + deadAPI.Listener.Addr().String() + "/v1/webhooks/twilio/sms"
	deadAPI.Config.Handler = intake.NewHandler(starter.NewClient(dead, starter.Options{}), logger,
		intake.WithTwilioInbound(token, deadURL, apiLedger), intake.WithTimeout(2*time.Second))
	deadAPI.Start()
	t.Cleanup(deadAPI.Close)
	form := url.Values{"MessageSid": {"SM-stop-4"}, "AccountSid": {"AC123"}, "From": {phone}, "To": {"+15005550006"}, "Body": {"STOP"}}
	req, _ := http.NewRequest(http.MethodPost, deadURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signTwilio(token, deadURL, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("STOP with PostgreSQL and Temporal down: %d (Retry-After %q); want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func openLedger(t *testing.T, dbURL string) *ledger.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := ledger.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// countingSender is an SMS provider that counts the texts it receives.
type countingSender struct {
	mu   sync.Mutex
	keys []string
	n    atomic.Int64
}

func (s *countingSender) Send(_ context.Context, m notify.Message) (notify.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.keys, m.IdempotencyKey) {
		return notify.Receipt{}, errors.New("sent twice")
	}
	s.keys = append(s.keys, m.IdempotencyKey)
	s.n.Add(1)
	return notify.Receipt{Provider: "fake-sms", Ref: m.IdempotencyKey}, nil
}

func (s *countingSender) count() int { return int(s.n.Load()) }

// signTwilio is Twilio's request signature: HMAC-SHA1 with the auth token
// over the URL and each POST parameter's name and value in name order.
func signTwilio(token, fullURL string, params url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range params[k] {
			b.WriteString(k + v)
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
