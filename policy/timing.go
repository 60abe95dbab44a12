package policy

import (
	"slices"
	"time"
)

// Timing places retries where they succeed more often: in the customer's
// local morning, on business days, and for insufficient funds near a
// payday. It only ever moves a retry later, by at most MaxShift.
type Timing struct {
	// Window is the local time of day retries run in, e.g. 09:00-11:00.
	Window Window `json:"window,omitzero"`
	// BusinessDays skips Saturdays, Sundays and the customer's holidays.
	BusinessDays bool `json:"business_days,omitempty"`
	// Holidays lists bank holidays ("2026-12-25") per ISO 3166 country code.
	Holidays map[string][]string `json:"holidays,omitempty"`
	// PaydayReasons are decline reasons whose retries aim for a payday: the
	// 1st, the 15th, the last business day of the month, or a Friday.
	PaydayReasons []string `json:"payday_reasons,omitempty"`
	// MaxShift bounds how far a retry may move; the policy's window must
	// leave room for it.
	MaxShift Duration `json:"max_shift,omitempty"`
}

// IsZero reports whether timing is off.
func (t Timing) IsZero() bool {
	return t.Window.IsZero() && !t.BusinessDays && len(t.PaydayReasons) == 0
}

// place returns the first good moment at or after at: a payday when the
// decline reason calls for one, else a business day, always inside the
// window. It never moves a retry by more than MaxShift for the day rules;
// the window itself is never given up.
func (t Timing) place(at time.Time, loc *time.Location, country, reason string) time.Time {
	placed, _ := t.placeWhy(at, loc, country, reason)
	return placed
}

// Placement rules, as explanations name them.
const (
	RulePayday      = "payday rule (the 1st, the 15th, the last business day or a Friday)"
	RuleBusinessDay = "business-day rule (no weekends or bank holidays)"
	RuleRetryWindow = "local retry window"
)

// placeWhy is place and the rule that chose the moment ("" when none
// applied).
func (t Timing) placeWhy(at time.Time, loc *time.Location, country, reason string) (time.Time, string) {
	if t.IsZero() {
		return at, ""
	}
	if loc == nil {
		loc = time.UTC
	}
	if slices.Contains(t.PaydayReasons, reason) {
		if c, ok := t.search(at, loc, country, true); ok {
			return c, RulePayday
		}
	}
	if c, ok := t.search(at, loc, country, false); ok {
		if t.BusinessDays && !sameDay(c.In(loc), at.In(loc)) {
			return c, RuleBusinessDay
		}
		return c, RuleRetryWindow
	}
	return t.Window.NextOpen(at, loc), RuleRetryWindow
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}

func (t Timing) search(at time.Time, loc *time.Location, country string, payday bool) (time.Time, bool) {
	limit := at.Add(t.MaxShift.D())
	for cand := at; !cand.After(limit); {
		cand = t.Window.NextOpen(cand, loc)
		if cand.After(limit) {
			break
		}
		local := cand.In(loc)
		if t.goodDay(local, country) && (!payday || t.isPayday(local, country)) {
			return cand, true
		}
		y, m, d := local.Date()
		cand = time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	}
	return time.Time{}, false
}

func (t Timing) goodDay(local time.Time, country string) bool {
	if !t.BusinessDays {
		return true
	}
	return t.businessDay(local, country)
}

func (t Timing) businessDay(local time.Time, country string) bool {
	if wd := local.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	return !slices.Contains(t.Holidays[country], local.Format(time.DateOnly))
}

func (t Timing) isPayday(local time.Time, country string) bool {
	y, m, d := local.Date()
	if d == 1 || d == 15 || local.Weekday() == time.Friday {
		return true
	}
	// The last business day of the month.
	for next := d + 1; ; next++ {
		day := time.Date(y, m, next, 12, 0, 0, 0, local.Location())
		if day.Month() != m {
			return true
		}
		if t.businessDay(day, country) {
			return false
		}
	}
}
