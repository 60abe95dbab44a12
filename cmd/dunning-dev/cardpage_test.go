package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

type update struct {
	tenant, invoice string
	req             workflows.PaymentMethodUpdate
}

type fakeUpdater struct {
	mu      sync.Mutex
	err     error
	updates []update
}

func (f *fakeUpdater) PaymentMethodUpdated(_ context.Context, tenant, invoice string, req workflows.PaymentMethodUpdate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, update{tenant, invoice, req})
	return f.err
}

var now0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func testPage(t *testing.T, runs cardUpdater) (http.Handler, *cardlink.Signer) {
	t.Helper()
	links := &cardlink.Signer{Secret: []byte(strings.Repeat("s", 32)), BaseURL: "http://127.0.0.1:8080/card", TTL: time.Hour}
	mux := http.NewServeMux()
	(&cardPage{links: links, runs: runs, logger: slog.New(slog.DiscardHandler), now: func() time.Time { return now0 }}).register(mux)
	return mux, links
}

func TestCardPageChecksTheToken(t *testing.T) {
	runs := &fakeUpdater{}
	h, links := testPage(t, runs)
	link, err := links.URL("dunning/acme/inv-1", "cus-42", now0)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimPrefix(link, "http://127.0.0.1:8080/card?token=")
	forged := (&cardlink.Signer{Secret: []byte(strings.Repeat("x", 32)), BaseURL: links.BaseURL, TTL: time.Hour})
	forgedToken, _ := forged.Token("dunning/acme/inv-1", "cus-42", now0)
	expiredToken, _ := links.Token("dunning/acme/inv-1", "cus-42", now0.Add(-2*time.Hour))

	tests := []struct {
		name, path string
		wantStatus int
		wantBody   string
	}{
		{"the link from the message", "/card?token=" + token, 200, "dunning/acme/inv-1"},
		{"the token in the path", "/card/" + token, 200, `name="payment_method" value="sim:succeed"`},
		{"forged", "/card?token=" + forgedToken, 403, "not valid"},
		{"expired", "/card?token=" + expiredToken, 410, "expired"},
		{"not a token", "/card?token=hello", 400, "not a card-update link"},
		{"no token", "/card", 400, "not a card-update link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("status %d, body %s; want %d with %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("headers = %v", rec.Header())
			}
		})
	}
	if len(runs.updates) != 0 {
		t.Errorf("showing the page updated a run: %+v", runs.updates)
	}
}

func TestCardPageUpdatesThePaymentMethod(t *testing.T) {
	post := func(h http.Handler, form url.Values) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/card", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	runs := &fakeUpdater{}
	h, links := testPage(t, runs)
	token, _ := links.Token("dunning/acme/inv-1", "cus-42", now0)

	rec := post(h, url.Values{"token": {token}, "payment_method": {"sim:succeed"}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "saved") {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	want := update{"acme", "inv-1", workflows.PaymentMethodUpdate{PaymentMethod: "sim:succeed"}}
	if len(runs.updates) != 1 || runs.updates[0] != want {
		t.Errorf("updates = %+v, want [%+v]", runs.updates, want)
	}

	forged, _ := (&cardlink.Signer{Secret: []byte(strings.Repeat("x", 32)), BaseURL: links.BaseURL, TTL: time.Hour}).Token("dunning/acme/inv-1", "cus-42", now0)
	notADunningRun, _ := links.Token("reminders/acme/pre-due/inv-1", "cus-42", now0)
	for _, tt := range []struct {
		name       string
		form       url.Values
		runErr     error
		wantStatus int
	}{
		{"forged token", url.Values{"token": {forged}, "payment_method": {"sim:succeed"}}, nil, 403},
		{"a method not offered", url.Values{"token": {token}, "payment_method": {"pm_card_visa"}}, nil, 422},
		{"not a dunning run", url.Values{"token": {notADunningRun}, "payment_method": {"sim:succeed"}}, nil, 400},
		{"closed run", url.Values{"token": {token}, "payment_method": {"sim:succeed"}}, starter.ErrRunClosed, 409},
		{"unknown run", url.Values{"token": {token}, "payment_method": {"sim:succeed"}}, starter.ErrRunNotFound, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeUpdater{err: tt.runErr}
			h, _ := testPage(t, runs)
			rec := post(h, tt.form)
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.runErr == nil && len(runs.updates) != 0 {
				t.Errorf("a refused form updated a run: %+v", runs.updates)
			}
		})
	}
}

func TestDevCardLinks(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 18080}

	base, secret, err := devCardLinks(getenv, loopback, dir)
	if err != nil || base != "http://127.0.0.1:18080/card" || len(secret) < cardlink.MinSecretLen {
		t.Fatalf("devCardLinks = %q, %d-byte secret, %v", base, len(secret), err)
	}
	if (cardlink.Signer{Secret: []byte(secret), BaseURL: base, TTL: time.Hour}).Validate() != nil {
		t.Error("the dev defaults do not make a valid signer")
	}
	info, err := os.Stat(filepath.Join(dir, "card-link.secret"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v, %v", info, err)
	}
	// The secret survives a restart, so earlier links stay valid.
	if _, again, _ := devCardLinks(getenv, &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, dir); again != secret {
		t.Error("a restart made a new secret")
	}
	// The environment's own settings win; a non-loopback address cannot
	// carry plain-http links.
	env["CARD_UPDATE_URL"] = "https://billing.example.com/card"
	if base, _, _ := devCardLinks(getenv, loopback, dir); base != "" {
		t.Errorf("with CARD_UPDATE_URL set, dev defaults = %q", base)
	}
	delete(env, "CARD_UPDATE_URL")
	if base, _, _ := devCardLinks(getenv, &net.TCPAddr{IP: net.IPv4(192, 168, 1, 5), Port: 8080}, dir); base != "" {
		t.Errorf("on a LAN address, dev defaults = %q", base)
	}
}
