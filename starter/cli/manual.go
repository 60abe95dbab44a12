package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// manual is "dunning --help": a manual page whose COMMANDS section is made
// from the dispatcher's table.
func (a *app) manual() string {
	var b strings.Builder
	b.WriteString(`NAME
    dunning - report failed payments, and inspect and steer their dunning runs

SYNOPSIS
    dunning <command> [flags]
    dunning <group> <command> [flags]
    dunning <command> -h

DESCRIPTION
    Each failed invoice is one dunning run (dunning/<tenant>/<invoice>), a
    Temporal workflow that retries the charge, messages the customer and
    changes service until the invoice is paid, the schedule is exhausted or
    the run is cancelled. The commands talk to Temporal (TEMPORAL_ADDRESS)
    like the HTTP API does, or read the ledger (DATABASE_URL) where a
    command needs no worker: list, events, keys. Every operation of the HTTP
    API has a command; "dunning openapi" lists the operations.

    Input is given as flags; a bad command line changes nothing. Commands
    that print take -o table (for people, the default) or -o json (the HTTP
    API's answer, for programs; list and events print one JSON object per
    line).

COMMANDS
`)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range a.cmds {
		if c.subs == nil {
			fmt.Fprintf(tw, "    %s\t%s\n", c.name, c.summary)
			continue
		}
		fmt.Fprintf(tw, "    %s\t%s:\n", c.name, c.summary)
		for _, s := range c.subs {
			fmt.Fprintf(tw, "    %s %s\t  %s\n", c.name, s.name, s.summary)
		}
	}
	_ = tw.Flush()
	b.WriteString(`
    Run "dunning <command> -h" for a command's flags.

ENVIRONMENT
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
    CARD_LINK_SECRET     the workers' card-update link secret (card-link)

EXIT STATUS
    0    the command did what it was asked
    1    it failed for another reason (see the message on stderr)
    2    the command line or its input is wrong; nothing was done
    3    the run, reminder run, event or key does not exist
    4    the run has ended, holds another amount, or refused the request
         (e.g. an expedite the charging rules do not allow); a link expired
    5    Temporal, its workers or the ledger did not answer in time; the
         request may be tried again

EXAMPLES
    Report a decline (starts the run):
        dunning start -tenant acme -invoice inv-1002 -customer cus-7 \
          -amount 120.00 -currency USD -gateway simulator -code do_not_honor

    Where it stands, for people and for programs:
        dunning status -tenant acme -invoice inv-1002
        dunning status -tenant acme -invoice inv-1002 -o json | jq .phase

    Retry now, cancel, resume a held run:
        dunning expedite -tenant acme -invoice inv-1002 -reason "customer called"
        dunning cancel -tenant acme -invoice inv-1002 -reason "invoice voided"
        dunning resume -tenant acme -invoice inv-1003 -reason "gateway key fixed"

    A tenant's runs that need attention:
        dunning list -tenant acme -phase needs_attention

    Reminders before an invoice falls due:
        dunning reminders start -tenant acme -kind pre-due -customer cus-7 \
          -invoice inv-2001 -amount 49.90 -currency EUR -anchor 2026-12-01T00:00:00Z
        dunning reminders status -id acme/pre-due/inv-2001

    A key for a billing system, and shell completion:
        dunning keys create -tenant acme -scopes runs:read,runs:write -name billing-prod
        source <(dunning completion bash)

    Script on the exit status:
        dunning status -tenant acme -invoice inv-9 -o json >/dev/null
        case $? in 3) echo "no run";; 5) echo "try again later";; esac

SEE ALSO
    The API reference at /docs and the document at /openapi.json on either
    listener of dunning serve; README.md.
`)
	return b.String()
}
