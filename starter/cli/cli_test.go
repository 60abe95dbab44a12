package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/workflows"
)

// fakeTemporal answers the calls the commands make and records them.
type fakeTemporal struct {
	client.Client
	err    error
	status workflows.Status
	// reminders answers the status query of reminder runs.
	reminders workflows.ReminderStatus
	calls     []string
	closed    bool
	input     workflows.Input
	mu        sync.Mutex // guards queue, which serve's handler writes
	queue     string     // the task queue of the last start
}

func (f *fakeTemporal) startedOn() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queue
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.calls = append(f.calls, "Start "+opts.ID)
	f.mu.Lock()
	f.queue = opts.TaskQueue
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.input = args[0].(workflows.Input)
	return fakeRun{id: opts.ID}, nil
}

// DescribeWorkflow answers that the invoice's run has ended: the fake starts
// every run, so an "already started" one is one that closed.
func (f *fakeTemporal) DescribeWorkflow(_ context.Context, id, _ string) (*client.WorkflowExecutionDescription, error) {
	f.calls = append(f.calls, "Describe "+id)
	return &client.WorkflowExecutionDescription{WorkflowExecutionMetadata: client.WorkflowExecutionMetadata{
		Status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
	}}, nil
}

// QueryWorkflowWithOptions answers as QueryWorkflow: no run of the fake
// ended without completing.
func (f *fakeTemporal) QueryWorkflowWithOptions(ctx context.Context, req *client.QueryWorkflowWithOptionsRequest) (*client.QueryWorkflowWithOptionsResponse, error) {
	v, err := f.QueryWorkflow(ctx, req.WorkflowID, req.RunID, req.QueryType, req.Args...)
	if err != nil {
		return nil, err
	}
	return &client.QueryWorkflowWithOptionsResponse{QueryResult: v}, nil
}

func (f *fakeTemporal) QueryWorkflow(_ context.Context, id, _, query string, _ ...any) (converter.EncodedValue, error) {
	f.calls = append(f.calls, "Query "+id+" "+query)
	if f.err != nil {
		return nil, f.err
	}
	if strings.HasPrefix(id, "reminders/") {
		return jsonValue{f.reminders}, nil
	}
	return jsonValue{f.status}, nil
}

// jsonValue round-trips through JSON like the default data converter.
type jsonValue struct{ v any }

func (j jsonValue) HasValue() bool { return true }
func (j jsonValue) Get(ptr any) error {
	b, err := json.Marshal(j.v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, _, name string, arg any) error {
	f.calls = append(f.calls, fmt.Sprintf("Signal %s %s %+v", id, name, arg))
	if _, ok := errors.AsType[*serviceerror.WorkflowExecutionAlreadyStarted](f.err); ok {
		// A start refused for a closed run is followed by a signal the
		// server answers as it does for a closed run.
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	return f.err
}

func (f *fakeTemporal) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.calls = append(f.calls, fmt.Sprintf("Update %s %s %+v", o.WorkflowID, o.UpdateName, o.Args))
	if f.err != nil {
		return nil, f.err
	}
	return fakeHandle{}, nil
}

func (f *fakeTemporal) Close() { f.closed = true }

type fakeRun struct {
	client.WorkflowRun
	id string
}

func (r fakeRun) GetID() string    { return r.id }
func (r fakeRun) GetRunID() string { return "run-1" }

type fakeHandle struct{ client.WorkflowUpdateHandle }

func (fakeHandle) Get(_ context.Context, v any) error {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	*(v.(*workflows.AttemptRecord)) = workflows.AttemptRecord{Number: 3, Reason: "expedite", Outcome: "succeeded",
		IdempotencyKey: "dunning/acme/inv-1001/attempt-3", StartedAt: at, FinishedAt: at.Add(2 * time.Second), GatewayRef: "ch_3"}
	return nil
}

type result struct {
	code           int
	stdout, stderr string
	dialed         bool
}

// testEnv is the environment commands see: the workers charge through the
// simulator and Stripe.
var testEnv = map[string]string{"DUNNING_GATEWAYS": "simulator,stripe"}

func runWith(t *testing.T, tc *fakeTemporal, dialErr error, args ...string) result {
	t.Helper()
	return runWithEnv(t, tc, dialErr, testEnv, args...)
}

func runWithEnv(t *testing.T, tc *fakeTemporal, dialErr error, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	var dialed bool
	a := &app{
		stdout: &stdout, stderr: &stderr,
		dial: func(context.Context) (client.Client, error) {
			dialed = true
			if dialErr != nil {
				return nil, dialErr
			}
			return tc, nil
		},
		getenv: func(k string) string { return env[k] },
	}
	code := a.run(context.Background(), args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String(), dialed: dialed}
}

func TestUsageErrors(t *testing.T) {
	badJSON := writeFile(t, "bad.json", `{"tenant": "acme",}`)
	unknownField := writeFile(t, "unknown.json", `{"tenant": "acme", "colour": "red"}`)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no command", nil, ExitUsage, "COMMANDS"},
		{"unknown command", []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{"undefined flag", []string{"status", "-tenant", "acme", "-invoice", "inv-1", "-colour", "red"}, ExitUsage, "flag provided but not defined: -colour"},
		{"missing invoice", []string{"status", "-tenant", "acme"}, ExitUsage, "dunning status: -invoice is required"},
		{"missing both", []string{"status"}, ExitUsage, "-tenant, -invoice are required"},
		{"positional argument", []string{"status", "-tenant", "acme", "-invoice", "inv-1", "extra"}, ExitUsage, `unexpected argument "extra"`},
		{"bad invoice", []string{"status", "-tenant", "acme", "-invoice", "inv 1"}, ExitUsage, `invoice: "inv 1" must be 1-128 characters`},
		{"cancel without reason", []string{"cancel", "-tenant", "acme", "-invoice", "inv-1"}, ExitUsage, "-reason is required"},
		{"expedite without tenant", []string{"expedite", "-invoice", "inv-1"}, ExitUsage, "-tenant is required"},
		{"card-updated bad tenant", []string{"card-updated", "-tenant", "a/b", "-invoice", "inv-1"}, ExitUsage, `tenant: "a/b"`},
		{"paid without invoice", []string{"paid", "-tenant", "acme"}, ExitUsage, "-invoice is required"},
		{"start without flags", []string{"start"}, ExitUsage, "-tenant, -invoice, -customer, -amount, -currency, -gateway, -code are required"},
		{"start with a bad amount", startArgs("-amount", "12.345"), ExitUsage, "has 3 decimal places but EUR allows 2"},
		{"start with a zero amount", startArgs("-amount", "0"), ExitUsage, "must be greater than zero"},
		{"start with an unknown currency", startArgs("-currency", "XYZ"), ExitUsage, `"XYZ" is not an ISO 4217 code`},
		{"start with a bad phone", startArgs("-phone", "123"), ExitUsage, "E.164"},
		{"start with CR/LF in the email", startArgs("-email", "ada@example.com\r\nBcc: eve@example.com"), ExitUsage, "customer.email: contains a line break"},
		{"start with an overflowing amount", startArgs("-amount", "184467440737095516.17"), ExitUsage, "largest amount accepted in EUR"},
		{"start with an unknown gateway", startArgs("-gateway", "paypal"), ExitUsage, `decline.gateway: "paypal" is not a gateway configured here (simulator, stripe)`},
		{"start with a malformed simulator script", startArgs("-gateway", "simulator", "-payment-method", "sim:decline;colour=red"), ExitUsage, "unknown simulator directive"},
		{"start with a malformed Stripe method", startArgs("-payment-method", "4242424242424242"), ExitUsage, "is not a Stripe payment method ID"},
		{"start with a bad plan", startArgs("-plan", "pro plan"), ExitUsage, `plan: "pro plan" has characters other than`},
		{"start with a customer ID too long", startArgs("-customer", strings.Repeat("c", 300)), ExitUsage, "customer.id: is 300 bytes long; at most 128"},
		{"card-updated with a method no gateway takes", []string{"card-updated", "-tenant", "acme", "-invoice", "inv-1", "-payment-method", "tok visa"}, ExitUsage, "payment_method: is not a payment method any configured gateway takes"},
		{"start with a bad time zone", startArgs("-tz", "Mars/Olympus"), ExitUsage, "IANA time zone"},
		{"start with an unknown policy", startArgs("-policy", "gold"), ExitUsage, `unknown policy "gold"`},
		{"start -f with flags", []string{"start", "-f", "x.json", "-tenant", "acme"}, ExitUsage, "-f cannot be combined with -tenant"},
		{"start -f malformed", []string{"start", "-f", badJSON}, ExitUsage, "malformed JSON at line 1, column 19"},
		{"start -f unknown field", []string{"start", "-f", unknownField}, ExitUsage, `unknown field "colour"`},
		{"start -f missing file", []string{"start", "-f", filepath.Join(t.TempDir(), "none.json")}, ExitFailure, "no such file"},
		{"serve with an argument", []string{"serve", "now"}, ExitUsage, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runWith(t, &fakeTemporal{}, nil, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", r.code, tt.wantCode, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tt.wantStderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if len(tt.args) > 0 && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
			if r.dialed && !strings.HasPrefix(tt.name, "card-updated") {
				t.Error("connected to Temporal on a bad command line")
			}
		})
	}
}

// -plan and -segment reach the policy selection, which picks the run's
// policy when -policy is not given.
func TestStartPlanAndSegmentSelectThePolicy(t *testing.T) {
	dir := t.TempDir()
	selection := "rules:\n  - {match: {plan: pro, segment: smb}, policy: demo}\n  - {policy: default}\n"
	if err := os.WriteFile(filepath.Join(dir, "selection.yaml"), []byte(selection), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DUNNING_GATEWAYS": "simulator,stripe", "DUNNING_POLICY_DIR": dir}
	tests := []struct {
		name       string
		args       []string
		wantPolicy string
	}{
		{"plan and segment match", startArgs("-plan", "pro", "-segment", "smb"), "demo"},
		{"segment does not match", startArgs("-plan", "pro", "-segment", "enterprise"), "default"},
		{"neither given", startArgs(), "default"},
		{"an explicit policy wins", startArgs("-plan", "pro", "-segment", "smb", "-policy", "default"), "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{}
			r := runWithEnv(t, tc, nil, env, tt.args...)
			if r.code != ExitOK {
				t.Fatalf("exit code = %d, stderr %q", r.code, r.stderr)
			}
			if tc.input.Policy == nil || tc.input.Policy.Name != tt.wantPolicy {
				t.Fatalf("pinned policy = %+v, want %s", tc.input.Policy, tt.wantPolicy)
			}
		})
	}
	tc := &fakeTemporal{}
	if r := runWithEnv(t, tc, nil, env, startArgs("-plan", "pro", "-segment", "smb")...); r.code != ExitOK {
		t.Fatalf("exit code = %d, stderr %q", r.code, r.stderr)
	}
	if tc.input.Plan != "pro" || tc.input.Segment != "smb" {
		t.Errorf("input plan/segment = %q/%q, want pro/smb", tc.input.Plan, tc.input.Segment)
	}
}

// Runs start on the workers' task queue, DUNNING_TASK_QUEUE, as the worker
// reads it.
func TestStartHonoursTaskQueue(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DUNNING_GATEWAYS": "stripe"}, "dunning"},
		{map[string]string{"DUNNING_GATEWAYS": "stripe", "DUNNING_TASK_QUEUE": "dunning-eu"}, "dunning-eu"},
		{map[string]string{"DUNNING_GATEWAYS": "stripe", "DUNNING_TASK_QUEUE": "  dunning-eu "}, "dunning-eu"},
	}
	for _, tt := range tests {
		tc := &fakeTemporal{}
		if r := runWithEnv(t, tc, nil, tt.env, startArgs()...); r.code != ExitOK {
			t.Fatalf("exit code = %d, stderr %q", r.code, r.stderr)
		}
		if got := tc.startedOn(); got != tt.want {
			t.Errorf("DUNNING_TASK_QUEUE=%q: started on %q, want %q", tt.env["DUNNING_TASK_QUEUE"], got, tt.want)
		}
	}
}

// DUNNING_MAX_AMOUNTS caps amounts for the CLI as for the API.
func TestStartHonoursMaxAmounts(t *testing.T) {
	env := map[string]string{"DUNNING_GATEWAYS": "stripe", "DUNNING_MAX_AMOUNTS": "EUR=40.00"}
	r := runWithEnv(t, &fakeTemporal{}, nil, env, startArgs()...)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "above the largest amount accepted in EUR, 40.00 EUR") {
		t.Fatalf("exit code = %d, stderr %q", r.code, r.stderr)
	}
	if r.dialed {
		t.Error("connected to Temporal for an amount over the limit")
	}
	env["DUNNING_MAX_AMOUNTS"] = "EUR=lots"
	if r := runWithEnv(t, &fakeTemporal{}, nil, env, startArgs()...); r.code != ExitFailure || !strings.Contains(r.stderr, "DUNNING_MAX_AMOUNTS") {
		t.Fatalf("bad DUNNING_MAX_AMOUNTS: exit code = %d, stderr %q", r.code, r.stderr)
	}
}

// The normalized input is what the run gets.
func TestStartNormalizesThePhone(t *testing.T) {
	tc := &fakeTemporal{}
	if r := runWith(t, tc, nil, startArgs("-phone", "+48 601 234 567")...); r.code != ExitOK {
		t.Fatalf("exit code = %d, stderr %q", r.code, r.stderr)
	}
	if c := tc.input.Customer; c.Phone != "+48601234567" || c.Country != "PL" || c.TimeZone != "Europe/Warsaw" {
		t.Errorf("customer = %+v, want the phone in E.164 and country and zone from it", c)
	}
}

func TestErrorsAreOneLine(t *testing.T) {
	r := runWith(t, &fakeTemporal{}, nil, "status", "-tenant", "acme")
	if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines != 0 {
		t.Errorf("stderr has %d extra lines: %q", lines, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStdout string
		wantStderr string
	}{
		{"help", []string{"help"}, "SYNOPSIS\n    dunning <command> [flags]", ""},
		{"-h", []string{"-h"}, "card-updated", ""},
		{"--help", []string{"--help"}, "TEMPORAL_ADDRESS", ""},
		{"command help", []string{"cancel", "-h"}, "Usage: dunning cancel -tenant T -invoice I -reason R", ""},
		{"start help", []string{"start", "-help"}, "-payment-method", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runWith(t, &fakeTemporal{}, nil, tt.args...)
			if r.code != ExitOK {
				t.Errorf("exit code = %d, want 0", r.code)
			}
			if !strings.Contains(r.stdout, tt.wantStdout) || r.stderr != tt.wantStderr {
				t.Errorf("stdout %q / stderr %q, want %q / %q", r.stdout, r.stderr, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	report := writeFile(t, "report.json", `{
  "tenant": "acme", "invoice_id": "inv-2", "customer": {"id": "c1"},
  "amount": "1000", "currency": "JPY", "decline": {"gateway": "stripe", "code": "card_declined"}
}`)
	tests := []struct {
		name       string
		args       []string
		wantStdout string
		wantCall   string
	}{
		{"start", startArgs("-o", "json"), `"workflow_id": "dunning/acme/inv-1"`, "Start dunning/acme/inv-1"},
		{"start from a file", []string{"start", "-f", report, "-o", "json"}, `"run_id": "run-1"`, "Start dunning/acme/inv-2"},
		{"status", []string{"status", "-tenant", "acme", "-invoice", "inv-1", "-o", "json"}, "{\n  \"workflow_id\": \"dunning/acme/inv-1\",\n  \"tenant\": \"acme\"", "Query dunning/acme/inv-1 status"},
		{"cancel", []string{"cancel", "-tenant", "acme", "-invoice", "inv-1", "-reason", "customer left"}, "cancel sent to dunning/acme/inv-1", "Signal dunning/acme/inv-1 cancel {Reason:customer left By:}"},
		{"expedite", []string{"expedite", "-tenant", "acme", "-invoice", "inv-1", "-reason", "called", "-o", "json"}, `"number": 3`, "Update dunning/acme/inv-1 expedite [{Reason:called By:}]"},
		{"card-updated", []string{"card-updated", "-tenant", "acme", "-invoice", "inv-1", "-payment-method", "pm_2"}, "payment method update sent", "Signal dunning/acme/inv-1 payment-method-updated {PaymentMethod:pm_2 Card:<nil>}"},
		{"paid", []string{"paid", "-tenant", "acme", "-invoice", "inv-1", "-reference", "wire-9"}, "payment sent", "Signal dunning/acme/inv-1 paid-out-of-band {Reference:wire-9 Note:}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{status: workflows.Status{WorkflowID: "dunning/acme/inv-1", Tenant: "acme", InvoiceID: "inv-1", Phase: workflows.PhaseRecovering}}
			r := runWith(t, tc, nil, tt.args...)
			if r.code != ExitOK {
				t.Fatalf("exit code = %d, stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", r.stdout, tt.wantStdout)
			}
			if len(tc.calls) != 1 || tc.calls[0] != tt.wantCall {
				t.Errorf("calls = %q, want [%q]", tc.calls, tt.wantCall)
			}
			if !tc.closed {
				t.Error("Temporal client not closed")
			}
		})
	}
}

func TestStartFlagsBecomeInput(t *testing.T) {
	tc := &fakeTemporal{}
	r := runWith(t, tc, nil, startArgs("-email", "ada@example.com", "-tz", "Europe/Warsaw", "-advice", "try_again_later", "-payment-method", "pm_1", "-policy", "demo")...)
	if r.code != ExitOK {
		t.Fatalf("exit code = %d, stderr %q", r.code, r.stderr)
	}
	want := workflows.Input{
		Tenant: "acme", InvoiceID: "inv-1",
		Customer:      workflows.Customer{ID: "cus_42", Email: "ada@example.com", TimeZone: "Europe/Warsaw"},
		Amount:        "49.90",
		Currency:      "EUR",
		PaymentMethod: "pm_1",
		Decline:       workflows.Decline{Gateway: "stripe", Code: "insufficient_funds", AdviceCode: "try_again_later", Source: "cli"},
		PolicyName:    "demo",
	}
	demo := policy.Demo()
	want.Policy = &demo // Start pins the catalog policy's content
	if !reflect.DeepEqual(tc.input, want) {
		t.Errorf("input =\n%+v\nwant\n%+v", tc.input, want)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		err        error
		dialErr    error
		wantStderr string
		wantCode   int
	}{
		{"cannot connect", []string{"status", "-tenant", "acme", "-invoice", "inv-1"}, nil, errors.New("connect to Temporal at 127.0.0.1:7233: connection refused"), "dunning status: connect to Temporal at 127.0.0.1:7233", ExitFailure},
		{"Temporal unavailable", []string{"status", "-tenant", "acme", "-invoice", "inv-1"}, serviceerror.NewUnavailable("connection refused"), nil, "dunning status:", ExitUnavailable},
		{"timed out", []string{"cancel", "-tenant", "acme", "-invoice", "inv-1", "-reason", "x"}, context.DeadlineExceeded, nil, "dunning cancel:", ExitUnavailable},
		{"unknown run", []string{"status", "-tenant", "acme", "-invoice", "inv-1"}, serviceerror.NewNotFound("workflow not found"), nil, `dunning status: dunning run not found: tenant "acme" invoice "inv-1"`, ExitNotFound},
		{"closed run", []string{"paid", "-tenant", "acme", "-invoice", "inv-1"}, serviceerror.NewNotFound("workflow execution already completed"), nil, `dunning paid: dunning run already ended: tenant "acme" invoice "inv-1"`, ExitConflict},
		{"closed invoice", startArgs(), serviceerror.NewWorkflowExecutionAlreadyStarted("already finished", "", "run-0"), nil, "a closed invoice is never dunned twice", ExitConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runWith(t, &fakeTemporal{err: tt.err}, tt.dialErr, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", r.code, tt.wantCode)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr = %q, want one line containing %q", r.stderr, tt.wantStderr)
			}
		})
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })

	stderr := &syncBuffer{}
	tc := &fakeTemporal{}
	env := maps.Clone(testEnv)
	key := withServeKey(t, env)
	a := &app{
		stdout: &bytes.Buffer{}, stderr: stderr,
		dial:   func(context.Context) (client.Client, error) { return tc, nil },
		getenv: func(k string) string { return env[k] },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-public-addr", "127.0.0.1:0"}) }()

	addr, public := waitForAddrs(t, stderr)
	for _, tc := range []struct {
		name, url, key string
		want           int
	}{
		{"private health", "http://" + addr + "/healthz", "", http.StatusOK},
		{"public health", "http://" + public + "/healthz", "", http.StatusOK},
		{"status without a key", "http://" + addr + "/v1/runs/acme/inv-1", "", http.StatusUnauthorized},
		{"status on the public listener", "http://" + public + "/v1/runs/acme/inv-1", key, http.StatusNotFound},
		{"webhook on the private listener", "http://" + addr + "/v1/webhooks/sendgrid/events", key, http.StatusNotFound},
		{"codec on the private listener", "http://" + addr + "/codec/decode", key, http.StatusNotFound},
		{"dashboard without a session", "http://" + addr + "/dashboard/", "", http.StatusUnauthorized},
		{"dashboard sign-in form", "http://" + addr + "/dashboard/login", "", http.StatusOK},
		{"dashboard on the public listener", "http://" + public + "/dashboard/", "", http.StatusNotFound},
	} {
		if code, body := authed(t, http.MethodGet, tc.url, tc.key, ""); code != tc.want {
			t.Errorf("%s = %d %s, want %d", tc.name, code, body, tc.want)
		}
	}

	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit code = %d, stderr %s", code, stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !tc.closed {
		t.Error("Temporal client not closed")
	}
	if !strings.Contains(stderr.String(), "intake API stopped") {
		t.Errorf("no shutdown log: %s", stderr)
	}
}

// dunning serve starts runs on DUNNING_TASK_QUEUE and takes only the
// gateways the workers configure.
func TestServeHonoursTheWorkersConfiguration(t *testing.T) {
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	env := map[string]string{"DUNNING_TASK_QUEUE": "dunning-eu", "DUNNING_GATEWAYS": "simulator"}
	key := withServeKey(t, env)
	stderr := &syncBuffer{}
	tc := &fakeTemporal{}
	a := &app{
		stdout: &bytes.Buffer{}, stderr: stderr,
		dial:   func(context.Context) (client.Client, error) { return tc, nil },
		getenv: func(k string) string { return env[k] },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-public-addr", "127.0.0.1:0"}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addr := waitForAddr(t, stderr)
	post := func(gw, pm string) (int, string) {
		body := fmt.Sprintf(`{"tenant":"acme","invoice_id":"inv-1","customer":{"id":"c1"},"amount":"49.90","currency":"EUR",
			"payment_method":%q,"decline":{"gateway":%q,"code":"insufficient_funds"}}`, pm, gw)
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/declines", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	if code, _ := post("simulator", "sim:succeed"); code != http.StatusAccepted {
		t.Fatalf("simulator decline = %d, want 202", code)
	}
	if got := tc.startedOn(); got != "dunning-eu" {
		t.Errorf("run started on %q, want DUNNING_TASK_QUEUE's dunning-eu", got)
	}
	if code, ct := post("stripe", "pm_card_visa"); code != http.StatusUnprocessableEntity || ct != "application/problem+json" {
		t.Errorf("decline for an unconfigured gateway = %d %s, want 422 application/problem+json", code, ct)
	}
}

func TestServeFailsOnABadAddress(t *testing.T) {
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	r := runWith(t, &fakeTemporal{}, nil, "serve", "-addr", "127.0.0.1:notaport")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "dunning serve: listen on 127.0.0.1:notaport") {
		t.Errorf("exit code %d, stderr %q", r.code, r.stderr)
	}
	r = runWith(t, &fakeTemporal{}, nil, "serve", "-addr", "127.0.0.1:0", "-public-addr", "127.0.0.1:notaport")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "dunning serve: listen on 127.0.0.1:notaport") {
		t.Errorf("exit code %d, stderr %q", r.code, r.stderr)
	}
}

// Without the pepper no key could be checked: serve refuses to start
// rather than serve an API nobody can use, or one without keys.
func TestServeNeedsThePepper(t *testing.T) {
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	r := runWith(t, &fakeTemporal{}, nil, "serve", "-addr", "127.0.0.1:0", "-public-addr", "127.0.0.1:0")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "DUNNING_KEY_PEPPER") || r.dialed {
		t.Errorf("exit code %d, dialed %v, stderr %q", r.code, r.dialed, r.stderr)
	}
}

var listening = regexp.MustCompile(`"msg":"intake API listening","addr":"([^"]+)","public_addr":"([^"]+)"`)

func waitForAddr(t *testing.T, logs *syncBuffer) string {
	t.Helper()
	addr, _ := waitForAddrs(t, logs)
	return addr
}

// waitForAddrs is the private and the public address serve listens on.
func waitForAddrs(t *testing.T, logs *syncBuffer) (private, public string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			return m[1], m[2]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("serve did not start: %s", logs)
	return "", ""
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startArgs is a valid start command line with extra flags appended; the
// flag package keeps the last value of a repeated flag.
func startArgs(extra ...string) []string {
	args := []string{"start", "-tenant", "acme", "-invoice", "inv-1", "-customer", "cus_42",
		"-amount", "49.90", "-currency", "EUR", "-gateway", "stripe", "-code", "insufficient_funds"}
	return append(args, extra...)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
