package policy

import (
	"fmt"
	"slices"
	"time"
)

const day = 24 * time.Hour

// defaultMessages sends email throughout and adds SMS when service is at stake.
var defaultMessages = []MessageRule{
	{Kind: PaymentFailed, Channels: []Channel{Email}},
	{Kind: RetryFailed, Channels: []Channel{Email}},
	{Kind: ServicePausedMsg, Channels: []Channel{Email, SMS}},
	{Kind: ServiceSuspMsg, Channels: []Channel{Email, SMS}},
	{Kind: ServiceCancelMsg, Channels: []Channel{Email}},
	{Kind: PaymentRecovered, Channels: []Channel{Email}},
}

// Default is the common merchant setting: retries 3, 7 and 14 days after the
// decline (at most 3 within 21 days), pause when they are exhausted, suspend
// after a week's grace, close a week later.
func Default() Policy {
	return Policy{
		Name:                 "default",
		Version:              1,
		RetryAfter:           []time.Duration{3 * day, 7 * day, 14 * day},
		MaxAttempts:          3,
		Window:               21 * day,
		CardUpdateRetryDelay: 15 * time.Minute,
		Ladder:               []LadderStep{{After: 0, State: ServicePaused}, {After: 7 * day, State: ServiceSuspended}},
		CloseAfter:           7 * day,
		Messages:             defaultMessages,
		// No texts outside 08:00-21:00 local time (US TCPA practice, and the
		// rule carriers and Twilio's guidance share).
		SMSWindow: Window{Start: "08:00", End: "21:00"},
		Timing: Timing{
			Window:        Window{Start: "09:00", End: "11:00"},
			BusinessDays:  true,
			PaydayReasons: []string{"insufficient_funds"},
			MaxShift:      6 * day, // room for Christmas, a weekend and a window miss
			Holidays:      holidays,
		},
	}
}

// Demo is Default compressed into seconds, so a whole run can be watched in
// the Web UI within a minute. Dev mode and integration tests use it.
func Demo() Policy {
	p := Default()
	p.Name = "demo"
	p.RetryAfter = []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}
	p.Window = time.Minute
	p.CardUpdateRetryDelay = 2 * time.Second
	p.Ladder = []LadderStep{{After: 0, State: ServicePaused}, {After: 10 * time.Second, State: ServiceSuspended}}
	p.CloseAfter = 10 * time.Second
	p.Timing = Timing{} // seconds-long schedules cannot wait for mornings
	return p
}

// Catalog holds the policies runs may name.
type Catalog struct {
	policies []Policy
}

// NewCatalog validates and indexes policies; names must be unique.
func NewCatalog(policies ...Policy) (*Catalog, error) {
	c := &Catalog{}
	for _, p := range policies {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if _, ok := c.Lookup(p.Name); ok {
			return nil, fmt.Errorf("%w: policy %q is listed twice", ErrInvalid, p.Name)
		}
		c.policies = append(c.policies, p)
	}
	return c, nil
}

// Builtin is the catalog compiled into the binary. Workflows resolve names
// against it (recorded once per run, so later releases do not change a
// running workflow's policy).
func Builtin() *Catalog {
	c, err := NewCatalog(Default(), Demo())
	if err != nil {
		panic(err) // a broken built-in policy is a programming error caught by tests
	}
	return c
}

// Lookup finds a policy by name.
func (c *Catalog) Lookup(name string) (Policy, bool) {
	i := slices.IndexFunc(c.policies, func(p Policy) bool { return p.Name == name })
	if i < 0 {
		return Policy{}, false
	}
	return c.policies[i], true
}

// Names lists the catalog's policy names.
func (c *Catalog) Names() []string {
	names := make([]string, len(c.policies))
	for i, p := range c.policies {
		names[i] = p.Name
	}
	return names
}
