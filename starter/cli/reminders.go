package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// reminderID is a reminder run's workflow ID from -id, which may leave out
// the "reminders/" prefix as the API's path does.
func reminderID(id string) string {
	if strings.HasPrefix(id, "reminders/") {
		return id
	}
	return "reminders/" + id
}

// remindersStart starts a reminder run, as POST /v1/reminders does.
func (a *app) remindersStart(ctx context.Context, args []string) error {
	fs := a.newFlagSet("reminders start", "-tenant T -kind pre-due|card-expiry -customer C -anchor TIME [-invoice I -amount A -currency CUR] [flags]")
	var r intake.ReminderRequest
	anchor := fs.String("anchor", "", "the due date (pre-due) or the expiry or renewal date (card-expiry), RFC 3339, e.g. 2026-12-01T00:00:00+01:00 (required)")
	fs.StringVar(&r.Tenant, "tenant", "", "tenant that owns the customer (required)")
	fs.StringVar(&r.Kind, "kind", "", `"pre-due" (before an invoice falls due) or "card-expiry" (before a card expires or the subscription renews) (required)`)
	fs.StringVar(&r.Customer.ID, "customer", "", "customer ID (required)")
	fs.StringVar(&r.Customer.Email, "email", "", "customer email address")
	fs.StringVar(&r.Customer.Phone, "phone", "", "customer phone number in E.164 form, e.g. +48123456789")
	fs.StringVar(&r.Customer.Locale, "locale", "", "customer locale (BCP 47), e.g. fr-FR")
	fs.StringVar(&r.Customer.TimeZone, "tz", "", "customer IANA time zone, e.g. Europe/Warsaw")
	fs.StringVar(&r.InvoiceID, "invoice", "", "invoice ID (pre-due)")
	fs.StringVar(&r.Amount, "amount", "", "amount due as a decimal, e.g. 49.90 (pre-due)")
	fs.StringVar(&r.Currency, "currency", "", "ISO 4217 currency code, e.g. EUR (pre-due)")
	fs.StringVar(&r.Card.Network, "card-network", "", "card network, e.g. visa (card-expiry)")
	fs.StringVar(&r.Card.Fingerprint, "card-fingerprint", "", "card fingerprint (card-expiry)")
	fs.StringVar(&r.Policy, "policy", "", "reminder policy name (default: chosen by the policy selection, else \"default\")")
	out := fs.addOutput()
	if err := parse(fs, args, "tenant", "kind", "customer", "anchor"); err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339, *anchor)
	if err != nil {
		return usagef("-anchor %q is not an RFC 3339 time such as 2026-12-01T00:00:00Z", *anchor)
	}
	r.Anchor = at
	opts, err := a.clientOptions()
	if err != nil {
		return err
	}
	// The API's rules, checked before connecting.
	in, err := opts.Rules.Reminder(r.Input())
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	if err := starter.CheckPolicyName(opts.Policies, r.Policy); err != nil {
		return &usageError{msg: err.Error()}
	}
	return a.withClientOptions(ctx, opts, func(c *starter.Client) error {
		res, err := c.StartReminders(ctx, in)
		if err != nil {
			return err
		}
		return a.emit(*out, res, func(w io.Writer) {
			fmt.Fprintf(w, "RUN\t%s\nRUN ID\t%s\nSTATUS\tdunning reminders status -id %s\n", res.WorkflowID, res.RunID, res.WorkflowID)
		})
	})
}

// remindersStatus shows a reminder run, as GET /v1/reminders/{id} does.
func (a *app) remindersStatus(ctx context.Context, args []string) error {
	fs := a.newFlagSet("reminders status", "-id ID [-o table|json]")
	id := fs.String("id", "", "the reminder run's ID, e.g. acme/pre-due/inv-1001 (the reminders/ prefix may be left out) (required)")
	out := fs.addOutput()
	if err := parse(fs, args, "id"); err != nil {
		return err
	}
	return a.withClient(ctx, func(c *starter.Client) error {
		st, err := c.ReminderStatus(ctx, reminderID(*id))
		if err != nil {
			return err
		}
		return a.emit(*out, st, func(w io.Writer) { reminderTable(w, st) })
	})
}

// remindersCancel stops a reminder run, as DELETE /v1/reminders/{id} does.
func (a *app) remindersCancel(ctx context.Context, args []string) error {
	fs := a.newFlagSet("reminders cancel", "-id ID -reason R [-by WHO] [-o table|json]")
	id := fs.String("id", "", "the reminder run's ID, e.g. acme/pre-due/inv-1001 (required)")
	var req workflows.CancelRequest
	fs.StringVar(&req.Reason, "reason", "", "why the reminders stop; recorded in the run's history (required)")
	fs.StringVar(&req.By, "by", "", "who cancels, e.g. an operator's email")
	out := fs.addOutput()
	if err := parse(fs, args, "id", "reason"); err != nil {
		return err
	}
	if err := validation.Cancel(req); err != nil {
		return &usageError{msg: err.Error()}
	}
	wid := reminderID(*id)
	return a.withClient(ctx, func(c *starter.Client) error {
		if err := c.CancelReminders(ctx, wid, req); err != nil {
			return err
		}
		return a.emit(*out, map[string]string{"workflow_id": wid}, func(w io.Writer) { fmt.Fprintf(w, "cancel sent to %s\n", wid) })
	})
}

func reminderTable(w io.Writer, st workflows.ReminderStatus) {
	fmt.Fprintf(w, "RUN\t%s\n", st.WorkflowID)
	fmt.Fprintf(w, "KIND\t%s\n", st.Kind)
	fmt.Fprintf(w, "CUSTOMER\t%s\n", dash(st.CustomerID))
	if st.InvoiceID != "" {
		fmt.Fprintf(w, "INVOICE\t%s\n", st.InvoiceID)
	}
	fmt.Fprintf(w, "ANCHOR\t%s\n", when(st.Anchor))
	fmt.Fprintf(w, "POLICY\t%s\n", dash(st.Policy))
	fmt.Fprintf(w, "STATE\t%s\n", st.State)
	fmt.Fprintf(w, "STARTED\t%s\n", when(st.StartedAt))
	if !st.ClosedAt.IsZero() {
		fmt.Fprintf(w, "CLOSED\t%s: %s\n", when(st.ClosedAt), dash(st.ClosingReason))
	}
	if len(st.Sent) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "SENT\tCHANNEL\tSTATUS\tAT\tDETAIL")
		for _, m := range st.Sent {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Key, m.Channel, m.Status, when(m.At), dash(m.Detail))
		}
	}
	if len(st.Pending) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "PENDING\tAT\tCHANNELS")
		for _, p := range st.Pending {
			chans := make([]string, len(p.Channels))
			for i, c := range p.Channels {
				chans[i] = string(c)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", p.Key, when(p.At), strings.Join(chans, ","))
		}
	}
}
