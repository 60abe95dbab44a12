package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/workflows"
)

// testHeldRunResumes runs a charge the gateway refuses for our API key: the
// run holds in needs_attention (no attempt counted, nothing charged, the
// cause in status and the DunningAttention search attribute), and a resume
// puts it back on schedule, where the next attempt recovers the invoice.
func (p *platform) testHeldRunResumes(t *testing.T) {
	const invoice = "inv-held"
	id := workflows.WorkflowID("acme", invoice)
	if code, out := p.do(t, http.MethodPost, "/v1/declines", decline(invoice, "sim:succeed;refuse_key=1", "it-fast")); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var st workflows.Status
	for {
		v, err := p.temporal.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
		if err == nil && v.Get(&st) == nil && st.Phase == workflows.PhaseNeedsAttention {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the run never held; last status %+v (err %v)", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Attention == nil || st.Attention.Cause != workflows.CauseGatewayAuth || len(st.Attempts) != 1 || !st.Attempts[0].Held {
		t.Fatalf("held status: attention %+v, attempts %+v", st.Attention, st.Attempts)
	}
	if p.simulator.ChargesFor(invoice) != 0 {
		t.Fatal("the gateway charged while our key was refused")
	}
	query := `WorkflowId = "` + id + `" AND DunningAttention = "gateway_auth"`
	for p.list(t, query) != 1 {
		if ctx.Err() != nil {
			t.Fatalf("no run found by %s", query)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := p.temporal.SignalWorkflow(ctx, id, "", workflows.SignalResume, workflows.ResumeRequest{By: "ops", Reason: "rotated the key"}); err != nil {
		t.Fatal(err)
	}
	res := p.result(t, invoice)
	if res.Outcome != policy.Recovered || res.Attempts != 1 || p.simulator.ChargesFor(invoice) != 1 {
		t.Fatalf("result %+v with %d charges, want recovered on its one attempt", res, p.simulator.ChargesFor(invoice))
	}
	p.recordHistory(t, id, "v5-held-resumed")
}
