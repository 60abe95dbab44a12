package activities_test

import (
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/notify"
)

func TestReportStatus(t *testing.T) {
	store := newLedger(t)
	runs := &activities.Runs{Ledger: store}
	held := activities.StatusReport{
		WorkflowID: testWorkflowID, Phase: "needs_attention", ServiceState: "paused", Attempts: 1,
		AttentionCause: "gateway_auth", AttentionDetail: "the gateway refused our key",
		AttentionSince: t0.Add(time.Hour), At: t0.Add(time.Hour),
	}
	parked := activities.StatusReport{
		WorkflowID: testWorkflowID, Phase: "recovering", ServiceState: "paused", Attempts: 1,
		NextAction: "retry", NextAt: t0.Add(72 * time.Hour), At: t0.Add(2 * time.Hour),
	}
	// The later report lands first; the earlier one, retried, lands late.
	for _, r := range []activities.StatusReport{parked, held, parked} {
		if err := runs.ReportStatus(ctxFor(t), r); err != nil {
			t.Fatalf("ReportStatus(%s): %v", r.Phase, err)
		}
	}
	st, err := store.GetRunStatus(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != "recovering" || st.NextAction != "retry" || !st.NextAt.Equal(parked.NextAt) || st.AttentionCause != "" ||
		st.ServiceState != "paused" || st.Attempts != 1 || !st.UpdatedAt.Equal(parked.At) {
		t.Errorf("status = %+v, want the later report %+v", st, parked)
	}

	bad := parked
	bad.ServiceState = "frozen"
	assertPermanent(t, runs.ReportStatus(ctxFor(t), bad), activities.ErrTypeInvalidInput)
	unknown := parked
	unknown.WorkflowID = "dunning/acme/nope"
	assertPermanent(t, runs.ReportStatus(ctxFor(t), unknown), activities.ErrTypeInvalidInput)

	// After the close the row is CloseRun's.
	closeRun(t, store, testWorkflowID)
	later := parked
	later.At = t0.Add(1000 * time.Hour)
	if err := runs.ReportStatus(ctxFor(t), later); err != nil {
		t.Fatalf("ReportStatus after close: %v", err)
	}
	if st, _ := store.GetRunStatus(ctxFor(t), testWorkflowID); st.Phase != "exhausted" || st.NextAction != "" {
		t.Errorf("status after close = %+v", st)
	}
}

// TestNotifyDryRunSaysSo: a message the dry-run notifier only logged is
// "dry-run" in the ledger and in the activity's answer, now and on a retry.
func TestNotifyDryRunSaysSo(t *testing.T) {
	store := newLedger(t)
	n := &activities.Notifications{Email: notify.DryRun{Logger: quietLogger}, SMS: notify.DryRun{Logger: quietLogger},
		Ledger: store, Logger: quietLogger}
	in := notifyInput("email", "jane@example.com")
	want := activities.NotifyOutput{Status: "dry-run", Provider: "dry-run", ProviderRef: "dry-run:" + in.IdempotencyKey}
	for i := range 2 {
		out, err := n.Notify(ctxFor(t), in)
		if err != nil {
			t.Fatalf("Notify #%d: %v", i+1, err)
		}
		if out != want {
			t.Errorf("Notify #%d = %+v, want %+v", i+1, out, want)
		}
	}
	msgs, err := store.Messages(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Status != "dry-run" || msgs[0].Provider != "dry-run" || msgs[0].Body == "" {
		t.Errorf("ledger messages = %+v, want one dry-run with its rendered body", msgs)
	}
}
