package audit

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dunningco/dunning/ledger"
)

const day = 24 * time.Hour

// ComplianceWindow is the longest period one compliance report covers: the
// card networks count over 30 days.
const ComplianceWindow = 30 * day

// ComplianceLedger is what the compliance report reads; *ledger.Store
// implements it.
type ComplianceLedger interface {
	CardActivity(ctx context.Context, tenant string, from, to time.Time, lookback time.Duration) (ledger.CardActivity, error)
}

// CardRow is one card and network in the compliance report.
type CardRow struct {
	Card    string `json:"card"`
	Network string `json:"network"`
	// Attempts are the tenant's charges of the card in the period (every
	// reservation that went to the gateway), by source.
	Attempts   int `json:"attempts"`
	Scheduled  int `json:"scheduled"`
	Expedited  int `json:"expedited"`
	CardUpdate int `json:"card_update"`
	Other      int `json:"other"`
	Declines   int `json:"declines"`
	// Refusals are charges a rule turned down before the gateway, by rule.
	Refusals       int            `json:"refusals"`
	RefusalsByRule map[string]int `json:"refusals_by_rule,omitempty"`
	// Violations are charges that went ahead although a card-network rule
	// forbade them; the platform's gate exists so this is always zero.
	Violations      int      `json:"violations"`
	ViolationDetail []string `json:"violation_detail,omitempty"`
}

// Compliance builds the card-network compliance report of the tenant for
// [from, to), at most ComplianceWindow long. Each charge is checked against
// the limits it was made under, counting every reservation on the card
// (of any run and merchant) in the rule's trailing window.
func Compliance(ctx context.Context, l ComplianceLedger, tenant string, from, to time.Time, lim ledger.Limits) ([]CardRow, error) {
	if err := CheckWindow(from, to, ComplianceWindow); err != nil {
		return nil, err
	}
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	lookback := max(lim.VisaWindow, lim.MastercardSameAmountWindow, day)
	act, err := l.CardActivity(ctx, tenant, from, to, lookback)
	if err != nil {
		return nil, err
	}
	return Report(act, tenant, from, to, lim), nil
}

// Report is the compliance report computed from the ledger's card
// activity; pure, so hand-computed expectations can check it.
func Report(act ledger.CardActivity, tenant string, from, to time.Time, lim ledger.Limits) []CardRow {
	rows := map[string]*CardRow{}
	row := func(card, network string) *CardRow {
		k := card + "\x00" + network
		if r, ok := rows[k]; ok {
			return r
		}
		r := &CardRow{Card: card, Network: network}
		rows[k] = r
		return r
	}
	byCard := map[string][]ledger.CardAttempt{}
	for _, a := range act.Attempts {
		byCard[a.CardKey] = append(byCard[a.CardKey], a)
	}
	for _, a := range act.Attempts {
		if a.Merchant != tenant || a.ReservedAt.Before(from) || !a.ReservedAt.Before(to) {
			continue
		}
		r := row(a.CardKey, a.Network)
		r.Attempts++
		switch a.Source {
		case "scheduled":
			r.Scheduled++
		case "expedite":
			r.Expedited++
		case "card_updated":
			r.CardUpdate++
		default:
			r.Other++
		}
		if a.Outcome == "declined" {
			r.Declines++
		}
		for _, v := range violations(a, byCard[a.CardKey], act.Blocks, lim) {
			r.Violations++
			r.ViolationDetail = append(r.ViolationDetail, a.IdempotencyKey+": "+v)
		}
	}
	refuse := func(card, network, rule string) {
		r := row(card, network)
		r.Refusals++
		if r.RefusalsByRule == nil {
			r.RefusalsByRule = map[string]int{}
		}
		r.RefusalsByRule[rule]++
	}
	for _, d := range act.Denials {
		refuse(d.CardKey, d.Network, d.Rule)
	}
	networkOf := map[string]string{}
	for _, a := range act.Attempts {
		networkOf[a.CardKey] = a.Network
	}
	for _, d := range act.Refusals {
		refuse(d.CardKey, networkOf[d.CardKey], d.Rule)
	}
	out := make([]CardRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b CardRow) int {
		return strings.Compare(a.Card+"\x00"+a.Network, b.Card+"\x00"+b.Network)
	})
	return out
}

// violations lists the card-network rules charge a broke: the limits as
// they stood when it was reserved, and any block on the card then.
func violations(a ledger.CardAttempt, card []ledger.CardAttempt, blocks []ledger.CardBlock, lim ledger.Limits) []string {
	var out []string
	count := func(win time.Duration, match func(ledger.CardAttempt) bool) int {
		n := 0
		for _, o := range card {
			if o.IdempotencyKey != a.IdempotencyKey && o.ReservedAt.After(a.ReservedAt.Add(-win)) &&
				!o.ReservedAt.After(a.ReservedAt) && (o.ReservedAt.Before(a.ReservedAt) || o.IdempotencyKey < a.IdempotencyKey) && match(o) {
				n++
			}
		}
		return n
	}
	declined := func(o ledger.CardAttempt) bool { return o.Outcome == "declined" }
	switch a.Network {
	case ledger.NetworkVisa:
		if n := count(lim.VisaWindow, func(ledger.CardAttempt) bool { return true }); n >= lim.VisaMaxReattempts {
			out = append(out, fmt.Sprintf("visa: %d attempts on the card in the %s before it (limit %d)", n, window(lim.VisaWindow), lim.VisaMaxReattempts))
		}
	case ledger.NetworkMastercard:
		if n := count(day, declined); n >= lim.MastercardMaxDeclinesPerDay {
			out = append(out, fmt.Sprintf("mastercard: %d declines of the card in the 24 hours before it (limit %d)", n, lim.MastercardMaxDeclinesPerDay))
		}
		same := func(o ledger.CardAttempt) bool {
			return declined(o) && o.Merchant == a.Merchant && o.AmountMinor == a.AmountMinor && o.Currency == a.Currency
		}
		if n := count(lim.MastercardSameAmountWindow, same); n >= lim.MastercardMaxSameAmount {
			out = append(out, fmt.Sprintf("mastercard: %d declines of the card for this merchant and amount in the %s before it (limit %d)",
				n, window(lim.MastercardSameAmountWindow), lim.MastercardMaxSameAmount))
		}
	}
	for _, b := range blocks {
		if b.CardKey == a.CardKey && !a.ReservedAt.Before(b.CreatedAt) && a.ReservedAt.Before(b.BlockedUntil) && b.SourceKey != a.IdempotencyKey {
			out = append(out, fmt.Sprintf("charged while the card was blocked until %s (%s)", b.BlockedUntil.Format(time.RFC3339), b.Reason))
		}
	}
	return out
}

// ComplianceColumns are the compliance CSV's columns.
var ComplianceColumns = []string{"card", "network", "from", "to", "attempts", "scheduled", "expedited", "card_update", "other",
	"declines", "refusals", "refusals_by_rule", "violations", "violation_detail"}

// WriteComplianceCSV writes the report as CSV with a header line.
func WriteComplianceCSV(w io.Writer, rows []CardRow, from, to time.Time) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ComplianceColumns); err != nil {
		return err
	}
	for _, r := range rows {
		rules := make([]string, 0, len(r.RefusalsByRule))
		for rule, n := range r.RefusalsByRule {
			rules = append(rules, fmt.Sprintf("%s=%d", rule, n))
		}
		slices.Sort(rules)
		itoa := strconv.Itoa
		if err := cw.Write([]string{r.Card, r.Network, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339),
			itoa(r.Attempts), itoa(r.Scheduled), itoa(r.Expedited), itoa(r.CardUpdate), itoa(r.Other),
			itoa(r.Declines), itoa(r.Refusals), strings.Join(rules, "; "), itoa(r.Violations), strings.Join(r.ViolationDetail, "; ")}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// window renders a period for people: "30 days", "24 hours".
func window(d time.Duration) string {
	switch {
	case d%day == 0 && d > day:
		return fmt.Sprintf("%d days", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}
