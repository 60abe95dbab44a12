package analytics

import (
	"fmt"
	"time"
)

// DefaultWindow is the period a query covers when it names none: the last
// 30 days.
const DefaultWindow = 30 * 24 * time.Hour

// ParsePeriod reads a period's bounds as the API and the CLI take them: an
// RFC 3339 instant, or a date (YYYY-MM-DD, UTC). from is inclusive; to is
// exclusive as an instant, while a date as to includes that whole day, so
// from=2026-03-01&to=2026-03-31 is March. An empty to is now; an empty from
// is DefaultWindow before to. Errors wrap ErrInvalid; a bound that does not
// parse is a *BoundError.
func ParsePeriod(from, to string, now time.Time) (time.Time, time.Time, error) {
	end := now.UTC()
	if to != "" {
		t, date, err := parseBound(to)
		if err != nil {
			return time.Time{}, time.Time{}, &BoundError{Bound: "to", Err: err}
		}
		if date {
			t = t.AddDate(0, 0, 1)
		}
		end = t
	}
	start := end.Add(-DefaultWindow)
	if from != "" {
		t, _, err := parseBound(from)
		if err != nil {
			return time.Time{}, time.Time{}, &BoundError{Bound: "from", Err: err}
		}
		start = t
	}
	if !start.Before(end) {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: from (%s) must be before to (%s)", ErrInvalid,
			start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	return start, end, nil
}

// BoundError is a period bound that does not parse; it wraps ErrInvalid.
type BoundError struct {
	Bound string // from or to
	Err   error
}

func (e *BoundError) Error() string   { return fmt.Sprintf("%v: %s: %v", ErrInvalid, e.Bound, e.Err) }
func (e *BoundError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

func parseBound(s string) (t time.Time, date bool, err error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true, nil
	}
	t, err = time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%q is neither a date (2026-03-01) nor an RFC 3339 time (2026-03-01T00:00:00Z)", s)
	}
	return t.UTC(), false, nil
}
