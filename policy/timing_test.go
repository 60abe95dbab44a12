package policy

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestTimingPlace(t *testing.T) {
	timing := Default().Timing
	tests := []struct {
		name    string
		zone    string
		country string
		reason  string
		at      string
		want    string
	}{
		{"inside the window on a weekday stays", "Europe/Warsaw", "PL", "do_not_honor", "2026-03-03T09:30:00+01:00", "2026-03-03T09:30:00+01:00"},
		{"night moves to the next morning", "Europe/Warsaw", "PL", "do_not_honor", "2026-03-03T23:00:00+01:00", "2026-03-04T09:00:00+01:00"},
		{"afternoon moves to the next morning", "America/Los_Angeles", "US", "do_not_honor", "2026-03-03T15:00:00-08:00", "2026-03-04T09:00:00-08:00"},
		{"Saturday moves to Monday", "Asia/Tokyo", "", "do_not_honor", "2026-03-07T10:00:00+09:00", "2026-03-09T09:00:00+09:00"},
		{"Christmas and Boxing Day in Poland move to the 28th", "Europe/Warsaw", "PL", "do_not_honor", "2026-12-24T10:00:00+01:00", "2026-12-28T09:00:00+01:00"},
		{"Christmas in the US moves to Monday the 28th", "America/Los_Angeles", "US", "do_not_honor", "2026-12-25T09:00:00-08:00", "2026-12-28T09:00:00-08:00"},
		{"insufficient funds waits for Friday", "Europe/Warsaw", "PL", "insufficient_funds", "2026-03-03T09:30:00+01:00", "2026-03-06T09:00:00+01:00"},
		{"insufficient funds on the 1st stays", "Europe/Warsaw", "PL", "insufficient_funds", "2026-04-01T10:00:00+02:00", "2026-04-01T10:00:00+02:00"},
		{"insufficient funds takes the 15th", "America/Los_Angeles", "US", "insufficient_funds", "2026-09-14T10:30:00-07:00", "2026-09-15T09:00:00-07:00"},
		{"insufficient funds takes the last business day", "America/Los_Angeles", "US", "insufficient_funds", "2026-06-29T10:30:00-07:00", "2026-06-30T09:00:00-07:00"},
		{"spring forward keeps 09:00 local", "Europe/Warsaw", "PL", "do_not_honor", "2026-03-28T12:00:00+01:00", "2026-03-30T09:00:00+02:00"},
		{"Lord Howe DST end", "Australia/Lord_Howe", "", "do_not_honor", "2026-04-03T12:00:00+11:00", "2026-04-06T09:00:00+10:30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			at, _ := time.Parse(time.RFC3339, tt.at)
			want, _ := time.Parse(time.RFC3339, tt.want)
			if got := timing.place(at, loc, tt.country, tt.reason); !got.Equal(want) {
				t.Fatalf("place(%s) = %s, want %s", tt.at, got.In(loc).Format(time.RFC3339), tt.want)
			}
		})
	}
}

// Property: for many start instants, zones, countries and reasons, every
// scheduled retry of the default policy lands on a local business day
// between 09:00 and 11:00, inside the policy window, never in the past.
func TestTimingProperty(t *testing.T) {
	p := Default()
	rng := rand.New(rand.NewPCG(1, 2))
	zones := []string{"America/Los_Angeles", "Europe/Warsaw", "Asia/Tokyo", "Australia/Lord_Howe", "Pacific/Auckland", "UTC"}
	countries := []string{"US", "PL", "FR", "GB", ""}
	reasons := []string{"insufficient_funds", "do_not_honor", "generic_decline", ""}
	for i := 0; i < 3000; i++ {
		loc := mustLoad(t, zones[rng.IntN(len(zones))])
		country := countries[rng.IntN(len(countries))]
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(600 * day))))
		s := State{DeclinedAt: start, Now: start, Location: loc, Country: country, DeclineReason: reasons[rng.IntN(len(reasons))]}
		for {
			step, ok := p.NextRetry(s)
			if !ok {
				break
			}
			local := step.At.In(loc)
			if step.At.Before(s.Now) || step.At.After(start.Add(p.Window.D())) {
				t.Fatalf("case %d: retry at %s outside [now, decline+window]", i, step.At)
			}
			if mins := local.Hour()*60 + local.Minute(); mins < 9*60 || mins >= 11*60 || !p.Timing.businessDay(local, country) {
				t.Fatalf("case %d (%s, %s): retry at %s", i, loc, country, local.Format(time.RFC1123))
			}
			s.Now = step.At
			s.Attempts = append(s.Attempts, Attempt{Number: step.Attempt, At: step.At, Reason: step.Reason})
		}
	}
}
