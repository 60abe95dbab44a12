package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/workflows"
)

// recentRuns is how many runs the runs page lists.
const recentRuns = 100

type runRow struct {
	Invoice, Link, Customer, Amount, Policy, Status, Phase, Attempts, Opened string
}

type runsBody struct {
	Rows  []runRow
	Limit int
}

// runs lists the tenant's latest runs in the filter's currency, newest
// decline first, each linking to its timeline (the analytics index on
// tenant, currency and decline time answers it without a sort).
func (h *Handler) runs(ctx context.Context, w http.ResponseWriter, r *http.Request, f filter, l locale) {
	rows, err := h.cfg.Ledger.Pool().Query(ctx, `
		SELECT r.invoice_id, r.customer_id, r.amount::text, r.currency, r.policy, r.status, r.opened_at,
		       coalesce(s.phase, r.status), coalesce(s.attempts, 0)
		FROM runs r LEFT JOIN run_status s ON s.workflow_id = r.workflow_id
		WHERE r.tenant = $1 AND r.currency = $2
		ORDER BY r.opened_at DESC
		LIMIT $3`, f.Tenant, f.Currency, recentRuns)
	if err != nil {
		h.fail(w, r, fmt.Errorf("dashboard: runs of %s: %w", f.Tenant, err))
		return
	}
	defer rows.Close()
	body := runsBody{Limit: recentRuns}
	for rows.Next() {
		var (
			invoice, customer, amount, currency, policy, status, phase string
			opened                                                     time.Time
			attempts                                                   int
		)
		if err := rows.Scan(&invoice, &customer, &amount, &currency, &policy, &status, &opened, &phase, &attempts); err != nil {
			h.fail(w, r, fmt.Errorf("dashboard: runs of %s: %w", f.Tenant, err))
			return
		}
		d, err := decimal.NewFromString(amount)
		if err != nil {
			h.fail(w, r, fmt.Errorf("dashboard: run %s amount %q: %w", invoice, amount, err))
			return
		}
		body.Rows = append(body.Rows, runRow{Invoice: invoice, Link: f.Link("runs/" + url.PathEscape(invoice)), Customer: customer,
			Amount: l.Money(d, strings.TrimSpace(currency)), Policy: policyLabel(policy), Status: status, Phase: plainLabel(phase),
			Attempts: fmt.Sprint(attempts), Opened: l.Time(opened)})
	}
	if err := rows.Err(); err != nil {
		h.fail(w, r, fmt.Errorf("dashboard: runs of %s: %w", f.Tenant, err))
		return
	}
	h.render(w, r, http.StatusOK, "runs", page{Title: "Runs", Active: "runs", L: l, Tenant: f.Tenant, Filter: &f, Body: body})
}

// event is one line of a run's timeline.
type event struct {
	At     time.Time
	When   string
	Kind   string // attempt, message, service, credit, run
	Title  string
	Detail string
	Status string // the CSS class of the outcome: ok, bad, neutral
}

type runBody struct {
	Invoice, Customer, Amount, Policy, Status, Phase, ServiceState, Opened, Closed, Reason string
	Next, Attention                                                                        string
	Timeline                                                                               Chart
	Events                                                                                 []event
}

// Timeline lanes: one series per kind of event, so the strip shows at a
// glance when the run charged, wrote and changed the service.
var lanes = []string{"attempt", "message", "service"}

// run is one run's timeline, from the ledger: its attempts, messages,
// service changes and credits, in the order they happened.
func (h *Handler) run(ctx context.Context, w http.ResponseWriter, r *http.Request, f filter, l locale) {
	invoice := r.PathValue("invoice")
	v, err := h.cfg.Ledger.RunView(ctx, workflows.WorkflowID(f.Tenant, invoice))
	if errors.Is(err, ledger.ErrNotFound) {
		h.errorPage(w, r, http.StatusNotFound, fmt.Sprintf("Tenant %s has no run for invoice %q.", f.Tenant, invoice))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	run := v.Run
	body := runBody{Invoice: run.InvoiceID, Customer: run.CustomerID, Amount: l.Money(run.Amount, run.Currency), Policy: policyLabel(run.Policy),
		Status: run.Status, Phase: plainLabel(v.Status.Phase), ServiceState: v.Status.ServiceState, Opened: l.Time(run.OpenedAt),
		Closed: l.Time(run.ClosedAt), Reason: run.ClosingReason}
	if v.Status.NextAction != "" {
		body.Next = plainLabel(v.Status.NextAction) + " at " + l.Time(v.Status.NextAt)
	}
	if v.Status.AttentionCause != "" {
		body.Attention = v.Status.AttentionCause + ": " + v.Status.AttentionDetail
	}
	body.Events = append(body.Events, event{At: run.OpenedAt, Kind: "run", Title: "Run opened", Detail: "policy " + policyLabel(run.Policy), Status: "neutral"})
	for _, a := range v.Attempts {
		e := event{At: cmp.Or(a.FinishedAt, a.StartedAt), Kind: "attempt", Title: fmt.Sprintf("Attempt %d (%s): %s", a.Number, plainLabel(a.Reason), a.Status)}
		var parts []string
		parts = append(parts, l.Money(a.Amount, a.Currency), "via "+a.Gateway)
		if a.DeclineCode != "" {
			parts = append(parts, "decline "+a.DeclineCode)
		}
		if a.AdviceCode != "" {
			parts = append(parts, "advice "+a.AdviceCode)
		}
		if a.NetworkDeclineCode != "" {
			parts = append(parts, "network code "+a.NetworkDeclineCode)
		}
		if a.Message != "" {
			parts = append(parts, a.Message)
		}
		e.Detail = strings.Join(parts, " · ")
		switch a.Status {
		case "succeeded":
			e.Status = "ok"
		case "declined", "failed":
			e.Status = "bad"
		default:
			e.Status = "neutral"
		}
		body.Events = append(body.Events, e)
	}
	for _, m := range v.Messages {
		// The recipient is the customer's email or phone: the timeline
		// names the channel, not the person.
		e := event{At: m.CreatedAt, Kind: "message", Title: fmt.Sprintf("%s %s: %s", plainLabel(m.Kind), m.Channel, m.Status),
			Detail: m.Subject, Status: "neutral"}
		if m.Locale != "" {
			e.Detail = strings.TrimSpace(e.Detail + " (" + m.Locale + ")")
		}
		if m.Status == "failed" {
			e.Status = "bad"
		}
		body.Events = append(body.Events, e)
	}
	for _, c := range v.ServiceChanges {
		e := event{At: c.CreatedAt, Kind: "service", Title: "Service " + c.State, Detail: plainLabel(c.Reason), Status: "neutral"}
		if c.State == "active" {
			e.Status = "ok"
		} else {
			e.Status = "bad"
		}
		body.Events = append(body.Events, e)
	}
	for _, c := range v.Credits {
		body.Events = append(body.Events, event{At: c.CreatedAt, Kind: "credit", Title: "Service credit " + l.Money(c.Amount, c.Currency), Status: "ok"})
	}
	if !run.ClosedAt.IsZero() {
		st := "neutral"
		if run.Status == "recovered" {
			st = "ok"
		} else if run.Status == "exhausted" {
			st = "bad"
		}
		body.Events = append(body.Events, event{At: run.ClosedAt, Kind: "run", Title: "Run closed: " + run.Status, Detail: run.ClosingReason, Status: st})
	}
	slices.SortStableFunc(body.Events, func(a, b event) int { return a.At.Compare(b.At) })
	for i := range body.Events {
		body.Events[i].When = l.Time(body.Events[i].At)
	}
	body.Timeline = timelineChart(body.Events, run.OpenedAt, cmp.Or(run.ClosedAt, h.cfg.Now()))
	h.render(w, r, http.StatusOK, "run", page{Title: "Run " + run.InvoiceID, Active: "runs", L: l, Tenant: f.Tenant, Filter: &f, Body: body})
}

// timelineChart places each event on a strip from the run's opening to its
// close (or now), one lane per kind.
func timelineChart(events []event, from, to time.Time) Chart {
	span := to.Sub(from)
	if span <= 0 {
		span = time.Second
	}
	return Chart{ID: "run-timeline", Title: "Timeline", Kind: Timeline, Labels: lanes, timeline: func() []lane {
		out := make([]lane, len(lanes))
		for i, name := range lanes {
			out[i].name = name
			for _, e := range events {
				if e.Kind != name {
					continue
				}
				pos := float64(e.At.Sub(from)) / float64(span)
				out[i].marks = append(out[i].marks, mark{pos: min(max(pos, 0), 1), title: e.When + " " + e.Title, status: e.Status})
			}
		}
		return out
	}(), spanLabel: [2]string{"opened", durationLabel(span)}}
}

func durationLabel(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("+%.0f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("+%.0f min", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("+%.1f h", d.Hours())
	}
	return fmt.Sprintf("+%.1f days", d.Hours()/24)
}

// policyLabel is a run's policy as people name it, name@version, without
// the content hash the ledger keeps after it.
func policyLabel(p string) string {
	name, _, _ := strings.Cut(p, "#")
	return name
}
