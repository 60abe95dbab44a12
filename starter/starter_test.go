package starter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	querypb "go.temporal.io/api/query/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// fakeTemporal implements the client calls the starter makes; any other call
// panics on the nil embedded interface.
type fakeTemporal struct {
	client.Client

	err error // returned by every call
	// signalErr, when set, is what SignalWorkflow returns instead of err.
	signalErr error
	getErr    error // returned by handle and run Get
	value     any   // what queries, updates and results decode to
	calls     []string
	swsID     string
	swsSignal string
	swsArg    any
	swsOpts   client.StartWorkflowOptions
	swsType   any
	swsArgs   []any
	signalled struct {
		id, runID, name string
		arg             any
	}
	updateOpts client.UpdateWorkflowOptions
	// started, when set, is what ExecuteWorkflow returns instead of err.
	started error
	// described is what DescribeWorkflow answers; nil is an open run for
	// 49.90 EUR, validInput's amount.
	described *client.WorkflowExecutionDescription
	// ended, when set, is the status of the ended execution a query with
	// a reject condition is refused for.
	ended enumspb.WorkflowExecutionStatus
}

func (f *fakeTemporal) DescribeWorkflow(_ context.Context, id, runID string) (*client.WorkflowExecutionDescription, error) {
	f.calls = append(f.calls, "DescribeWorkflow "+id+" "+runID)
	if f.described != nil {
		return f.described, nil
	}
	return described(enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		workflows.SAAmountMinor.ValueSet(4990), workflows.SACurrency.ValueSet("EUR")), nil
}

func described(status enumspb.WorkflowExecutionStatus, attrs ...temporal.SearchAttributeUpdate) *client.WorkflowExecutionDescription {
	return &client.WorkflowExecutionDescription{WorkflowExecutionMetadata: client.WorkflowExecutionMetadata{
		Status: status, TypedSearchAttributes: temporal.NewSearchAttributes(attrs...),
	}}
}

func (f *fakeTemporal) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any, opts client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.calls = append(f.calls, "SignalWithStartWorkflow")
	f.swsID, f.swsSignal, f.swsArg, f.swsOpts, f.swsType, f.swsArgs = id, signal, arg, opts, wf, args
	if f.err != nil {
		return nil, f.err
	}
	return &fakeRun{id: id, runID: "run-1", f: f}, nil
}

func (f *fakeTemporal) QueryWorkflow(_ context.Context, id, runID, query string, _ ...any) (converter.EncodedValue, error) {
	f.calls = append(f.calls, "QueryWorkflow "+id+" "+query)
	if f.err != nil {
		return nil, f.err
	}
	return jsonValue{f.value}, nil
}

// QueryWorkflowWithOptions refuses the query, as the server does under
// QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY, when ended is set.
func (f *fakeTemporal) QueryWorkflowWithOptions(ctx context.Context, req *client.QueryWorkflowWithOptionsRequest) (*client.QueryWorkflowWithOptionsResponse, error) {
	if f.ended != enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED && req.QueryRejectCondition == enumspb.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY {
		f.calls = append(f.calls, "QueryWorkflow "+req.WorkflowID+" "+req.QueryType)
		return &client.QueryWorkflowWithOptionsResponse{QueryRejected: &querypb.QueryRejected{Status: f.ended}}, nil
	}
	v, err := f.QueryWorkflow(ctx, req.WorkflowID, req.RunID, req.QueryType, req.Args...)
	if err != nil {
		return nil, err
	}
	return &client.QueryWorkflowWithOptionsResponse{QueryResult: v}, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, runID, name string, arg any) error {
	f.calls = append(f.calls, "SignalWorkflow")
	f.signalled.id, f.signalled.runID, f.signalled.name, f.signalled.arg = id, runID, name, arg
	switch f.signalErr {
	case nil:
		return f.err
	case errNone:
		return nil
	}
	return f.signalErr
}

// errNone as signalErr makes SignalWorkflow succeed whatever err says.
var errNone = errors.New("no error")

func (f *fakeTemporal) UpdateWorkflow(_ context.Context, opts client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.calls = append(f.calls, "UpdateWorkflow")
	f.updateOpts = opts
	if f.err != nil {
		return nil, f.err
	}
	return &fakeHandle{f: f}, nil
}

func (f *fakeTemporal) GetWorkflow(_ context.Context, id, runID string) client.WorkflowRun {
	f.calls = append(f.calls, "GetWorkflow "+id)
	return &fakeRun{id: id, runID: runID, f: f}
}

type fakeRun struct {
	client.WorkflowRun
	id, runID string
	f         *fakeTemporal
}

func (r *fakeRun) GetID() string    { return r.id }
func (r *fakeRun) GetRunID() string { return r.runID }
func (r *fakeRun) Get(_ context.Context, v any) error {
	if r.f.getErr != nil {
		return r.f.getErr
	}
	return jsonValue{r.f.value}.Get(v)
}

type fakeHandle struct {
	client.WorkflowUpdateHandle
	f *fakeTemporal
}

func (h *fakeHandle) Get(_ context.Context, v any) error {
	if h.f.getErr != nil {
		return h.f.getErr
	}
	return jsonValue{h.f.value}.Get(v)
}

// jsonValue round-trips through JSON like the default data converter.
type jsonValue struct{ v any }

func (j jsonValue) HasValue() bool { return j.v != nil }
func (j jsonValue) Get(ptr any) error {
	b, err := json.Marshal(j.v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

func validInput() workflows.Input {
	return workflows.Input{
		Tenant:    "acme",
		InvoiceID: "inv-1001",
		Customer:  workflows.Customer{ID: "cus_42", Email: "ada@example.com"},
		Amount:    "49.90",
		Currency:  "EUR",
		Decline:   workflows.Decline{ID: "ch_1", Gateway: "stripe", Code: "insufficient_funds"},
	}
}

func TestStartStartsWithTheDeclineInTheInput(t *testing.T) {
	tc := &fakeTemporal{}
	c := NewClient(tc, Options{})
	in := validInput()
	res, err := c.Start(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if want := (StartResult{WorkflowID: "dunning/acme/inv-1001", RunID: "run-1"}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if tc.swsID != "dunning/acme/inv-1001" || tc.swsOpts.ID != tc.swsID {
		t.Errorf("workflow ID = %q / %q", tc.swsID, tc.swsOpts.ID)
	}
	if !reflect.DeepEqual(tc.calls, []string{"ExecuteWorkflow"}) {
		t.Errorf("calls = %v, want one start and no signal", tc.calls)
	}
	if tc.swsOpts.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL {
		t.Errorf("conflict policy = %v, want FAIL (a second decline becomes a signal)", tc.swsOpts.WorkflowIDConflictPolicy)
	}
	if !tc.swsOpts.WorkflowExecutionErrorWhenAlreadyStarted {
		t.Error("a start for an invoice with a run must fail, not return the existing run")
	}
	if !tc.swsOpts.WorkflowExecutionErrorWhenAlreadyStarted {
		t.Error("WorkflowExecutionErrorWhenAlreadyStarted is off: the SDK would answer an open run as started and the decline would be dropped")
	}
	if tc.swsType != workflows.WorkflowName || len(tc.swsArgs) != 1 || !reflect.DeepEqual(tc.swsArgs[0], pinned(in)) {
		t.Errorf("workflow = %v %+v, want %s with the input", tc.swsType, tc.swsArgs, workflows.WorkflowName)
	}
	if tc.swsOpts.TaskQueue != workflows.TaskQueue {
		t.Errorf("task queue = %q", tc.swsOpts.TaskQueue)
	}
	// A failed run may start again; an ended one (completed) may not.
	if tc.swsOpts.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY {
		t.Errorf("reuse policy = %v, want ALLOW_DUPLICATE_FAILED_ONLY", tc.swsOpts.WorkflowIDReusePolicy)
	}
	sa := tc.swsOpts.TypedSearchAttributes
	if got, _ := sa.GetInt64(workflows.SAAmountMinor); got != 4990 {
		t.Errorf("amount minor = %d, want 4990", got)
	}
	if got, _ := sa.GetKeyword(workflows.SAPolicy); got != "default" {
		t.Errorf("policy attribute = %q, want default", got)
	}
}

func TestStartRefusesBeforeCallingTemporal(t *testing.T) {
	inline := policy.Demo()
	inline.Name = "custom"
	broken := policy.Demo()
	broken.MaxAttempts = 0
	tests := []struct {
		name    string
		opts    Options
		edit    func(*workflows.Input)
		wantIs  []error
		wantMsg string
	}{
		{"invalid input", Options{}, func(in *workflows.Input) { in.Tenant = "" }, []error{ErrInvalid, workflows.ErrInvalidInput}, "tenant: is required"},
		{"unknown gateway", Options{}, func(in *workflows.Input) { in.Decline.Gateway = "paypal" }, []error{ErrInvalid}, `decline.gateway: "paypal" is not a gateway configured here (http, simulator, stripe)`},
		{"gateway not configured", Options{Rules: simulatorOnly(t)}, func(*workflows.Input) {}, []error{ErrInvalid}, `"stripe" is not a gateway configured here (simulator)`},
		{"malformed simulator script", Options{}, func(in *workflows.Input) {
			in.Decline.Gateway, in.PaymentMethod = "simulator", "sim:decline;colour=red"
		}, []error{ErrInvalid}, "payment_method: unknown simulator directive"},
		{"amount wraps int64", Options{}, func(in *workflows.Input) { in.Amount = "184467440737095516.17" }, []error{ErrInvalid}, "largest amount accepted in EUR, 999999999.99 EUR"},
		{"email with CR/LF", Options{}, func(in *workflows.Input) { in.Customer.Email = "ada@example.com\r\nBcc: eve@example.com" }, []error{ErrInvalid}, "customer.email: contains a line break"},
		{"customer ID of 300 kB", Options{}, func(in *workflows.Input) { in.Customer.ID = strings.Repeat("c", 300_000) }, []error{ErrInvalid}, "customer.id: is 300000 bytes long; at most 128"},
		{"bad amount", Options{}, func(in *workflows.Input) { in.Amount = "12.345" }, []error{ErrInvalid}, "3 decimal places"},
		{"unknown policy", Options{}, func(in *workflows.Input) { in.PolicyName = "gold" }, []error{ErrUnknownPolicy, ErrInvalid}, `unknown policy "gold"; known policies: default, demo`},
		{"policy missing from a custom catalog", Options{Policies: mustCatalog(t, policy.Demo())}, func(*workflows.Input) {}, []error{ErrUnknownPolicy}, `"default"; known policies: demo`},
		{"inline policy not allowed", Options{}, func(in *workflows.Input) { in.Policy = &inline }, []error{ErrInvalid}, "inline policies are not accepted"},
		{"broken inline policy", Options{AllowInlinePolicy: true}, func(in *workflows.Input) { in.Policy = &broken }, []error{ErrInvalid}, "max_attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{}
			in := validInput()
			tt.edit(&in)
			_, err := NewClient(tc, tt.opts).Start(context.Background(), in)
			for _, target := range tt.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("err = %v, want errors.Is %v", err, target)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantMsg)
			}
			if len(tc.calls) != 0 {
				t.Errorf("Temporal was called: %v", tc.calls)
			}
		})
	}
}

func TestStartOptions(t *testing.T) {
	inline := policy.Demo()
	inline.Name = "custom"
	tests := []struct {
		name       string
		opts       Options
		edit       func(*workflows.Input)
		wantQueue  string
		wantPolicy string
	}{
		{"catalog policy", Options{}, func(in *workflows.Input) { in.PolicyName = "demo" }, workflows.TaskQueue, "demo"},
		{"custom task queue", Options{TaskQueue: "dunning-eu"}, func(*workflows.Input) {}, "dunning-eu", "default"},
		{"inline policy allowed", Options{AllowInlinePolicy: true}, func(in *workflows.Input) { in.Policy = &inline }, workflows.TaskQueue, "custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{}
			in := validInput()
			tt.edit(&in)
			if _, err := NewClient(tc, tt.opts).Start(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			if tc.swsOpts.TaskQueue != tt.wantQueue {
				t.Errorf("task queue = %q, want %q", tc.swsOpts.TaskQueue, tt.wantQueue)
			}
			if got, _ := tc.swsOpts.TypedSearchAttributes.GetKeyword(workflows.SAPolicy); got != tt.wantPolicy {
				t.Errorf("policy attribute = %q, want %q", got, tt.wantPolicy)
			}
			if !reflect.DeepEqual(tc.swsArgs[0], pinned(in)) {
				t.Errorf("workflow input changed: %+v", tc.swsArgs[0])
			}
		})
	}
}

func simulatorOnly(t *testing.T) validation.Rules {
	t.Helper()
	r, err := validation.NewRules([]string{"simulator"}, money.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A second decline for an open invoice reaches its run as a signal.
func TestStartSignalsAnOpenRun(t *testing.T) {
	tc := &fakeTemporal{err: serviceerror.NewWorkflowExecutionAlreadyStarted("Workflow execution is already running", "", "run-0"), signalErr: errNone}
	in := validInput()
	res, err := NewClient(tc, Options{}).Start(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if want := (StartResult{WorkflowID: "dunning/acme/inv-1001", RunID: "run-0"}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if tc.signalled.runID != "run-0" || tc.signalled.name != workflows.SignalDecline || !reflect.DeepEqual(tc.signalled.arg, in.Decline) {
		t.Errorf("signalled %+v, want the decline to run-0", tc.signalled)
	}
	want := []string{"ExecuteWorkflow", "DescribeWorkflow dunning/acme/inv-1001 run-0", "SignalWorkflow"}
	if !reflect.DeepEqual(tc.calls, want) {
		t.Errorf("calls = %v, want %v", tc.calls, want)
	}
}

// A decline for an open run about another amount or currency is refused
// with both values, and the run hears nothing of it.
func TestStartRefusesAConflictingDecline(t *testing.T) {
	running := enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	tests := []struct {
		name      string
		described *client.WorkflowExecutionDescription
		value     any // the status query's answer, when asked
		edit      func(*workflows.Input)
		wantIs    error
		wantMsg   string
		wantCalls []string
	}{
		{
			name: "other amount", edit: func(in *workflows.Input) { in.Amount = "50.00" },
			wantIs: ErrConflict, wantMsg: `the run for invoice "inv-1001" of tenant "acme" dunns 49.90 EUR; this decline reports 50.00 EUR`,
			wantCalls: []string{"ExecuteWorkflow", "DescribeWorkflow dunning/acme/inv-1001 run-0"},
		},
		{
			name: "other currency", edit: func(in *workflows.Input) { in.Currency = "USD" },
			wantIs: ErrConflict, wantMsg: "dunns 49.90 EUR; this decline reports 49.90 USD",
			wantCalls: []string{"ExecuteWorkflow", "DescribeWorkflow dunning/acme/inv-1001 run-0"},
		},
		{
			name: "same amount written differently", edit: func(in *workflows.Input) { in.Amount = "49.9" },
			wantCalls: []string{"ExecuteWorkflow", "DescribeWorkflow dunning/acme/inv-1001 run-0", "SignalWorkflow"},
		},
		{
			name: "JPY run", described: described(running, workflows.SAAmountMinor.ValueSet(1200), workflows.SACurrency.ValueSet("JPY")),
			edit:      func(in *workflows.Input) { in.Amount, in.Currency = "1200", "JPY" },
			wantCalls: []string{"ExecuteWorkflow", "DescribeWorkflow dunning/acme/inv-1001 run-0", "SignalWorkflow"},
		},
		{
			name: "closed run", described: described(enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED),
			wantIs: ErrRunClosed, wantMsg: "a closed invoice is never dunned twice",
			wantCalls: []string{"ExecuteWorkflow", "DescribeWorkflow dunning/acme/inv-1001 run-0"},
		},
		{
			name: "run without the attributes asks the status", described: described(running),
			value:  workflows.Status{WorkflowID: "dunning/acme/inv-1001", Amount: "10.00", Currency: "EUR"},
			wantIs: ErrConflict, wantMsg: "dunns 10.00 EUR; this decline reports 49.90 EUR",
			wantCalls: []string{"ExecuteWorkflow", "DescribeWorkflow dunning/acme/inv-1001 run-0", "QueryWorkflow dunning/acme/inv-1001 status"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{
				err:       serviceerror.NewWorkflowExecutionAlreadyStarted("Workflow execution is already running", "", "run-0"),
				signalErr: errNone, described: tt.described, value: tt.value,
			}
			in := validInput()
			if tt.edit != nil {
				tt.edit(&in)
			}
			// The status query shares the fake's err; answer it.
			if tt.value != nil {
				tc.err = nil
				tc.started = serviceerror.NewWorkflowExecutionAlreadyStarted("Workflow execution is already running", "", "run-0")
			}
			_, err := NewClient(tc, Options{}).Start(context.Background(), in)
			if tt.wantIs == nil && err != nil {
				t.Fatal(err)
			}
			if tt.wantIs != nil && (!errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantIs, tt.wantMsg)
			}
			if !reflect.DeepEqual(tc.calls, tt.wantCalls) {
				t.Errorf("calls = %v, want %v", tc.calls, tt.wantCalls)
			}
		})
	}
}

// The run's input holds the normalized customer: phone in E.164, country
// and time zone from the number when the report had none.
func TestStartNormalizesTheCustomer(t *testing.T) {
	tc := &fakeTemporal{}
	in := validInput()
	in.Customer.Phone = "+48 601 234 567"
	in.Customer.Email = " ada@example.com "
	if _, err := NewClient(tc, Options{}).Start(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	got := tc.swsArgs[0].(workflows.Input).Customer
	want := workflows.Customer{ID: "cus_42", Email: "ada@example.com", Phone: "+48601234567", Country: "PL", TimeZone: "Europe/Warsaw"}
	if got != want {
		t.Errorf("customer = %+v, want %+v", got, want)
	}
}

func TestStartNamesEveryBadField(t *testing.T) {
	in := validInput()
	in.Tenant, in.Customer.Phone, in.Decline.Gateway = "", "0123", "paypal"
	_, err := NewClient(&fakeTemporal{}, Options{}).Start(context.Background(), in)
	verr, ok := errors.AsType[*validation.Error](err)
	if !ok {
		t.Fatalf("err = %v, want a *validation.Error", err)
	}
	var pointers []string
	for _, p := range verr.Problems {
		pointers = append(pointers, p.Pointer)
	}
	if want := []string{"/tenant", "/customer/phone", "/decline/gateway"}; !reflect.DeepEqual(pointers, want) {
		t.Errorf("pointers = %v, want %v", pointers, want)
	}
}

func TestStartErrors(t *testing.T) {
	unavailable := serviceerror.NewUnavailable("connection refused")
	tests := []struct {
		name      string
		err       error
		signalErr error
		wantIs    error
		wantMsg   string
	}{
		{
			name:      "closed run",
			err:       serviceerror.NewWorkflowExecutionAlreadyStarted("Workflow execution already finished successfully", "", "run-0"),
			signalErr: serviceerror.NewNotFound("workflow execution already completed"),
			wantIs:    ErrRunClosed,
			wantMsg:   `dunning run already ended: invoice "inv-1001" of tenant "acme"; a closed invoice is never dunned twice`,
		},
		{name: "server down", err: unavailable, wantIs: unavailable, wantMsg: "start dunning run dunning/acme/inv-1001: connection refused"},
		{
			name:      "open run, server down for the signal",
			err:       serviceerror.NewWorkflowExecutionAlreadyStarted("Workflow execution is already running", "", "run-0"),
			signalErr: unavailable,
			wantIs:    unavailable,
			wantMsg:   "report decline to dunning run dunning/acme/inv-1001: connection refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(&fakeTemporal{err: tt.err, signalErr: tt.signalErr}, Options{}).Start(context.Background(), validInput())
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestRunErrorMapping(t *testing.T) {
	unavailable := serviceerror.NewUnavailable("try later")
	tests := []struct {
		name    string
		err     error
		wantIs  error
		wantNot []error
		wantMsg string
	}{
		{"unknown run", serviceerror.NewNotFound("workflow not found for ID: dunning/acme/inv-1"), ErrRunNotFound, []error{ErrRunClosed}, `dunning run not found: tenant "acme" invoice "inv-1"`},
		{"ended run", serviceerror.NewNotFound("workflow execution already completed"), ErrRunClosed, []error{ErrRunNotFound}, `dunning run already ended: tenant "acme" invoice "inv-1"`},
		{"other error", unavailable, unavailable, []error{ErrRunNotFound, ErrRunClosed, ErrRejected}, "query status of dunning/acme/inv-1: try later"},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded, []error{ErrRunNotFound}, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runError(tt.err, "query status of", "acme", "inv-1")
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			for _, not := range tt.wantNot {
				if errors.Is(err, not) {
					t.Errorf("err = %v must not be %v", err, not)
				}
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	want := workflows.Status{WorkflowID: "dunning/acme/inv-1", Tenant: "acme", InvoiceID: "inv-1", Phase: workflows.PhasePaused, Amount: "49.90", Currency: "EUR"}
	tc := &fakeTemporal{value: want}
	got, err := NewClient(tc, Options{}).Status(context.Background(), "acme", "inv-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status = %+v, want %+v", got, want)
	}
	if wantCalls := []string{"QueryWorkflow dunning/acme/inv-1 status"}; !reflect.DeepEqual(tc.calls, wantCalls) {
		t.Errorf("calls = %v, want %v", tc.calls, wantCalls)
	}

	_, err = NewClient(&fakeTemporal{err: serviceerror.NewNotFound("workflow not found")}, Options{}).Status(context.Background(), "acme", "inv-1")
	if !errors.Is(err, ErrRunNotFound) {
		t.Errorf("err = %v, want ErrRunNotFound", err)
	}
}

// TestStatusOfAnAbortedRun: a run whose latest execution ended without
// completing is not answered by a query replayed on it, which would report
// the phase the workflow was in when it stopped; Status says how the
// execution ended instead. A completed run still answers its query.
func TestStatusOfAnAbortedRun(t *testing.T) {
	tests := []struct {
		ended enumspb.WorkflowExecutionStatus
		want  string
	}{
		{enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, "terminated"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, "failed"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, "timed_out"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			tc := &fakeTemporal{value: workflows.Status{Phase: workflows.PhaseRecovering}, ended: tt.ended}
			st, err := NewClient(tc, Options{}).Status(context.Background(), "acme", "inv-1")
			ae, ok := errors.AsType[*AbortedError](err)
			if !ok || !errors.Is(err, ErrRunAborted) || ae.Execution != tt.want || ae.WorkflowID != "dunning/acme/inv-1" {
				t.Fatalf("Status = %+v, %v; want an AbortedError with execution %q", st, err, tt.want)
			}
		})
	}
}

func TestSignals(t *testing.T) {
	tests := []struct {
		name     string
		send     func(*Client) error
		wantName string
		wantArg  any
	}{
		{
			"cancel",
			func(c *Client) error {
				return c.Cancel(context.Background(), "acme", "inv-1", workflows.CancelRequest{Reason: "left", By: "ops"})
			},
			workflows.SignalCancel, workflows.CancelRequest{Reason: "left", By: "ops"},
		},
		{
			"payment method updated",
			func(c *Client) error {
				return c.PaymentMethodUpdated(context.Background(), "acme", "inv-1", workflows.PaymentMethodUpdate{PaymentMethod: "pm_2"})
			},
			workflows.SignalPaymentMethodUpdated, workflows.PaymentMethodUpdate{PaymentMethod: "pm_2"},
		},
		{
			"paid",
			func(c *Client) error {
				return c.Paid(context.Background(), "acme", "inv-1", workflows.PaidOutOfBand{Reference: "wire-1"})
			},
			workflows.SignalPaidOutOfBand, workflows.PaidOutOfBand{Reference: "wire-1"},
		},
		{
			"resume",
			func(c *Client) error {
				return c.Resume(context.Background(), "acme", "inv-1", workflows.ResumeRequest{Reason: "key rotated", By: "ops"})
			},
			workflows.SignalResume, workflows.ResumeRequest{Reason: "key rotated", By: "ops"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{}
			if err := tt.send(NewClient(tc, Options{})); err != nil {
				t.Fatal(err)
			}
			s := tc.signalled
			if s.id != "dunning/acme/inv-1" || s.runID != "" || s.name != tt.wantName || !reflect.DeepEqual(s.arg, tt.wantArg) {
				t.Errorf("signalled %+v, want %s %+v to the current run", s, tt.wantName, tt.wantArg)
			}

			closed := &fakeTemporal{err: serviceerror.NewNotFound("workflow execution already completed")}
			if err := tt.send(NewClient(closed, Options{})); !errors.Is(err, ErrRunClosed) {
				t.Errorf("err = %v, want ErrRunClosed", err)
			}
		})
	}
}

func TestRequestsCheckTheRunKeyFirst(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(*Client) error
	}{
		{"status", func(c *Client) error { _, err := c.Status(ctx, "ac/me", "inv-1"); return err }},
		{"cancel", func(c *Client) error { return c.Cancel(ctx, "acme", "", workflows.CancelRequest{Reason: "x"}) }},
		{"cancel without reason", func(c *Client) error { return c.Cancel(ctx, "acme", "inv-1", workflows.CancelRequest{}) }},
		{"expedite", func(c *Client) error {
			_, err := c.Expedite(ctx, "acme", "inv 1", workflows.ExpediteRequest{})
			return err
		}},
		{"card updated", func(c *Client) error {
			return c.PaymentMethodUpdated(ctx, strings.Repeat("t", 129), "inv-1", workflows.PaymentMethodUpdate{})
		}},
		{"paid", func(c *Client) error { return c.Paid(ctx, "acme", "inv/1", workflows.PaidOutOfBand{}) }},
		{"resume", func(c *Client) error { return c.Resume(ctx, "acme", "inv/1", workflows.ResumeRequest{}) }},
		{"resume by with a line break", func(c *Client) error {
			return c.Resume(ctx, "acme", "inv-1", workflows.ResumeRequest{By: "ops\nX: y"})
		}},
		{"result", func(c *Client) error { _, err := c.Result(ctx, "", ""); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{}
			if err := tt.call(NewClient(tc, Options{})); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
			if len(tc.calls) != 0 {
				t.Errorf("Temporal was called: %v", tc.calls)
			}
		})
	}
}

func TestExpedite(t *testing.T) {
	rec := workflows.AttemptRecord{Number: 2, Reason: policy.ReasonExpedite, IdempotencyKey: "k", Outcome: "succeeded", StartedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	tests := []struct {
		name    string
		tc      *fakeTemporal
		want    workflows.AttemptRecord
		wantIs  error
		wantMsg string
	}{
		{name: "attempt made", tc: &fakeTemporal{value: rec}, want: rec},
		{
			name:    "rejected by the run",
			tc:      &fakeTemporal{getErr: temporal.NewApplicationError("no attempts left in the schedule", "NoAttemptsLeft")},
			wantIs:  ErrRejected,
			wantMsg: "rejected by the dunning run: no attempts left in the schedule",
		},
		{name: "ended run", tc: &fakeTemporal{err: serviceerror.NewNotFound("workflow execution already completed")}, wantIs: ErrRunClosed},
		{name: "unknown run", tc: &fakeTemporal{err: serviceerror.NewNotFound("workflow not found")}, wantIs: ErrRunNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := workflows.ExpediteRequest{Reason: "customer called"}
			got, err := NewClient(tt.tc, Options{}).Expedite(context.Background(), "acme", "inv-1", req)
			if tt.wantIs == nil && err != nil {
				t.Fatal(err)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			if tt.wantMsg != "" && (err == nil || err.Error() != tt.wantMsg) {
				t.Errorf("err = %v, want %q", err, tt.wantMsg)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("record = %+v, want %+v", got, tt.want)
			}
			o := tt.tc.updateOpts
			if o.WorkflowID != "dunning/acme/inv-1" || o.UpdateName != workflows.UpdateExpedite ||
				o.WaitForStage != client.WorkflowUpdateStageCompleted || !reflect.DeepEqual(o.Args, []any{req}) {
				t.Errorf("update options = %+v", o)
			}
		})
	}
}

func TestResult(t *testing.T) {
	want := workflows.Result{Outcome: "recovered", Reason: "charged", Attempts: 2, Amount: "49.90", Currency: "EUR"}
	tc := &fakeTemporal{value: want}
	got, err := NewClient(tc, Options{}).Result(context.Background(), "acme", "inv-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("result = %+v, want %+v", got, want)
	}
	_, err = NewClient(&fakeTemporal{getErr: serviceerror.NewNotFound("workflow not found")}, Options{}).Result(context.Background(), "acme", "inv-1")
	if !errors.Is(err, ErrRunNotFound) {
		t.Errorf("err = %v, want ErrRunNotFound", err)
	}
}

// TestValidateRunKeyMatchesInput keeps the path rule and the start rule the
// same: a run reachable by path is one that could have been started.
func TestValidateRunKeyMatchesInput(t *testing.T) {
	keys := []string{"acme", "a", "ACME-eu_1.prod:x@y", strings.Repeat("k", 128), strings.Repeat("k", 129), "", "ac me", "ac/me", "acmé", "a+b", "a%2Fb", "a\nb"}
	for _, key := range keys {
		in := validInput()
		in.Tenant, in.InvoiceID = key, key
		inputOK := in.Validate() == nil
		keyOK := ValidateRunKey(key, key) == nil
		if inputOK != keyOK {
			t.Errorf("key %q: Input.Validate ok=%v, ValidateRunKey ok=%v", key, inputOK, keyOK)
		}
	}
}

func mustCatalog(t *testing.T, ps ...policy.Policy) *policy.Catalog {
	t.Helper()
	c, err := policy.NewCatalog(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pinned is in as Start hands it to the workflow: a catalog policy's content
// travels with the run.
func pinned(in workflows.Input) workflows.Input {
	if in.Policy != nil {
		return in
	}
	if in.PolicyName == "" {
		in.PolicyName = DefaultPolicy
	}
	p, _ := policy.Builtin().Lookup(in.PolicyName)
	in.Policy = &p
	return in
}

// abCatalog splits smb customers between default and demo and sends the
// gold plan to demo.
func abCatalog(t *testing.T) *policy.Catalog {
	t.Helper()
	s, err := policy.ParseSelection("selection.yaml", []byte(`
rules:
  - match: {plan: gold}
    policy: demo
  - match: {segment: smb}
    experiment:
      name: smb-retries
      variants:
        - {policy: default, weight: 50}
        - {policy: demo, weight: 50}
  - policy: default
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := policy.Builtin().WithSelection(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartSelectsPolicy(t *testing.T) {
	catalog := abCatalog(t)
	tests := []struct {
		name           string
		edit           func(*workflows.Input)
		wantPolicy     string // "" = whichever variant the customer gets
		wantExperiment string
	}{
		{"plan rule", func(in *workflows.Input) { in.Plan = "gold" }, "demo", ""},
		{"catch-all", func(in *workflows.Input) { in.Plan = "basic" }, "default", ""},
		{"experiment", func(in *workflows.Input) { in.Segment = "smb" }, "", "smb-retries"},
		{"explicit name wins", func(in *workflows.Input) { in.Segment, in.PolicyName = "smb", "default" }, "default", ""},
		{"caller cannot claim a variant", func(in *workflows.Input) { in.Experiment, in.Variant = "x", "y" }, "default", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{}
			in := validInput()
			tt.edit(&in)
			if _, err := NewClient(tc, Options{Policies: catalog}).Start(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			got := tc.swsArgs[0].(workflows.Input)
			if got.Policy == nil || got.PolicyName != got.Policy.Name {
				t.Fatalf("policy not pinned: %q %+v", got.PolicyName, got.Policy)
			}
			if tt.wantPolicy != "" && got.PolicyName != tt.wantPolicy {
				t.Errorf("policy = %q, want %q", got.PolicyName, tt.wantPolicy)
			}
			want, _ := catalog.Lookup(got.PolicyName)
			if got.Policy.Ref() != want.Ref() {
				t.Errorf("pinned %s, want %s", got.Policy.Ref(), want.Ref())
			}
			if got.Experiment != tt.wantExperiment || (tt.wantExperiment != "") != (got.Variant != "") {
				t.Errorf("experiment/variant = %q/%q, want experiment %q", got.Experiment, got.Variant, tt.wantExperiment)
			}
			if got.Variant != "" && got.Variant != got.PolicyName {
				t.Errorf("variant %q but policy %q", got.Variant, got.PolicyName)
			}
			if sa, _ := tc.swsOpts.TypedSearchAttributes.GetKeyword(workflows.SAPolicy); sa != got.PolicyName {
				t.Errorf("policy attribute = %q, want %q", sa, got.PolicyName)
			}
		})
	}
}

// Over many customers both variants are used, and a customer's variant
// does not change between starts.
func TestStartExperimentIsStablePerCustomer(t *testing.T) {
	c := NewClient(&fakeTemporal{}, Options{Policies: abCatalog(t)})
	seen := map[string]int{}
	for i := range 200 {
		var variants []string
		for j := range 2 {
			tc := &fakeTemporal{}
			c.tc = tc
			in := validInput()
			in.InvoiceID = fmt.Sprintf("inv-%d-%d", i, j)
			in.Customer.ID = fmt.Sprintf("cus_%d", i)
			in.Segment = "smb"
			if _, err := c.Start(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			variants = append(variants, tc.swsArgs[0].(workflows.Input).Variant)
		}
		if variants[0] != variants[1] {
			t.Fatalf("customer %d got %v", i, variants)
		}
		seen[variants[0]]++
	}
	if seen["default"] < 60 || seen["demo"] < 60 {
		t.Errorf("variants = %v, want both well used", seen)
	}
}

// A flood of decline reports for one open run is refused after a burst,
// before it reaches the run; another invoice is not affected.
func TestStartBoundsReportsPerOpenRun(t *testing.T) {
	tc := &fakeTemporal{err: serviceerror.NewWorkflowExecutionAlreadyStarted("Workflow execution is already running", "", "run-0"), signalErr: errNone}
	c := NewClient(tc, Options{})
	in := validInput()
	for i := range reportBurst {
		if _, err := c.Start(context.Background(), in); err != nil && !errors.Is(err, ErrConflict) {
			// The fake describes no run; only the limit matters here.
			if errors.Is(err, ErrTooManyReports) {
				t.Fatalf("report %d refused inside the burst: %v", i+1, err)
			}
		}
	}
	_, err := c.Start(context.Background(), in)
	var tooMany *TooManyReportsError
	if !errors.As(err, &tooMany) || tooMany.Wait <= 0 {
		t.Fatalf("report past the burst: %v, want ErrTooManyReports with a wait", err)
	}
	other := validInput()
	other.InvoiceID = "inv-2002"
	if _, err := c.Start(context.Background(), other); errors.Is(err, ErrTooManyReports) {
		t.Errorf("another invoice was limited: %v", err)
	}
}
