package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

const testPepper = "0123456789abcdef0123456789abcdef-test-pepper"

// keysEnv is the environment of the keys commands on a fresh ledger.
func keysEnv(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{"DATABASE_URL": ledgertest.NewDatabaseURL(t), apikeys.EnvPepper: testPepper}
}

// withServeKey adds to env what serve needs for its private API (a ledger,
// unless env names one, and the pepper) and returns a key for tenant acme.
func withServeKey(t *testing.T, env map[string]string) string {
	t.Helper()
	if env["DATABASE_URL"] == "" {
		env["DATABASE_URL"] = ledgertest.NewDatabaseURL(t)
	}
	env[apikeys.EnvPepper] = testPepper
	ctx := context.Background()
	store, err := ledger.Open(ctx, env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	keys, err := apikeys.NewStore(store.Pool(), []byte(testPepper), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	issued, err := keys.Create(ctx, apikeys.NewKey{Tenant: "acme", Scopes: []apikeys.Scope{apikeys.ScopeRunsRead, apikeys.ScopeRunsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	return issued.Token
}

// authed makes a request with an API key ("" for none).
func authed(t *testing.T, method, url, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

var tokenLine = regexp.MustCompile(`^dk_(live|test)_([a-z0-9]{8})_[A-Za-z0-9]{40}\n$`)

// TestKeysCommands: create, list, rotate and revoke against a real ledger;
// a key is printed once and works until revoked.
func TestKeysCommands(t *testing.T) {
	env := keysEnv(t)
	run := func(args ...string) result {
		t.Helper()
		return runWithEnv(t, &fakeTemporal{}, nil, env, args...)
	}

	created := run("keys", "create", "-tenant", "acme", "-scopes", "runs:read,runs:write", "-name", "billing-prod")
	m := tokenLine.FindStringSubmatch(created.stdout)
	if created.code != ExitOK || m == nil || m[1] != "live" || created.dialed {
		t.Fatalf("create: exit %d stdout %q stderr %q dialed %v", created.code, created.stdout, created.stderr, created.dialed)
	}
	token, id := strings.TrimSpace(created.stdout), m[2]
	if !strings.Contains(created.stderr, "created key "+id+" for tenant acme (scopes runs:read,runs:write)") {
		t.Errorf("create stderr %q", created.stderr)
	}

	list := run("keys", "list", "-tenant", "acme")
	if list.code != ExitOK || !regexp.MustCompile(id+`\s+dk_live\s+runs:read,runs:write\s+active\s+billing-prod`).MatchString(list.stdout) ||
		strings.Contains(list.stdout, token[len(token)-40:]) {
		t.Fatalf("list: exit %d stdout %q", list.code, list.stdout)
	}

	rotated := run("keys", "rotate", "-id", id, "-grace", "1h")
	m2 := tokenLine.FindStringSubmatch(rotated.stdout)
	if rotated.code != ExitOK || m2 == nil || m2[2] == id {
		t.Fatalf("rotate: exit %d stdout %q stderr %q", rotated.code, rotated.stdout, rotated.stderr)
	}
	newID := m2[2]
	list = run("keys", "list", "-tenant", "acme")
	if !regexp.MustCompile(id+`\s.*rotating.*replaced by `+newID).MatchString(list.stdout) ||
		!regexp.MustCompile(newID+`\s.*active`).MatchString(list.stdout) {
		t.Errorf("list after rotate: %q", list.stdout)
	}

	if r := run("keys", "revoke", "-id", newID); r.code != ExitOK || !strings.Contains(r.stdout, "revoked key "+newID+" of tenant acme") {
		t.Errorf("revoke: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	list = run("keys", "list", "-tenant", "acme")
	if !regexp.MustCompile(newID + `\s.*revoked`).MatchString(list.stdout) {
		t.Errorf("list after revoke: %q", list.stdout)
	}

	// What the store says now: the old key works during its grace
	// period, the revoked one does not.
	ctx := context.Background()
	store, err := ledger.Open(ctx, env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	keys, err := apikeys.NewStore(store.Pool(), []byte(testPepper), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := keys.Authenticate(ctx, token); err != nil || p.Tenant != "acme" {
		t.Errorf("the rotated key within its grace: %+v %v", p, err)
	}
	if _, err := keys.Authenticate(ctx, strings.TrimSpace(rotated.stdout)); err == nil {
		t.Error("the revoked key still authenticates")
	}

	if r := run("keys", "list", "-tenant", "globex"); r.code != ExitOK || r.stdout != "" || !strings.Contains(r.stderr, "no keys") {
		t.Errorf("list of a tenant without keys: %+v", r)
	}
	if r := run("keys", "create", "-tenant", "acme", "-scopes", "admin", "-test"); r.code != ExitOK || !strings.HasPrefix(r.stdout, "dk_test_") {
		t.Errorf("create -test: %+v", r)
	}
}

func TestKeysCommandErrors(t *testing.T) {
	env := keysEnv(t)
	noPepper := map[string]string{"DATABASE_URL": env["DATABASE_URL"]}
	for _, tt := range []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no subcommand", env, []string{"keys"}, ExitUsage, "Usage: dunning keys <create|list|rotate|revoke>"},
		{"unknown subcommand", env, []string{"keys", "delete"}, ExitUsage, `unknown command "delete" of dunning keys`},
		{"create without tenant", env, []string{"keys", "create", "-scopes", "runs:read"}, ExitUsage, "-tenant is required"},
		{"create without scopes", env, []string{"keys", "create", "-tenant", "acme"}, ExitUsage, "-scopes is required"},
		{"unknown scope", env, []string{"keys", "create", "-tenant", "acme", "-scopes", "runs:delete"}, ExitUsage, `unknown scope "runs:delete"`},
		{"bad tenant", env, []string{"keys", "create", "-tenant", "ac me", "-scopes", "runs:read"}, ExitUsage, "tenant"},
		{"rotate without id", env, []string{"keys", "rotate"}, ExitUsage, "-id is required"},
		{"negative grace", env, []string{"keys", "rotate", "-id", "abcd1234", "-grace", "-1h"}, ExitUsage, "negative"},
		{"rotate unknown", env, []string{"keys", "rotate", "-id", "abcd1234"}, ExitNotFound, "no such key"},
		{"revoke unknown", env, []string{"keys", "revoke", "-id", "abcd1234"}, ExitNotFound, "no such key"},
		{"no pepper", noPepper, []string{"keys", "list", "-tenant", "acme"}, ExitFailure, "DUNNING_KEY_PEPPER"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runWithEnv(t, &fakeTemporal{}, nil, tt.env, tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantStderr) || r.stdout != "" {
				t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}
