package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// Selection picks the policy for a run that names none. Rules are tried in
// order and the first that matches wins; the last rule must match
// everything, so every run gets a policy.
type Selection struct {
	Rules []Rule `json:"rules"`
}

// Rule sends the runs it matches to one policy, or splits them between
// policies in an experiment. Exactly one of Policy and Experiment is set.
type Rule struct {
	Match      Match       `json:"match,omitzero"`
	Policy     string      `json:"policy,omitempty"`
	Experiment *Experiment `json:"experiment,omitempty"`
}

// Match holds exact values a run must have; an empty field matches any
// value. Currency compares case-insensitively.
type Match struct {
	Tenant   string `json:"tenant,omitempty"`
	Plan     string `json:"plan,omitempty"`
	Segment  string `json:"segment,omitempty"`
	Currency string `json:"currency,omitempty"`
}

// IsZero reports whether the match accepts every run.
func (m Match) IsZero() bool { return m == Match{} }

func (m Match) matches(s Subject) bool {
	return (m.Tenant == "" || m.Tenant == s.Tenant) &&
		(m.Plan == "" || m.Plan == s.Plan) &&
		(m.Segment == "" || m.Segment == s.Segment) &&
		(m.Currency == "" || strings.EqualFold(m.Currency, s.Currency))
}

// Experiment splits customers between policies by weight. A customer's
// variant depends only on the customer ID and the experiment name, so the
// same customer always gets the same policy in one experiment, and
// different experiments split customers independently.
type Experiment struct {
	Name     string    `json:"name"`
	Variants []Variant `json:"variants"`
}

// Variant is one arm of an experiment: Policy for Weight parts of the
// customers.
type Variant struct {
	Policy string `json:"policy"`
	Weight int    `json:"weight"`
}

// Subject is what selection looks at.
type Subject struct {
	Tenant     string
	Plan       string
	Segment    string
	Currency   string
	CustomerID string
}

// Assignment records how a policy was selected: the index of the matching
// rule and, for an experiment, its name and the variant (the variant's
// policy name).
type Assignment struct {
	Rule       int    `json:"rule"`
	Experiment string `json:"experiment,omitempty"`
	Variant    string `json:"variant,omitempty"`
}

// ParseSelection reads a selection file (YAML or JSON by extension),
// strictly. It checks the rules' shape; policy names are checked when the
// selection joins a catalog.
func ParseSelection(name string, data []byte) (Selection, error) {
	var s Selection
	if err := decodeStrict(name, data, &s); err != nil {
		return Selection{}, err
	}
	if err := s.validate(); err != nil {
		return Selection{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

func (s Selection) validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(s.Rules) == 0 {
		add("rules is empty")
	} else if !s.Rules[len(s.Rules)-1].Match.IsZero() {
		add("rules[%d] is the last rule and must have no match, so every run gets a policy", len(s.Rules)-1)
	}
	experiments := map[string]int{}
	for i, r := range s.Rules {
		switch {
		case r.Policy == "" && r.Experiment == nil:
			add("rules[%d] names neither a policy nor an experiment", i)
		case r.Policy != "" && r.Experiment != nil:
			add("rules[%d] names both a policy and an experiment", i)
		case r.Experiment != nil:
			e := r.Experiment
			if e.Name == "" {
				add("rules[%d].experiment.name is empty", i)
			} else if j, dup := experiments[e.Name]; dup {
				add("rules[%d].experiment.name %q is already used by rules[%d]", i, e.Name, j)
			} else {
				experiments[e.Name] = i
			}
			if len(e.Variants) < 2 {
				add("rules[%d].experiment.variants needs at least two variants", i)
			}
			seen := map[string]bool{}
			for j, v := range e.Variants {
				if v.Policy == "" {
					add("rules[%d].experiment.variants[%d].policy is empty", i, j)
				} else if seen[v.Policy] {
					add("rules[%d].experiment.variants[%d].policy %q is listed twice", i, j, v.Policy)
				}
				seen[v.Policy] = true
				if v.Weight <= 0 {
					add("rules[%d].experiment.variants[%d].weight must be positive", i, j)
				}
			}
		}
		if i < len(s.Rules)-1 && r.Match.IsZero() {
			add("rules[%d] matches everything, so the rules after it never apply", i)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: selection: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

// check validates s and that every policy it names is in c.
func (s Selection) check(c *Catalog) error {
	if err := s.validate(); err != nil {
		return err
	}
	var problems []string
	for i, r := range s.Rules {
		if r.Policy != "" {
			if _, ok := c.Lookup(r.Policy); !ok {
				problems = append(problems, fmt.Sprintf("rules[%d].policy %q is not in the catalog", i, r.Policy))
			}
		}
		if r.Experiment != nil {
			for j, v := range r.Experiment.Variants {
				if _, ok := c.Lookup(v.Policy); !ok {
					problems = append(problems, fmt.Sprintf("rules[%d].experiment.variants[%d].policy %q is not in the catalog", i, j, v.Policy))
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: selection: %s (known policies: %s)", ErrInvalid, strings.Join(problems, "; "), strings.Join(c.Names(), ", "))
	}
	return nil
}

// ErrNoPolicy means selection led to a policy the catalog does not hold
// (only possible for a catalog without a selection and without "default").
var ErrNoPolicy = fmt.Errorf("%w: no such policy", ErrInvalid)

// Select picks the policy for a run that names none: the first matching
// rule's policy, or its experiment's variant for s.CustomerID. A catalog
// without a selection gives every run the "default" policy (Rule 0).
func (c *Catalog) Select(s Subject) (Policy, Assignment, error) {
	if c.selection == nil {
		p, ok := c.Lookup(DefaultName)
		if !ok {
			return Policy{}, Assignment{}, fmt.Errorf("%w %q", ErrNoPolicy, DefaultName)
		}
		return p, Assignment{}, nil
	}
	for i, r := range c.selection.Rules {
		if !r.Match.matches(s) {
			continue
		}
		a := Assignment{Rule: i}
		name := r.Policy
		if r.Experiment != nil {
			v := r.Experiment.variant(s.CustomerID)
			a.Experiment, a.Variant, name = r.Experiment.Name, v.Policy, v.Policy
		}
		p, ok := c.Lookup(name)
		if !ok { // check() rules this out when the selection joins the catalog
			return Policy{}, Assignment{}, fmt.Errorf("%w %q", ErrNoPolicy, name)
		}
		return p, a, nil
	}
	// validate requires a final catch-all rule.
	return Policy{}, Assignment{}, fmt.Errorf("%w: no selection rule matches", ErrNoPolicy)
}

// variant buckets customerID deterministically: SHA-256 of
// customerID + "/" + experiment name, its first 8 bytes modulo the total
// weight, then walks the variants' cumulative weights.
func (e Experiment) variant(customerID string) Variant {
	total := 0
	for _, v := range e.Variants {
		total += v.Weight
	}
	sum := sha256.Sum256([]byte(customerID + "/" + e.Name))
	bucket := int(binary.BigEndian.Uint64(sum[:8]) % uint64(total))
	for _, v := range e.Variants {
		if bucket < v.Weight {
			return v
		}
		bucket -= v.Weight
	}
	return e.Variants[len(e.Variants)-1]
}
