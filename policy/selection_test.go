package policy

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestBuiltinSelectionPicksDefault(t *testing.T) {
	p, a, err := Builtin().Select(Subject{Tenant: "acme", Plan: "pro", Currency: "EUR", CustomerID: "cus_1"})
	if err != nil || p.Name != "default" || a != (Assignment{Rule: 0}) {
		t.Errorf("Select = %s %+v %v", p.Name, a, err)
	}
	if Builtin().Selection() == nil {
		t.Error("the built-in catalog has no selection")
	}
}

func selectionCatalog(t *testing.T, yml string) *Catalog {
	t.Helper()
	gold, err := Parse("gold.yaml", []byte(goldYAML))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Builtin().With(gold)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSelection("selection.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	c, err = c.WithSelection(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSelectRules(t *testing.T) {
	c := selectionCatalog(t, `
rules:
  - match: {tenant: acme, plan: gold}
    policy: gold
  - match: {segment: smb, currency: eur}
    experiment:
      name: smb-fast
      variants:
        - {policy: default, weight: 1}
        - {policy: demo, weight: 1}
  - match: {currency: USD}
    policy: demo
  - policy: default
`)
	tests := []struct {
		s          Subject
		wantPolicy string
		wantRule   int
		wantExp    string
	}{
		{Subject{Tenant: "acme", Plan: "gold", Segment: "smb", Currency: "EUR"}, "gold", 0, ""},
		{Subject{Tenant: "other", Plan: "gold", Currency: "EUR"}, "default", 3, ""},
		{Subject{Tenant: "acme", Segment: "smb", Currency: "EUR", CustomerID: "c1"}, "", 1, "smb-fast"},
		{Subject{Tenant: "acme", Segment: "smb", Currency: "USD"}, "demo", 2, ""},
		{Subject{Currency: "usd"}, "demo", 2, ""},
		{Subject{}, "default", 3, ""},
	}
	for _, tt := range tests {
		p, a, err := c.Select(tt.s)
		if err != nil {
			t.Fatalf("Select(%+v): %v", tt.s, err)
		}
		if a.Rule != tt.wantRule || a.Experiment != tt.wantExp || (tt.wantPolicy != "" && p.Name != tt.wantPolicy) {
			t.Errorf("Select(%+v) = %s %+v, want %s rule %d experiment %q", tt.s, p.Name, a, tt.wantPolicy, tt.wantRule, tt.wantExp)
		}
		if a.Experiment != "" && a.Variant != p.Name {
			t.Errorf("Select(%+v): variant %q but policy %q", tt.s, a.Variant, p.Name)
		}
		if a.Experiment == "" && a.Variant != "" {
			t.Errorf("Select(%+v): variant without an experiment: %+v", tt.s, a)
		}
	}
}

func TestExperimentSplit(t *testing.T) {
	for _, weights := range [][2]int{{50, 50}, {90, 10}, {1, 3}} {
		c := selectionCatalog(t, fmt.Sprintf(`
rules:
  - experiment:
      name: retry-timing
      variants:
        - {policy: default, weight: %d}
        - {policy: gold, weight: %d}
`, weights[0], weights[1]))
		const n = 10000
		count := map[string]int{}
		for i := range n {
			id := fmt.Sprintf("cus_%06d", i)
			p, a, err := c.Select(Subject{CustomerID: id})
			if err != nil {
				t.Fatal(err)
			}
			if a.Experiment != "retry-timing" || a.Variant != p.Name {
				t.Fatalf("assignment = %+v for %s", a, p.Name)
			}
			count[p.Name]++
			// The same customer always lands in the same variant.
			for range 2 {
				if q, b, _ := c.Select(Subject{CustomerID: id, Tenant: "any"}); q.Name != p.Name || b != a {
					t.Fatalf("customer %s moved from %s to %s", id, p.Name, q.Name)
				}
			}
		}
		total := float64(weights[0] + weights[1])
		for i, name := range []string{"default", "gold"} {
			want := float64(weights[i]) / total
			got := float64(count[name]) / n
			if math.Abs(got-want) > 0.03 {
				t.Errorf("weights %v: %s got %.3f of customers, want %.3f ± 0.03", weights, name, got, want)
			}
		}
	}
}

// Experiments with different names split the same customers independently.
func TestExperimentsAreIndependent(t *testing.T) {
	a := Experiment{Name: "one", Variants: []Variant{{"a", 1}, {"b", 1}}}
	b := Experiment{Name: "two", Variants: []Variant{{"a", 1}, {"b", 1}}}
	same := 0
	for i := range 1000 {
		id := fmt.Sprint("cus_", i)
		if a.variant(id) == b.variant(id) {
			same++
		}
	}
	if same < 400 || same > 600 {
		t.Errorf("%d of 1000 customers got the same variant in both experiments", same)
	}
}

func TestSelectionRejects(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		want string
	}{
		{"no rules", "rules: []", "rules is empty"},
		{"no final catch-all", "rules: [{match: {plan: gold}, policy: gold}]", "rules[0] is the last rule and must have no match"},
		{"catch-all too early", "rules: [{policy: gold}, {policy: default}]", "rules[0] matches everything"},
		{"neither", "rules: [{match: {plan: x}}, {policy: default}]", "rules[0] names neither a policy nor an experiment"},
		{"both", "rules: [{policy: default, experiment: {name: e, variants: [{policy: default, weight: 1}, {policy: gold, weight: 1}]}}]", "rules[0] names both"},
		{"zero weight", "rules: [{experiment: {name: e, variants: [{policy: default, weight: 0}, {policy: gold, weight: 1}]}}]", "rules[0].experiment.variants[0].weight must be positive"},
		{"negative weight", "rules: [{experiment: {name: e, variants: [{policy: default, weight: 1}, {policy: gold, weight: -1}]}}]", "variants[1].weight must be positive"},
		{"one variant", "rules: [{experiment: {name: e, variants: [{policy: default, weight: 1}]}}]", "at least two variants"},
		{"unnamed experiment", "rules: [{experiment: {variants: [{policy: default, weight: 1}, {policy: gold, weight: 1}]}}]", "experiment.name is empty"},
		{"variant twice", "rules: [{experiment: {name: e, variants: [{policy: gold, weight: 1}, {policy: gold, weight: 1}]}}]", `variants[1].policy "gold" is listed twice`},
		{"experiment name reused", `rules:
  - {match: {plan: a}, experiment: {name: e, variants: [{policy: default, weight: 1}, {policy: gold, weight: 1}]}}
  - {experiment: {name: e, variants: [{policy: default, weight: 1}, {policy: gold, weight: 1}]}}`, `rules[1].experiment.name "e" is already used by rules[0]`},
		{"unknown field", "rules: [{policy: default, weight: 5}]", `unknown field "rules[0].weight"`},
		{"unknown match field", "rules: [{match: {country: FR}, policy: gold}, {policy: default}]", `unknown field "rules[0].match.country"`},
		{"unknown policy", "rules: [{policy: platinum}]", `rules[0].policy "platinum" is not in the catalog`},
		{"unknown variant policy", "rules: [{experiment: {name: e, variants: [{policy: default, weight: 1}, {policy: bronze, weight: 1}]}}]", `rules[0].experiment.variants[1].policy "bronze" is not in the catalog`},
	}
	gold, err := Parse("gold.yaml", []byte(goldYAML))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Builtin().With(gold)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSelection("selection.yaml", []byte(tt.yml))
			if err == nil {
				_, err = c.WithSelection(s)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(tt.want, "not in the catalog") || err == nil {
				return
			}
			if !strings.HasPrefix(err.Error(), "selection.yaml: ") {
				t.Errorf("err = %v, want it to name the file", err)
			}
		})
	}
}

// Overrides keep the selection; a catalog without one falls back to
// "default".
func TestSelectionAcrossCatalogs(t *testing.T) {
	c := selectionCatalog(t, "rules: [{match: {plan: gold}, policy: gold}, {policy: default}]")
	c, err := c.With(Demo())
	if err != nil {
		t.Fatalf("unrelated override: %v", err)
	}
	if p, _, _ := c.Select(Subject{Plan: "gold"}); p.Name != "gold" {
		t.Errorf("selection lost after With: %s", p.Name)
	}
	if p, _, err := mustNewCatalog(t, Demo(), Default()).Select(Subject{Plan: "gold"}); err != nil || p.Name != "default" {
		t.Errorf("catalog without selection = %s, %v", p.Name, err)
	}
	if _, _, err := mustNewCatalog(t, Demo()).Select(Subject{}); !errors.Is(err, ErrNoPolicy) || !strings.Contains(err.Error(), `"default"`) {
		t.Errorf("catalog without selection or default: %v", err)
	}
}

func mustNewCatalog(t *testing.T, ps ...Policy) *Catalog {
	t.Helper()
	c, err := NewCatalog(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
