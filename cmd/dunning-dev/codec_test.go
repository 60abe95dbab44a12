package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"

	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// TestDevModeEncryptsAndTheUIDecodes: a run's history holds the customer
// encrypted, the embedded Web UI is told where the codec endpoint is, and
// the endpoint answers the UI's own request with the customer in clear.
func TestDevModeEncryptsAndTheUIDecodes(t *testing.T) {
	t.Setenv("DATABASE_URL", ledgertest.NewDatabaseURL(t))
	for _, k := range []string{codec.EnvKeys, codec.EnvKeysFile, codec.EnvDisabled, codec.EnvToken, codec.EnvOrigins} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	uiPort, temporalPort := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan endpoints, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, slog.New(slog.DiscardHandler), []string{
			"-db-file", filepath.Join(dir, "temporal.db"),
			"-temporal-port", temporalPort, "-ui-port", uiPort, "-http", "127.0.0.1:0", "-public", "127.0.0.1:0",
		}, ready)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev mode stopped with %v", err)
		}
	})
	var ep endpoints
	select {
	case ep = <-ready:
	case err := <-done:
		t.Fatalf("dev mode failed to start: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("dev mode not ready within a minute")
	}

	// The key is kept next to the history, readable by the owner only.
	info, err := os.Stat(filepath.Join(dir, codec.DevKeysFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("dev key file: %v %v", info, err)
	}

	// The embedded UI is configured with the endpoint on the public address.
	uiOrigin := "http://127.0.0.1:" + uiPort
	resp, err := http.Get(uiOrigin + "/api/v1/settings")
	if err != nil {
		t.Fatal(err)
	}
	var settings struct{ Codec struct{ Endpoint string } }
	err = json.NewDecoder(resp.Body).Decode(&settings)
	resp.Body.Close()
	endpoint := "http://" + ep.Public + codec.PathPrefix
	if err != nil || settings.Codec.Endpoint != endpoint {
		t.Fatalf("UI codec endpoint %q (%v), want %s", settings.Codec.Endpoint, err, endpoint)
	}

	resp, err = devRequest(t, ep, http.MethodPost, "http://"+ep.API+"/v1/declines", `{"tenant":"acme","invoice_id":"inv-pii",
		"customer":{"id":"cus-42","email":"ada@example.com","phone":"+48123456789"},"amount":"49.90","currency":"EUR","payment_method":"sim:succeed",
		"decline":{"gateway":"simulator","code":"insufficient_funds"},"policy":"demo"}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start: %d", resp.StatusCode)
	}

	// The run's input as Temporal stores it.
	raw, err := client.Dial(client.Options{
		HostPort: net.JoinHostPort("127.0.0.1", temporalPort),
		Logger:   tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	it := raw.GetWorkflowHistory(context.Background(), "dunning/acme/inv-pii", "", false, 0)
	first, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	input := first.GetWorkflowExecutionStartedEventAttributes().GetInput()
	if len(input.GetPayloads()) == 0 {
		t.Fatalf("first event %v has no input", first.GetEventType())
	}
	for _, p := range input.GetPayloads() {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != codec.EncodingEncrypted ||
			bytes.Contains(p.GetData(), []byte("ada@example.com")) || bytes.Contains(p.GetData(), []byte("48123456789")) {
			t.Fatalf("the run's input is stored in plain text: %v", p.GetMetadata())
		}
	}

	// The UI's preflight, then its decode request.
	preflight, _ := http.NewRequest(http.MethodOptions, endpoint+"/decode?preserveStorageRefs=true", nil)
	preflight.Header.Set("Origin", uiOrigin)
	preflight.Header.Set("Access-Control-Request-Method", "POST")
	preflight.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
	resp, err = http.DefaultClient.Do(preflight)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	body, err := json.Marshal(input) // {"payloads":[{"metadata":{...},"data":"<base64>"}]}
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/decode?preserveStorageRefs=true", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Origin", uiOrigin)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	decoded, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Fatalf("decode: %d %s", resp.StatusCode, decoded)
	}
	var out struct {
		Payloads []struct {
			Data []byte `json:"data"`
		} `json:"payloads"`
	}
	if err := json.Unmarshal(decoded, &out); err != nil || len(out.Payloads) == 0 {
		t.Fatalf("decode answer %s: %v", decoded, err)
	}
	if !bytes.Contains(out.Payloads[0].Data, []byte(`"email":"ada@example.com"`)) {
		t.Errorf("decoded input lacks the email: %s", out.Payloads[0].Data)
	}
}
