package notify

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"regexp"
	"strings"
	"text/template"
	"time"
	_ "time/tzdata" // customer time zones resolve the same on every host
)

// Data fills a message template.
type Data struct {
	CustomerID string `json:"customer_id"`
	InvoiceID  string `json:"invoice_id"`
	// Amount is a decimal string in Currency; templates format it for the
	// customer's locale.
	Amount      string    `json:"amount"`
	Currency    string    `json:"currency"`
	NextRetryAt time.Time `json:"next_retry_at,omitzero"`
	TimeZone    string    `json:"time_zone,omitempty"`
	Attempt     int       `json:"attempt,omitempty"`
	// CardUpdateURL is the signed link to update the payment method.
	CardUpdateURL string `json:"card_update_url,omitempty"`
}

// Rendered is a message ready to send. SMS has Text only.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
}

// Kinds lists the message kinds that have templates.
func Kinds() []string {
	return []string{
		"payment_failed", "retry_failed", "service_paused", "service_suspended",
		"service_cancelled", "payment_recovered", "card_expiring", "payment_due", "update_card_reminder",
	}
}

// Locales lists the locales with templates; others fall back to English.
func Locales() []string { return []string{"en", "fr", "pl"} }

// Channels a message renders for.
const (
	channelEmail = "email"
	channelSMS   = "sms"
)

// Each message kind has one template file per locale,
// templates/<locale>/<kind>.tmpl, defining four blocks: "subject", "text"
// (the plain-text email), "html" (the HTML email's content, placed in
// templates/layout.html.tmpl) and "sms". Text blocks run through
// text/template, the HTML through html/template, which escapes every value.
//
//go:embed templates/layout.html.tmpl templates/*/*.tmpl
var templateFS embed.FS

// blocks are the templates every message file defines.
var blocks = []string{"subject", "text", "html", "sms"}

// messageTemplates holds one message kind in one locale.
type messageTemplates struct {
	text *template.Template     // "subject", "text" and "sms"
	html *htmltemplate.Template // "layout", which includes "html"
}

// parsed maps locale, then kind, to its templates. A missing or broken file
// stops the program at start-up rather than at the first failed payment.
var parsed = func() map[string]map[string]messageTemplates {
	layout := htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/layout.html.tmpl"))
	out := map[string]map[string]messageTemplates{}
	for _, locale := range Locales() {
		out[locale] = map[string]messageTemplates{}
		for _, kind := range Kinds() {
			name := "templates/" + locale + "/" + kind + ".tmpl"
			src, err := templateFS.ReadFile(name)
			if err != nil {
				panic(fmt.Sprintf("notify: %v", err))
			}
			text := template.Must(template.New(name).Parse(string(src)))
			html := htmltemplate.Must(htmltemplate.Must(layout.Clone()).New(name).Parse(string(src)))
			for _, block := range blocks {
				if text.Lookup(block) == nil {
					panic(fmt.Sprintf("notify: %s does not define %q", name, block))
				}
			}
			out[locale][kind] = messageTemplates{text: text, html: html}
		}
	}
	return out
}()

// view is what templates see. Values are ready to print: the amount and the
// next retry are formatted for the customer's locale and time zone.
type view struct {
	Lang       string // the template's locale, e.g. "fr"
	CustomerID string
	InvoiceID  string
	// Amount is formatted with FormatAmount, e.g. "49,90 €". It is empty
	// only for card_expiring messages sent without an amount.
	Amount string
	// Next is the next collection attempt, e.g. "Thursday 5 March 2026 at
	// 09:00 CET"; empty when none is scheduled.
	Next          string
	Attempt       int
	CardUpdateURL string
}

// Render returns a message of kind for channel ("email" or "sms") in the
// customer's locale. locale is a BCP 47 tag such as "fr-FR" or "pl"; only its
// language counts, and languages without templates get English. Email has a
// subject, plain text and HTML; SMS has Text only.
func Render(kind, channel, locale string, d Data) (Rendered, error) {
	lang := matchLocale(locale)
	t, ok := parsed[lang][kind]
	if !ok {
		return Rendered{}, fmt.Errorf("notify: no template for message kind %q", kind)
	}
	if channel != channelEmail && channel != channelSMS {
		return Rendered{}, fmt.Errorf("notify: unknown channel %q", channel)
	}
	v, err := newView(kind, lang, d)
	if err != nil {
		return Rendered{}, err
	}
	if channel == channelSMS {
		sms, err := execute(t.text, "sms", v)
		if err != nil {
			return Rendered{}, fmt.Errorf("notify: render %s sms in %s: %w", kind, lang, err)
		}
		return Rendered{Text: oneLine(sms)}, nil
	}
	subject, err := execute(t.text, "subject", v)
	if err != nil {
		return Rendered{}, fmt.Errorf("notify: render %s subject in %s: %w", kind, lang, err)
	}
	text, err := execute(t.text, "text", v)
	if err != nil {
		return Rendered{}, fmt.Errorf("notify: render %s text in %s: %w", kind, lang, err)
	}
	var html bytes.Buffer
	if err := t.html.ExecuteTemplate(&html, "layout", v); err != nil {
		return Rendered{}, fmt.Errorf("notify: render %s html in %s: %w", kind, lang, err)
	}
	return Rendered{Subject: oneLine(subject), Text: paragraphs(text), HTML: strings.TrimSpace(html.String()) + "\n"}, nil
}

// newView formats d for templates in lang. Every kind but card_expiring
// is about an unpaid or paid invoice and needs its amount.
func newView(kind, lang string, d Data) (view, error) {
	v := view{
		Lang:          lang,
		CustomerID:    d.CustomerID,
		InvoiceID:     d.InvoiceID,
		Attempt:       d.Attempt,
		CardUpdateURL: d.CardUpdateURL,
	}
	if d.Amount != "" || kind != "card_expiring" {
		amount, err := FormatAmount(d.Amount, d.Currency, lang)
		if err != nil {
			return view{}, fmt.Errorf("notify: render %s: %w", kind, err)
		}
		v.Amount = amount
	}
	if !d.NextRetryAt.IsZero() {
		v.Next = formatTime(d.NextRetryAt, d.TimeZone, lang)
	}
	return v, nil
}

func execute(t *template.Template, name string, v view) (string, error) {
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

var (
	asciiSpace = regexp.MustCompile(`[ \t\r\n]+`)
	lineEnd    = regexp.MustCompile(`[ \t]+\n`)
	blankLines = regexp.MustCompile(`\n{3,}`)
)

// oneLine joins a subject or SMS written over several template lines into
// one line. Only ASCII white space is folded: no-break spaces in amounts and
// French punctuation stay.
func oneLine(s string) string {
	return strings.Trim(asciiSpace.ReplaceAllString(s, " "), " ")
}

// paragraphs tidies a plain-text email: no trailing spaces, at most one
// blank line between paragraphs (conditional sentences in templates leave
// gaps), no blank lines at either end.
func paragraphs(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = lineEnd.ReplaceAllString(s, "\n")
	s = blankLines.ReplaceAllString(s, "\n\n")
	return strings.Trim(s, " \t\n")
}
