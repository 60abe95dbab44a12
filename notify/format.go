package notify

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/dunningco/dunning/money"
)

// No-break spaces used in formatted amounts. They keep an amount on one line
// and read as ordinary spaces:
//
//   - French groups thousands with a narrow no-break space (U+202F),
//     "1 234,50 €";
//   - Polish groups thousands with a no-break space (U+00A0), "1 234,50 zł";
//   - a no-break space (U+00A0) separates an amount from a currency written
//     after it ("12,00 €") or from an ISO code written before it
//     ("BHD 1.234").
const (
	nbsp  = "\u00a0"
	nnbsp = "\u202f"
)

// numberFormat is how a locale writes amounts of money.
type numberFormat struct {
	group, decimal string
	// symbols maps ISO 4217 codes to the locale's symbol. Currencies not
	// listed are written with their code.
	symbols map[string]string
	// symbolFirst puts the symbol before the number ("$12.00"); otherwise
	// it follows after a no-break space ("12,00 €"). ISO codes used in
	// place of a symbol follow the same order, always with a no-break space.
	symbolFirst bool
}

var numberFormats = map[string]numberFormat{
	"en": {
		group: ",", decimal: ".", symbolFirst: true,
		symbols: map[string]string{"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"},
	},
	"fr": {
		group: nnbsp, decimal: ",",
		symbols: map[string]string{"EUR": "€", "USD": "$US", "GBP": "£GB", "CAD": "$CA", "CHF": "CHF"},
	},
	"pl": {
		group: nbsp, decimal: ",",
		symbols: map[string]string{"PLN": "zł", "EUR": "€"},
	},
}

// FormatAmount writes an amount of money the way readers of locale expect
// it: "$1,234.50" in English, "1 234,50 €" in French, "1 234,50 zł" in
// Polish. value is a decimal string in currency (ISO 4217), checked by
// money.Parse; the result always shows the currency's minor units ("12" in
// EUR is "12.00", in JPY "12", in BHD "12.000"). Amounts in currencies
// without a symbol in the locale carry the ISO code ("PLN 1,234.50",
// "12,00 USD"). The spaces in these examples are no-break spaces: U+202F
// between French digit groups, U+00A0 everywhere else. Unsupported locales
// format as English.
func FormatAmount(value, currency, locale string) (string, error) {
	a, err := money.Parse(value, currency)
	if err != nil {
		return "", fmt.Errorf("notify: format amount: %w", err)
	}
	f := numberFormats[matchLocale(locale)]
	digits := a.Value.StringFixed(a.Currency.MinorUnits)
	whole, frac, _ := strings.Cut(digits, ".")
	number := groupThousands(whole, f.group)
	if frac != "" {
		number += f.decimal + frac
	}
	symbol, ok := f.symbols[a.Currency.Code]
	switch {
	case !ok && f.symbolFirst:
		return a.Currency.Code + nbsp + number, nil
	case !ok:
		return number + nbsp + a.Currency.Code, nil
	case f.symbolFirst:
		return symbol + number, nil
	default:
		return number + nbsp + symbol, nil
	}
}

// groupThousands inserts sep between groups of three digits, from the right.
func groupThousands(digits, sep string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	head := len(digits) % 3
	if head == 0 {
		head = 3
	}
	b.WriteString(digits[:head])
	for i := head; i < len(digits); i += 3 {
		b.WriteString(sep)
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

// matchLocale maps a BCP 47 tag ("fr-FR", "fr_CA", "PL") to the locale of
// its base language when there are templates for it, and to "en" otherwise.
func matchLocale(locale string) string {
	tag, err := language.Parse(locale)
	if err != nil {
		return "en"
	}
	base, conf := tag.Base()
	if conf != language.Exact {
		return "en"
	}
	switch b := base.String(); b {
	case "en", "fr", "pl":
		return b
	}
	return "en"
}

// Day and month names. Polish months are in the genitive, as in "5 marca".
var (
	weekdays = map[string][7]string{
		"en": {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"},
		"fr": {"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"},
		"pl": {"niedziela", "poniedziałek", "wtorek", "środa", "czwartek", "piątek", "sobota"},
	}
	months = map[string][12]string{
		"en": {"January", "February", "March", "April", "May", "June",
			"July", "August", "September", "October", "November", "December"},
		"fr": {"janvier", "février", "mars", "avril", "mai", "juin",
			"juillet", "août", "septembre", "octobre", "novembre", "décembre"},
		"pl": {"stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca",
			"lipca", "sierpnia", "września", "października", "listopada", "grudnia"},
	}
)

// formatTime writes t as a date and time in the IANA time zone timeZone
// (UTC when it is empty or unknown), for readers of locale:
//
//	en  Thursday 5 March 2026 at 09:00 CET
//	fr  jeudi 5 mars 2026 à 09:00 CET   (the first of the month is "1er")
//	pl  czwartek, 5 marca 2026, 09:00 CET
//
// The zone abbreviation tells the customer which clock is meant; zones
// without a common abbreviation show their offset, as in "UTC-03".
func formatTime(t time.Time, timeZone, locale string) string {
	t = t.In(customerZone(timeZone))
	lang := matchLocale(locale)
	day := weekdays[lang][t.Weekday()]
	month := months[lang][t.Month()-1]
	clock := t.Format("15:04")
	zone, _ := t.Zone()
	if strings.HasPrefix(zone, "+") || strings.HasPrefix(zone, "-") {
		zone = "UTC" + zone
	}
	switch lang {
	case "fr":
		dom := fmt.Sprint(t.Day())
		if t.Day() == 1 {
			dom = "1er"
		}
		return fmt.Sprintf("%s %s %s %d à %s %s", day, dom, month, t.Year(), clock, zone)
	case "pl":
		return fmt.Sprintf("%s, %d %s %d, %s %s", day, t.Day(), month, t.Year(), clock, zone)
	default:
		return fmt.Sprintf("%s %d %s %d at %s %s", day, t.Day(), month, t.Year(), clock, zone)
	}
}

// customerZone loads an IANA time zone. Empty, unknown and "Local" (the
// server's zone, which says nothing about the customer) give UTC.
func customerZone(name string) *time.Location {
	if name == "" || name == "Local" {
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc
}
