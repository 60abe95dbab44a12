package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
)

// pageNames are the templates in templates/, each drawn inside layout.html.
var pageNames = []string{"overview", "declines", "policies", "aging", "runs", "run", "forecast", "compliance", "login", "error"}

// nav is the navigation, in order.
// Own marks a page with its own period (compliance: at most 30 days), so
// the link to it does not carry the other pages' filter.
var nav = []struct {
	Key, Label, Page string
	Own              bool
}{
	{"overview", "Overview", "", false},
	{"declines", "Decline codes", "declines", false},
	{"policies", "Policies & experiments", "policies", false},
	{"aging", "Aging", "aging", false},
	{"runs", "Runs", "runs", false},
	{"forecast", "Forecast", "forecast", false},
	{"compliance", "Compliance", "compliance", true},
}

func (h *Handler) parseTemplates() error {
	funcs := template.FuncMap{
		"nav":  func() any { return nav },
		"base": func() string { return basePath },
	}
	h.pages = make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	return nil
}

// render draws a page into a buffer first, so a template error becomes a
// clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, p); err != nil {
		h.logger.ErrorContext(r.Context(), "dashboard: render page", "page", name, "error", err)
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type messageBody struct {
	Status  int
	Message string
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", page{Title: http.StatusText(status), L: pickLocale(r), Tenant: principalFrom(r.Context()).Tenant,
		Body: messageBody{Status: status, Message: msg}})
}

// renderLogin shows the sign-in form with msg; with 401 it carries the
// challenge of the API's other answers, naming the form as the way in.
func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dunning"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, status, "login", page{Title: "Sign in", L: pickLocale(r), Body: messageBody{Status: status, Message: msg}})
}
