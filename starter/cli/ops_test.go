package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/workflows"
)

var c0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// seededLedger is a ledger URL holding three acme runs and one of globex,
// reported in this order.
func seededLedger(t *testing.T) string {
	t.Helper()
	dbURL := ledgertest.NewDatabaseURL(t)
	ctx := context.Background()
	store, err := ledger.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, sd := range []struct{ tenant, invoice, phase string }{
		{"acme", "inv-1", "paused"}, {"acme", "inv-2", "needs_attention"}, {"globex", "inv-9", "paused"}, {"acme", "inv-3", "recovering"},
	} {
		id := workflows.WorkflowID(sd.tenant, sd.invoice)
		if _, err := store.OpenRun(ctx, ledger.Run{WorkflowID: id, Tenant: sd.tenant, InvoiceID: sd.invoice, CustomerID: "cus_1",
			Amount: decimal.RequireFromString("10.00"), Currency: "EUR", Policy: "default", OpenedAt: c0}); err != nil {
			t.Fatal(err)
		}
		rs := ledger.RunStatus{WorkflowID: id, Phase: sd.phase, ServiceState: "active", Attempts: 1,
			NextAction: "retry", NextAt: c0.Add(72 * time.Hour), UpdatedAt: c0.Add(time.Duration(i+1) * time.Minute)}
		if sd.phase == "needs_attention" {
			rs.NextAction, rs.NextAt, rs.AttentionCause = "", time.Time{}, "gateway_auth"
		}
		if err := store.ReportStatus(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	return dbURL
}

var moreRuns = regexp.MustCompile(`^more runs: add -cursor (\S+)\n$`)

func TestList(t *testing.T) {
	env := map[string]string{"DATABASE_URL": seededLedger(t)}

	// JSON lines, two per page, following the cursor printed on stderr.
	var invoices []string
	args := []string{"list", "-tenant", "acme", "-limit", "2", "-format", "json"}
	for page := 0; ; page++ {
		if page > 3 {
			t.Fatal("the listing does not end")
		}
		r := runWithEnv(t, &fakeTemporal{}, nil, env, args...)
		if r.code != ExitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if r.dialed {
			t.Error("list connected to Temporal; it reads the ledger only")
		}
		for line := range strings.Lines(r.stdout) {
			var run intake.ListedRun
			if err := json.Unmarshal([]byte(line), &run); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			invoices = append(invoices, run.InvoiceID)
		}
		m := moreRuns.FindStringSubmatch(r.stderr)
		if m == nil {
			if r.stderr != "" {
				t.Errorf("stderr on the last page = %q", r.stderr)
			}
			break
		}
		args = append(args[:7:7], "-cursor", m[1])
	}
	if want := []string{"inv-1", "inv-2", "inv-3"}; !slices.Equal(invoices, want) {
		t.Errorf("listed %v, want %v", invoices, want)
	}

	// A table, filtered by phase.
	r := runWithEnv(t, &fakeTemporal{}, nil, env, "list", "-tenant", "acme", "-phase", "needs_attention")
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "INVOICE") || !strings.Contains(lines[1], "inv-2") ||
		!strings.Contains(lines[1], "attention: gateway_auth") {
		t.Errorf("table =\n%s", r.stdout)
	}
}

func TestListRefusesBadInputBeforeOpeningTheLedger(t *testing.T) {
	// A ledger nobody could open: a usage error must come first.
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"}
	for _, tt := range []struct {
		args       []string
		wantStderr string
	}{
		{[]string{"list"}, "-tenant is required"},
		{[]string{"list", "-tenant", "acme", "-phase", "asleep"}, `phase: "asleep" is not a phase`},
		{[]string{"list", "-tenant", "acme", "-limit", "0"}, "limit: 0 is not between 1 and 500"},
		{[]string{"list", "-tenant", "acme", "-cursor", "nope"}, "cursor: is not a cursor"},
		{[]string{"list", "-tenant", "ac me"}, "tenant:"},
		{[]string{"list", "-tenant", "acme", "-format", "yaml"}, `-o "yaml" is neither table nor json`},
	} {
		r := runWithEnv(t, &fakeTemporal{}, nil, env, tt.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tt.wantStderr) {
			t.Errorf("%v: exit %d, stderr %q; want usage error %q", tt.args, r.code, r.stderr, tt.wantStderr)
		}
	}
	if r := runWithEnv(t, &fakeTemporal{}, nil, env, "list", "-tenant", "acme"); r.code != ExitUnavailable ||
		!strings.Contains(r.stderr, "open the ledger at DATABASE_URL") {
		t.Errorf("unreachable ledger: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestResume(t *testing.T) {
	tc := &fakeTemporal{}
	r := runWith(t, tc, nil, "resume", "-tenant", "acme", "-invoice", "inv-1", "-reason", "key rotated", "-by", "ops@acme")
	if r.code != ExitOK || r.stdout != "resume sent to dunning/acme/inv-1\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	want := "Signal dunning/acme/inv-1 resume {Reason:key rotated By:ops@acme}"
	if !slices.Equal(tc.calls, []string{want}) {
		t.Errorf("calls = %v, want [%s]", tc.calls, want)
	}

	for _, tt := range []struct {
		args       []string
		wantCode   int
		wantStderr string
		wantDial   bool
	}{
		{[]string{"resume", "-tenant", "acme"}, ExitUsage, "-invoice is required", false},
		{[]string{"resume", "-tenant", "acme", "-invoice", "inv-1", "-by", "ops\r\nX: y"}, ExitUsage, "by:", false},
		{[]string{"resume", "-tenant", "a/b", "-invoice", "inv-1"}, ExitUsage, "tenant:", false},
	} {
		r := runWith(t, &fakeTemporal{}, nil, tt.args...)
		if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantStderr) || r.dialed != tt.wantDial {
			t.Errorf("%v: exit %d dialed %v stderr %q", tt.args, r.code, r.dialed, r.stderr)
		}
	}
	closed := &fakeTemporal{err: serviceerror.NewNotFound("workflow execution already completed")}
	if r := runWith(t, closed, nil, "resume", "-tenant", "acme", "-invoice", "inv-1"); r.code != ExitConflict ||
		!strings.Contains(r.stderr, "already ended") {
		t.Errorf("resume of a closed run: exit %d, stderr %q", r.code, r.stderr)
	}
}

// With DATABASE_URL, dunning serve lists runs and answers a run's status
// from the ledger when the run's query times out.
func TestServeAnswersFromTheReadModel(t *testing.T) {
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	env := map[string]string{"DATABASE_URL": seededLedger(t), "DUNNING_STATUS_TIMEOUT": "100ms"}
	key := withServeKey(t, env)
	stderr := &syncBuffer{}
	tc := &fakeTemporal{err: serviceerror.NewDeadlineExceeded("context deadline exceeded")}
	a := &app{
		stdout: &bytes.Buffer{}, stderr: stderr,
		dial:   func(context.Context) (client.Client, error) { return tc, nil },
		getenv: func(k string) string { return env[k] },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-public-addr", "127.0.0.1:0"}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addr := waitForAddr(t, stderr)
	get := func(path string) (int, map[string]any) {
		code, raw := authed(t, http.MethodGet, "http://"+addr+path, key, "")
		var out map[string]any
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("GET %s: %s", path, raw)
		}
		return code, out
	}
	if code, out := get("/v1/runs/acme/inv-2"); code != http.StatusOK || out["source"] != "read_model" || out["phase"] != "needs_attention" {
		t.Errorf("status = %d %v", code, out)
	}
	if code, out := get("/v1/runs?tenant=acme&phase=paused"); code != http.StatusOK || len(out["runs"].([]any)) != 1 {
		t.Errorf("list = %d %v", code, out)
	}
}
