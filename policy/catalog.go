package policy

import (
	"embed"
	"fmt"
	"slices"
	"sync"
	"time"
)

const day = 24 * time.Hour

// builtinFiles are the policies and the selection compiled into the binary.
//
//go:embed policies/*.yaml
var builtinFiles embed.FS

// Default is the common merchant setting (policies/default.yaml): retries
// 3, 7 and 14 days after the decline (at most 3 within 21 days), pause when
// they are exhausted, suspend after a week's grace, close a week later.
func Default() Policy { return mustBuiltin("default") }

// Demo is Default compressed into seconds (policies/demo.yaml), so a whole
// run can be watched in the Web UI within a minute. Dev mode and integration
// tests use it.
func Demo() Policy { return mustBuiltin("demo") }

func mustBuiltin(name string) Policy {
	p, ok := Builtin().Lookup(name)
	if !ok {
		panic(fmt.Sprintf("built-in policy %q missing", name))
	}
	return p.clone()
}

// Catalog holds the policies runs may name, and the selection that picks
// one for a run that names none.
type Catalog struct {
	policies  []Policy
	selection *Selection // nil: every run gets DefaultName
}

// DefaultName is the policy a run follows when it names none and the
// catalog has no selection.
const DefaultName = "default"

// NewCatalog validates and indexes policies; names must be unique. It has no
// selection: runs that name no policy get "default".
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

var builtin = sync.OnceValue(loadBuiltin)

// Builtin is the catalog compiled into the binary: policies/*.yaml and
// policies/selection.yaml. Workflows pin the policy's content in each run's
// input, so later releases do not change a running workflow's policy.
func Builtin() *Catalog { return builtin() }

func loadBuiltin() *Catalog {
	c, err := loadFS(builtinFiles, "policies")
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
	return c.policies[i].clone(), true
}

// Names lists the catalog's policy names.
func (c *Catalog) Names() []string {
	names := make([]string, len(c.policies))
	for i, p := range c.policies {
		names[i] = p.Name
	}
	return names
}

// Policies lists the catalog's policies.
func (c *Catalog) Policies() []Policy {
	out := make([]Policy, len(c.policies))
	for i, p := range c.policies {
		out[i] = p.clone()
	}
	return out
}

// Selection is the catalog's selection, nil when it has none.
func (c *Catalog) Selection() *Selection { return c.selection }

// With returns a new catalog holding c's policies plus overrides. An
// override with the name of a policy in c replaces it, and must carry a
// higher version unless its content is identical (same Hash), so that
// "name@version" never means two different schedules. Names among the
// overrides must be unique. The selection is kept and re-checked against
// the new set of policies.
func (c *Catalog) With(overrides ...Policy) (*Catalog, error) {
	out := &Catalog{policies: slices.Clone(c.policies), selection: c.selection}
	seen := map[string]bool{}
	for _, p := range overrides {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%w: policy %q is listed twice", ErrInvalid, p.Name)
		}
		seen[p.Name] = true
		i := slices.IndexFunc(out.policies, func(q Policy) bool { return q.Name == p.Name })
		if i < 0 {
			out.policies = append(out.policies, p)
			continue
		}
		old := out.policies[i]
		if p.Version <= old.Version && p.Hash() != old.Hash() {
			return nil, fmt.Errorf("%w %q: version %d must be higher than the replaced policy's version %d (%s) because the content differs",
				ErrInvalid, p.Name, p.Version, old.Version, old.Ref())
		}
		out.policies[i] = p
	}
	if out.selection != nil {
		if err := out.selection.check(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// WithSelection returns a new catalog with c's policies and s as its
// selection; every policy s names must be in the catalog.
func (c *Catalog) WithSelection(s Selection) (*Catalog, error) {
	if err := s.check(c); err != nil {
		return nil, err
	}
	return &Catalog{policies: slices.Clone(c.policies), selection: &s}, nil
}

// clone copies the policy's slices and maps so callers cannot change a
// catalog's policy through the copy they got.
func (p Policy) clone() Policy {
	p.RetryAfter = slices.Clone(p.RetryAfter)
	p.Ladder = slices.Clone(p.Ladder)
	p.Messages = slices.Clone(p.Messages)
	for i := range p.Messages {
		p.Messages[i].Channels = slices.Clone(p.Messages[i].Channels)
	}
	p.Timing.PaydayReasons = slices.Clone(p.Timing.PaydayReasons)
	p.Reminders = p.Reminders.clone()
	p.ActionReminders = slices.Clone(p.ActionReminders)
	if p.Timing.Holidays != nil {
		h := make(map[string][]string, len(p.Timing.Holidays))
		for k, v := range p.Timing.Holidays {
			h[k] = slices.Clone(v)
		}
		p.Timing.Holidays = h
	}
	return p
}
