// Package cli is the dunning command line: it serves the HTTP intake API and
// lets operators start, inspect and steer dunning runs.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/worker"
	"github.com/dunningco/dunning/workflows"
)

// Exit codes, as "dunning --help" documents them under EXIT STATUS.
const (
	ExitOK          = 0
	ExitFailure     = 1 // the command ran and failed for another reason
	ExitUsage       = 2 // the command line or its input is wrong; nothing was done
	ExitNotFound    = 3 // the run, reminder run, event or key does not exist
	ExitConflict    = 4 // the run has ended, holds another amount, or refused the request
	ExitUnavailable = 5 // Temporal, its workers or the ledger did not answer in time; try again
)

// Listen addresses of serve when -addr and -public-addr are not given.
const (
	// EnvAPIAddr is the private API's address (runs, declines, reminders).
	EnvAPIAddr = "DUNNING_API_ADDR"
	// EnvPublicAddr is the public surface's address (webhooks, card-update
	// links, the codec endpoint).
	EnvPublicAddr = "DUNNING_PUBLIC_ADDR"
	// EnvHTTPAddr is the private API's address before DUNNING_API_ADDR; it
	// is read when DUNNING_API_ADDR is unset.
	EnvHTTPAddr = "HTTP_ADDR"
)

// command is one entry of the dispatcher: a name, what it does in one
// line, and the function that runs it, or, for a group such as keys, its
// subcommands. Help, completion and dispatch are all made from this table,
// so a new command is one line here and a function in its own file.
type command struct {
	name    string
	summary string
	run     func(a *app, ctx context.Context, args []string) error
	subs    []command
}

// commands is the dispatcher's table, in the order help lists them.
var commands = []command{
	{name: "serve", summary: "run the HTTP API: the private API and the public surface", run: (*app).serve},
	{name: "start", summary: "report a failed payment; starts the invoice's run or adds the decline to the open one", run: (*app).start},
	{name: "status", summary: "show where a run stands: phase, attempts, messages, next step", run: (*app).status},
	{name: "list", summary: "list a tenant's runs from the ledger (no worker needed)", run: (*app).list},
	{name: "cancel", summary: "cancel a run", run: (*app).cancel},
	{name: "expedite", summary: "retry the charge now and show the attempt (the charging rules still apply)", run: (*app).expedite},
	{name: "card-updated", summary: "tell a run the customer has a new payment method", run: (*app).cardUpdated},
	{name: "paid", summary: "tell a run the invoice was paid outside dunning", run: (*app).paid},
	{name: "resume", summary: "put a run that needs attention back on schedule", run: (*app).resume},
	{name: "reminders", summary: "reminder runs before an invoice falls due or a card expires", subs: []command{
		{name: "start", summary: "start reminders for an invoice due date or an expiring card", run: (*app).remindersStart},
		{name: "status", summary: "show a reminder run's sent and pending reminders", run: (*app).remindersStatus},
		{name: "cancel", summary: "stop a reminder run", run: (*app).remindersCancel},
	}},
	{name: "analytics", summary: "recovery analytics of a tenant's runs, from the ledger", run: (*app).analyticsCmd},
	{name: "forecast", summary: "12 months of revenue with no, the entered and the measured recovery", run: (*app).forecastCmd},
	{name: "explain", summary: "a run's audit trail: every input, decision, charge, message, service change and refusal, and what comes next", run: (*app).explain},
	{name: "audit", summary: "audit export (trails of a period, json or csv) and audit compliance (the card-network report)", subs: []command{
		{name: "export", summary: "every timeline entry of a tenant's runs in a period, as JSON or CSV", run: (*app).auditExport},
		{name: "compliance", summary: "the card-network compliance report over at most 30 days, as CSV or JSON", run: (*app).auditCompliance},
	}},
	{name: "card-link", summary: "check a card-update link token: its run, customer and expiry", run: (*app).cardLink},
	{name: "events", summary: "billing events in the ledger's outbox", subs: []command{
		{name: "list", summary: "list a tenant's events, newest first", run: (*app).eventsList},
		{name: "redeliver", summary: "send a delivered, failed or skipped event again, with the same webhook-id", run: (*app).eventsRedeliver},
	}},
	{name: "keys", summary: "the private API's tenant keys", subs: []command{
		{name: "create", summary: "issue a key; it is printed once", run: (*app).keysCreate},
		{name: "list", summary: "a tenant's keys with their scopes, state and last use", run: (*app).keysList},
		{name: "rotate", summary: "issue a replacement; the old key works for -grace", run: (*app).keysRotate},
		{name: "revoke", summary: "end a key at once", run: (*app).keysRevoke},
	}},
	{name: "openapi", summary: "print the HTTP API's OpenAPI document, or its operations as a table", run: (*app).openAPI},
	{name: "completion", summary: "print a bash or zsh completion script", run: (*app).completion},
	{name: "help", summary: "show this manual"},
}

// Run runs the command line args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, dial: starter.DialFromEnv, getenv: os.Getenv}
	return a.run(ctx, args)
}

// app holds what commands need from the process, so tests can replace it.
type app struct {
	stdout, stderr io.Writer
	dial           func(context.Context) (client.Client, error)
	getenv         func(string) string
	// cmds is the dispatcher's table (commands); describe, when set,
	// makes parse record a command's flags and stop before it runs, which
	// is how completion learns every command's flags.
	cmds     []command
	describe func(fs *flagSet)
}

// usageError is a wrong command line; it exits with ExitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelpShown ends a command whose help was asked for; errDescribed one
// whose flags were recorded (app.describe).
var (
	errHelpShown = errors.New("help shown")
	errDescribed = errors.New("flags described")
)

func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

func (a *app) run(ctx context.Context, args []string) int {
	if a.cmds == nil {
		a.cmds = commands
	}
	if len(args) == 0 {
		fmt.Fprint(a.stderr, a.manual())
		return ExitUsage
	}
	if isHelp(args[0]) {
		fmt.Fprint(a.stdout, a.manual())
		return ExitOK
	}
	path, cmd, rest, err := a.find(args)
	if err != nil {
		fmt.Fprintf(a.stderr, "dunning: %v\n", err)
		return ExitUsage
	}
	if cmd.run == nil {
		// A group named without a subcommand, or asking for its help.
		if len(rest) > 0 && isHelp(rest[0]) {
			fmt.Fprint(a.stdout, groupHelp(path, cmd))
			return ExitOK
		}
		fmt.Fprint(a.stderr, groupHelp(path, cmd))
		return ExitUsage
	}
	err = cmd.run(a, ctx, rest)
	switch code := exitCode(err); code {
	case ExitOK:
		return ExitOK
	case ExitUsage:
		// Invalid input is the caller's to fix, whichever check found it.
		fmt.Fprintf(a.stderr, "dunning %s: %v (see \"dunning %s -h\")\n", path, err, path)
		return code
	default:
		fmt.Fprintf(a.stderr, "dunning %s: %v\n", path, err)
		return code
	}
}

// find walks the table down args: "keys create -tenant T" is the keys
// group's create command with the flags after it.
func (a *app) find(args []string) (path string, cmd command, rest []string, err error) {
	table := a.cmds
	var names []string
	for i, arg := range args {
		j := slices.IndexFunc(table, func(c command) bool { return c.name == arg })
		if j < 0 {
			if len(names) == 0 {
				return "", command{}, nil, fmt.Errorf("unknown command %q; run \"dunning help\" for the list", arg)
			}
			return "", command{}, nil, fmt.Errorf("unknown command %q of dunning %s; use %s", arg, strings.Join(names, " "), subNames(table))
		}
		names = append(names, arg)
		cmd = table[j]
		if cmd.subs == nil || i == len(args)-1 || isHelp(args[i+1]) {
			return strings.Join(names, " "), cmd, args[i+1:], nil
		}
		table = cmd.subs
	}
	return strings.Join(names, " "), cmd, nil, nil
}

func subNames(cmds []command) string {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// groupHelp lists a group's subcommands.
func groupHelp(path string, group command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: dunning %s <%s> [flags]\n\n%s.\n\n", path, strings.ReplaceAll(subNames(group.subs), ", ", "|"), capitalize(group.summary))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range group.subs {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "\nRun \"dunning %s <command> -h\" for the command's flags.\n", path)
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// exitCode is the documented exit status of a command's error.
func exitCode(err error) int {
	var usageErr *usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown), errors.Is(err, errDescribed):
		return ExitOK
	case errors.As(err, &usageErr), errors.Is(err, starter.ErrInvalid), errors.Is(err, apikeys.ErrInvalid):
		return ExitUsage
	case errors.Is(err, starter.ErrRunNotFound), errors.Is(err, ledger.ErrNotFound), errors.Is(err, apikeys.ErrNotFound), errors.Is(err, errNotFound):
		return ExitNotFound
	case errors.Is(err, starter.ErrRunClosed), errors.Is(err, starter.ErrConflict), errors.Is(err, starter.ErrRejected),
		errors.Is(err, starter.ErrTooManyReports), errors.Is(err, errConflict):
		return ExitConflict
	case unavailable(err):
		return ExitUnavailable
	}
	return ExitFailure
}

// errNotFound and errConflict mark the CLI's own not-found and conflict
// answers (a card link of a closed run, an unknown event).
var (
	errNotFound = errors.New("not found")
	errConflict = errors.New("conflict")
)

// unavailable reports whether err means "not now": a timeout, or Temporal,
// its workers or the ledger not answering.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if _, ok := errors.AsType[*serviceerror.Unavailable](err); ok {
		return true
	}
	if _, ok := errors.AsType[*serviceerror.DeadlineExceeded](err); ok {
		return true
	}
	if _, ok := errors.AsType[*serviceerror.FailedPrecondition](err); ok {
		// No worker polls the task queue.
		return true
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	return false
}

// flagSet is a subcommand's flags and how to print its help.
type flagSet struct {
	*flag.FlagSet
	name, synopsis string
	help           io.Writer
	app            *app
	// output is the -o flag's value, when the command has one.
	output *string
}

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// addOutput gives the command the -o flag every command with output has.
func (fs *flagSet) addOutput() *string {
	fs.output = fs.String("o", formatTable, `output: "table" for people, "json" for programs`)
	return fs.output
}

// newFlagSet makes a subcommand's flag set; synopsis follows the command
// name in its usage line.
func (a *app) newFlagSet(name, synopsis string) *flagSet {
	fs := flag.NewFlagSet("dunning "+name, flag.ContinueOnError)
	// Parse errors are reported as one line by run; help is printed by parse.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, name: name, synopsis: synopsis, help: a.stdout, app: a}
}

// parse parses flags, refuses positional arguments and checks that the
// required flags have values.
func parse(fs *flagSet, args []string, required ...string) error {
	if fs.app != nil && fs.app.describe != nil {
		fs.app.describe(fs)
		return errDescribed
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(fs.help, "Usage: dunning %s %s\n\nFlags:\n", fs.name, fs.synopsis)
			fs.SetOutput(fs.help)
			fs.PrintDefaults()
			return errHelpShown
		}
		return &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q; all input is given as flags", fs.Arg(0))
	}
	if fs.output != nil && *fs.output != formatTable && *fs.output != formatJSON {
		return usagef("-o %q is neither table nor json", *fs.output)
	}
	return requireFlags(fs, required...)
}

// requireFlags reports every listed flag left empty.
func requireFlags(fs *flagSet, names ...string) error {
	var missing []string
	for _, name := range names {
		if strings.TrimSpace(fs.Lookup(name).Value.String()) == "" {
			missing = append(missing, "-"+name)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return usagef("%s is required", missing[0])
	default:
		return usagef("%s are required", strings.Join(missing, ", "))
	}
}

// runFlags are the flags naming one run.
type runFlags struct{ tenant, invoice *string }

func addRunFlags(fs *flagSet) runFlags {
	return runFlags{
		tenant:  fs.String("tenant", "", "tenant (billing system account) that owns the invoice (required)"),
		invoice: fs.String("invoice", "", "invoice ID (required)"),
	}
}

func (r runFlags) check() error {
	if err := starter.ValidateRunKey(*r.tenant, *r.invoice); err != nil {
		return &usageError{msg: err.Error()}
	}
	return nil
}

// clientOptions are the starter options the environment configures: the
// workers' task queue and gateways, amount limits and policies, the same
// for the CLI as for `dunning serve`.
func (a *app) clientOptions() (starter.Options, error) {
	cfg, err := worker.IntakeFromEnv(a.getenv)
	if err != nil {
		return starter.Options{}, err
	}
	policies, err := starter.PoliciesFromEnv(a.getenv)
	if err != nil {
		return starter.Options{}, err
	}
	return starter.Options{TaskQueue: cfg.TaskQueue, Policies: policies, Rules: cfg.Rules}, nil
}

// withClient connects to Temporal and runs fn with a starter client.
func (a *app) withClient(ctx context.Context, fn func(*starter.Client) error) error {
	opts, err := a.clientOptions()
	if err != nil {
		return err
	}
	return a.withClientOptions(ctx, opts, fn)
}

func (a *app) withClientOptions(ctx context.Context, opts starter.Options, fn func(*starter.Client) error) error {
	tc, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	return fn(starter.NewClient(tc, opts))
}

// emit writes v as indented JSON (-o json) or as the table that table
// writes (-o table), aligned in columns.
func (a *app) emit(format string, v any, table func(w io.Writer)) error {
	if format == formatJSON {
		return a.printJSON(v)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func (a *app) start(ctx context.Context, args []string) error {
	fs := a.newFlagSet("start", "(-f report.json | -tenant T -invoice I -customer C -amount A -currency CUR -gateway G -code CODE [flags])")
	file := fs.String("f", "", "read the decline report from this JSON file (the body of POST /v1/declines); no other flags then")
	var r intake.DeclineReport
	fs.StringVar(&r.Tenant, "tenant", "", "tenant that owns the invoice")
	fs.StringVar(&r.InvoiceID, "invoice", "", "invoice ID")
	fs.StringVar(&r.Customer.ID, "customer", "", "customer ID")
	fs.StringVar(&r.Customer.Email, "email", "", "customer email address")
	fs.StringVar(&r.Customer.Phone, "phone", "", "customer phone number in E.164 form, e.g. +48123456789")
	fs.StringVar(&r.Customer.Locale, "locale", "", "customer locale (BCP 47), e.g. fr-FR")
	fs.StringVar(&r.Customer.TimeZone, "tz", "", "customer IANA time zone, e.g. Europe/Warsaw")
	fs.StringVar(&r.Amount, "amount", "", "amount due as a decimal, e.g. 49.90")
	fs.StringVar(&r.Currency, "currency", "", "ISO 4217 currency code, e.g. EUR")
	fs.StringVar(&r.PaymentMethod, "payment-method", "", "gateway reference of the saved payment method to retry")
	fs.StringVar(&r.Decline.Gateway, "gateway", "", "payment gateway that declined, e.g. stripe")
	fs.StringVar(&r.Decline.Code, "code", "", "decline code, e.g. insufficient_funds")
	fs.StringVar(&r.Decline.AdviceCode, "advice", "", "gateway advice code, e.g. try_again_later")
	fs.StringVar(&r.Decline.ID, "decline-id", "", "gateway reference of the failed charge (repeats are recorded once)")
	fs.StringVar(&r.Decline.Message, "message", "", "gateway decline message")
	fs.StringVar(&r.Policy, "policy", "", "dunning policy name (default: chosen by the policy selection, else \"default\")")
	fs.StringVar(&r.Plan, "plan", "", "customer's plan, for policy selection when -policy is not given")
	fs.StringVar(&r.Segment, "segment", "", "customer's segment, for policy selection when -policy is not given")
	out := fs.addOutput()

	if err := parse(fs, args); err != nil {
		return err
	}
	if *file != "" {
		var others []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "f" && f.Name != "o" {
				others = append(others, "-"+f.Name)
			}
		})
		if len(others) > 0 {
			return usagef("-f cannot be combined with %s; put every field in the file", strings.Join(others, ", "))
		}
		var err error
		if r, err = readReport(*file); err != nil {
			return err
		}
	} else if err := requireFlags(fs, "tenant", "invoice", "customer", "amount", "currency", "gateway", "code"); err != nil {
		return err
	}
	opts, err := a.clientOptions()
	if err != nil {
		return err
	}
	// The intake's rules, checked before connecting: bad input never
	// needs a cluster to be refused.
	in, err := opts.Rules.Decline(r.Input())
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	in.Decline.Source = "cli"
	if err := starter.CheckPolicyName(opts.Policies, r.Policy); err != nil {
		return &usageError{msg: err.Error()}
	}
	return a.withClientOptions(ctx, opts, func(c *starter.Client) error {
		res, err := c.Start(ctx, in)
		if err != nil {
			return err
		}
		ans := startAnswer{WorkflowID: res.WorkflowID, RunID: res.RunID, StatusURL: statusURL(in.Tenant, in.InvoiceID)}
		return a.emit(*out, ans, func(w io.Writer) {
			fmt.Fprintf(w, "RUN\t%s\nRUN ID\t%s\nSTATUS\tdunning status -tenant %s -invoice %s\n", ans.WorkflowID, ans.RunID, in.Tenant, in.InvoiceID)
		})
	})
}

// readReport reads a decline report file; a malformed one is a usage error.
func readReport(path string) (intake.DeclineReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return intake.DeclineReport{}, fmt.Errorf("read decline report: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, intake.MaxBodyBytes+1))
	if err != nil {
		return intake.DeclineReport{}, fmt.Errorf("read decline report %s: %w", path, err)
	}
	if len(data) > intake.MaxBodyBytes {
		return intake.DeclineReport{}, usagef("%s: a decline report is at most %d bytes", path, intake.MaxBodyBytes)
	}
	r, err := intake.DecodeDeclineReport(data)
	if err != nil {
		return intake.DeclineReport{}, usagef("%s: %v", path, err)
	}
	return r, nil
}

func (a *app) status(ctx context.Context, args []string) error {
	fs := a.newFlagSet("status", "-tenant T -invoice I [-o table|json]")
	run := addRunFlags(fs)
	out := fs.addOutput()
	if err := parse(fs, args, "tenant", "invoice"); err != nil {
		return err
	}
	if err := run.check(); err != nil {
		return err
	}
	return a.withClient(ctx, func(c *starter.Client) error {
		st, err := c.Status(ctx, *run.tenant, *run.invoice)
		if err != nil {
			return err
		}
		return a.emit(*out, st, func(w io.Writer) { statusTable(w, st) })
	})
}

func (a *app) cancel(ctx context.Context, args []string) error {
	fs := a.newFlagSet("cancel", "-tenant T -invoice I -reason R [-by WHO] [-o table|json]")
	run := addRunFlags(fs)
	out := fs.addOutput()
	var req workflows.CancelRequest
	fs.StringVar(&req.Reason, "reason", "", "why the run is cancelled; recorded in its history (required)")
	fs.StringVar(&req.By, "by", "", "who cancels, e.g. an operator's email")
	if err := parse(fs, args, "tenant", "invoice", "reason"); err != nil {
		return err
	}
	if err := run.check(); err != nil {
		return err
	}
	return a.withClient(ctx, func(c *starter.Client) error {
		if err := c.Cancel(ctx, *run.tenant, *run.invoice, req); err != nil {
			return err
		}
		return a.sent(*out, "cancel sent", *run.tenant, *run.invoice)
	})
}

func (a *app) expedite(ctx context.Context, args []string) error {
	fs := a.newFlagSet("expedite", "-tenant T -invoice I [-reason R] [-by WHO] [-o table|json]")
	run := addRunFlags(fs)
	out := fs.addOutput()
	var req workflows.ExpediteRequest
	fs.StringVar(&req.Reason, "reason", "", "why the charge is retried early")
	fs.StringVar(&req.By, "by", "", "who asks, e.g. an operator's email")
	if err := parse(fs, args, "tenant", "invoice"); err != nil {
		return err
	}
	if err := run.check(); err != nil {
		return err
	}
	return a.withClient(ctx, func(c *starter.Client) error {
		rec, err := c.Expedite(ctx, *run.tenant, *run.invoice, req)
		if err != nil {
			return err
		}
		return a.emit(*out, rec, func(w io.Writer) { attemptTable(w, rec) })
	})
}

func (a *app) cardUpdated(ctx context.Context, args []string) error {
	fs := a.newFlagSet("card-updated", "-tenant T -invoice I [-payment-method PM] [-o table|json]")
	run := addRunFlags(fs)
	out := fs.addOutput()
	var req workflows.PaymentMethodUpdate
	fs.StringVar(&req.PaymentMethod, "payment-method", "", "new payment method to retry; empty keeps the current one (the gateway's default changed)")
	if err := parse(fs, args, "tenant", "invoice"); err != nil {
		return err
	}
	if err := run.check(); err != nil {
		return err
	}
	return a.withClient(ctx, func(c *starter.Client) error {
		if err := c.PaymentMethodUpdated(ctx, *run.tenant, *run.invoice, req); err != nil {
			return err
		}
		return a.sent(*out, "payment method update sent", *run.tenant, *run.invoice)
	})
}

func (a *app) paid(ctx context.Context, args []string) error {
	fs := a.newFlagSet("paid", "-tenant T -invoice I [-reference REF] [-note TEXT] [-o table|json]")
	run := addRunFlags(fs)
	out := fs.addOutput()
	var req workflows.PaidOutOfBand
	fs.StringVar(&req.Reference, "reference", "", "payment reference, e.g. a bank transfer ID")
	fs.StringVar(&req.Note, "note", "", "free-text note recorded with the payment")
	if err := parse(fs, args, "tenant", "invoice"); err != nil {
		return err
	}
	if err := run.check(); err != nil {
		return err
	}
	return a.withClient(ctx, func(c *starter.Client) error {
		if err := c.Paid(ctx, *run.tenant, *run.invoice, req); err != nil {
			return err
		}
		return a.sent(*out, "payment sent", *run.tenant, *run.invoice)
	})
}
