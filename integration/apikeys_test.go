package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/ledger"
)

// keyPepper is the platform's DUNNING_KEY_PEPPER.
const keyPepper = "integration-pepper-0123456789abcdef"

// newKeyStore is the API key store on the platform's ledger, as dunning
// serve opens it.
func newKeyStore(t testing.TB, store *ledger.Store) *apikeys.Store {
	t.Helper()
	keys, err := apikeys.NewStore(store.Pool(), []byte(keyPepper), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// issueKey creates a real key, as dunning keys create does.
func issueKey(t testing.TB, keys *apikeys.Store, tenant string, scopes ...apikeys.Scope) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []apikeys.Scope{apikeys.ScopeRunsRead, apikeys.ScopeRunsWrite}
	}
	issued, err := keys.Create(context.Background(), apikeys.NewKey{Tenant: tenant, Scopes: scopes, Name: "integration"})
	if err != nil {
		t.Fatalf("issue a key for %s: %v", tenant, err)
	}
	return issued.Token
}

// request sends a request with the given API key and Idempotency-Key
// (either "" for none).
func (p *platform) request(t *testing.T, method, path, key, idem, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.api.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// testKeysAndIdempotency: through the real stack, no key or another
// tenant's key reaches no run, and a retried decline with its
// Idempotency-Key gets the first answer and starts one run.
func (p *platform) testKeysAndIdempotency(t *testing.T) {
	const invoice = "inv-keys"
	body := decline(invoice, "sim:decline;code=insufficient_funds", "default")
	globex := issueKey(t, p.keys, "globex")
	reader := issueKey(t, p.keys, "acme", apikeys.ScopeRunsRead)

	for _, tt := range []struct {
		name       string
		method     string
		path, key  string
		wantStatus int
	}{
		{"no key", http.MethodPost, "/v1/declines", "", http.StatusUnauthorized},
		{"another tenant's key", http.MethodPost, "/v1/declines", globex, http.StatusForbidden},
		{"a read-only key", http.MethodPost, "/v1/declines", reader, http.StatusForbidden},
		{"a revoked-looking key", http.MethodPost, "/v1/declines", "dk_live_zzzzzzzz_" + strings.Repeat("x", 40), http.StatusUnauthorized},
	} {
		resp, raw := p.request(t, tt.method, tt.path, tt.key, "", body)
		if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, raw, tt.wantStatus)
		}
	}
	if n := p.list(t, `WorkflowId = "dunning/acme/`+invoice+`"`); n != 0 {
		t.Fatalf("refused requests started %d runs", n)
	}

	first, firstBody := p.request(t, http.MethodPost, "/v1/declines", p.apiKey, "decline-"+invoice, body)
	if first.StatusCode != http.StatusAccepted {
		t.Fatalf("decline = %d %s", first.StatusCode, firstBody)
	}
	again, againBody := p.request(t, http.MethodPost, "/v1/declines", p.apiKey, "decline-"+invoice, body)
	if again.StatusCode != http.StatusAccepted || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(againBody, firstBody) {
		t.Errorf("retry = %d %v %s, want the first answer %s", again.StatusCode, again.Header, againBody, firstBody)
	}
	other, raw := p.request(t, http.MethodPost, "/v1/declines", p.apiKey, "decline-"+invoice, strings.Replace(body, "49.90", "59.90", 1))
	if other.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("same key, another amount = %d %s", other.StatusCode, raw)
	}

	// Another tenant's key sees no such run; the reader sees it.
	if resp, raw := p.request(t, http.MethodGet, "/v1/runs/acme/"+invoice, globex, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("globex reads acme's run: %d %s", resp.StatusCode, raw)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, raw := p.request(t, http.MethodGet, "/v1/runs/acme/"+invoice, reader, "", "")
		var st struct{ Declines []json.RawMessage }
		_ = json.Unmarshal(raw, &st)
		if resp.StatusCode == http.StatusOK && len(st.Declines) == 1 {
			break // one run, holding one decline: the retry changed nothing
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %d %s", resp.StatusCode, raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := p.list(t, `WorkflowId = "dunning/acme/`+invoice+`"`); n != 1 {
		t.Errorf("%d runs for the invoice, want 1", n)
	}
	if code, out := p.do(t, http.MethodPost, "/v1/runs/acme/"+invoice+"/cancel", `{"reason":"test done"}`); code != http.StatusAccepted {
		t.Errorf("cancel = %d %v", code, out)
	}
}
