package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/openapi"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/workflows"
)

// update rewrites the golden files: go test ./starter/cli -run Golden -update
var update = flag.Bool("update", false, "rewrite testdata/*.golden with the output the commands print now")

// golden compares got with testdata/name.golden.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./starter/cli -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test ./starter/cli -run Golden -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

var g0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// goldenStatus is a run two retries in: declined twice, paused, with its
// next retry scheduled and an expedite refused by the gap rule.
func goldenStatus() workflows.Status {
	return workflows.Status{
		WorkflowID: "dunning/acme/inv-1001", Tenant: "acme", InvoiceID: "inv-1001", CustomerID: "cus-42",
		Phase: workflows.PhasePaused, Amount: "49.90", Currency: "EUR", Policy: "default@3", ServiceState: policy.ServicePaused,
		Declines: []workflows.Decline{{Gateway: "stripe", Code: "insufficient_funds", ReceivedAt: g0}},
		Attempts: []workflows.AttemptRecord{
			{Number: 1, Reason: policy.ReasonScheduled, IdempotencyKey: "dunning/acme/inv-1001/attempt-1", StartedAt: g0.Add(72 * time.Hour),
				FinishedAt: g0.Add(72*time.Hour + time.Second), Outcome: "declined", DeclineCode: "insufficient_funds", GatewayRef: "ch_1"},
			{Number: 2, Reason: policy.ReasonScheduled, IdempotencyKey: "dunning/acme/inv-1001/attempt-2", StartedAt: g0.Add(168 * time.Hour),
				FinishedAt: g0.Add(168*time.Hour + time.Second), Outcome: "declined", DeclineCode: "insufficient_funds", GatewayRef: "ch_2"},
		},
		Messages: []workflows.MessageRecord{
			{Key: "decline/email", Kind: "payment_failed", Channel: policy.Email, At: g0, Status: "sent"},
			{Key: "pause/sms", Kind: "service_paused", Channel: policy.SMS, At: g0.Add(169 * time.Hour), Status: "skipped", Detail: "quiet hours"},
		},
		ServiceLog: []policy.ServiceChange{{State: policy.ServicePaused, At: g0.Add(169 * time.Hour)}},
		NextStep:   &policy.Step{Action: policy.ActionRetry, At: g0.Add(336 * time.Hour), Attempt: 3, Reason: policy.ReasonScheduled, Why: "third retry, 14 days after the decline"},
		Decline:    &decline.Decline{Category: decline.Soft, Reason: "insufficient_funds", Advice: decline.Retry, Known: true},
		StartedAt:  g0,
		Refusals:   []workflows.Refusal{{At: g0.Add(170 * time.Hour), Reason: policy.ReasonExpedite, Rule: "min_attempt_gap", Until: g0.Add(188 * time.Hour), By: "ops@acme"}},
	}
}

func TestGoldenOutput(t *testing.T) {
	tc := &fakeTemporal{status: goldenStatus(), reminders: workflows.ReminderStatus{
		WorkflowID: "reminders/acme/pre-due/inv-2001", Tenant: "acme", Kind: "pre-due", CustomerID: "cus-42", InvoiceID: "inv-2001",
		Anchor: g0.Add(240 * time.Hour), Policy: "default@3", State: workflows.ReminderWaiting,
		Sent:      []workflows.MessageRecord{{Key: "pre-due-minus-3d/email", Kind: "pre_due", Channel: policy.Email, At: g0.Add(168 * time.Hour), Status: "sent"}},
		Pending:   []policy.ReminderStep{{Key: "pre-due-0d", At: g0.Add(240 * time.Hour), Channels: []policy.Channel{policy.Email, policy.SMS}}},
		StartedAt: g0,
	}}
	signer := cardlink.Signer{Secret: []byte(strings.Repeat("s", 32)), BaseURL: "https://billing.example.com/card", TTL: 100 * 365 * 24 * time.Hour}
	token, err := signer.Token("dunning/acme/inv-1001", "cus-42", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DUNNING_GATEWAYS": "simulator,stripe", "CARD_LINK_SECRET": strings.Repeat("s", 32)}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"status", []string{"status", "-tenant", "acme", "-invoice", "inv-1001"}},
		{"expedite", []string{"expedite", "-tenant", "acme", "-invoice", "inv-1001", "-reason", "customer called"}},
		{"start", startArgs()},
		{"cancel", []string{"cancel", "-tenant", "acme", "-invoice", "inv-1001", "-reason", "invoice voided"}},
		{"reminders-status", []string{"reminders", "status", "-id", "acme/pre-due/inv-2001"}},
		{"reminders-cancel", []string{"reminders", "cancel", "-id", "acme/pre-due/inv-2001", "-reason", "invoice voided"}},
		{"card-link", []string{"card-link", "-token", token}},
	} {
		for _, format := range []string{"table", "json"} {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				r := runWithEnv(t, tc, nil, env, append(tt.args, "-o", format)...)
				if r.code != ExitOK || r.stderr != "" {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				golden(t, tt.name+"."+format, r.stdout)
			})
		}
	}
}

// TestGoldenList prints a seeded ledger's runs both ways.
func TestGoldenList(t *testing.T) {
	env := map[string]string{"DATABASE_URL": seededLedger(t)}
	for _, format := range []string{"table", "json"} {
		r := runWithEnv(t, &fakeTemporal{}, nil, env, "list", "-tenant", "acme", "-o", format)
		if r.code != ExitOK {
			t.Fatalf("list -o %s: exit %d, stderr %q", format, r.code, r.stderr)
		}
		golden(t, "list."+format, r.stdout)
	}
}

// TestManual checks dunning --help reads as a manual and names every
// command of the table, so a command added to the table is documented.
func TestManual(t *testing.T) {
	r := runWith(t, &fakeTemporal{}, nil, "--help")
	if r.code != ExitOK {
		t.Fatalf("exit %d", r.code)
	}
	last := -1
	for _, section := range []string{"NAME\n", "SYNOPSIS\n", "DESCRIPTION\n", "COMMANDS\n", "ENVIRONMENT\n", "EXIT STATUS\n", "EXAMPLES\n", "SEE ALSO\n"} {
		i := strings.Index(r.stdout, "\n"+section)
		if section == "NAME\n" && strings.HasPrefix(r.stdout, section) {
			i = 0
		}
		if i <= last {
			t.Errorf("section %q missing or out of order", strings.TrimSpace(section))
		}
		last = i
	}
	for _, c := range commands {
		if !strings.Contains(r.stdout, "\n    "+c.name+" ") {
			t.Errorf("COMMANDS lacks %s", c.name)
		}
		for _, s := range c.subs {
			if !strings.Contains(r.stdout, "\n    "+c.name+" "+s.name+" ") {
				t.Errorf("COMMANDS lacks %s %s", c.name, s.name)
			}
		}
	}
	for code := ExitOK; code <= ExitUnavailable; code++ {
		if !strings.Contains(r.stdout, "\n    "+string(rune('0'+code))+"    ") {
			t.Errorf("EXIT STATUS lacks %d", code)
		}
	}
	for _, c := range commands {
		if c.run == nil && c.subs == nil && c.name != "help" {
			t.Errorf("%s has neither a function nor subcommands", c.name)
		}
	}
}

// TestCompletionInBash loads the script into a real bash and asks it to
// complete, as the shell would on TAB.
func TestCompletionInBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash on this machine")
	}
	r := runWith(t, &fakeTemporal{}, nil, "completion", "bash")
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	script := filepath.Join(t.TempDir(), "dunning.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := `source "$1"; COMP_WORDS=(` + strings.Join(quoted, " ") + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _dunning; echo "${COMPREPLY[*]}"`
		cmd := exec.CommandContext(context.Background(), bash, "--norc", "-c", prog, "bash", script)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("bash: %v: %s", err, out.String())
		}
		return strings.TrimSpace(out.String())
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"dunning", "rem"}, "reminders"},
		{[]string{"dunning", "reminders", ""}, "start status cancel"},
		{[]string{"dunning", "reminders", "cancel", "-"}, "-by -id -o -reason"},
		{[]string{"dunning", "status", "-"}, "-invoice -o -tenant"},
		{[]string{"dunning", "list", "-phase", "needs"}, "needs_attention"},
		{[]string{"dunning", "status", "-o", ""}, "table json"},
		{[]string{"dunning", "keys", "r"}, "rotate revoke"},
		{[]string{"dunning", "completion", ""}, "bash zsh"},
	} {
		if got := complete(tt.words...); got != tt.want {
			t.Errorf("complete %q = %q, want %q", tt.words, got, tt.want)
		}
	}

	z := runWith(t, &fakeTemporal{}, nil, "completion", "zsh")
	if z.code != ExitOK || !strings.HasPrefix(z.stdout, "#compdef dunning\n") || !strings.Contains(z.stdout, "complete -F _dunning dunning") {
		t.Errorf("zsh script: exit %d, %.200q", z.code, z.stdout)
	}
	if f := runWith(t, &fakeTemporal{}, nil, "completion", "fish"); f.code != ExitUsage {
		t.Errorf("completion fish: exit %d, want %d", f.code, ExitUsage)
	}
}

// TestEveryOperationHasACommand holds the CLI to the API: each operation
// of the OpenAPI document that an operator or billing system calls has a
// command. The provider webhooks (called by Stripe, Twilio and SendGrid),
// the health checks and the document itself are the exceptions.
func TestEveryOperationHasACommand(t *testing.T) {
	byOperation := map[string]string{
		"reportDecline": "start", "listRuns": "list", "getRunStatus": "status", "cancelRun": "cancel",
		"expediteRun": "expedite", "paymentMethodUpdated": "card-updated", "paidOutOfBand": "paid", "resumeRun": "resume",
		"startReminders": "reminders start", "getReminderStatus": "reminders status", "cancelReminders": "reminders cancel",
		"resolveCardLink": "card-link", "getOpenAPI": "openapi",
		"getRunTimeline": "explain", "exportAudit": "audit export", "getComplianceReport": "audit compliance",
	}
	notForTheCLI := map[string]bool{"stripeWebhook": true, "twilioInboundSMS": true, "sendgridEvents": true,
		"health": true, "ready": true, "getAPIReference": true}
	r := runWith(t, &fakeTemporal{}, nil, "openapi", "-o", "table")
	if r.code != ExitOK {
		t.Fatalf("openapi: exit %d, %q", r.code, r.stderr)
	}
	doc, err := openapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	operations := map[string]openapi.Operation{}
	for _, o := range openapi.Operations(doc) {
		operations[o.OperationID] = o
	}
	a := &app{cmds: commands}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		fields := strings.Fields(line)
		op := fields[2]
		if notForTheCLI[op] {
			continue
		}
		name, ok := byOperation[op]
		if !ok {
			// An operation from a fragment is served by the command named
			// after its tag (analytics, audit, ...) unless mapped above.
			if o, found := operations[op]; found && o.Fragment != "" && len(o.Tags) > 0 {
				name, ok = o.Tags[0], true
			}
		}
		if !ok {
			t.Errorf("operation %s has no command; add one (and map it here)", op)
			continue
		}
		if _, cmd, _, err := a.find(strings.Fields(name)); err != nil || cmd.run == nil {
			t.Errorf("operation %s: command %q is not in the table", op, name)
		}
	}
}
