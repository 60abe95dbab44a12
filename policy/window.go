package policy

import (
	"fmt"
	"time"
)

// Window is a daily span of local wall-clock time, such as the hours SMS may
// be sent: "08:00" to "21:00" in the customer's time zone. The zero Window
// allows any time.
type Window struct {
	Start string `json:"start"` // "HH:MM", inclusive
	End   string `json:"end"`   // "HH:MM", exclusive
}

// IsZero reports whether the window is unset (no restriction).
func (w Window) IsZero() bool { return w.Start == "" && w.End == "" }

func (w Window) validate() error {
	sh, sm, err := clock(w.Start)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	eh, em, err := clock(w.End)
	if err != nil {
		return fmt.Errorf("end: %w", err)
	}
	if sh*60+sm >= eh*60+em {
		return fmt.Errorf("start %s must be before end %s on the same day", w.Start, w.End)
	}
	return nil
}

// NextOpen is t when t falls inside the window in loc, else the window's
// next opening. Wall-clock times are built per day with time.Date, so DST
// changes move the instant, not the local hour.
func (w Window) NextOpen(t time.Time, loc *time.Location) time.Time {
	if w.IsZero() {
		return t
	}
	if loc == nil {
		loc = time.UTC
	}
	sh, sm, err1 := clock(w.Start)
	eh, em, err2 := clock(w.End)
	if err1 != nil || err2 != nil {
		return t // Validate rejects such policies; never block a run on one
	}
	y, m, d := t.In(loc).Date()
	for i := 0; i < 3; i++ {
		open := time.Date(y, m, d+i, sh, sm, 0, 0, loc)
		closeAt := time.Date(y, m, d+i, eh, em, 0, 0, loc)
		if t.Before(open) {
			return open
		}
		if t.Before(closeAt) {
			return t
		}
	}
	return t
}

func clock(s string) (hour, minute int, err error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, 0, fmt.Errorf("%q is not HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &hour, &minute); err != nil || hour > 23 || minute > 59 {
		return 0, 0, fmt.Errorf("%q is not a time of day (HH:MM)", s)
	}
	return hour, minute, nil
}
