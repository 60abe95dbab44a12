package dashboard

import (
	"net/http"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/notify"
)

// The dashboard speaks the languages the customer messages do (English,
// French, Polish) for numbers, percentages, amounts and dates, chosen from
// the browser's Accept-Language or ?lang=.

var (
	supported = []language.Tag{language.English, language.French, language.Polish}
	matcher   = language.NewMatcher(supported)
)

// locale formats figures for one language.
type locale struct {
	Lang string // "en", "fr", "pl": the page's lang attribute
	p    *message.Printer
}

func pickLocale(r *http.Request) locale {
	prefs := []string{r.URL.Query().Get("lang"), r.Header.Get("Accept-Language")}
	var tag language.Tag = language.English
	for _, pref := range prefs {
		if pref == "" {
			continue
		}
		tags, _, err := language.ParseAcceptLanguage(pref)
		if err != nil || len(tags) == 0 {
			continue
		}
		_, i, conf := matcher.Match(tags...)
		if conf != language.No {
			tag = supported[i]
			break
		}
	}
	return newLocale(tag)
}

func newLocale(tag language.Tag) locale {
	base, _ := tag.Base()
	return locale{Lang: base.String(), p: message.NewPrinter(tag)}
}

// Money is an amount in its currency, rounded half-even to the currency's
// minor units, as the customer messages show it ("€1,234.50", "1 234,50 €").
// notify.FormatAmount formats positive amounts only (what messages carry);
// figures here may be zero (nothing recovered yet) or, as differences,
// negative.
func (l locale) Money(d decimal.Decimal, currency string) string {
	cur, err := money.LookupCurrency(currency)
	if err != nil {
		return d.String() + " " + currency
	}
	v := d.RoundBank(cur.MinorUnits)
	sign := ""
	if v.IsNegative() {
		sign, v = "-", v.Neg()
	}
	if v.IsZero() {
		// One major unit, formatted, has exactly one digit 1: the symbols
		// and codes have none.
		s, err := notify.FormatAmount("1", cur.Code, l.Lang)
		if err != nil {
			return "0 " + cur.Code
		}
		return strings.Replace(s, "1", "0", 1)
	}
	s, err := notify.FormatAmount(v.StringFixed(cur.MinorUnits), cur.Code, l.Lang)
	if err != nil {
		return sign + v.StringFixed(cur.MinorUnits) + " " + cur.Code
	}
	return sign + s
}

// MoneyFloat formats a chart value (already in major units) as money; the
// chart's geometry is float, the figures in tables never are.
func (l locale) MoneyFloat(v float64, currency string) string {
	return l.Money(decimal.NewFromFloat(v).Round(2), currency)
}

// Int is a count with the language's digit grouping.
func (l locale) Int(n int64) string { return l.p.Sprintf("%d", n) }

// Percent is a share (0.25) as a percentage with one decimal ("25.0%",
// "25,0 %").
func (l locale) Percent(share float64) string {
	s := l.p.Sprintf("%.1f", share*100)
	if l.Lang == "en" {
		return s + "%"
	}
	return s + "\u00a0%"
}

// Number is a decimal figure with one decimal ("1.5", "1,5").
func (l locale) Number(v float64) string { return l.p.Sprintf("%.1f", v) }

// Duration is a time span in the largest unit that reads well.
func (l locale) Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Minute:
		return l.p.Sprintf("%.0f s", d.Seconds())
	case d < time.Hour:
		return l.p.Sprintf("%.1f min", d.Minutes())
	case d < 48*time.Hour:
		return l.p.Sprintf("%.1f h", d.Hours())
	}
	return l.p.Sprintf("%.1f %s", d.Hours()/24, l.word("days"))
}

// Time is a moment in UTC, to the second.
func (l locale) Time(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	switch l.Lang {
	case "fr", "pl":
		return t.UTC().Format("02.01.2006 15:04:05") + " UTC"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// words are the few unit words figures carry; page text stays English.
var words = map[string]map[string]string{
	"fr": {"days": "jours"},
	"pl": {"days": "dni"},
}

func (l locale) word(w string) string {
	if t, ok := words[l.Lang][w]; ok {
		return t
	}
	return w
}

// plainLabel turns a code such as "insufficient_funds" into "insufficient funds".
func plainLabel(code string) string {
	if code == "" {
		return "(none)"
	}
	return strings.ReplaceAll(code, "_", " ")
}
