package notify_test

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/notify"
)

var kinds = []string{
	"payment_failed", "retry_failed", "service_paused", "service_suspended",
	"service_cancelled", "payment_recovered", "card_expiring", "payment_due", "update_card_reminder",
}

const cardURL = "https://billing.example.com/update-card?token=AQ5kdW5uaW5n.c2lnbmF0dXJl"

func sampleData() notify.Data {
	return notify.Data{
		CustomerID:  "cus_42",
		InvoiceID:   "INV-2026-0042",
		Amount:      "1234.50",
		Currency:    "EUR",
		NextRetryAt: time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC),
		TimeZone:    "Europe/Warsaw",
		Attempt:     2,
	}
}

func withCardLink(d notify.Data) notify.Data {
	d.CardUpdateURL = cardURL
	return d
}

func render(t *testing.T, kind, channel, locale string, d notify.Data) notify.Rendered {
	t.Helper()
	r, err := notify.Render(kind, channel, locale, d)
	if err != nil {
		t.Fatalf("Render(%s, %s, %s): %v", kind, channel, locale, err)
	}
	return r
}

// assertClean fails when a template left a placeholder, a missing field or
// a gap from an empty optional part behind.
func assertClean(t *testing.T, what, s string) {
	t.Helper()
	for _, bad := range []string{"{{", "}}", "<no value>", "%!", "  ", "..", " .", " ,", "\n\n\n", "ZgotmplZ"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s %q contains %q", what, s, bad)
		}
	}
	if strings.TrimSpace(s) != s {
		t.Errorf("%s %q has white space at either end", what, s)
	}
}

func TestKindsAndLocales(t *testing.T) {
	if got := notify.Kinds(); !slices.Equal(got, kinds) {
		t.Errorf("Kinds() = %q, want %q", got, kinds)
	}
	if got, want := notify.Locales(), []string{"en", "fr", "pl"}; !slices.Equal(got, want) {
		t.Errorf("Locales() = %q, want %q", got, want)
	}
}

// Every kind renders in every locale on both channels, with and without the
// optional parts, and says what it is about.
func TestRenderEveryMessage(t *testing.T) {
	variants := []struct {
		name string
		data notify.Data
	}{
		{"full", withCardLink(sampleData())},
		{"no card link", sampleData()},
		{"no next retry", func() notify.Data { d := withCardLink(sampleData()); d.NextRetryAt = time.Time{}; return d }()},
		{"bare", notify.Data{InvoiceID: "INV-7", Amount: "1200", Currency: "JPY"}},
	}
	for _, locale := range notify.Locales() {
		for _, kind := range kinds {
			for _, v := range variants {
				t.Run(locale+"/"+kind+"/"+v.name, func(t *testing.T) {
					d := v.data
					amount, err := notify.FormatAmount(d.Amount, d.Currency, locale)
					if err != nil {
						t.Fatal(err)
					}
					wants := []string{amount}
					if kind != "card_expiring" {
						wants = append(wants, d.InvoiceID)
					}
					wantLink := d.CardUpdateURL != "" && kind != "payment_recovered"

					email := render(t, kind, "email", locale, d)
					sms := render(t, kind, "sms", locale, d)
					if email.Subject == "" || email.Text == "" || email.HTML == "" {
						t.Fatalf("email has an empty part: %+v", email)
					}
					if sms.Text == "" || sms.Subject != "" || sms.HTML != "" {
						t.Fatalf("SMS = %+v, want text only", sms)
					}
					if strings.Contains(email.Subject, "\n") || strings.Contains(sms.Text, "\n") {
						t.Errorf("subject %q or SMS %q spans lines", email.Subject, sms.Text)
					}
					if kind != "card_expiring" && !strings.Contains(email.Subject, d.InvoiceID) {
						t.Errorf("subject %q does not name invoice %s", email.Subject, d.InvoiceID)
					}
					for part, s := range map[string]string{"text": email.Text, "HTML": email.HTML, "SMS": sms.Text} {
						for _, want := range wants {
							if !strings.Contains(s, want) {
								t.Errorf("%s %q does not mention %q", part, s, want)
							}
						}
						if got := strings.Contains(s, d.CardUpdateURL) && d.CardUpdateURL != ""; got != wantLink {
							t.Errorf("%s has card link: %v, want %v: %q", part, got, wantLink, s)
						}
					}
					if wantLink && !strings.Contains(email.HTML, `href="`+d.CardUpdateURL+`"`) {
						t.Errorf("HTML has no link to %s", d.CardUpdateURL)
					}
					if !strings.Contains(email.HTML, `<html lang="`+locale+`">`) {
						t.Errorf("HTML does not declare its language %s", locale)
					}
					assertClean(t, "subject", email.Subject)
					assertClean(t, "text", email.Text)
					assertClean(t, "SMS", sms.Text)
					for _, bad := range []string{"{{", "}}", "<no value>", "%!", "ZgotmplZ"} {
						if strings.Contains(email.HTML, bad) {
							t.Errorf("HTML contains %q", bad)
						}
					}
				})
			}
		}
	}
}

func TestRenderLocaleFallback(t *testing.T) {
	tests := []struct{ tag, want string }{
		{"fr-FR", "fr"}, {"fr_CA", "fr"}, {"FR", "fr"}, {"fr-Latn-BE", "fr"},
		{"PL", "pl"}, {"pl-PL", "pl"}, {"pl_pl", "pl"},
		{"en-GB", "en"}, {"EN", "en"},
		{"", "en"}, {"de", "en"}, {"de-DE", "en"}, {"xx", "en"}, {"not a tag", "en"},
	}
	d := withCardLink(sampleData())
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			for _, channel := range []string{"email", "sms"} {
				got := render(t, "retry_failed", channel, tt.tag, d)
				want := render(t, "retry_failed", channel, tt.want, d)
				if got != want {
					t.Errorf("Render(%s, %q) = %+v, want the %s message %+v", channel, tt.tag, got, tt.want, want)
				}
			}
		})
	}
}

func TestRenderExactText(t *testing.T) {
	noRetry := withCardLink(sampleData())
	noRetry.NextRetryAt = time.Time{}
	tests := []struct {
		name, kind, channel, locale string
		data                        notify.Data
		wantSubject, want           string
	}{
		{
			name: "first notice", kind: "payment_failed", channel: "email", locale: "en", data: sampleData(),
			wantSubject: "Your payment for invoice INV-2026-0042 did not go through",
			want: "Hello,\n\n" +
				"We could not collect €1,234.50 for invoice INV-2026-0042. We will try again on Thursday 5 March 2026 at 09:00 CET.\n\n" +
				"If your card has changed, please update your payment details.",
		},
		{
			name: "reminder", kind: "retry_failed", channel: "email", locale: "en", data: withCardLink(sampleData()),
			wantSubject: "We still could not collect your payment for invoice INV-2026-0042",
			want: "Hello,\n\n" +
				"Attempt 2 to collect €1,234.50 for invoice INV-2026-0042 was declined. We will try again on Thursday 5 March 2026 at 09:00 CET.\n\n" +
				"Please update your payment details to keep your service running:\n" + cardURL,
		},
		{
			name: "final notice", kind: "retry_failed", channel: "email", locale: "en",
			data:        notify.Data{InvoiceID: "INV-7", Amount: "1200", Currency: "JPY", Attempt: 4},
			wantSubject: "Final notice: invoice INV-7 is still unpaid",
			want: "Hello,\n\n" +
				"Attempt 4 to collect ¥1,200 for invoice INV-7 was declined.\n\n" +
				"This was our final attempt. Unless you update your payment details, your service will be suspended.",
		},
		{
			name: "reminder", kind: "retry_failed", channel: "email", locale: "fr-FR", data: withCardLink(sampleData()),
			wantSubject: "Nouvel échec du paiement de la facture INV-2026-0042",
			want: "Bonjour,\n\n" +
				"Le prélèvement de 1\u202f234,50\u00a0€ pour la facture INV-2026-0042 a de nouveau été refusé (tentative n°\u00a02). " +
				"Nous réessaierons le jeudi 5 mars 2026 à 09:00 CET.\n\n" +
				"Veuillez mettre à jour vos informations de paiement pour éviter toute interruption de votre service\u00a0:\n" + cardURL,
		},
		{
			name: "final notice", kind: "retry_failed", channel: "email", locale: "fr", data: noRetry,
			wantSubject: "Dernier avis\u00a0: la facture INV-2026-0042 reste impayée",
			want: "Bonjour,\n\n" +
				"Le prélèvement de 1\u202f234,50\u00a0€ pour la facture INV-2026-0042 a de nouveau été refusé (tentative n°\u00a02).\n\n" +
				"C'était notre dernière tentative. Sans mise à jour de vos informations de paiement, votre service sera suspendu\u00a0:\n" + cardURL,
		},
		{
			name: "reminder", kind: "retry_failed", channel: "email", locale: "pl-PL",
			data:        func() notify.Data { d := withCardLink(sampleData()); d.Currency = "PLN"; return d }(),
			wantSubject: "Kolejna próba płatności za fakturę INV-2026-0042 nie powiodła się",
			want: "Dzień dobry,\n\n" +
				"Ponownie nie udało się pobrać kwoty 1\u00a0234,50\u00a0zł za fakturę INV-2026-0042 (próba nr 2). " +
				"Termin kolejnej próby: czwartek, 5 marca 2026, 09:00 CET.\n\n" +
				"Zaktualizuj dane płatnicze, aby uniknąć przerwy w działaniu usługi:\n" + cardURL,
		},
		{
			name: "final notice", kind: "retry_failed", channel: "email", locale: "pl", data: noRetry,
			wantSubject: "Ostatnie przypomnienie: faktura INV-2026-0042 jest nadal nieopłacona",
			want: "Dzień dobry,\n\n" +
				"Ponownie nie udało się pobrać kwoty 1\u00a0234,50\u00a0€ za fakturę INV-2026-0042 (próba nr 2).\n\n" +
				"Była to nasza ostatnia próba. Jeśli nie zaktualizujesz danych płatniczych, Twoja usługa zostanie zawieszona:\n" + cardURL,
		},
		{
			name: "reminder", kind: "retry_failed", channel: "sms", locale: "en", data: withCardLink(sampleData()),
			want: "Payment of €1,234.50 for invoice INV-2026-0042 failed again. " +
				"Next try: Thursday 5 March 2026 at 09:00 CET. Update your card: " + cardURL,
		},
		{
			name: "final notice", kind: "retry_failed", channel: "sms", locale: "en", data: noRetry,
			want: "Final notice: invoice INV-2026-0042 (€1,234.50) is still unpaid and your service will be suspended. " +
				"Update your card: " + cardURL,
		},
		{
			name: "reminder", kind: "retry_failed", channel: "sms", locale: "fr", data: withCardLink(sampleData()),
			want: "Le paiement de 1\u202f234,50\u00a0€ pour la facture INV-2026-0042 a de nouveau été refusé. " +
				"Prochaine tentative\u00a0: jeudi 5 mars 2026 à 09:00 CET. Mettez à jour votre carte\u00a0: " + cardURL,
		},
		{
			name: "reminder", kind: "retry_failed", channel: "sms", locale: "pl", data: withCardLink(sampleData()),
			want: "Płatność 1\u00a0234,50\u00a0€ za fakturę INV-2026-0042 ponownie nie powiodła się. " +
				"Kolejna próba: czwartek, 5 marca 2026, 09:00 CET. Zaktualizuj kartę: " + cardURL,
		},
		{
			name: "thanks", kind: "payment_recovered", channel: "sms", locale: "en", data: withCardLink(sampleData()),
			want: "Payment of €1,234.50 received for invoice INV-2026-0042, thank you. Your service is running as usual.",
		},
		{
			name: "without amount", kind: "card_expiring", channel: "email", locale: "en",
			data:        notify.Data{CustomerID: "cus_42", CardUpdateURL: cardURL},
			wantSubject: "Your card on file expires soon",
			want: "Hello,\n\n" +
				"The card you pay your subscription with expires soon. Please update your payment details before it expires:\n" + cardURL,
		},
	}
	for _, tt := range tests {
		t.Run(tt.locale+"/"+tt.kind+"/"+tt.channel+"/"+tt.name, func(t *testing.T) {
			r := render(t, tt.kind, tt.channel, tt.locale, tt.data)
			if r.Subject != tt.wantSubject {
				t.Errorf("subject = %q, want %q", r.Subject, tt.wantSubject)
			}
			if r.Text != tt.want {
				t.Errorf("text = %q\nwant   %q", r.Text, tt.want)
			}
		})
	}
}

func TestRenderNextRetryInCustomerTimeZone(t *testing.T) {
	tests := []struct {
		name     string
		at       time.Time
		timeZone string
		want     map[string]string // locale: the sentence announcing the retry
	}{
		{"Warsaw winter", time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC), "Europe/Warsaw", map[string]string{
			"en": "We will try again on Thursday 5 March 2026 at 09:00 CET.",
			"fr": "Nous réessaierons le jeudi 5 mars 2026 à 09:00 CET.",
			"pl": "Termin kolejnej próby: czwartek, 5 marca 2026, 09:00 CET.",
		}},
		// Warsaw moves its clocks from 02:00 CET to 03:00 CEST on 29 March 2026.
		{"Warsaw, the day before the DST change", time.Date(2026, 3, 28, 8, 0, 0, 0, time.UTC), "Europe/Warsaw", map[string]string{
			"en": "We will try again on Saturday 28 March 2026 at 09:00 CET.",
			"fr": "Nous réessaierons le samedi 28 mars 2026 à 09:00 CET.",
			"pl": "Termin kolejnej próby: sobota, 28 marca 2026, 09:00 CET.",
		}},
		{"Warsaw, the day of the DST change", time.Date(2026, 3, 29, 8, 0, 0, 0, time.UTC), "Europe/Warsaw", map[string]string{
			"en": "We will try again on Sunday 29 March 2026 at 10:00 CEST.",
			"fr": "Nous réessaierons le dimanche 29 mars 2026 à 10:00 CEST.",
			"pl": "Termin kolejnej próby: niedziela, 29 marca 2026, 10:00 CEST.",
		}},
		{"New York", time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC), "America/New_York", map[string]string{
			"en": "We will try again on Thursday 5 March 2026 at 03:00 EST.",
			"fr": "Nous réessaierons le jeudi 5 mars 2026 à 03:00 EST.",
			"pl": "Termin kolejnej próby: czwartek, 5 marca 2026, 03:00 EST.",
		}},
		{"date changes", time.Date(2026, 3, 5, 23, 30, 0, 0, time.UTC), "Asia/Tokyo", map[string]string{
			"en": "We will try again on Friday 6 March 2026 at 08:30 JST.",
			"fr": "Nous réessaierons le vendredi 6 mars 2026 à 08:30 JST.",
			"pl": "Termin kolejnej próby: piątek, 6 marca 2026, 08:30 JST.",
		}},
		{"input zone ignored", time.Date(2026, 3, 5, 8, 0, 0, 0, time.FixedZone("X", -5*3600)), "Europe/Warsaw", map[string]string{
			"en": "We will try again on Thursday 5 March 2026 at 14:00 CET.",
		}},
		{"no zone is UTC", time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC), "", map[string]string{
			"en": "We will try again on Thursday 5 March 2026 at 08:00 UTC.",
			"pl": "Termin kolejnej próby: czwartek, 5 marca 2026, 08:00 UTC.",
		}},
		{"unknown zone is UTC", time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC), "Mars/Olympus_Mons", map[string]string{
			"en": "We will try again on Thursday 5 March 2026 at 08:00 UTC.",
			"fr": "Nous réessaierons le jeudi 5 mars 2026 à 08:00 UTC.",
		}},
	}
	for _, tt := range tests {
		for locale, want := range tt.want {
			t.Run(tt.name+"/"+locale, func(t *testing.T) {
				d := sampleData()
				d.NextRetryAt, d.TimeZone = tt.at, tt.timeZone
				r := render(t, "payment_failed", "email", locale, d)
				if !strings.Contains(r.Text, want) {
					t.Errorf("text %q does not contain %q", r.Text, want)
				}
				if !strings.Contains(r.HTML, want) {
					t.Errorf("HTML %q does not contain %q", r.HTML, want)
				}
			})
		}
	}
}

func TestRenderWithoutNextRetry(t *testing.T) {
	announce := map[string]string{"en": "try again", "fr": "réessaierons", "pl": "kolejnej próby"}
	final := map[string]string{"en": "Final notice", "fr": "Dernier avis", "pl": "Ostatnie przypomnienie"}
	suspended := map[string]string{"en": "suspended", "fr": "suspendu", "pl": "zawieszona"}
	for _, locale := range notify.Locales() {
		for _, kind := range []string{"payment_failed", "retry_failed"} {
			t.Run(locale+"/"+kind, func(t *testing.T) {
				d := sampleData()
				d.NextRetryAt = time.Time{}
				email := render(t, kind, "email", locale, d)
				sms := render(t, kind, "sms", locale, d)
				for _, s := range []string{email.Text, email.HTML, sms.Text} {
					if strings.Contains(s, announce[locale]) {
						t.Errorf("%q announces a retry although none is scheduled", s)
					}
				}
				if kind != "retry_failed" {
					return
				}
				// Without another attempt, the reminder is the final notice.
				if !strings.HasPrefix(email.Subject, final[locale]) || !strings.HasPrefix(sms.Text, final[locale]) {
					t.Errorf("subject %q and SMS %q should open with %q", email.Subject, sms.Text, final[locale])
				}
				for _, s := range []string{email.Text, email.HTML, sms.Text} {
					if !strings.Contains(s, suspended[locale]) {
						t.Errorf("%q does not warn that the service will be %s", s, suspended[locale])
					}
				}
			})
		}
	}
}

func TestRenderEscapesHTML(t *testing.T) {
	d := withCardLink(sampleData())
	d.InvoiceID = `<script>alert("x")</script>`
	for _, locale := range notify.Locales() {
		t.Run(locale, func(t *testing.T) {
			r := render(t, "payment_failed", "email", locale, d)
			if strings.Contains(r.HTML, "<script>") {
				t.Errorf("HTML contains the raw invoice ID: %s", r.HTML)
			}
			if !strings.Contains(r.HTML, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
				t.Errorf("HTML does not show the escaped invoice ID: %s", r.HTML)
			}
			// The title comes from the subject and is escaped too.
			if !regexp.MustCompile(`<title>[^<]*&lt;script&gt;`).MatchString(r.HTML) {
				t.Errorf("HTML title is not escaped: %s", r.HTML)
			}
			// Plain text is not HTML: it shows the value as it is.
			if !strings.Contains(r.Text, d.InvoiceID) || !strings.Contains(r.Subject, d.InvoiceID) {
				t.Errorf("text %q or subject %q does not show the invoice ID verbatim", r.Text, r.Subject)
			}
		})
	}

	t.Run("link", func(t *testing.T) {
		d := sampleData()
		d.CardUpdateURL = `javascript:alert(1)`
		r := render(t, "payment_failed", "email", "en", d)
		if strings.Contains(r.HTML, "javascript:") {
			t.Errorf("HTML links to a script URL: %s", r.HTML)
		}
		d.CardUpdateURL = `https://billing.example.com/update-card?a=1&token=x"onclick="y`
		r = render(t, "payment_failed", "email", "en", d)
		if strings.Contains(r.HTML, `"onclick="`) {
			t.Errorf("HTML lets the link break out of its attribute: %s", r.HTML)
		}
	})
}

// French typography puts a no-break space before ":", ";", "!" and "?". An
// ordinary space there lets the sign wrap to the next line alone.
func TestFrenchTypography(t *testing.T) {
	bad := regexp.MustCompile(`[ \t\n][:;!?]|n° `)
	for _, kind := range kinds {
		for _, d := range []notify.Data{withCardLink(sampleData()), {InvoiceID: "F-1", Amount: "5", Currency: "EUR"}} {
			email := render(t, kind, "email", "fr", d)
			sms := render(t, kind, "sms", "fr", d)
			for part, s := range map[string]string{"subject": email.Subject, "text": email.Text, "HTML": email.HTML, "SMS": sms.Text} {
				s = strings.ReplaceAll(s, "https:", "")
				if m := bad.FindString(s); m != "" {
					t.Errorf("%s %s has %q without a no-break space: %q", kind, part, m, s)
				}
			}
		}
	}
}

// gsm7Length counts the septets s takes in an SMS in the GSM 03.38 default
// alphabet (characters from the extension table take two). ok is false when
// s needs UCS-2, which cuts a segment to 70 characters.
func gsm7Length(s string) (n int, ok bool) {
	const basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	const extension = "\f^{}\\[~]|€"
	for _, r := range s {
		switch {
		case strings.ContainsRune(basic, r):
			n++
		case strings.ContainsRune(extension, r):
			n += 2
		default:
			return 0, false
		}
	}
	return n, true
}

// English text messages aim at one 160-character GSM-7 segment for the
// message itself. The signed card link (about 150 characters with a typical
// hosted page and IDs) comes on top, so a message with a link takes two
// segments (2 × 153 characters) and no more.
func TestRenderSMSLength(t *testing.T) {
	signer := cardlink.Signer{
		Secret:  bytes.Repeat([]byte{7}, 32),
		BaseURL: "https://billing.example.com/update-card",
		TTL:     7 * 24 * time.Hour,
	}
	link, err := signer.URL("dunning/acme/INV-2026-0042", "cus_NffrFeUfNV2Hib", time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	realistic := notify.Data{
		CustomerID: "cus_NffrFeUfNV2Hib", InvoiceID: "INV-2026-0042", Amount: "1249.90", Currency: "EUR",
		// The longest English date: a Wednesday in September, summer time.
		NextRetryAt: time.Date(2026, 9, 30, 7, 0, 0, 0, time.UTC), TimeZone: "Europe/Warsaw", Attempt: 3,
	}
	const oneSegment, twoSegments = 160, 2 * 153
	for _, kind := range kinds {
		for _, next := range []bool{true, false} {
			d := realistic
			if !next {
				d.NextRetryAt = time.Time{}
			}
			t.Run(kind+map[bool]string{true: "", false: "/no retry"}[next], func(t *testing.T) {
				plain := render(t, kind, "sms", "en", d).Text
				n, ok := gsm7Length(plain)
				if !ok {
					t.Fatalf("English SMS %q needs UCS-2", plain)
				}
				if n > oneSegment {
					t.Errorf("English SMS is %d GSM-7 characters, want at most %d: %q", n, oneSegment, plain)
				}
				d.CardUpdateURL = link
				linked := render(t, kind, "sms", "en", d).Text
				m, ok := gsm7Length(linked)
				if !ok {
					t.Fatalf("English SMS %q needs UCS-2", linked)
				}
				if m > twoSegments {
					t.Errorf("English SMS with card link is %d GSM-7 characters, want at most %d: %q", m, twoSegments, linked)
				}
				t.Logf("%d characters, %d with the card link", n, m)
			})
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name, kind, channel string
		mutate              func(*notify.Data)
		wantErr             string
	}{
		{"unknown kind", "payment_exploded", "email", nil, "no template"},
		{"unknown kind on SMS", "payment_exploded", "sms", nil, "no template"},
		{"no kind", "", "email", nil, "no template"},
		{"kinds are lower case", "Payment_Failed", "email", nil, "no template"},
		{"unknown channel", "payment_failed", "fax", nil, "unknown channel"},
		{"no channel", "payment_failed", "", nil, "unknown channel"},
		{"no amount", "payment_failed", "email", func(d *notify.Data) { d.Amount = "" }, "amount"},
		{"bad amount", "retry_failed", "sms", func(d *notify.Data) { d.Amount = "12,50" }, "amount"},
		{"too many decimals", "service_paused", "email", func(d *notify.Data) { d.Currency = "JPY" }, "decimal places"},
		{"unknown currency", "payment_recovered", "email", func(d *notify.Data) { d.Currency = "XXX" }, "currency"},
		{"bad amount on card expiry", "card_expiring", "email", func(d *notify.Data) { d.Amount = "abc" }, "amount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := sampleData()
			if tt.mutate != nil {
				tt.mutate(&d)
			}
			r, err := notify.Render(tt.kind, tt.channel, "en", d)
			if err == nil {
				t.Fatalf("Render(%q, %q) = %+v; want an error", tt.kind, tt.channel, r)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q should mention %q", err, tt.wantErr)
			}
			if r != (notify.Rendered{}) {
				t.Errorf("Render returned %+v with an error", r)
			}
		})
	}
}

func TestDryRunSend(t *testing.T) {
	var logs bytes.Buffer
	d := notify.DryRun{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	var n notify.Notifier = d
	receipt, err := n.Send(context.Background(), notify.Message{
		IdempotencyKey: "dunning/acme/inv-1/attempt-1-failed/email", Kind: "payment_failed", Channel: "email",
		To: "jane@example.com", Subject: "Your payment", Body: "We could not collect",
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := notify.Receipt{Provider: "dry-run", Ref: "dry-run:dunning/acme/inv-1/attempt-1-failed/email"}
	if receipt != want {
		t.Errorf("receipt = %+v, want %+v", receipt, want)
	}
	if !strings.Contains(logs.String(), "dunning/acme/inv-1/attempt-1-failed/email") {
		t.Errorf("log %q does not name the key", logs.String())
	}
	if strings.Contains(logs.String(), "jane@example.com") {
		t.Errorf("log %q contains the recipient's address", logs.String())
	}
}
