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

	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/worker"
	"github.com/dunningco/dunning/workflows"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // the command line is wrong; nothing was done
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

const usage = `Usage: dunning <command> [flags]

Commands:
  serve          run the HTTP intake API
  start          report a failed payment; starts the invoice's dunning run or
                 adds the decline to the open one
  status         print a run's status as JSON
  cancel         cancel a run
  expedite       retry the charge now and print the attempt
  card-updated   tell a run the customer has a new payment method
  paid           tell a run the invoice was paid outside dunning
  resume         put a run that needs attention back on schedule
  list           list a tenant's runs from the ledger (no worker needed)
  events         list billing events, redeliver one (the ledger's outbox)
  keys           create, list, rotate and revoke the API's tenant keys
  explain        print a run's audit trail: every input, decision, charge,
                 message, service change and refusal, and what comes next
  audit          export audit trails (audit export) and the card-network
                 compliance report (audit compliance) from the ledger
  help           show this help

Run "dunning <command> -h" for the command's flags.

Environment:
  TEMPORAL_ADDRESS     Temporal frontend host:port (default 127.0.0.1:7233)
  TEMPORAL_NAMESPACE   Temporal namespace (default "default")
  TEMPORAL_API_KEY     API key for Temporal Cloud; enables TLS
  TEMPORAL_TLS_CERT    client certificate file for mTLS
  TEMPORAL_TLS_KEY     the certificate's private key file
  DUNNING_API_ADDR     serve's private API address, needing API keys
                       (default 127.0.0.1:8080; HTTP_ADDR is read when unset)
  DUNNING_PUBLIC_ADDR  serve's public address: webhooks, card-update links,
                       /codec (default ":8081")
  DATABASE_URL         the ledger: API keys, list, serve's read model and
                       webhooks (default the local dunning database)
  DUNNING_KEY_PEPPER   server secret API keys are hashed with (at least 32
                       bytes; or DUNNING_KEY_PEPPER_FILE); serve and keys need
                       it, and changing it invalidates every key
  DUNNING_API_RATE, DUNNING_API_BURST
                       each API key's rate limit in requests a second and its
                       burst (default 50 and 100; 0 turns it off)
  DUNNING_STATUS_TIMEOUT
                       how long serve's status waits for the run before it
                       answers from the ledger (default 2s)
  DUNNING_TASK_QUEUE   task queue runs are started on (default "dunning"; the
                       workers' own)
  DUNNING_MAX_AMOUNTS  largest amount accepted per currency, e.g.
                       "EUR=1000000.00,JPY=100000000" (default 99999999999
                       minor units in every currency)
  DUNNING_POLICY_DIR   directory of policy files over the built-in ones
  STRIPE_API_KEY, HTTP_GATEWAY_URL
                       as set for the workers: a decline may name only the
                       gateways they configure (the simulator always)
  DUNNING_CODEC_KEYS   payload encryption keys, newest first ("k2:<base64>,
                       k1:<base64>"; or DUNNING_CODEC_KEYS_FILE), the workers'
                       own; without them, commands that reach Temporal
                       refuse unless DUNNING_CODEC_DISABLED=true
  DUNNING_CODEC_TOKEN  serve's codec endpoint (/codec) for the Web UI and the
                       temporal CLI; DUNNING_CODEC_ORIGINS lists the Web UI
                       origins allowed to call it
`

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
}

type command struct {
	name string
	run  func(a *app, ctx context.Context, args []string) error
}

var commands = []command{
	{"serve", (*app).serve},
	{"start", (*app).start},
	{"status", (*app).status},
	{"cancel", (*app).cancel},
	{"expedite", (*app).expedite},
	{"card-updated", (*app).cardUpdated},
	{"paid", (*app).paid},
	{"resume", (*app).resume},
	{"list", (*app).list},
	{"events", (*app).events},
	{"keys", (*app).keys},
	{"explain", (*app).explain}, {"audit", (*app).auditCmd},
}

// usageError is a wrong command line; it exits with ExitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelpShown ends a command whose help was asked for.
var errHelpShown = errors.New("help shown")

func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usage)
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(a.stdout, usage)
		return ExitOK
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(a.stderr, "dunning: unknown command %q; run \"dunning help\" for the list\n", name)
		return ExitUsage
	}
	err := commands[i].run(a, ctx, args[1:])
	var usageErr *usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return ExitOK
	case errors.As(err, &usageErr), errors.Is(err, starter.ErrInvalid):
		// Invalid input is the caller's to fix, whichever check found it.
		fmt.Fprintf(a.stderr, "dunning %s: %v (see \"dunning %s -h\")\n", name, err, name)
		return ExitUsage
	default:
		fmt.Fprintf(a.stderr, "dunning %s: %v\n", name, err)
		return ExitFailure
	}
}

// flagSet is a subcommand's flags and how to print its help.
type flagSet struct {
	*flag.FlagSet
	name, synopsis string
	help           io.Writer
}

// newFlagSet makes a subcommand's flag set; synopsis follows the command
// name in its usage line.
func (a *app) newFlagSet(name, synopsis string) *flagSet {
	fs := flag.NewFlagSet("dunning "+name, flag.ContinueOnError)
	// Parse errors are reported as one line by run; help is printed by parse.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, name: name, synopsis: synopsis, help: a.stdout}
}

// parse parses flags, refuses positional arguments and checks that the
// required flags have values.
func parse(fs *flagSet, args []string, required ...string) error {
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

	if err := parse(fs, args); err != nil {
		return err
	}
	if *file != "" {
		var others []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "f" {
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
		return a.printJSON(res)
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
	fs := a.newFlagSet("status", "-tenant T -invoice I")
	run := addRunFlags(fs)
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
		return a.printJSON(st)
	})
}

func (a *app) cancel(ctx context.Context, args []string) error {
	fs := a.newFlagSet("cancel", "-tenant T -invoice I -reason R [-by WHO]")
	run := addRunFlags(fs)
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
		fmt.Fprintf(a.stdout, "cancel sent to %s\n", workflows.WorkflowID(*run.tenant, *run.invoice))
		return nil
	})
}

func (a *app) expedite(ctx context.Context, args []string) error {
	fs := a.newFlagSet("expedite", "-tenant T -invoice I [-reason R] [-by WHO]")
	run := addRunFlags(fs)
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
		return a.printJSON(rec)
	})
}

func (a *app) cardUpdated(ctx context.Context, args []string) error {
	fs := a.newFlagSet("card-updated", "-tenant T -invoice I [-payment-method PM]")
	run := addRunFlags(fs)
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
		fmt.Fprintf(a.stdout, "payment method update sent to %s\n", workflows.WorkflowID(*run.tenant, *run.invoice))
		return nil
	})
}

func (a *app) paid(ctx context.Context, args []string) error {
	fs := a.newFlagSet("paid", "-tenant T -invoice I [-reference REF] [-note TEXT]")
	run := addRunFlags(fs)
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
		fmt.Fprintf(a.stdout, "payment sent to %s\n", workflows.WorkflowID(*run.tenant, *run.invoice))
		return nil
	})
}
