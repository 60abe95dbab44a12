package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// outboxLedger is a ledger URL holding three acme events (one delivered,
// one failed, one skipped) and one of globex, pending.
func outboxLedger(t *testing.T) string {
	t.Helper()
	dbURL := ledgertest.NewDatabaseURL(t)
	ctx := context.Background()
	store, err := ledger.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i, ev := range []struct{ tenant, key string }{
		{"acme", "dunning/acme/inv-1/service-paused"},
		{"acme", "dunning/acme/inv-2/closed"},
		{"globex", "dunning/globex/inv-9/closed"},
		{"acme", "dunning/acme/inv-3/closed"},
	} {
		wf := ev.key[:strings.LastIndex(ev.key, "/")]
		if _, err := store.Enqueue(ctx, ledger.OutboxEvent{IdempotencyKey: ev.key, WorkflowID: wf, Tenant: ev.tenant,
			Kind: "run.closed", Body: []byte(`{"type":"run.closed"}`), CreatedAt: t0.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []error{
		store.MarkDelivered(ctx, "dunning/acme/inv-1/service-paused"),
		store.MarkFailed(ctx, "dunning/acme/inv-2/closed", "HTTP 422: unknown customer"),
		store.MarkSkipped(ctx, "dunning/acme/inv-3/closed", `no event endpoint configured for tenant "acme"`),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	return dbURL
}

func TestEventsList(t *testing.T) {
	env := map[string]string{"DATABASE_URL": outboxLedger(t)}

	r := runWithEnv(t, &fakeTemporal{}, nil, env, "events", "list", "-tenant", "acme")
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r.dialed {
		t.Error("events list connected to Temporal; it reads the ledger only")
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "CREATED") {
		t.Fatalf("table =\n%s\nwant a header and acme's 3 events", r.stdout)
	}
	for i, want := range []string{"dunning/acme/inv-3/closed", "dunning/acme/inv-2/closed", "dunning/acme/inv-1/service-paused"} {
		if !strings.Contains(lines[i+1], want) || !strings.Contains(lines[i+1], billing.WebhookID(want)) {
			t.Errorf("row %d = %q, want %s with its webhook-id (newest first)", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[2], "failed") || !strings.Contains(lines[2], "HTTP 422: unknown customer") {
		t.Errorf("failed row = %q, want the status and reason", lines[2])
	}

	r = runWithEnv(t, &fakeTemporal{}, nil, env, "events", "list", "-tenant", "acme", "-status", "failed", "-format", "json")
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var got listedEvent
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output %q: %v", r.stdout, err)
	}
	if got.IdempotencyKey != "dunning/acme/inv-2/closed" || got.Status != "failed" || got.WebhookID != billing.WebhookID(got.IdempotencyKey) ||
		got.Tenant != "acme" || got.Attempts != 1 || got.LastError != "HTTP 422: unknown customer" {
		t.Errorf("listed = %+v", got)
	}
	if strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("output %q, want one failed event", r.stdout)
	}
}

func TestEventsRedeliver(t *testing.T) {
	dbURL := outboxLedger(t)
	env := map[string]string{"DATABASE_URL": dbURL}
	const key = "dunning/acme/inv-2/closed"

	r := runWithEnv(t, &fakeTemporal{}, nil, env, "events", "redeliver", "-key", key)
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "was failed and is pending again") || !strings.Contains(r.stdout, billing.WebhookID(key)) {
		t.Errorf("output %q", r.stdout)
	}
	store, err := ledger.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := store.OutboxEvent(t.Context(), key)
	if err != nil || e.Status != ledger.OutboxPending || e.NextAttemptAt.After(time.Now().Add(time.Second)) {
		t.Errorf("event after redeliver = %+v, %v; want pending and due now", e, err)
	}

	// Again: it is pending already, and says so.
	r = runWithEnv(t, &fakeTemporal{}, nil, env, "events", "redeliver", "-key", key)
	if r.code != ExitOK || !strings.Contains(r.stdout, "still pending") {
		t.Errorf("second redeliver: exit %d, %q", r.code, r.stdout)
	}
	r = runWithEnv(t, &fakeTemporal{}, nil, env, "events", "redeliver", "-key", "dunning/acme/nope/closed")
	if r.code != ExitNotFound || !strings.Contains(r.stderr, "no event has the key") {
		t.Errorf("unknown key: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestEventsUsage(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"events"}, "Usage: dunning events <list|redeliver>"},
		{[]string{"events", "purge"}, `unknown command "purge" of dunning events; use list, redeliver`},
		{[]string{"events", "list"}, "-tenant is required"},
		{[]string{"events", "list", "-tenant", "acme", "-status", "lost"}, `-status "lost"`},
		{[]string{"events", "list", "-tenant", "acme", "-limit", "0"}, "-limit 0"},
		{[]string{"events", "list", "-tenant", "acme", "-format", "xml"}, `-o "xml" is neither table nor json`},
		{[]string{"events", "redeliver"}, "-key is required"},
	} {
		r := runWithEnv(t, &fakeTemporal{}, nil, env, tt.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
	r := runWithEnv(t, &fakeTemporal{}, nil, env, "events", "-h")
	if r.code != ExitOK || !strings.Contains(r.stdout, "redeliver") {
		t.Errorf("events -h: exit %d, %q", r.code, r.stdout)
	}
}
