package faults

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/gateway/httpgw"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/workflows"
)

// faultsPolicy is the default policy compressed to seconds: retries 3, 6 and
// 9 seconds after the decline within a 30 second window, the service ladder
// and the close a second apart. Every message that asks for a text also
// goes by SMS, so both providers are exercised.
const faultsPolicy = `name: faults
version: 1
retry_after: [3s, 6s, 9s]
max_attempts: 3
window: 30s
min_attempt_gap: 1s
max_card_update_attempts: 3
action_reminders: [2s]
card_update_retry_delay: 1s
ladder:
  - {after: 0s, state: paused}
  - {after: 1s, state: suspended}
close_after: 1s
messages:
  - {kind: payment_failed, channels: [email, sms]}
  - {kind: retry_failed, channels: [email]}
  - {kind: service_paused, channels: [email, sms]}
  - {kind: service_suspended, channels: [email]}
  - {kind: service_cancelled, channels: [email]}
  - {kind: payment_recovered, channels: [email]}
  - {kind: update_card_reminder, channels: [email]}
`

// faultsLongPolicy is faultsPolicy with a five-minute window: for outages
// that must not reach the window's end.
var faultsLongPolicy = strings.Replace(strings.Replace(faultsPolicy, "name: faults\n", "name: faults-long\n", 1), "window: 30s\n", "window: 5m\n", 1)

// stackOptions choose what a scenario shares.
type stackOptions struct {
	// policy the stack's declines name: "faults" (default) or "faults-long".
	policy string
	// temporal is the server; nil starts one for this scenario.
	temporal *temporalServer
	// pg is a private PostgreSQL cluster for the ledger; nil uses a
	// throw-away database on the shared server.
	pg *pgCluster
	// outcome decides each new charge by attempt number; nil declines
	// attempt 1 (insufficient funds) and accepts the rest.
	outcome func(attempt int) httpgw.Response
	// workers is how many worker processes poll the task queue (default 1).
	workers int
}

// stack is one platform: worker processes and `dunning serve` on their own
// task queue and ledger database, fake providers, and a Temporal server.
type stack struct {
	t        *testing.T
	bins     binaries
	temporal *temporalServer
	pg       *pgCluster
	queue    string
	policy   string
	dbURL    string
	store    *ledger.Store
	tc       client.Client
	gw       *fakeGateway
	msgs     *fakeMessages
	env      []string // what every platform process gets

	mu      sync.Mutex
	workers []*proc
	started int // worker processes started, for names

	api    *proc
	apiURL string
	apiKey string
}

func defaultOutcome(attempt int) httpgw.Response {
	if attempt == 1 {
		return httpgw.Response{Outcome: httpgw.OutcomeDeclined, DeclineCode: "insufficient_funds", Message: "Insufficient funds"}
	}
	return httpgw.Response{Outcome: httpgw.OutcomeSucceeded}
}

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	bins := tools(t)
	if opts.temporal == nil {
		opts.temporal = startTemporal(t, bins)
	}
	if opts.outcome == nil {
		opts.outcome = defaultOutcome
	}
	if opts.workers == 0 {
		opts.workers = 1
	}
	if opts.policy == "" {
		opts.policy = "faults"
	}
	s := &stack{t: t, bins: bins, temporal: opts.temporal, pg: opts.pg, queue: "faults-" + randomHex(4), policy: opts.policy}

	// The ledger database is created and migrated here, before any
	// process races to do it.
	if opts.pg != nil {
		s.dbURL = strings.Replace(opts.pg.adminURL(), "/postgres?", "/dunning?", 1)
	} else {
		s.dbURL = ledgertest.NewDatabaseURL(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := ledger.Open(ctx, s.dbURL)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	t.Cleanup(store.Close)
	s.store = store

	keys := codecKeys(t)
	payloads, err := codec.Parse(keys)
	if err != nil {
		t.Fatal(err)
	}
	s.tc, err = client.Dial(client.Options{HostPort: s.temporal.hostPort, Logger: quietLogger{}, DataConverter: codec.DataConverter(payloads)})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(s.tc.Close)

	s.gw = newFakeGateway(t, opts.outcome)
	s.msgs = newFakeMessages(t)
	policyDir := t.TempDir()
	for name, text := range map[string]string{"faults.yaml": faultsPolicy, "faults-long.yaml": faultsLongPolicy} {
		if err := os.WriteFile(filepath.Join(policyDir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.env = []string{
		"TEMPORAL_ADDRESS=" + s.temporal.hostPort, "TEMPORAL_NAMESPACE=default", "DUNNING_TASK_QUEUE=" + s.queue,
		"DATABASE_URL=" + s.dbURL, "DUNNING_CODEC_KEYS=" + keys, "LOG_LEVEL=debug",
		"DUNNING_POLICY_DIR=" + policyDir,
	}
	s.env = append(s.env, s.gw.env()...)
	s.env = append(s.env, s.msgs.env()...)

	for range opts.workers {
		s.startWorker()
	}
	s.startAPI()
	return s
}

// startWorker starts one more dunning-worker process and waits until it
// polls.
func (s *stack) startWorker() *proc {
	s.t.Helper()
	s.mu.Lock()
	s.started++
	name := fmt.Sprintf("worker-%d", s.started)
	s.mu.Unlock()
	env := append(append([]string(nil), s.env...), "DUNNING_WORKER_HEALTH_ADDR=-")
	p := startProc(s.t, name, s.bins.worker, env)
	polling := p.out.wait(func(line string) bool { return strings.Contains(line, `"worker polling"`) })
	select {
	case <-polling:
	case <-p.done:
		s.t.Fatalf("%s exited: %v\n%s", name, p.err, p.out.tail(40))
	case <-time.After(60 * time.Second):
		s.t.Fatalf("%s not polling after 60s\n%s", name, p.out.tail(40))
	}
	s.mu.Lock()
	s.workers = append(s.workers, p)
	s.mu.Unlock()
	return p
}

// killWorkers kill -9s every worker process.
func (s *stack) killWorkers() {
	s.mu.Lock()
	ws := s.workers
	s.workers = nil
	s.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
}

// startAPI runs `dunning serve` on free ports with a key for tenant acme.
func (s *stack) startAPI() {
	s.t.Helper()
	pepper := "faults-pepper-" + strings.Repeat("p", 32)
	env := append(append([]string(nil), s.env...), "DUNNING_KEY_PEPPER="+pepper, "DUNNING_GATEWAYS=simulator,http")
	if s.apiKey == "" {
		cmd := exec.Command(s.bins.dunning, "keys", "create", "-tenant", "acme", "-scopes", "runs:read,runs:write")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			s.t.Fatalf("dunning keys create: %v\n%s", err, stderr.String())
		}
		s.apiKey = strings.TrimSpace(string(out))
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(s.t))
	env = append(env, "DUNNING_API_ADDR="+addr, "DUNNING_PUBLIC_ADDR=127.0.0.1:"+strconv.Itoa(freePort(s.t)))
	s.api = startProc(s.t, "dunning-serve", s.bins.dunning, env, "serve")
	listening := s.api.out.wait(func(line string) bool { return strings.Contains(line, `"intake API listening"`) })
	select {
	case <-listening:
	case <-s.api.done:
		s.t.Fatalf("dunning serve exited: %v\n%s", s.api.err, s.api.out.tail(40))
	case <-time.After(60 * time.Second):
		s.t.Fatalf("dunning serve not listening after 60s\n%s", s.api.out.tail(40))
	}
	s.apiURL = "http://" + addr
}

// declineBody is a decline report for invoice on the http gateway under the
// stack's policy.
func (s *stack) declineBody(invoice, declineID, message string) string {
	return fmt.Sprintf(`{"tenant":"acme","invoice_id":%q,
		"customer":{"id":"cus-%s","email":"ada@example.com","phone":"+48123456789","time_zone":"Europe/Warsaw"},
		"amount":"49.90","currency":"EUR","payment_method":"pm_card_visa",
		"decline":{"id":%q,"gateway":"http","code":"insufficient_funds","message":%q},"policy":%q}`,
		invoice, invoice, declineID, message, s.policy)
}

// decline reports a decline through the API and fails unless it is taken.
func (s *stack) decline(invoice string) {
	s.t.Helper()
	code, _, body, err := s.post("/v1/declines", s.declineBody(invoice, "dec-"+invoice, "declined"))
	if err != nil || code != http.StatusAccepted {
		s.t.Fatalf("POST /v1/declines %s: %d %v %v", invoice, code, body, err)
	}
}

func (s *stack) post(path, body string) (int, http.Header, map[string]any, error) {
	return httpJSON(http.MethodPost, s.apiURL+path, s.apiKey, strings.NewReader(body), nil)
}

// result waits for the run's end and returns its result.
func (s *stack) result(invoice string, timeout time.Duration) workflows.Result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var res workflows.Result
	if err := s.tc.GetWorkflow(ctx, workflows.WorkflowID("acme", invoice), "").Get(ctx, &res); err != nil {
		s.t.Fatalf("run %s did not end well within %s: %v", invoice, timeout, err)
	}
	return res
}

// ledgerCounts is what the ledger holds for a run.
type ledgerCounts struct {
	run      ledger.Run
	attempts []ledger.Attempt
	messages []ledger.Message
}

func (s *stack) ledger(invoice string) ledgerCounts {
	s.t.Helper()
	ctx := context.Background()
	id := workflows.WorkflowID("acme", invoice)
	var c ledgerCounts
	var err error
	if c.run, err = s.store.GetRun(ctx, id); err != nil {
		s.t.Fatalf("ledger run %s: %v", id, err)
	}
	if c.attempts, err = s.store.Attempts(ctx, id); err != nil {
		s.t.Fatalf("ledger attempts %s: %v", id, err)
	}
	if c.messages, err = s.store.Messages(ctx, id); err != nil {
		s.t.Fatalf("ledger messages %s: %v", id, err)
	}
	return c
}

// checkOnce asserts the counts every scenario must keep: the gateway moved
// money at most once and every executed key is an attempt in the ledger
// with the same outcome; every message key reached its provider at most
// once; every ledger message that says sent was received.
func (s *stack) checkOnce(invoice string, wantCharges int) ledgerCounts {
	s.t.Helper()
	c := s.ledger(invoice)
	keys, succeeded := s.gw.charges()
	if succeeded != wantCharges {
		s.t.Errorf("gateway executed %d successful charges (keys %v), want %d", succeeded, keys, wantCharges)
	}
	byKey := map[string]ledger.Attempt{}
	for _, a := range c.attempts {
		byKey[a.IdempotencyKey] = a
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, workflows.WorkflowID("acme", invoice)+"/") {
			continue
		}
		a, ok := byKey[k]
		if !ok {
			s.t.Errorf("gateway executed %s, the ledger has no such attempt", k)
			continue
		}
		if got := s.gw.outcomeOf(k); a.Status != got {
			s.t.Errorf("attempt %s: ledger says %s, the gateway executed %s", k, a.Status, got)
		}
	}
	received := s.msgs.counts()
	for k, n := range received {
		if n > 1 {
			s.t.Errorf("provider received message %s %d times, want once", k, n)
		}
	}
	for _, m := range c.messages {
		if m.Status != "sent" {
			continue
		}
		if m.Channel == "email" && received["email:"+m.IdempotencyKey] != 1 {
			s.t.Errorf("ledger says email %s sent; SendGrid received it %d times", m.IdempotencyKey, received["email:"+m.IdempotencyKey])
		}
	}
	s.t.Logf("counts: gateway keys %v (%d succeeded), provider messages %v, ledger: run %s, %d attempts, %d messages",
		keys, succeeded, received, c.run.Status, len(c.attempts), len(c.messages))
	return c
}
