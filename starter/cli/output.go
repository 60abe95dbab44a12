package cli

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/dunningco/dunning/workflows"
)

// startAnswer is what start prints: the API's answer to POST /v1/declines.
type startAnswer struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	StatusURL  string `json:"status_url"`
}

// sentAnswer is what the commands that message a run print: the API's
// answer to POST /v1/runs/{tenant}/{invoice}/...
type sentAnswer struct {
	WorkflowID string `json:"workflow_id"`
	StatusURL  string `json:"status_url"`
}

func statusURL(tenant, invoice string) string {
	return "/v1/runs/" + url.PathEscape(tenant) + "/" + url.PathEscape(invoice)
}

// sent reports a request delivered to a run: "<what> to <run>" as a table,
// the API's answer as JSON.
func (a *app) sent(format, what, tenant, invoice string) error {
	ans := sentAnswer{WorkflowID: workflows.WorkflowID(tenant, invoice), StatusURL: statusURL(tenant, invoice)}
	return a.emit(format, ans, func(w io.Writer) { fmt.Fprintf(w, "%s to %s\n", what, ans.WorkflowID) })
}

// when prints a time in UTC, or "-".
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// statusTable writes a run's status for people: the run, then its
// attempts, messages, service changes and refusals, each aligned.
func statusTable(w io.Writer, st workflows.Status) {
	fmt.Fprintf(w, "RUN\t%s\n", st.WorkflowID)
	fmt.Fprintf(w, "CUSTOMER\t%s\n", dash(st.CustomerID))
	fmt.Fprintf(w, "PHASE\t%s\n", st.Phase)
	fmt.Fprintf(w, "AMOUNT\t%s %s\n", st.Amount, st.Currency)
	fmt.Fprintf(w, "POLICY\t%s\n", dash(st.Policy))
	fmt.Fprintf(w, "SERVICE\t%s\n", dash(string(st.ServiceState)))
	fmt.Fprintf(w, "STARTED\t%s\n", when(st.StartedAt))
	if d := st.Decline; d != nil {
		fmt.Fprintf(w, "DECLINE\t%s %s, advice %s\n", d.Category, d.Reason, d.Advice)
	}
	if n := st.NextStep; n != nil {
		next := fmt.Sprintf("%s at %s", n.Action, when(n.At))
		if n.Why != "" {
			next += ": " + n.Why
		}
		fmt.Fprintf(w, "NEXT\t%s\n", next)
	}
	if at := st.Attention; at != nil {
		fmt.Fprintf(w, "ATTENTION\t%s since %s: %s\n", at.Cause, when(at.Since), at.Detail)
	}
	if c := st.Credit; c != nil {
		fmt.Fprintf(w, "CREDIT\t%s %s for %d days\n", c.Amount, c.Currency, c.Days)
	}
	if !st.ClosedAt.IsZero() {
		fmt.Fprintf(w, "CLOSED\t%s: %s\n", when(st.ClosedAt), dash(st.ClosingReason))
	}
	if len(st.Attempts) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "ATTEMPT\tREASON\tOUTCOME\tSTARTED\tDECLINE\tGATEWAY REF\tKEY")
		for _, at := range st.Attempts {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", at.Number, at.Reason, at.Outcome, when(at.StartedAt),
				dash(at.DeclineCode), dash(at.GatewayRef), at.IdempotencyKey)
		}
	}
	if len(st.Messages) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "MESSAGE\tCHANNEL\tSTATUS\tAT\tDETAIL")
		for _, m := range st.Messages {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Kind, m.Channel, m.Status, when(m.At), dash(m.Detail))
		}
	}
	if len(st.ServiceLog) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "SERVICE CHANGE\tAT")
		for _, c := range st.ServiceLog {
			fmt.Fprintf(w, "%s\t%s\n", c.State, when(c.At))
		}
	}
	if len(st.Refusals) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "REFUSED\tRULE\tAT\tUNTIL\tBY")
		for _, r := range st.Refusals {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Reason, r.Rule, when(r.At), when(r.Until), dash(r.By))
		}
	}
}

// attemptTable writes one attempt for people.
func attemptTable(w io.Writer, at workflows.AttemptRecord) {
	fmt.Fprintf(w, "ATTEMPT\t%d\n", at.Number)
	fmt.Fprintf(w, "REASON\t%s\n", at.Reason)
	fmt.Fprintf(w, "OUTCOME\t%s\n", at.Outcome)
	fmt.Fprintf(w, "STARTED\t%s\n", when(at.StartedAt))
	fmt.Fprintf(w, "FINISHED\t%s\n", when(at.FinishedAt))
	if at.DeclineCode != "" || at.AdviceCode != "" {
		fmt.Fprintf(w, "DECLINE\t%s %s\n", dash(at.DeclineCode), at.AdviceCode)
	}
	if at.Message != "" {
		fmt.Fprintf(w, "MESSAGE\t%s\n", at.Message)
	}
	fmt.Fprintf(w, "GATEWAY REF\t%s\n", dash(at.GatewayRef))
	fmt.Fprintf(w, "KEY\t%s\n", dash(at.IdempotencyKey))
}
