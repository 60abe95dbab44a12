package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// databaseURL is the ledger the CLI and serve read: DATABASE_URL, else the
// local default.
func (a *app) databaseURL() string {
	if u := a.getenv("DATABASE_URL"); u != "" {
		return u
	}
	return ledger.DefaultURL
}

// list prints a tenant's runs from the ledger's read model: it needs no
// worker and no Temporal connection, only DATABASE_URL.
func (a *app) list(ctx context.Context, args []string) error {
	fs := a.newFlagSet("list", "-tenant T [-phase P] [-customer C] [-limit N] [-cursor C] [-o table|json]")
	tenant := fs.String("tenant", "", "tenant whose runs are listed (required)")
	phase := fs.String("phase", "", "only runs in this phase, e.g. needs_attention")
	customer := fs.String("customer", "", "only this customer's runs")
	limit := fs.Int("limit", ledger.DefaultListLimit, fmt.Sprintf("runs per page, at most %d", ledger.MaxListLimit))
	cursor := fs.String("cursor", "", "continue after the page that printed this cursor")
	format := fs.addOutput()
	fs.StringVar(format, "format", formatTable, "the same as -o (its earlier name); json prints one JSON object per line")
	if err := parse(fs, args, "tenant"); err != nil {
		return err
	}
	// The API's rules, so the CLI refuses what GET /v1/runs refuses.
	params := url.Values{"tenant": {*tenant}, "limit": {strconv.Itoa(*limit)}}
	for name, v := range map[string]string{"phase": *phase, "customer": *customer, "cursor": *cursor} {
		if v != "" {
			params.Set(name, v)
		}
	}
	q, err := intake.ParseListQuery(params)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	store, err := ledger.Open(ctx, a.databaseURL())
	if err != nil {
		return fmt.Errorf("open the ledger at DATABASE_URL: %w", err)
	}
	defer store.Close()
	page, err := store.ListRunStatus(ctx, q)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(a.stdout)
		for _, rs := range page.Runs {
			if err := enc.Encode(intake.NewListedRun(rs)); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
		}
	} else if err := a.printRunTable(page.Runs); err != nil {
		return err
	}
	if next := page.Next.String(); next != "" {
		// On stderr, so JSON lines on stdout stay pure.
		fmt.Fprintf(a.stderr, "more runs: add -cursor %s\n", next)
	}
	return nil
}

func (a *app) printRunTable(runs []ledger.RunStatus) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INVOICE\tCUSTOMER\tPHASE\tSERVICE\tATTEMPTS\tNEXT\tUPDATED")
	for _, rs := range runs {
		next := "-"
		switch {
		case rs.AttentionCause != "":
			next = "attention: " + rs.AttentionCause
		case rs.NextAction != "" && !rs.NextAt.IsZero():
			next = rs.NextAction + " " + rs.NextAt.Format(time.RFC3339)
		case rs.NextAction != "":
			next = rs.NextAction
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", rs.InvoiceID, rs.CustomerID, rs.Phase, rs.ServiceState,
			rs.Attempts, next, rs.UpdatedAt.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// resume puts a run that needs attention back on schedule.
func (a *app) resume(ctx context.Context, args []string) error {
	fs := a.newFlagSet("resume", "-tenant T -invoice I [-reason R] [-by WHO] [-o table|json]")
	run := addRunFlags(fs)
	out := fs.addOutput()
	var req workflows.ResumeRequest
	fs.StringVar(&req.Reason, "reason", "", "what was fixed; recorded with the hold")
	fs.StringVar(&req.By, "by", "", "who resumes, e.g. an operator's email")
	if err := parse(fs, args, "tenant", "invoice"); err != nil {
		return err
	}
	if err := run.check(); err != nil {
		return err
	}
	if err := validation.Resume(req); err != nil {
		return &usageError{msg: err.Error()}
	}
	return a.withClient(ctx, func(c *starter.Client) error {
		if err := c.Resume(ctx, *run.tenant, *run.invoice, req); err != nil {
			return err
		}
		return a.sent(*out, "resume sent", *run.tenant, *run.invoice)
	})
}
