package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/metrics/scrape"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestDevModeServesUIAndAPI runs README's first command in-process: the
// embedded Temporal server with its Web UI, the worker and the intake API,
// then starts a demo run with README's curl body and watches it recover.
func TestDevModeServesUIAndAPI(t *testing.T) {
	dbURL := ledgertest.NewDatabaseURL(t)
	t.Setenv("DATABASE_URL", dbURL)
	// Dev defaults apply only when the environment sets no card links.
	t.Setenv("CARD_UPDATE_URL", "")
	t.Setenv("CARD_LINK_SECRET", "")
	uiPort := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan endpoints, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, slog.New(slog.DiscardHandler), []string{
			"-db-file", filepath.Join(t.TempDir(), "temporal.db"),
			"-temporal-port", freePort(t), "-ui-port", uiPort, "-http", "127.0.0.1:0", "-public", "127.0.0.1:0",
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
	api := ep.API

	// README's curl, with the dev key the banner prints.
	resp, err := devRequest(t, ep, http.MethodPost, "http://"+api+"/v1/declines", `{"tenant":"acme","invoice_id":"inv-1001",
		"customer":{"id":"cus-42","email":"ada@example.com"},"amount":"49.90","currency":"EUR","payment_method":"sim:succeed",
		"decline":{"gateway":"simulator","code":"insufficient_funds"},"policy":"demo"}`)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"workflow_id":"dunning/acme/inv-1001"`) {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}

	// The Web UI's own API lists the run, filtered by our search attribute.
	ui := fmt.Sprintf("http://127.0.0.1:%s/api/v1/namespaces/default/workflows?query=%s", uiPort,
		"DunningInvoiceID%3D%22inv-1001%22")
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ui)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(b), "dunning/acme/inv-1001") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Web UI does not list the run (last error %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Demo policy: first retry 10 s after the decline, and sim:succeed pays.
	deadline = time.Now().Add(45 * time.Second)
	for {
		resp, err := devRequest(t, ep, http.MethodGet, "http://"+api+"/v1/runs/acme/inv-1001", "")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Phase    string `json:"phase"`
			Source   string `json:"source"`
			Messages []struct {
				Status string `json:"status"`
			} `json:"messages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.Phase == "recovered" {
			// No provider keys: every message was only logged, and says so.
			if st.Source != "live" || len(st.Messages) == 0 {
				t.Errorf("status source %q, %d messages", st.Source, len(st.Messages))
			}
			for _, m := range st.Messages {
				if m.Status != "dry-run" {
					t.Errorf("message status %q, want dry-run", m.Status)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run phase %q, want recovered", st.Phase)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Prometheus reads the worker's and the API's metrics on the private
	// address without a key: one decline received, one run recovered.
	samples, err := scrape.Get(context.Background(), "http://"+api+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`dunning_declines_received_total{category="soft",code="insufficient_funds",gateway="simulator"}`: 1,
		`dunning_recovered_amount_total{currency="EUR"}`:                                                 49.9,
		"dunning_runs_needs_attention":                                                                   0,
	} {
		if got, ok := samples[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if got := samples.Sum("dunning_runs_closed_total"); got != 1 {
		t.Errorf("dunning_runs_closed_total sums to %v, want 1", got)
	}

	// The private API wants the key; each listener has only its own paths.
	for _, tc := range []struct {
		name, url string
		key       bool
		want      int
	}{
		{"status without the key", "http://" + api + "/v1/runs/acme/inv-1001", false, http.StatusUnauthorized},
		{"status on the public address", "http://" + ep.Public + "/v1/runs/acme/inv-1001", true, http.StatusNotFound},
		{"card page on the private address", "http://" + api + "/card?token=x", true, http.StatusNotFound},
		{"health on the public address", "http://" + ep.Public + "/healthz", false, http.StatusOK},
		{"dashboard without a session", "http://" + api + "/dashboard/", false, http.StatusUnauthorized},
		{"dashboard on the public address", "http://" + ep.Public + "/dashboard/", false, http.StatusNotFound},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		if tc.key {
			req.Header.Set("Authorization", "Bearer "+ep.Key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}

	// The dashboard takes the dev key at its sign-in form and lists the run.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	signIn, err := noRedirect.PostForm("http://"+api+"/dashboard/login", url.Values{"api_key": {ep.Key}})
	if err != nil {
		t.Fatal(err)
	}
	signIn.Body.Close()
	if signIn.StatusCode != http.StatusSeeOther || len(signIn.Cookies()) != 1 {
		t.Fatalf("dashboard sign-in with the dev key = %d with %d cookies, want 303 and a session", signIn.StatusCode, len(signIn.Cookies()))
	}
	runsPage, _ := http.NewRequest(http.MethodGet, "http://"+api+"/dashboard/runs?currency=EUR", nil)
	runsPage.AddCookie(signIn.Cookies()[0])
	resp, err = http.DefaultClient.Do(runsPage)
	if err != nil {
		t.Fatal(err)
	}
	listing, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(listing), "inv-1001") {
		t.Errorf("dashboard runs page = %d, want 200 listing inv-1001", resp.StatusCode)
	}

	// The payment-failed message carries a card-update link to dev mode's
	// own page, on the public address, which opens.
	store, err := ledger.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	msgs, err := store.Messages(context.Background(), "dunning/acme/inv-1001")
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`http://127\.0\.0\.1:\d+/card\?token=[A-Za-z0-9_.-]+`)
	var found string
	for _, m := range msgs {
		if m.Status != "dry-run" {
			t.Errorf("ledger message %s: status %q, want dry-run", m.IdempotencyKey, m.Status)
		}
		if l := link.FindString(m.Body); l != "" && found == "" {
			found = l
		}
	}
	if found == "" || !strings.Contains(found, ep.Public[strings.LastIndex(ep.Public, ":"):]) {
		t.Fatalf("no card-update link to the public address %s in the messages %+v", ep.Public, msgs)
	}
	resp, err = http.Get(found)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "dunning/acme/inv-1001") {
		t.Errorf("card page = %d %s", resp.StatusCode, page)
	}
}

// devRequest sends a request to dev mode's private API with its dev key,
// as README's curl examples do.
func devRequest(t *testing.T, ep endpoints, method, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+ep.Key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return http.DefaultClient.Do(req)
}
