package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestReminderSchedule(t *testing.T) {
	warsaw := mustZone(t, "Europe/Warsaw")
	newYork := mustZone(t, "America/New_York")
	r := Default().Reminders
	type want struct {
		key string
		at  time.Time // UTC
	}
	cases := []struct {
		name   string
		kind   string
		anchor time.Time
		now    time.Time
		loc    *time.Location
		want   []want
	}{
		{
			name:   "pre-due across the spring switch in Warsaw",
			kind:   ReminderPreDue,
			anchor: time.Date(2026, 3, 30, 0, 0, 0, 0, warsaw),
			now:    time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
			loc:    warsaw,
			want: []want{
				{"pre-due-minus-3d", time.Date(2026, 3, 27, 8, 0, 0, 0, time.UTC)},
				{"pre-due-0d", time.Date(2026, 3, 30, 7, 0, 0, 0, time.UTC)},
				{"pre-due-plus-3d", time.Date(2026, 4, 2, 7, 0, 0, 0, time.UTC)},
			},
		},
		{
			name:   "pre-due across the autumn switch in New York",
			kind:   ReminderPreDue,
			anchor: time.Date(2026, 11, 2, 12, 0, 0, 0, newYork),
			now:    time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
			loc:    newYork,
			want: []want{
				{"pre-due-minus-3d", time.Date(2026, 10, 30, 13, 0, 0, 0, time.UTC)},
				{"pre-due-0d", time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC)},
				{"pre-due-plus-3d", time.Date(2026, 11, 5, 14, 0, 0, 0, time.UTC)},
			},
		},
		{
			name: "the anchor's day is the customer's day",
			kind: ReminderPreDue,
			// 23:30 UTC on 9 June is already 10 June in Warsaw.
			anchor: time.Date(2026, 6, 9, 23, 30, 0, 0, time.UTC),
			now:    time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
			loc:    warsaw,
			want: []want{
				{"pre-due-minus-3d", time.Date(2026, 6, 7, 7, 0, 0, 0, time.UTC)},
				{"pre-due-0d", time.Date(2026, 6, 10, 7, 0, 0, 0, time.UTC)},
				{"pre-due-plus-3d", time.Date(2026, 6, 13, 7, 0, 0, 0, time.UTC)},
			},
		},
		{
			name:   "only those at or after now",
			kind:   ReminderPreDue,
			anchor: time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC),
			now:    time.Date(2026, 6, 10, 9, 0, 0, 0, time.UTC),
			loc:    time.UTC,
			want: []want{
				{"pre-due-0d", time.Date(2026, 6, 10, 9, 0, 0, 0, time.UTC)},
				{"pre-due-plus-3d", time.Date(2026, 6, 13, 9, 0, 0, 0, time.UTC)},
			},
		},
		{
			name:   "card expiry, nil zone is UTC",
			kind:   ReminderCardExpiry,
			anchor: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC),
			now:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			want: []want{
				{"card-expiry-30d", time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)},
				{"card-expiry-14d", time.Date(2026, 3, 17, 9, 0, 0, 0, time.UTC)},
				{"card-expiry-7d", time.Date(2026, 3, 24, 9, 0, 0, 0, time.UTC)},
				{"card-expiry-1d", time.Date(2026, 3, 30, 9, 0, 0, 0, time.UTC)},
			},
		},
		{
			name:   "card expiry across the spring switch in Warsaw",
			kind:   ReminderCardExpiry,
			anchor: time.Date(2026, 4, 8, 0, 0, 0, 0, warsaw),
			now:    time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
			loc:    warsaw,
			want: []want{
				{"card-expiry-30d", time.Date(2026, 3, 9, 8, 0, 0, 0, time.UTC)},
				{"card-expiry-14d", time.Date(2026, 3, 25, 8, 0, 0, 0, time.UTC)},
				{"card-expiry-7d", time.Date(2026, 4, 1, 7, 0, 0, 0, time.UTC)},
				{"card-expiry-1d", time.Date(2026, 4, 7, 7, 0, 0, 0, time.UTC)},
			},
		},
		{
			name:   "all in the past",
			kind:   ReminderCardExpiry,
			anchor: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC),
			now:    time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
			loc:    time.UTC,
		},
		{
			name:   "unknown kind",
			kind:   "renewal",
			anchor: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC),
			now:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			loc:    time.UTC,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.Schedule(c.kind, c.anchor, c.now, c.loc)
			if len(got) != len(c.want) {
				t.Fatalf("Schedule() = %+v, want %d steps", got, len(c.want))
			}
			for i, w := range c.want {
				if got[i].Key != w.key || !got[i].At.Equal(w.at) {
					t.Errorf("step %d = %s at %s, want %s at %s", i, got[i].Key, got[i].At.UTC(), w.key, w.at)
				}
				if local := got[i].At; local.Hour() != ReminderHour || local.Minute() != 0 {
					t.Errorf("step %d at %s local, want %02d:00", i, local, ReminderHour)
				}
				if len(got[i].Channels) != 1 || got[i].Channels[0] != Email {
					t.Errorf("step %d channels = %v", i, got[i].Channels)
				}
			}
		})
	}
}

// Steps come out in time order whatever order the policy lists them in.
func TestReminderScheduleSorts(t *testing.T) {
	r := Reminders{BeforeDue: durations(3*day, -3*day, 0), Channels: []Channel{Email, SMS}}
	got := r.Schedule(ReminderPreDue, time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC), time.Time{}, time.UTC)
	var keys []string
	for _, s := range got {
		keys = append(keys, s.Key)
	}
	if strings.Join(keys, ",") != "pre-due-minus-3d,pre-due-0d,pre-due-plus-3d" {
		t.Errorf("keys = %v", keys)
	}
	got[0].Channels[0] = SMS
	if r.Channels[0] != Email {
		t.Error("a step shares its channels with the policy")
	}
}

func TestRemindersValidate(t *testing.T) {
	cases := []struct {
		name string
		r    Reminders
		want string // "" for valid
	}{
		{"none", Reminders{}, ""},
		{"default", Default().Reminders, ""},
		{"sms", Reminders{CardExpiry: durations(day), Channels: []Channel{SMS}}, ""},
		{"no channels", Reminders{BeforeDue: durations(-3 * day)}, "reminders.channels is empty"},
		{"bad channel", Reminders{BeforeDue: durations(0), Channels: []Channel{"fax"}}, `reminders.channels[0] "fax"`},
		{"twice channel", Reminders{BeforeDue: durations(0), Channels: []Channel{Email, Email}}, "reminders.channels[1]"},
		{"part day", Reminders{BeforeDue: durations(-36 * time.Hour), Channels: []Channel{Email}}, "reminders.before_due[0] (-36h) is not a whole number of days"},
		{"too early", Reminders{BeforeDue: durations(-91 * day), Channels: []Channel{Email}}, "reminders.before_due[0] (-91d) is outside"},
		{"after expiry", Reminders{CardExpiry: durations(-day), Channels: []Channel{Email}}, "reminders.card_expiry[0] (-1d) is outside"},
		{"twice", Reminders{CardExpiry: durations(7*day, 7*day), Channels: []Channel{Email}}, "reminders.card_expiry[1] (7d) is listed twice"},
	}
	for _, c := range cases {
		err := c.r.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: Validate() = %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: Validate() = %v, want %q", c.name, err, c.want)
		}
	}
	// A policy reports its reminders' problems.
	p := Default()
	p.Reminders.Channels = nil
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "reminders.channels is empty") {
		t.Errorf("Policy.Validate() = %v", err)
	}
}

func TestRemindersInPolicyFiles(t *testing.T) {
	p, err := Parse("p.yaml", []byte(`name: r
version: 1
retry_after: [3d]
max_attempts: 1
window: 7d
reminders:
  before_due: ["-3d", 0d, 3d]
  card_expiry: [30d]
  channels: [email, sms]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Reminders; len(got.BeforeDue) != 3 || got.BeforeDue[0] != Duration(-3*day) || got.CardExpiry[0] != Duration(30*day) || len(got.Channels) != 2 {
		t.Errorf("Reminders = %+v", got)
	}
	if _, err := Parse("p.yaml", []byte("name: r\nversion: 1\nretry_after: [3d]\nmax_attempts: 1\nwindow: 7d\nreminders: {before_due: [1d], channels: [email], weekly: true}\n")); err == nil || !strings.Contains(err.Error(), "weekly") {
		t.Errorf("unknown reminders field: %v", err)
	}
	// A policy without reminders hashes as it did before they existed.
	q := p
	q.Reminders = Reminders{}
	if b, _ := json.Marshal(q); strings.Contains(string(b), "reminders") {
		t.Errorf("a policy without reminders marshals them: %s", b)
	}
}
