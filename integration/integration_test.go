// Package integration runs the platform end to end: a real Temporal server
// (embedded, in memory), the real worker, the HTTP intake API and a real
// PostgreSQL ledger. Policies are compressed to seconds.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/devserver"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/idempotency"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/outbox"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/tenants"
	"github.com/dunningco/dunning/worker"
	"github.com/dunningco/dunning/workflows"
)

// platform is one running stack shared by the tests in this package.
type platform struct {
	api       *httptest.Server
	temporal  client.Client
	namespace string
	hostPort  string // Temporal's frontend, for a client without the codec
	store     *ledger.Store
	simulator *gateway.Simulator
	callbacks atomic.Int64
	keys      *apikeys.Store // the API's key store (apikeys_test.go)
	apiKey    string         // a key for tenant acme, which p.do sends
}

// fast is the default policy compressed to seconds.
func fast() policy.Policy {
	p := policy.Default()
	p.Name = "it-fast"
	p.RetryAfter = []policy.Duration{policy.Duration(1 * time.Second), policy.Duration(2 * time.Second), policy.Duration(3 * time.Second)}
	p.Window = policy.Duration(10 * time.Second)
	p.CardUpdateRetryDelay = 0
	p.Ladder = []policy.LadderStep{{After: 0, State: policy.ServicePaused}, {After: policy.Duration(time.Second), State: policy.ServiceSuspended}}
	p.CloseAfter = policy.Duration(time.Second)
	p.Timing = policy.Timing{} // seconds-long schedules cannot wait for mornings
	p.SMSWindow = policy.Window{}
	p.MinAttemptGap = policy.Duration(500 * time.Millisecond)
	p.ActionReminders = []policy.Duration{policy.Duration(time.Second)}
	return p
}

func start(t testing.TB) *platform {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("INTEGRATION_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributeTypes(), LogLevel: "error"})
	if err != nil {
		t.Fatalf("start Temporal: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	// Payloads are encrypted as in production (platformCodec, codec_test.go).
	c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace(), Logger: tlog.NewStructuredLogger(logger),
		DataConverter: codec.DataConverter(platformCodec)})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)

	p := &platform{temporal: c, namespace: srv.Namespace(), hostPort: srv.HostPort(), store: ledgertest.NewStore(t), simulator: gateway.NewSimulator()}
	// The billing system checks each event as a real one would, with the
	// Standard Webhooks library, and counts those that verify.
	const eventSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	verifier, err := standardwebhooks.NewWebhook(eventSecret)
	if err != nil {
		t.Fatal(err)
	}
	billingSystem := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		p.callbacks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(billingSystem.Close)
	// It runs on loopback, so tenant acme is allowed private networks.
	tenantConfig, err := tenants.New(map[string]tenants.Tenant{
		"acme": {EventURL: billingSystem.URL, SigningSecret: eventSecret, AllowPrivateNetwork: true, StripeWebhookSecret: stripeWebhookSecret},
	})
	if err != nil {
		t.Fatal(err)
	}

	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{})
	worker.Register(w, worker.Deps{
		Ledger:   p.store,
		Gateways: []gateway.Gateway{p.simulator},
		Email:    notify.DryRun{Logger: logger},
		SMS:      notify.DryRun{Logger: logger},
		Logger:   logger,
	})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)

	// The activities only enqueue billing events; the dispatcher delivers
	// them, polling often so the tests see callbacks within moments.
	dispatcher := &outbox.Dispatcher{Ledger: p.store, Endpoints: tenantConfig, Logger: logger, Interval: 50 * time.Millisecond}
	dispatchCtx, stopDispatch := context.WithCancel(context.Background())
	dispatched := make(chan error, 1)
	go func() { dispatched <- dispatcher.Run(dispatchCtx) }()
	t.Cleanup(func() {
		stopDispatch()
		if err := <-dispatched; err != nil {
			t.Errorf("outbox dispatcher: %v", err)
		}
	})

	catalog, err := policy.NewCatalog(policy.Default(), fast(), explainPolicy())
	if err != nil {
		t.Fatal(err)
	}
	// The API checks keys and Idempotency-Key as dunning serve does.
	p.keys = newKeyStore(t, p.store)
	p.apiKey = issueKey(t, p.keys, "acme")
	p.api = httptest.NewServer(intake.NewHandler(starter.NewClient(c, starter.Options{Policies: catalog}), logger, intake.WithPolicies(catalog),
		intake.WithAuthenticator(p.keys), intake.WithIdempotency(idempotency.NewStore(p.store.Pool())),
		intake.WithStripeWebhooks(tenantConfig, p.store), intake.WithAudit(p.store, ledger.DefaultLimits())))
	t.Cleanup(p.api.Close)
	return p
}

// TestPlatform starts one stack and runs every scenario against it: bad
// input first, while nothing else writes, then the runs in parallel.
func TestPlatform(t *testing.T) {
	p := start(t)
	t.Run("bad input starts nothing", p.testBadInputStartsNothing)
	t.Run("bad request table", p.testBadRequestTable)
	t.Run("runs", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			fn   func(*testing.T)
		}{
			{"recovers through the API", p.testRecoversThroughAPI},
			{"exhausts, pauses and suspends", p.testExhaustsPausesAndSuspends},
			{"expedite and cancel through the API", p.testExpediteAndCancelThroughAPI},
			{"duplicate decline reaches the open run", p.testDuplicateDeclineReachesOpenRun},
			{"lost gateway response charges once", p.testLostGatewayResponseChargesOnce},
			{"MAC 03 at intake blocks the card for other invoices", p.testIntakeBlockIsShared},
			{"expedite on a Visa category 1 run is refused", p.testExpediteOnCategory1Refused},
			{"reminders stop on cancel and payment", p.testRemindersStopOnCancelAndPayment},
			{"a run held for our refused key resumes", p.testHeldRunResumes},
			{"a replayed charge keeps its network codes", p.testReplayedChargeKeepsNetworkCodes},
			{"status without a worker answers from the read model", p.testStatusWithoutWorker},
			{"history holds no email or phone in plain text", p.testHistoryHasNoPII},
			{"Stripe's events start and close a run", p.testStripeWebhooks},
			{"keys and Idempotency-Key through the API", p.testKeysAndIdempotency},
			{"every answer matches the OpenAPI document", p.testAnswersMatchTheDocument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.fn(t)
			})
		}
	})
}

func (p *platform) list(t *testing.T, query string) int {
	t.Helper()
	resp, err := p.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: p.namespace, Query: query})
	if err != nil {
		t.Fatalf("list workflows %q: %v", query, err)
	}
	return len(resp.GetExecutions())
}

func (p *platform) do(t testing.TB, method, path, body string) (int, map[string]any) {
	t.Helper()
	code, _, raw := p.send(t, method, path, body)
	var out map[string]any
	if len(strings.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("%s %s: response is not JSON: %s", method, path, raw)
		}
	}
	return code, out
}

func decline(invoice, paymentMethod, policyName string) string {
	return fmt.Sprintf(`{"tenant":"acme","invoice_id":%q,"customer":{"id":"cus-%s","email":"ada@example.com","phone":"+48123456789","time_zone":"Europe/Warsaw"},
		"amount":"49.90","currency":"EUR","payment_method":%q,"decline":{"gateway":"simulator","code":"insufficient_funds"},"policy":%q}`,
		invoice, invoice, paymentMethod, policyName)
}

func (p *platform) result(t testing.TB, invoice string) workflows.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.Result
	if err := p.temporal.GetWorkflow(ctx, workflows.WorkflowID("acme", invoice), "").Get(ctx, &res); err != nil {
		t.Fatalf("run %s: %v", invoice, err)
	}
	return res
}

func (p *platform) testRecoversThroughAPI(t *testing.T) {
	code, body := p.do(t, http.MethodPost, "/v1/declines", decline("inv-recover", "sim:succeed-on=2;code=do_not_honor", "it-fast"))
	if code != http.StatusAccepted || body["workflow_id"] != "dunning/acme/inv-recover" {
		t.Fatalf("start: %d %v", code, body)
	}
	res := p.result(t, "inv-recover")
	if res.Outcome != policy.Recovered || res.Attempts != 2 {
		t.Fatalf("result = %+v, want recovered on attempt 2", res)
	}
	ctx := context.Background()
	run, err := p.store.GetRun(ctx, "dunning/acme/inv-recover")
	if err != nil || run.Status != "recovered" || run.Amount.StringFixed(2) != "49.90" || run.Currency != "EUR" {
		t.Fatalf("ledger run = %+v, %v", run, err)
	}
	attempts, err := p.store.Attempts(ctx, "dunning/acme/inv-recover")
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 2 || attempts[0].Status != "declined" || attempts[0].DeclineCode != "do_not_honor" ||
		attempts[1].Status != "succeeded" || attempts[1].IdempotencyKey != "dunning/acme/inv-recover/attempt-2" {
		t.Fatalf("ledger attempts = %+v", attempts)
	}
	msgs, err := p.store.Messages(ctx, "dunning/acme/inv-recover")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, m := range msgs {
		if m.Status != "dry-run" || m.Provider != "dry-run" || m.Body == "" {
			t.Errorf("message %s: status %s provider %s", m.IdempotencyKey, m.Status, m.Provider)
		}
		kinds = append(kinds, m.Kind)
	}
	if strings.Join(kinds, ",") != "payment_failed,retry_failed,payment_recovered" {
		t.Errorf("messages = %v", kinds)
	}

	p.recordHistory(t, "dunning/acme/inv-recover", "v5-recovered")

	code, status := p.do(t, http.MethodGet, "/v1/runs/acme/inv-recover", "")
	if ref, _ := status["policy"].(string); code != http.StatusOK || status["phase"] != "recovered" || !strings.HasPrefix(ref, "it-fast@2#") {
		t.Fatalf("status: %d %v", code, status)
	}
}

func (p *platform) testExhaustsPausesAndSuspends(t *testing.T) {
	if code, body := p.do(t, http.MethodPost, "/v1/declines", decline("inv-exhaust", "sim:decline;code=insufficient_funds", "it-fast")); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, body)
	}
	res := p.result(t, "inv-exhaust")
	if res.Outcome != policy.Exhausted || res.Attempts != 3 {
		t.Fatalf("result = %+v", res)
	}
	changes, err := p.store.ServiceChanges(context.Background(), "dunning/acme/inv-exhaust")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].State != "paused" || changes[1].State != "suspended" {
		t.Fatalf("service changes = %+v", changes)
	}
	// The outbox dispatcher delivers each event of the run (started, three
	// declined attempts, two service changes, closed) within a poll or two.
	waitFor(t, func() bool {
		events, err := p.store.OutboxEvents(context.Background(), "dunning/acme/inv-exhaust")
		if err != nil || len(events) != 7 {
			return false
		}
		kinds := map[string]int{}
		for _, e := range events {
			kinds[e.Kind]++
		}
		if kinds["run.started"] != 1 || kinds["attempt.failed"] != 3 || kinds["service.state_changed"] != 2 || kinds["run.closed"] != 1 {
			t.Errorf("events by kind = %v", kinds)
		}
		for _, e := range events {
			if e.Status != ledger.OutboxDelivered {
				return false
			}
		}
		return true
	})
	if changes, err = p.store.ServiceChanges(context.Background(), "dunning/acme/inv-exhaust"); err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.CallbackStatus != "delivered" {
			t.Errorf("%s callback = %s, want delivered to the billing system", c.State, c.CallbackStatus)
		}
	}
	run, _ := p.store.GetRun(context.Background(), "dunning/acme/inv-exhaust")
	if run.Status != "exhausted" {
		t.Errorf("ledger run status = %s", run.Status)
	}
	p.recordHistory(t, "dunning/acme/inv-exhaust", "v5-exhausted")
}

func (p *platform) testExpediteAndCancelThroughAPI(t *testing.T) {
	// The default policy waits three days: only expedite can charge now.
	if code, body := p.do(t, http.MethodPost, "/v1/declines", decline("inv-steer", "sim:decline;code=do_not_honor", "default")); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, body)
	}
	code, rec := p.do(t, http.MethodPost, "/v1/runs/acme/inv-steer/expedite", `{"reason":"customer called","by":"support"}`)
	if code != http.StatusOK || rec["outcome"] != "declined" || rec["number"] != float64(1) || rec["decline_code"] != "do_not_honor" {
		t.Fatalf("expedite: %d %v", code, rec)
	}
	if code, body := p.do(t, http.MethodPost, "/v1/runs/acme/inv-steer/cancel", `{"reason":"invoice voided"}`); code != http.StatusAccepted {
		t.Fatalf("cancel: %d %v", code, body)
	}
	res := p.result(t, "inv-steer")
	if res.Outcome != policy.Cancelled || res.Attempts != 1 || !strings.Contains(res.Reason, "invoice voided") {
		t.Fatalf("result = %+v", res)
	}
	attempts, _ := p.store.Attempts(context.Background(), "dunning/acme/inv-steer")
	if len(attempts) != 1 || attempts[0].Reason != "expedite" {
		t.Fatalf("ledger attempts = %+v", attempts)
	}
	p.recordHistory(t, "dunning/acme/inv-steer", "v5-steered")
	// A closed run refuses further steering and a second run for the invoice.
	if code, _ := p.do(t, http.MethodPost, "/v1/runs/acme/inv-steer/cancel", `{"reason":"again"}`); code != http.StatusConflict && code != http.StatusNotFound {
		t.Errorf("cancel after close: %d", code)
	}
	if code, body := p.do(t, http.MethodPost, "/v1/declines", decline("inv-steer", "sim:succeed", "default")); code != http.StatusConflict {
		t.Errorf("decline for a closed invoice: %d %v, want 409", code, body)
	}
}

func (p *platform) testDuplicateDeclineReachesOpenRun(t *testing.T) {
	first := decline("inv-dup", "sim:decline", "default")
	if code, body := p.do(t, http.MethodPost, "/v1/declines", first); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, body)
	}
	second := strings.Replace(first, `"code":"insufficient_funds"`, `"code":"do_not_honor","id":"ch_retry_2"`, 1)
	code, body := p.do(t, http.MethodPost, "/v1/declines", second)
	if code != http.StatusAccepted || body["workflow_id"] != "dunning/acme/inv-dup" {
		t.Fatalf("second decline: %d %v", code, body)
	}
	waitFor(t, func() bool {
		_, st := p.do(t, http.MethodGet, "/v1/runs/acme/inv-dup", "")
		d, _ := st["declines"].([]any)
		return len(d) == 2
	})
	if n := p.list(t, `WorkflowId = "dunning/acme/inv-dup"`); n != 1 {
		t.Fatalf("%d runs for one invoice, want 1", n)
	}
	if code, _ := p.do(t, http.MethodPost, "/v1/runs/acme/inv-dup/cancel", `{"reason":"test done"}`); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	p.result(t, "inv-dup")
}

func (p *platform) testLostGatewayResponseChargesOnce(t *testing.T) {
	// The simulator charges, then loses the answer once: the activity
	// retries with the same key and must not charge again.
	if code, body := p.do(t, http.MethodPost, "/v1/declines", decline("inv-flaky", "sim:succeed;flaky=1", "it-fast")); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, body)
	}
	res := p.result(t, "inv-flaky")
	if res.Outcome != policy.Recovered || res.Attempts != 1 {
		t.Fatalf("result = %+v", res)
	}
	key := "dunning/acme/inv-flaky/attempt-1"
	if got := p.simulator.Calls(key); got != 2 {
		t.Errorf("gateway saw key %d times, want 2 (one lost answer, one retry)", got)
	}
	if got := p.simulator.ChargesFor("inv-flaky"); got != 1 {
		t.Errorf("%d charges, want exactly 1", got)
	}
	attempts, _ := p.store.Attempts(context.Background(), "dunning/acme/inv-flaky")
	if len(attempts) != 1 || attempts[0].Status != "succeeded" {
		t.Fatalf("ledger attempts = %+v", attempts)
	}
}

// cardDecline is a decline report for a card the networks track.
func cardDecline(invoice, paymentMethod, policyName, network, fingerprint, declineJSON string) string {
	return fmt.Sprintf(`{"tenant":"acme","invoice_id":%q,"customer":{"id":"cus-%s","email":"ada@example.com"},
		"amount":"49.90","currency":"EUR","payment_method":%q,"card":{"network":%q,"fingerprint":%q},"decline":%s,"policy":%q}`,
		invoice, invoice, paymentMethod, network, fingerprint, declineJSON, policyName)
}

func (p *platform) testIntakeBlockIsShared(t *testing.T) {
	// Invoice A's decline, reported at intake, carries Mastercard MAC 03.
	a := cardDecline("inv-mac03-a", "sim:succeed", "it-fast", "mastercard", "fp-mac03",
		`{"gateway":"simulator","code":"do_not_honor","network_advice_code":"03"}`)
	if code, body := p.do(t, http.MethodPost, "/v1/declines", a); code != http.StatusAccepted {
		t.Fatalf("start A: %d %v", code, body)
	}
	waitFor(t, func() bool {
		var n int
		err := p.store.Pool().QueryRow(context.Background(),
			`SELECT count(*) FROM card_blocks WHERE card_key = 'fp:fp-mac03' AND blocked_until > now()`).Scan(&n)
		return err == nil && n == 1
	})
	// Invoice B on the same card, with a soft decline and a card that would
	// succeed: the shared block refuses every attempt, nothing is charged.
	b := cardDecline("inv-mac03-b", "sim:succeed", "it-fast", "mastercard", "fp-mac03",
		`{"gateway":"simulator","code":"insufficient_funds"}`)
	if code, body := p.do(t, http.MethodPost, "/v1/declines", b); code != http.StatusAccepted {
		t.Fatalf("start B: %d %v", code, body)
	}
	if res := p.result(t, "inv-mac03-b"); res.Outcome != policy.Exhausted || res.Attempts != 0 {
		t.Fatalf("B = %+v, want exhausted without a charge", res)
	}
	if n := p.simulator.ChargesFor("inv-mac03-b"); n != 0 {
		t.Fatalf("B charged %d times on a blocked card", n)
	}
	if res := p.result(t, "inv-mac03-a"); res.Outcome != policy.Exhausted || res.Attempts != 0 {
		t.Fatalf("A = %+v, want exhausted without a charge", res)
	}
	p.recordHistory(t, "dunning/acme/inv-mac03-a", "v5-blocked-at-intake")
	p.recordHistory(t, "dunning/acme/inv-mac03-b", "v5-shared-block")
	for _, inv := range []string{"inv-mac03-a", "inv-mac03-b"} {
		if rows, _ := p.store.Attempts(context.Background(), "dunning/acme/"+inv); len(rows) != 0 {
			t.Errorf("%s: ledger attempts %+v", inv, rows)
		}
	}
}

func (p *platform) testExpediteOnCategory1Refused(t *testing.T) {
	body := cardDecline("inv-visa14", "sim:succeed", "default", "visa", "fp-visa14",
		`{"gateway":"simulator","code":"generic_decline","network_decline_code":"14"}`)
	if code, out := p.do(t, http.MethodPost, "/v1/declines", body); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, out)
	}
	code, out := p.do(t, http.MethodPost, "/v1/runs/acme/inv-visa14/expedite", `{"reason":"customer called","by":"support"}`)
	if msg, _ := out["error"].(string); code != http.StatusConflict || !strings.Contains(msg, "refused") {
		t.Fatalf("expedite: %d %v, want 409 with the rule", code, out)
	}
	if rows, _ := p.store.Attempts(context.Background(), "dunning/acme/inv-visa14"); len(rows) != 0 {
		t.Fatalf("ledger attempts after a refused expedite: %+v", rows)
	}
	if p.simulator.ChargesFor("inv-visa14") != 0 {
		t.Fatal("the gateway was called")
	}
	if code, _ := p.do(t, http.MethodPost, "/v1/runs/acme/inv-visa14/cancel", `{"reason":"test done"}`); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	p.result(t, "inv-visa14")
	p.recordHistory(t, "dunning/acme/inv-visa14", "v5-refused-expedite")
}

func (p *platform) testBadInputStartsNothing(t *testing.T) {
	ctx := context.Background()
	before, err := p.store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	valid := decline("inv-bad", "sim:succeed", "default")
	tests := []struct {
		name string
		body string
		want int
	}{
		{"malformed JSON", `{"tenant":`, http.StatusBadRequest},
		{"missing fields", `{"tenant":"acme"}`, http.StatusUnprocessableEntity},
		{"negative amount", strings.Replace(valid, `"49.90"`, `"-49.90"`, 1), http.StatusUnprocessableEntity},
		{"zero amount", strings.Replace(valid, `"49.90"`, `"0.00"`, 1), http.StatusUnprocessableEntity},
		{"unknown currency", strings.Replace(valid, `"EUR"`, `"XYZ"`, 1), http.StatusUnprocessableEntity},
		{"too many decimals", strings.Replace(valid, `"49.90"`, `"49.901"`, 1), http.StatusUnprocessableEntity},
		{"unknown policy", strings.Replace(valid, `"policy":"default"`, `"policy":"nope"`, 1), http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := p.do(t, http.MethodPost, "/v1/declines", tt.body)
			msg, _ := body["error"].(string)
			if code != tt.want || msg == "" {
				t.Fatalf("got %d %v, want %d with an error message", code, body, tt.want)
			}
		})
	}
	if code, body := p.do(t, http.MethodGet, "/v1/runs/acme/no-such-invoice", ""); code != http.StatusNotFound {
		t.Errorf("status of unknown run: %d %v", code, body)
	}
	if code, _ := p.do(t, http.MethodGet, "/v1/runs/nobody/inv-bad", ""); code != http.StatusNotFound {
		t.Errorf("status of unknown tenant: %d", code)
	}
	if n := p.list(t, `WorkflowId = "dunning/acme/inv-bad"`); n != 0 {
		t.Errorf("bad input started %d runs", n)
	}
	after, err := p.store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range after {
		if n != before[table] {
			t.Errorf("%s: %d rows before, %d after bad input", table, before[table], n)
		}
	}
	if run, err := p.store.GetRun(ctx, "dunning/acme/inv-bad"); err == nil {
		t.Errorf("ledger has a run for bad input: %+v", run)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("condition not met within 30s")
}
