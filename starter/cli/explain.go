package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dunningco/dunning/audit"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/workflows"
)

// explain prints a run's audit trail: every input, decision, charge,
// message, service change, billing event and refusal in time order, from
// the ledger (DATABASE_URL), and from the live run (Temporal) its next step
// and what would change it.
func (a *app) explain(ctx context.Context, args []string) error {
	fs := a.newFlagSet("explain", "-tenant T -invoice I [-o table|json] [-live=false]")
	run := addRunFlags(fs)
	output := fs.String("o", "table", `"table" for people, "json" for the timeline as the API answers it`)
	live := fs.Bool("live", true, "also ask the running workflow for its next step (needs Temporal); false reads the ledger only")
	if err := parse(fs, args, "tenant", "invoice"); err != nil {
		return err
	}
	if err := run.check(); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usagef("-o %q is neither table nor json", *output)
	}
	var st *workflows.Status
	if *live {
		err := a.withClient(ctx, func(c *starter.Client) error {
			s, err := c.Status(ctx, *run.tenant, *run.invoice)
			if err == nil {
				st = &s
			}
			return err
		})
		if err != nil {
			fmt.Fprintf(a.stderr, "dunning explain: the live run did not answer (%v); showing the ledger only\n", err)
		}
	}
	store, err := ledger.Open(ctx, a.databaseURL())
	if err != nil {
		return fmt.Errorf("open the ledger at DATABASE_URL: %w", err)
	}
	defer store.Close()
	t, err := audit.Build(ctx, store, workflows.WorkflowID(*run.tenant, *run.invoice), st)
	if err != nil {
		return err
	}
	if *output == "json" {
		return a.printJSON(t)
	}
	return audit.WriteText(a.stdout, t)
}

// auditCmd exports audit trails and the card-network compliance report
// from the ledger (DATABASE_URL):
//
//	dunning audit export -tenant T [-from F] [-to T] [-format json|csv]
//	dunning audit compliance -tenant T [-from F] [-to T] [-format csv|json]
func (a *app) auditCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "compliance") {
		return usagef(`audit needs a subcommand: "export" or "compliance"`)
	}
	sub, args := args[0], args[1:]
	formats := map[string][]string{"export": {"json", "csv"}, "compliance": {"csv", "json"}}[sub]
	fs := a.newFlagSet("audit "+sub, "-tenant T [-from TIME] [-to TIME] [-format "+strings.Join(formats, "|")+"] [-limits-from-env]")
	tenant := fs.String("tenant", "", "tenant whose runs are read (required)")
	fromFlag := fs.String("from", "", "start of the period, RFC 3339 or a date (default 30 days before -to)")
	toFlag := fs.String("to", "", "end of the period, exclusive, RFC 3339 or a date (default now)")
	format := fs.String("format", formats[0], "output format: "+strings.Join(formats, " or "))
	out := fs.String("out", "-", `file to write, "-" for standard output`)
	if err := parse(fs, args, "tenant"); err != nil {
		return err
	}
	if *format != formats[0] && *format != formats[1] {
		return usagef("-format %q is not one of %s", *format, strings.Join(formats, ", "))
	}
	to := time.Now().UTC()
	var err error
	if *toFlag != "" {
		if to, err = intake.ParseTime(*toFlag); err != nil {
			return usagef("-to: %v", err)
		}
	}
	from := to.Add(-audit.ComplianceWindow)
	if *fromFlag != "" {
		if from, err = intake.ParseTime(*fromFlag); err != nil {
			return usagef("-from: %v", err)
		}
	}
	limit := audit.MaxExportWindow
	if sub == "compliance" {
		limit = audit.ComplianceWindow
	}
	if err := audit.CheckWindow(from, to, limit); err != nil {
		return usagef("%v", err)
	}
	store, err := ledger.Open(ctx, a.databaseURL())
	if err != nil {
		return fmt.Errorf("open the ledger at DATABASE_URL: %w", err)
	}
	defer store.Close()
	w := a.stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if sub == "export" {
		rows, err := audit.Export(ctx, store, *tenant, from, to)
		if err != nil {
			return err
		}
		if *format == "csv" {
			return audit.WriteCSV(w, rows)
		}
		return audit.WriteJSON(w, rows)
	}
	lim, err := a.limits()
	if err != nil {
		return err
	}
	rows, err := audit.Compliance(ctx, store, *tenant, from, to, lim)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	return audit.WriteComplianceCSV(w, rows, from, to)
}

// limits are the card-network limits the workers apply: the defaults, with
// VISA_MAX_REATTEMPTS as the workers read it.
func (a *app) limits() (ledger.Limits, error) {
	lim := ledger.DefaultLimits()
	if v := a.getenv("VISA_MAX_REATTEMPTS"); v != "" {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 1 {
			return lim, usagef("VISA_MAX_REATTEMPTS %q is not a positive number", v)
		}
		lim.VisaMaxReattempts = n
	}
	return lim, nil
}

// auditExport and auditCompliance are the audit group's subcommands in the
// dispatcher's table.
func (a *app) auditExport(ctx context.Context, args []string) error {
	return a.auditCmd(ctx, append([]string{"export"}, args...))
}

func (a *app) auditCompliance(ctx context.Context, args []string) error {
	return a.auditCmd(ctx, append([]string{"compliance"}, args...))
}
