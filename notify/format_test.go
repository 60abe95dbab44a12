package notify

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/money"
)

// Expected strings spell out their no-break spaces: "\u00a0" (NBSP) before
// a trailing currency, after a leading ISO code and between Polish digit
// groups; "\u202f" (narrow NBSP) between French digit groups.
func TestFormatAmount(t *testing.T) {
	tests := []struct {
		name, value, currency, locale, want string
	}{
		// The amounts the templates show most.
		{"pl PLN", "1234.50", "PLN", "pl", "1\u00a0234,50\u00a0zł"},
		{"fr EUR whole", "12", "EUR", "fr", "12,00\u00a0€"},
		{"en USD whole", "12", "USD", "en", "$12.00"},
		{"en JPY", "1200", "JPY", "en", "¥1,200"},
		{"en EUR", "12", "EUR", "en", "€12.00"},
		{"en GBP", "1234.50", "GBP", "en", "£1,234.50"},
		{"fr USD", "12", "USD", "fr", "12,00\u00a0$US"},
		{"pl EUR", "12", "EUR", "pl", "12,00\u00a0€"},
		{"en BHD", "1.234", "BHD", "en", "BHD\u00a01.234"},
		{"en PLN", "1234.50", "PLN", "en", "PLN\u00a01,234.50"},

		// Exponent 0: no decimal separator at all.
		{"fr JPY", "1200", "JPY", "fr", "1\u202f200\u00a0JPY"},
		{"pl JPY", "1200", "JPY", "pl", "1\u00a0200\u00a0JPY"},
		{"en KRW small", "7", "KRW", "en", "KRW\u00a07"},
		// Exponent 2, padded to two places.
		{"en USD cents", "0.01", "USD", "en", "$0.01"},
		{"en USD one decimal", "49.9", "USD", "en", "$49.90"},
		{"fr EUR", "49.90", "EUR", "fr", "49,90\u00a0€"},
		{"pl PLN small", "9.99", "PLN", "pl", "9,99\u00a0zł"},
		{"fr GBP", "1234.5", "GBP", "fr", "1\u202f234,50\u00a0£GB"},
		{"pl USD", "12", "USD", "pl", "12,00\u00a0USD"},
		// Exponent 3, padded to three places.
		{"en BHD padded", "12", "BHD", "en", "BHD\u00a012.000"},
		{"fr BHD", "1234.5", "BHD", "fr", "1\u202f234,500\u00a0BHD"},
		{"pl KWD", "0.005", "KWD", "pl", "0,005\u00a0KWD"},
		// Exponent 4.
		{"en UYW", "1.5", "UYW", "en", "UYW\u00a01.5000"},

		// Grouping boundaries and large values.
		{"en 999", "999", "USD", "en", "$999.00"},
		{"en 1000", "1000", "USD", "en", "$1,000.00"},
		{"pl 1000", "1000", "PLN", "pl", "1\u00a0000,00\u00a0zł"},
		{"fr 100000", "100000", "EUR", "fr", "100\u202f000,00\u00a0€"},
		{"en millions", "1234567890.12", "USD", "en", "$1,234,567,890.12"},
		{"fr millions", "1234567.8", "EUR", "fr", "1\u202f234\u202f567,80\u00a0€"},
		{"pl millions", "1000000", "PLN", "pl", "1\u00a0000\u00a0000,00\u00a0zł"},
		{"en beyond int64", "123456789012345678901234567890", "JPY", "en",
			"¥123,456,789,012,345,678,901,234,567,890"},
		{"pl beyond int64", "98765432109876543210.99", "PLN", "pl",
			"98\u00a0765\u00a0432\u00a0109\u00a0876\u00a0543\u00a0210,99\u00a0zł"},
		{"surrounding space ignored", " 12.5 ", "EUR", "en", "€12.50"},

		// Locale tags pick their language; others are English.
		{"fr-FR", "12", "EUR", "fr-FR", "12,00\u00a0€"},
		{"fr_CA", "12", "USD", "fr_CA", "12,00\u00a0$US"},
		{"PL", "12", "PLN", "PL", "12,00\u00a0zł"},
		{"pl-PL", "1234.50", "PLN", "pl-PL", "1\u00a0234,50\u00a0zł"},
		{"en-GB", "12", "GBP", "en-GB", "£12.00"},
		{"empty locale", "1234.50", "EUR", "", "€1,234.50"},
		{"unsupported locale", "1234.50", "EUR", "de-DE", "€1,234.50"},
		{"unknown locale", "12", "USD", "xx", "$12.00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FormatAmount(tt.value, tt.currency, tt.locale)
			if err != nil {
				t.Fatalf("FormatAmount(%q, %q, %q): %v", tt.value, tt.currency, tt.locale, err)
			}
			if got != tt.want {
				t.Errorf("FormatAmount(%q, %q, %q) = %q, want %q", tt.value, tt.currency, tt.locale, got, tt.want)
			}
			if strings.Contains(got, " ") {
				t.Errorf("FormatAmount(%q, %q, %q) = %q contains an ordinary space, which may break the line", tt.value, tt.currency, tt.locale, got)
			}
		})
	}
}

func TestFormatAmountErrors(t *testing.T) {
	tests := []struct {
		name, value, currency string
		want                  error
	}{
		{"empty", "", "EUR", money.ErrInvalidAmount},
		{"not a number", "abc", "EUR", money.ErrInvalidAmount},
		{"negative", "-12.00", "EUR", money.ErrInvalidAmount},
		{"zero", "0", "EUR", money.ErrInvalidAmount},
		{"exponent", "1e3", "EUR", money.ErrInvalidAmount},
		{"too many decimals", "12.345", "EUR", money.ErrInvalidAmount},
		{"decimals in JPY", "12.5", "JPY", money.ErrInvalidAmount},
		{"comma decimal", "12,50", "EUR", money.ErrInvalidAmount},
		{"unknown currency", "12", "XXX", money.ErrUnknownCurrency},
		{"lower-case currency", "12", "eur", money.ErrUnknownCurrency},
		{"no currency", "12", "", money.ErrUnknownCurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FormatAmount(tt.value, tt.currency, "en")
			if !errors.Is(err, tt.want) {
				t.Errorf("FormatAmount(%q, %q) = %q, %v; want %v", tt.value, tt.currency, got, err, tt.want)
			}
			if got != "" {
				t.Errorf("FormatAmount returned %q with an error", got)
			}
		})
	}
}

func TestGroupThousands(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0", "0"}, {"12", "12"}, {"123", "123"}, {"1234", "1,234"},
		{"12345", "12,345"}, {"123456", "123,456"}, {"1234567", "1,234,567"},
	}
	for _, tt := range tests {
		if got := groupThousands(tt.in, ","); got != tt.want {
			t.Errorf("groupThousands(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMatchLocale(t *testing.T) {
	tests := []struct{ in, want string }{
		{"en", "en"}, {"en-US", "en"}, {"EN_gb", "en"},
		{"fr", "fr"}, {"fr-FR", "fr"}, {"fr_CA", "fr"}, {"FR", "fr"}, {"fr-Latn-BE", "fr"},
		{"pl", "pl"}, {"PL", "pl"}, {"pl-PL", "pl"}, {"pl_pl", "pl"},
		{"", "en"}, {"de", "en"}, {"de-DE", "en"}, {"xx", "en"}, {"und-FR", "en"},
		{"french", "en"}, {"fr-", "en"}, {"-fr", "en"}, {"*", "en"},
	}
	for _, tt := range tests {
		if got := matchLocale(tt.in); got != tt.want {
			t.Errorf("matchLocale(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatTime(t *testing.T) {
	utc := func(month time.Month, day, hour, minute int) time.Time {
		return time.Date(2026, month, day, hour, minute, 0, 0, time.UTC)
	}
	tests := []struct {
		name     string
		at       time.Time
		timeZone string
		want     map[string]string
	}{
		{"winter", utc(3, 5, 8, 0), "Europe/Warsaw", map[string]string{
			"en": "Thursday 5 March 2026 at 09:00 CET",
			"fr": "jeudi 5 mars 2026 à 09:00 CET",
			"pl": "czwartek, 5 marca 2026, 09:00 CET",
		}},
		// Warsaw moves to summer time at 01:00 UTC on 29 March 2026.
		{"before the DST change", utc(3, 29, 0, 30), "Europe/Warsaw", map[string]string{
			"en": "Sunday 29 March 2026 at 01:30 CET",
			"fr": "dimanche 29 mars 2026 à 01:30 CET",
			"pl": "niedziela, 29 marca 2026, 01:30 CET",
		}},
		{"after the DST change", utc(3, 29, 1, 30), "Europe/Warsaw", map[string]string{
			"en": "Sunday 29 March 2026 at 03:30 CEST",
			"fr": "dimanche 29 mars 2026 à 03:30 CEST",
			"pl": "niedziela, 29 marca 2026, 03:30 CEST",
		}},
		{"first of the month", utc(7, 1, 8, 0), "Europe/Paris", map[string]string{
			"en": "Wednesday 1 July 2026 at 10:00 CEST",
			"fr": "mercredi 1er juillet 2026 à 10:00 CEST",
			"pl": "środa, 1 lipca 2026, 10:00 CEST",
		}},
		{"date changes in the zone", utc(12, 31, 23, 30), "Asia/Tokyo", map[string]string{
			"en": "Friday 1 January 2027 at 08:30 JST",
			"fr": "vendredi 1er janvier 2027 à 08:30 JST",
			"pl": "piątek, 1 stycznia 2027, 08:30 JST",
		}},
		{"zone without abbreviation", utc(8, 15, 12, 0), "America/Sao_Paulo", map[string]string{
			"en": "Saturday 15 August 2026 at 09:00 UTC-03",
			"fr": "samedi 15 août 2026 à 09:00 UTC-03",
			"pl": "sobota, 15 sierpnia 2026, 09:00 UTC-03",
		}},
		{"no zone", utc(2, 2, 14, 5), "", map[string]string{
			"en": "Monday 2 February 2026 at 14:05 UTC",
			"fr": "lundi 2 février 2026 à 14:05 UTC",
			"pl": "poniedziałek, 2 lutego 2026, 14:05 UTC",
		}},
		{"unknown zone", utc(9, 22, 6, 0), "Mars/Olympus_Mons", map[string]string{
			"en": "Tuesday 22 September 2026 at 06:00 UTC",
			"fr": "mardi 22 septembre 2026 à 06:00 UTC",
			"pl": "wtorek, 22 września 2026, 06:00 UTC",
		}},
		{"server zone is not the customer's", utc(10, 7, 6, 0), "Local", map[string]string{
			"en": "Wednesday 7 October 2026 at 06:00 UTC",
			"fr": "mercredi 7 octobre 2026 à 06:00 UTC",
			"pl": "środa, 7 października 2026, 06:00 UTC",
		}},
		{"input zone ignored", time.Date(2026, 11, 12, 8, 0, 0, 0, time.FixedZone("X", -5*3600)), "Europe/Warsaw", map[string]string{
			"en": "Thursday 12 November 2026 at 14:00 CET",
			"fr": "jeudi 12 novembre 2026 à 14:00 CET",
			"pl": "czwartek, 12 listopada 2026, 14:00 CET",
		}},
		{"daylight time elsewhere", utc(4, 4, 12, 0), "America/New_York", map[string]string{
			"en": "Saturday 4 April 2026 at 08:00 EDT",
			"fr": "samedi 4 avril 2026 à 08:00 EDT",
			"pl": "sobota, 4 kwietnia 2026, 08:00 EDT",
		}},
	}
	for _, tt := range tests {
		for locale, want := range tt.want {
			t.Run(tt.name+"/"+locale, func(t *testing.T) {
				if got := formatTime(tt.at, tt.timeZone, locale); got != want {
					t.Errorf("formatTime(%v, %q, %q) = %q, want %q", tt.at, tt.timeZone, locale, got, want)
				}
			})
		}
	}
}

// Every month and day name is spelled out for every locale.
func TestDateNamesComplete(t *testing.T) {
	for _, locale := range Locales() {
		for i, name := range weekdays[locale] {
			if name == "" {
				t.Errorf("%s: no name for weekday %d", locale, i)
			}
		}
		for i, name := range months[locale] {
			if name == "" {
				t.Errorf("%s: no name for month %d", locale, i+1)
			}
		}
		if _, ok := numberFormats[locale]; !ok {
			t.Errorf("%s: no number format", locale)
		}
	}
}
