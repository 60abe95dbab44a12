package starter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/workflows"
)

// ExecuteWorkflow records a start like SignalWithStartWorkflow does.
func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.calls = append(f.calls, "ExecuteWorkflow")
	f.swsID, f.swsOpts, f.swsType, f.swsArgs = opts.ID, opts, wf, args
	if f.started != nil {
		return nil, f.started
	}
	if f.err != nil {
		return nil, f.err
	}
	return &fakeRun{id: opts.ID, runID: "run-1", f: f}, nil
}

func validReminderInput() workflows.ReminderInput {
	return workflows.ReminderInput{
		Tenant:    "acme",
		Kind:      workflows.ReminderPreDue,
		Customer:  workflows.Customer{ID: "cus_42", Email: "ada@example.com", TimeZone: "Europe/Warsaw"},
		InvoiceID: "inv-1001",
		Amount:    "49.90",
		Currency:  "EUR",
		Anchor:    time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestStartReminders(t *testing.T) {
	tc := &fakeTemporal{}
	res, err := NewClient(tc, Options{}).StartReminders(context.Background(), validReminderInput())
	if err != nil {
		t.Fatal(err)
	}
	if want := (StartResult{WorkflowID: "reminders/acme/pre-due/inv-1001", RunID: "run-1"}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if tc.swsOpts.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING {
		t.Errorf("conflict policy = %v, want USE_EXISTING", tc.swsOpts.WorkflowIDConflictPolicy)
	}
	if tc.swsOpts.TaskQueue != workflows.TaskQueue || tc.swsType != workflows.ReminderWorkflowName || len(tc.swsArgs) != 1 {
		t.Fatalf("start = %+v %v %+v", tc.swsOpts, tc.swsType, tc.swsArgs)
	}
	got := tc.swsArgs[0].(workflows.ReminderInput)
	if got.PolicyName != "default" || got.Policy == nil || got.Policy.Hash() != policy.Default().Hash() {
		t.Errorf("policy = %q %+v, want default pinned", got.PolicyName, got.Policy)
	}
	sa := tc.swsOpts.TypedSearchAttributes
	if v, _ := sa.GetKeyword(workflows.SAInvoiceID); v != "inv-1001" {
		t.Errorf("invoice attribute = %q", v)
	}
	if v, _ := sa.GetKeyword(workflows.SACustomerID); v != "cus_42" {
		t.Errorf("customer attribute = %q", v)
	}

	card := validReminderInput()
	card.Kind, card.InvoiceID, card.Amount, card.Currency = workflows.ReminderCardExpiry, "", "", ""
	card.Card = workflows.Card{Fingerprint: "fp_9"}
	card.PolicyName = "demo"
	res, err = NewClient(tc, Options{}).StartReminders(context.Background(), card)
	if err != nil {
		t.Fatal(err)
	}
	if res.WorkflowID != "reminders/acme/card-expiry/cus_42/fp_9/2026-12-01" {
		t.Errorf("workflow ID = %q", res.WorkflowID)
	}
	if got := tc.swsArgs[0].(workflows.ReminderInput); got.Policy == nil || got.Policy.Name != "demo" {
		t.Errorf("policy = %+v, want demo pinned", got.Policy)
	}
}

func TestStartRemindersRefusesBeforeCallingTemporal(t *testing.T) {
	inline := policy.Default()
	tests := []struct {
		name    string
		opts    Options
		edit    func(*workflows.ReminderInput)
		wantIs  error
		wantMsg string
	}{
		{"invalid input", Options{}, func(in *workflows.ReminderInput) { in.Kind = "weekly" }, workflows.ErrInvalidInput, "kind"},
		{"unknown policy", Options{}, func(in *workflows.ReminderInput) { in.PolicyName = "gold" }, ErrUnknownPolicy, `unknown policy "gold"`},
		{"inline policy not allowed", Options{}, func(in *workflows.ReminderInput) { in.Policy = &inline }, ErrInvalid, "inline policies are not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &fakeTemporal{}
			in := validReminderInput()
			tt.edit(&in)
			_, err := NewClient(tc, tt.opts).StartReminders(context.Background(), in)
			if !errors.Is(err, tt.wantIs) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want %v containing %q", err, tt.wantIs, tt.wantMsg)
			}
			if len(tc.calls) != 0 {
				t.Errorf("Temporal was called: %v", tc.calls)
			}
		})
	}
}

func TestStartRemindersTemporalError(t *testing.T) {
	tc := &fakeTemporal{err: errors.New("unavailable")}
	_, err := NewClient(tc, Options{}).StartReminders(context.Background(), validReminderInput())
	if err == nil || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "reminders/acme/pre-due/inv-1001") {
		t.Errorf("err = %v", err)
	}
}
