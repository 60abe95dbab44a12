package policy

import (
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestWindowNextOpen(t *testing.T) {
	w := Window{Start: "08:00", End: "21:00"}
	tests := []struct {
		name string
		zone string
		at   string // RFC 3339 instant
		want string // RFC 3339 instant
	}{
		{"inside the window", "Europe/Warsaw", "2026-03-02T10:00:00+01:00", "2026-03-02T10:00:00+01:00"},
		{"23:00 waits for 08:00 next day", "Europe/Warsaw", "2026-03-02T23:00:00+01:00", "2026-03-03T08:00:00+01:00"},
		{"early morning waits for 08:00 same day", "America/Los_Angeles", "2026-03-02T05:30:00-08:00", "2026-03-02T08:00:00-08:00"},
		{"closing time is outside", "Asia/Tokyo", "2026-03-02T21:00:00+09:00", "2026-03-03T08:00:00+09:00"},
		{"opening time is inside", "Asia/Tokyo", "2026-03-02T08:00:00+09:00", "2026-03-02T08:00:00+09:00"},
		{"spring forward in Warsaw: 08:00 CEST", "Europe/Warsaw", "2026-03-28T22:30:00+01:00", "2026-03-29T08:00:00+02:00"},
		{"fall back in Los Angeles: 08:00 PST", "America/Los_Angeles", "2026-10-31T23:00:00-07:00", "2026-11-01T08:00:00-08:00"},
		{"Lord Howe's half-hour DST shift", "Australia/Lord_Howe", "2026-04-04T22:00:00+11:00", "2026-04-05T08:00:00+10:30"},
		{"UTC instant, customer far east", "Pacific/Auckland", "2026-03-02T09:30:00Z", "2026-03-03T08:00:00+13:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, _ := time.Parse(time.RFC3339, tt.at)
			want, _ := time.Parse(time.RFC3339, tt.want)
			if got := w.NextOpen(at, mustLoad(t, tt.zone)); !got.Equal(want) {
				t.Fatalf("NextOpen(%s in %s) = %s, want %s", tt.at, tt.zone, got.In(mustLoad(t, tt.zone)), tt.want)
			}
		})
	}
	if at := time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC); !(Window{}).NextOpen(at, nil).Equal(at) {
		t.Error("the zero window restricts nothing")
	}
}

func TestWindowValidate(t *testing.T) {
	for _, w := range []Window{{"21:00", "08:00"}, {"8:00", "21:00"}, {"08:00", "24:30"}, {"08:00", ""}, {"ab:cd", "21:00"}} {
		p := Default()
		p.SMSWindow = w
		if err := p.Validate(); err == nil {
			t.Errorf("window %+v accepted", w)
		}
	}
}

// Property: across many start instants and zones, no SMS step is ever
// planned outside 08:00-21:00 local time, and no step is in the past.
func TestSMSNeverOutsideWindow(t *testing.T) {
	p := Default()
	zones := []string{"America/Los_Angeles", "Europe/Warsaw", "Asia/Tokyo", "Australia/Lord_Howe", "UTC"}
	for _, zone := range zones {
		loc := mustLoad(t, zone)
		for h := 0; h < 24*14; h += 5 {
			start := time.Date(2026, 3, 20, 0, 17, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
			s := State{DeclinedAt: start, Now: start, Reachable: []Channel{Email, SMS}, Location: loc}
			for i := 0; i < 60; i++ {
				step := p.Next(s)
				if step.At.Before(s.Now) {
					t.Fatalf("%s: step in the past", zone)
				}
				s.Now = step.At
				if step.Action == ActionClose {
					break
				}
				switch step.Action {
				case ActionNotify:
					if step.Channel == SMS {
						local := step.At.In(loc)
						if mins := local.Hour()*60 + local.Minute(); mins < 8*60 || mins >= 21*60 {
							t.Fatalf("%s: SMS %s at %s local", zone, step.Key, local)
						}
					}
					s.Sent = append(s.Sent, step.Key)
				case ActionRetry:
					s.Attempts = append(s.Attempts, Attempt{Number: step.Attempt, At: step.At, Reason: step.Reason})
				case ActionService:
					s.ServiceChanges = append(s.ServiceChanges, ServiceChange{State: step.State, At: step.At})
				}
			}
		}
	}
}

func TestDeferredSMSDoesNotHoldEmail(t *testing.T) {
	p := Default()
	loc := mustLoad(t, "Europe/Warsaw")
	night := time.Date(2026, 3, 16, 22, 0, 0, 0, loc) // paused at 22:00 local
	s := State{DeclinedAt: night.Add(-14 * day), Now: night, Location: loc, Reachable: []Channel{Email, SMS},
		Attempts: []Attempt{
			{Number: 1, At: night.Add(-11 * day), Reason: ReasonScheduled},
			{Number: 2, At: night.Add(-7 * day), Reason: ReasonScheduled},
			{Number: 3, At: night, Reason: ReasonScheduled},
		},
		ServiceChanges: []ServiceChange{{ServicePaused, night}},
		Sent:           []string{"payment-failed/email", "attempt-1-failed/email", "attempt-2-failed/email"},
	}
	if got := p.Next(s); got.Key != "service-paused/email" || !got.At.Equal(night) {
		t.Fatalf("first = %+v, want the email now", got)
	}
	s.Sent = append(s.Sent, "service-paused/email")
	got := p.Next(s)
	if got.Key != "service-paused/sms" || !got.At.Equal(time.Date(2026, 3, 17, 8, 0, 0, 0, loc)) {
		t.Fatalf("second = %+v, want the SMS at 08:00 local", got)
	}
}
