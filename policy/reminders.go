package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Reminder kinds: what a reminder run's anchor is.
const (
	// ReminderPreDue reminds of an invoice around its due date.
	ReminderPreDue = "pre-due"
	// ReminderCardExpiry reminds of a card that expires (or a subscription
	// that renews) on the anchor date.
	ReminderCardExpiry = "card-expiry"
)

// ReminderHour is the local hour (in the customer's time zone) reminders go
// out at, on the day the schedule computes.
const ReminderHour = 9

// Limits on reminder offsets: anything further out is a typo.
const (
	maxBeforeDue  = 90 * day
	maxCardExpiry = 366 * day
)

// Reminders are messages sent before a payment fails: around an invoice's due
// date and before a card expires. Offsets are whole days.
type Reminders struct {
	// BeforeDue lists offsets relative to the due date; negative is before,
	// e.g. [-3d, 0d, 3d] (the last only while the invoice is unpaid).
	BeforeDue []Duration `json:"before_due"`
	// CardExpiry lists how many days before the card expires (or the
	// subscription renews) to remind, e.g. [30d, 14d, 7d, 1d].
	CardExpiry []Duration `json:"card_expiry"`
	// Channels the reminders go out on.
	Channels []Channel `json:"channels"`
}

// IsZero reports a policy without reminders.
func (r Reminders) IsZero() bool {
	return len(r.BeforeDue) == 0 && len(r.CardExpiry) == 0 && len(r.Channels) == 0
}

// ReminderStep is one reminder due at At (ReminderHour local time).
type ReminderStep struct {
	// Key is stable for the step within a run, e.g. "pre-due-minus-3d" or
	// "card-expiry-30d"; message idempotency keys are built from it.
	Key      string    `json:"key"`
	At       time.Time `json:"at"`
	Offset   Duration  `json:"offset"`
	Channels []Channel `json:"channels"`
}

// ErrUnknownReminderKind marks a reminder kind other than ReminderPreDue
// and ReminderCardExpiry.
var ErrUnknownReminderKind = errors.New("unknown reminder kind")

// ValidReminderKind reports whether kind is a reminder kind.
func ValidReminderKind(kind string) bool {
	return kind == ReminderPreDue || kind == ReminderCardExpiry
}

// Validate rejects reminders that cannot be scheduled. Every problem names
// the field it is about.
func (r Reminders) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	check := func(field string, offsets []Duration, lo, hi time.Duration) {
		for i, d := range offsets {
			switch {
			case d.D()%day != 0:
				add("reminders.%s[%d] (%s) is not a whole number of days", field, i, d)
			case d.D() < lo || d.D() > hi:
				add("reminders.%s[%d] (%s) is outside %s..%s", field, i, d, Duration(lo), Duration(hi))
			}
			if slices.Contains(offsets[:i], d) {
				add("reminders.%s[%d] (%s) is listed twice", field, i, d)
			}
		}
	}
	check("before_due", r.BeforeDue, -maxBeforeDue, maxBeforeDue)
	check("card_expiry", r.CardExpiry, 0, maxCardExpiry)
	if (len(r.BeforeDue) > 0 || len(r.CardExpiry) > 0) && len(r.Channels) == 0 {
		add("reminders.channels is empty")
	}
	for i, c := range r.Channels {
		if c != Email && c != SMS {
			add("reminders.channels[%d] %q is not email or sms", i, c)
		}
		if slices.Contains(r.Channels[:i], c) {
			add("reminders.channels[%d] %q is listed twice", i, c)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Schedule lists the reminders of kind still to send for anchor (the due
// date for ReminderPreDue, the expiry or renewal date for
// ReminderCardExpiry): each at ReminderHour on its day in loc, the
// customer's time zone (the anchor's calendar day is taken in loc too), in
// time order, leaving out those before now. An unknown kind has none.
func (r Reminders) Schedule(kind string, anchor, now time.Time, loc *time.Location) []ReminderStep {
	if loc == nil {
		loc = time.UTC
	}
	var offsets []Duration
	sign := 1
	switch kind {
	case ReminderPreDue:
		offsets = r.BeforeDue
	case ReminderCardExpiry:
		offsets, sign = r.CardExpiry, -1
	default:
		return nil
	}
	y, m, d := anchor.In(loc).Date()
	steps := make([]ReminderStep, 0, len(offsets))
	for _, off := range offsets {
		days := sign * int(off.D()/day)
		at := time.Date(y, m, d+days, ReminderHour, 0, 0, 0, loc)
		if at.Before(now) {
			continue
		}
		steps = append(steps, ReminderStep{
			Key:      reminderKey(kind, off),
			At:       at,
			Offset:   off,
			Channels: slices.Clone(r.Channels),
		})
	}
	slices.SortStableFunc(steps, func(a, b ReminderStep) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return steps
}

// reminderKey is the step's stable key: "pre-due-minus-3d", "pre-due-0d",
// "pre-due-plus-3d", "card-expiry-30d".
func reminderKey(kind string, off Duration) string {
	switch {
	case kind == ReminderCardExpiry || off == 0:
		return kind + "-" + days(off)
	case off < 0:
		return kind + "-minus-" + days(-off)
	default:
		return kind + "-plus-" + days(off)
	}
}

// days writes whole days as "Nd", "0d" included.
func days(d Duration) string {
	if d == 0 {
		return "0d"
	}
	return d.String()
}

func (r Reminders) clone() Reminders {
	r.BeforeDue = slices.Clone(r.BeforeDue)
	r.CardExpiry = slices.Clone(r.CardExpiry)
	r.Channels = slices.Clone(r.Channels)
	return r
}
