package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

// This file is dev mode's stand-in for the billing system's hosted
// card-update page, so the links in dev messages lead somewhere: it checks
// the link's token and, when the form is posted, tells the run that the
// customer has a new payment method (a simulator script).

// devCardLinks are the card-link settings dev mode uses when the
// environment sets none: the page on dev mode's public address and a secret
// kept next to Temporal's SQLite file, so links in earlier messages keep
// working across restarts. It answers "" when the environment configures
// links itself or the public address cannot carry plain-http links (only
// loopback may; see cardlink).
func devCardLinks(getenv func(string) string, api net.Addr, dir string) (baseURL, secret string, err error) {
	if getenv("CARD_UPDATE_URL") != "" || getenv("CARD_LINK_SECRET") != "" {
		return "", "", nil
	}
	tcp, ok := api.(*net.TCPAddr)
	if !ok || !(tcp.IP.IsLoopback() || tcp.IP.IsUnspecified()) {
		return "", "", nil
	}
	secret, err = devSecret(filepath.Join(dir, "card-link.secret"))
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("http://%s/card", net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))), secret, nil
}

// devSecret reads the dev card-link secret from path, creating it (random,
// readable by the owner only) on first use.
func devSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= cardlink.MinSecretLen {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read the dev card-link secret: %w", err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make a dev card-link secret: %w", err)
	}
	s := hex.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("write the dev card-link secret: %w", err)
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the dev card-link secret: %w", err)
	}
	return s, nil
}

// cardUpdater is what the page needs from the runs; *starter.Client is one.
type cardUpdater interface {
	PaymentMethodUpdated(ctx context.Context, tenant, invoiceID string, req workflows.PaymentMethodUpdate) error
}

// devCardChoices are the payment methods the page offers: simulator
// scripts, since dev mode charges through the simulator.
var devCardChoices = []struct{ Script, Label string }{
	{"sim:succeed", "A card that works"},
	{"sim:decline;code=insufficient_funds", "A card without enough funds"},
	{"sim:decline;code=stolen_card", "A card reported stolen"},
}

// cardPage serves GET /card?token=... (and /card/{token}) and POST /card.
type cardPage struct {
	links  *cardlink.Signer
	runs   cardUpdater
	logger *slog.Logger
	now    func() time.Time
}

func (p *cardPage) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /card", p.show)
	mux.HandleFunc("GET /card/{token}", p.show)
	mux.HandleFunc("POST /card", p.update)
	mux.HandleFunc("/card", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD, POST")
		p.render(w, http.StatusMethodNotAllowed, pageData{Error: "Use the link from the message."})
	})
}

type pageData struct {
	Token, RunID, CustomerID string
	Expires                  time.Time
	Choices                  any
	Error, Done              string
}

var cardTemplate = template.Must(template.New("card").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Update your card (dev)</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}
.note{color:#666;font-size:.9em}.error{color:#a00}.done{color:#070}</style></head><body>
<h1>Update your payment method</h1>
<p class="note">Dev mode: this page stands in for the billing system's hosted card page.</p>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
{{if .Done}}<p class="done">{{.Done}}</p>{{end}}
{{if .Choices}}
<p>Run <code>{{.RunID}}</code>, customer <code>{{.CustomerID}}</code>; this link expires {{.Expires.Format "2006-01-02 15:04 MST"}}.</p>
<form method="post" action="/card">
<input type="hidden" name="token" value="{{.Token}}">
{{range $i, $c := .Choices}}<p><label><input type="radio" name="payment_method" value="{{$c.Script}}"{{if eq $i 0}} checked{{end}}> {{$c.Label}} <code>{{$c.Script}}</code></label></p>
{{end}}<p><button type="submit">Save and pay</button></p>
</form>{{end}}
</body></html>
`))

func (p *cardPage) render(w http.ResponseWriter, status int, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The token is in the URL: no referrer carries it elsewhere.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := cardTemplate.Execute(w, d); err != nil {
		p.logger.Warn("card page: render", "error", err)
	}
}

// verify checks the token and names the run it is for; on failure it has
// answered already.
func (p *cardPage) verify(w http.ResponseWriter, token string) (cardlink.Claims, bool) {
	claims, err := p.links.Verify(token, p.now())
	switch {
	case err == nil:
		return claims, true
	case errors.Is(err, cardlink.ErrExpired):
		p.render(w, http.StatusGone, pageData{Error: "This link has expired; a new one comes with the next message."})
	case errors.Is(err, cardlink.ErrBadSignature):
		p.render(w, http.StatusForbidden, pageData{Error: "This link is not valid."})
	default:
		p.render(w, http.StatusBadRequest, pageData{Error: "This is not a card-update link."})
	}
	return cardlink.Claims{}, false
}

func (p *cardPage) show(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	claims, ok := p.verify(w, token)
	if !ok {
		return
	}
	p.render(w, http.StatusOK, pageData{Token: token, RunID: claims.RunID, CustomerID: claims.CustomerID,
		Expires: claims.Expires, Choices: devCardChoices})
}

func (p *cardPage) update(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		p.render(w, http.StatusBadRequest, pageData{Error: "The form could not be read."})
		return
	}
	token := r.PostForm.Get("token")
	claims, ok := p.verify(w, token)
	if !ok {
		return
	}
	again := pageData{Token: token, RunID: claims.RunID, CustomerID: claims.CustomerID, Expires: claims.Expires, Choices: devCardChoices}
	pm := r.PostForm.Get("payment_method")
	if !slices.ContainsFunc(devCardChoices, func(c struct{ Script, Label string }) bool { return c.Script == pm }) {
		again.Error = "Choose one of the cards below."
		p.render(w, http.StatusUnprocessableEntity, again)
		return
	}
	tenant, invoice, ok := splitRunID(claims.RunID)
	if !ok {
		p.render(w, http.StatusBadRequest, pageData{Error: "This link is for a run this page cannot update."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	err := p.runs.PaymentMethodUpdated(ctx, tenant, invoice, workflows.PaymentMethodUpdate{PaymentMethod: pm})
	switch {
	case err == nil:
		p.logger.Info("card page: payment method updated", "workflow_id", claims.RunID, "payment_method", pm)
		p.render(w, http.StatusOK, pageData{Done: "Thank you: the new payment method is saved and will be charged shortly.", RunID: claims.RunID})
	case errors.Is(err, starter.ErrRunClosed):
		p.render(w, http.StatusConflict, pageData{Done: "Nothing is owed any more: this invoice is settled or closed."})
	case errors.Is(err, starter.ErrRunNotFound):
		p.render(w, http.StatusNotFound, pageData{Error: "There is no open payment for this link."})
	default:
		p.logger.Warn("card page: update failed", "workflow_id", claims.RunID, "error", err)
		again.Error = "The payment method could not be saved right now; try again."
		p.render(w, http.StatusServiceUnavailable, again)
	}
}

// splitRunID reads "dunning/<tenant>/<invoice>" (workflows.WorkflowID);
// tenants hold no "/".
func splitRunID(id string) (tenant, invoice string, ok bool) {
	rest, ok := strings.CutPrefix(id, "dunning/")
	if !ok {
		return "", "", false
	}
	tenant, invoice, ok = strings.Cut(rest, "/")
	if !ok || workflows.WorkflowID(tenant, invoice) != id || starter.ValidateRunKey(tenant, invoice) != nil {
		return "", "", false
	}
	return tenant, invoice, true
}
