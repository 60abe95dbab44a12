package decline

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTableShape(t *testing.T) {
	table := Table()
	kindOrder := []string{KindStripeDecline, KindStripeAdvice, KindGateway, KindISO8583, KindVisa, KindMastercardMAC}
	counts := map[string]int{}
	seen := map[Source]bool{}
	lastKind := 0
	var prev Entry
	for i, e := range table {
		k := slices.Index(kindOrder, e.Kind)
		if k < 0 {
			t.Fatalf("entry %d has unknown kind %q", i, e.Kind)
		}
		if k < lastKind {
			t.Errorf("entry %s:%s is out of kind order", e.Kind, e.Code)
		}
		if k == lastKind && i > 0 && compareCodes(prev.Code, e.Code) >= 0 {
			t.Errorf("entry %s:%s is not sorted after %s", e.Kind, e.Code, prev.Code)
		}
		lastKind, prev = k, e
		counts[e.Kind]++

		src := Source{e.Kind, e.Code}
		if seen[src] {
			t.Errorf("duplicate entry %s", src)
		}
		seen[src] = true

		if e.Reason == "" || e.Note == "" {
			t.Errorf("%s: empty reason or note", src)
		}
		if e.Category != categoryOf(e.Advice) {
			t.Errorf("%s: category %s does not go with advice %s", src, e.Category, e.Advice)
		}
		if e.RetryAfter < 0 || (e.RetryAfter > 0 && e.Advice != RetryLater) {
			t.Errorf("%s: RetryAfter %v with advice %s", src, e.RetryAfter, e.Advice)
		}
		if e.NoRetryWindow > 0 && e.Advice != Stop {
			t.Errorf("%s: NoRetryWindow %v with advice %s", src, e.NoRetryWindow, e.Advice)
		}
		if e.Kind == KindVisa && (e.VisaCategory < 1 || e.VisaCategory > 3) {
			t.Errorf("%s: Visa rows cover categories 1-3, got %d", src, e.VisaCategory)
		}
		if e.Kind != KindVisa && e.VisaCategory != 0 {
			t.Errorf("%s: VisaCategory set on a non-Visa row", src)
		}
		if e.Kind == KindStripeDecline && e.Reason != e.Code {
			t.Errorf("%s: a Stripe decline code is its own reason, got %s", src, e.Reason)
		}
		if e.Code != normNetworkCode(e.Code) && e.Kind != KindStripeDecline && e.Kind != KindStripeAdvice && e.Kind != KindGateway {
			t.Errorf("%s: code is not in normalized form", src)
		}
		if (e.Kind == KindStripeDecline || e.Kind == KindStripeAdvice) && e.Code != normStripe(e.Code) {
			t.Errorf("%s: code is not in normalized form", src)
		}
	}

	wantCounts := map[string]int{
		KindStripeDecline: 47,
		KindStripeAdvice:  3,
		KindGateway:       1,
		KindISO8583:       50,
		KindVisa:          38,
		KindMastercardMAC: 12,
	}
	for _, k := range kindOrder {
		if counts[k] != wantCounts[k] {
			t.Errorf("%s: %d entries, want %d", k, counts[k], wantCounts[k])
		}
		t.Logf("%-20s %3d entries", k, counts[k])
	}
	t.Logf("%-20s %3d entries", "total", len(table))
}

func TestTableIsACopy(t *testing.T) {
	table := Table()
	for i := range table {
		table[i].Advice = Retry
		table[i].Category = Soft
	}
	if got := Classify(Input{DeclineCode: "stolen_card"}); got.Advice != Stop {
		t.Fatalf("mutating Table() changed Classify: %s", got)
	}
}

func TestVisaLists(t *testing.T) {
	all := slices.Concat(visaCategory1, visaCategory2, visaCategory3)
	seen := map[string]bool{}
	for _, code := range all {
		if seen[code] {
			t.Errorf("Visa code %s is in two categories", code)
		}
		seen[code] = true
		if _, ok := isoIndex[code]; !ok {
			t.Errorf("Visa code %s has no ISO 8583 row", code)
		}
	}
	// DESIGN.md section 3: category 1 is exactly these codes.
	want := []string{"04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"}
	if !slices.Equal(visaCategory1, want) {
		t.Errorf("category 1 = %v, want %v", visaCategory1, want)
	}
	for code, g := range visaGenericIndex {
		if seen[code] || g.VisaCategory != 4 || g.Kind != KindVisa {
			t.Errorf("generic Visa row %s: %+v", code, g)
		}
	}
	if len(visaGenericIndex)+len(seen) != len(isoEntries) {
		t.Errorf("every ISO code must have exactly one Visa category")
	}
}

// TestEntriesAlone checks each row read on its own through Classify.
func TestEntriesAlone(t *testing.T) {
	for _, e := range Table() {
		var in Input
		switch e.Kind {
		case KindStripeDecline:
			in.DeclineCode = e.Code
		case KindStripeAdvice:
			in.AdviceCode = e.Code
		case KindGateway:
			in.RequiresAction = true
		case KindISO8583:
			in.NetworkDeclineCode = e.Code
		case KindVisa:
			// Tested with its ISO row in TestVisaCategories.
			continue
		case KindMastercardMAC:
			in.NetworkAdviceCode, in.Network = e.Code, NetworkMastercard
		}
		got := Classify(in)
		if got.Advice != e.Advice || got.Category != e.Category || got.Reason != e.Reason ||
			got.RetryAfter != e.RetryAfter || got.NoRetryWindow != e.NoRetryWindow || !got.Known {
			t.Errorf("%s:%s alone: got %s, want %+v", e.Kind, e.Code, got, e)
		}
	}
}

// TestCommentTables keeps the documentation tables in table.go in step with
// the rows: every documented row matches the mapping and every row is
// documented.
func TestCommentTables(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "table.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR || gd.Doc == nil {
			continue
		}
		for _, spec := range gd.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				docs[name.Name] = gd.Doc.Text()
			}
		}
	}

	tables := []struct {
		varName string
		entries []Entry
		row     func(e Entry) string // the documented columns
	}{
		{"stripeDeclineEntries", stripeDeclineEntries, func(e Entry) string {
			return fmt.Sprint(e.Code, " ", e.Category, " ", e.Advice)
		}},
		{"stripeAdviceEntries", stripeAdviceEntries, func(e Entry) string {
			return fmt.Sprint(e.Code, " ", e.Category, " ", e.Advice)
		}},
		{"isoEntries", isoEntries, func(e Entry) string {
			return fmt.Sprint(e.Code, " ", e.Reason, " ", e.Category, " ", e.Advice)
		}},
		{"macEntries", macEntries, func(e Entry) string {
			s := fmt.Sprint(e.Code, " ", e.Reason, " ", e.Advice)
			if d := max(e.RetryAfter, e.NoRetryWindow); d > 0 {
				s += " " + humanDuration(d)
			}
			return s
		}},
	}
	for _, tt := range tables {
		t.Run(tt.varName, func(t *testing.T) {
			doc, ok := docs[tt.varName]
			if !ok {
				t.Fatalf("no doc comment on %s", tt.varName)
			}
			var documented []string
			for line := range strings.Lines(doc) {
				if !strings.HasPrefix(line, "\t") {
					continue
				}
				fields := strings.Fields(line)
				if len(fields) == 0 || fields[0] == "code" {
					continue
				}
				documented = append(documented, strings.Join(fields, " "))
			}
			var want []string
			for _, e := range tt.entries {
				want = append(want, tt.row(e))
			}
			if !slices.Equal(documented, want) {
				t.Errorf("doc table does not match the rows:\n documented %q\n rows       %q", documented, want)
			}
		})
	}
}

func humanDuration(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "1 hour"
	case d == 24*time.Hour:
		return "24 hours"
	default:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
}

func ExampleTable() {
	counts := map[string]int{}
	for _, e := range Table() {
		counts[e.Kind]++
	}
	for _, k := range []string{KindStripeDecline, KindStripeAdvice, KindGateway, KindISO8583, KindVisa, KindMastercardMAC} {
		fmt.Printf("%-20s %d\n", k, counts[k])
	}
	// Output:
	// stripe_decline_code  47
	// stripe_advice_code   3
	// gateway              1
	// iso8583              50
	// visa                 38
	// mastercard_mac       12
}

func ExampleClassify() {
	d := Classify(Input{
		Gateway:            "stripe",
		DeclineCode:        "insufficient_funds",
		NetworkDeclineCode: "51",
		NetworkAdviceCode:  "03",
		Network:            "mastercard",
	})
	fmt.Println(d.Category, d.Advice, d.Reason, d.NoRetryWindow)
	fmt.Println(d)
	// Output:
	// hard stop do_not_try_again 720h0m0s
	// hard/stop reason=do_not_try_again no_retry_window=720h0m0s sources=[stripe_decline_code:insufficient_funds iso8583:51 mastercard_mac:03]
}
