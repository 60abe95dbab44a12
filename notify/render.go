package notify

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"time"
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
	return []string{"payment_failed", "retry_failed", "service_paused", "service_suspended", "service_cancelled", "payment_recovered"}
}

// Locales lists the locales with templates; others fall back to English.
func Locales() []string { return []string{"en"} }

type tmpl struct{ subject, body string }

// templates holds English text, keyed by message kind. Localized and HTML
// variants build on the same Data.
var templates = map[string]tmpl{
	"payment_failed": {
		"Your payment for invoice {{.InvoiceID}} did not go through",
		"We could not collect {{.Amount}} for invoice {{.InvoiceID}}.{{if .Next}} We will try again on {{.Next}}.{{end}} If your card has changed, please update your payment details.",
	},
	"retry_failed": {
		"We still could not collect your payment for invoice {{.InvoiceID}}",
		"Attempt {{.Attempt}} to collect {{.Amount}} for invoice {{.InvoiceID}} was declined.{{if .Next}} We will try again on {{.Next}}.{{end}} Please update your payment details to keep your service running.",
	},
	"service_paused": {
		"Your service is paused: invoice {{.InvoiceID}} is unpaid",
		"We could not collect {{.Amount}} for invoice {{.InvoiceID}}, so your service is paused. Update your payment details and it resumes at once.",
	},
	"service_suspended": {
		"Your service is suspended: invoice {{.InvoiceID}} is unpaid",
		"Invoice {{.InvoiceID}} ({{.Amount}}) is still unpaid, so your service is suspended. Update your payment details to restore it.",
	},
	"service_cancelled": {
		"Your subscription was cancelled: invoice {{.InvoiceID}} is unpaid",
		"Invoice {{.InvoiceID}} ({{.Amount}}) remained unpaid, so your subscription was cancelled.",
	},
	"payment_recovered": {
		"Payment received for invoice {{.InvoiceID}}, thank you",
		"We received {{.Amount}} for invoice {{.InvoiceID}}. Your service is running as usual.",
	},
}

var parsed = func() map[string][2]*template.Template {
	out := map[string][2]*template.Template{}
	for kind, t := range templates {
		out[kind] = [2]*template.Template{
			template.Must(template.New(kind + ".subject").Parse(t.subject)),
			template.Must(template.New(kind + ".body").Parse(t.body)),
		}
	}
	return out
}()

// Render returns a message of kind for channel in the customer's locale.
func Render(kind, channel, locale string, d Data) (Rendered, error) {
	subject, body, err := render(kind, channel, d)
	if err != nil {
		return Rendered{}, err
	}
	return Rendered{Subject: subject, Text: body}, nil
}

// render returns the subject and body of a message kind. SMS bodies carry
// the subject's gist only, to stay within one segment where possible.
func render(kind, channel string, d Data) (subject, body string, err error) {
	t, ok := parsed[kind]
	if !ok {
		return "", "", fmt.Errorf("notify: no template for message kind %q", kind)
	}
	view := struct {
		Data
		Amount string // shadows Data.Amount with the formatted amount
		Next   string
	}{Data: d, Amount: d.Amount + " " + d.Currency}
	if !d.NextRetryAt.IsZero() {
		loc := time.UTC
		if l, err := time.LoadLocation(d.TimeZone); err == nil && d.TimeZone != "" {
			loc = l
		}
		view.Next = d.NextRetryAt.In(loc).Format("Monday 2 January 2006 at 15:04 MST")
	}
	var sb, bb bytes.Buffer
	if err := t[0].Execute(&sb, view); err != nil {
		return "", "", fmt.Errorf("notify: render %s subject: %w", kind, err)
	}
	if err := t[1].Execute(&bb, view); err != nil {
		return "", "", fmt.Errorf("notify: render %s body: %w", kind, err)
	}
	if channel == "sms" {
		return "", strings.TrimSpace(sb.String()) + ".", nil
	}
	return sb.String(), bb.String(), nil
}
