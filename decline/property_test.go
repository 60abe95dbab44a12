package decline

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// codePools draws inputs from every mapped code plus blanks, approvals and
// codes the mapping does not know.
type codePools struct {
	declines, advices, iso, macs, networks []string
}

func newCodePools() codePools {
	var p codePools
	for _, e := range Table() {
		switch e.Kind {
		case KindStripeDecline:
			p.declines = append(p.declines, e.Code)
		case KindStripeAdvice:
			p.advices = append(p.advices, e.Code)
		case KindISO8583:
			p.iso = append(p.iso, e.Code)
		case KindMastercardMAC:
			p.macs = append(p.macs, e.Code)
		}
	}
	p.declines = append(p.declines, "", "", "card_declined", "something_new")
	p.advices = append(p.advices, "", "", "", "", "later_maybe")
	p.iso = append(p.iso, "", "", "00", "Q9", "999", "5", "r0")
	p.macs = append(p.macs, "", "", "00", "22", "40", "3")
	p.networks = []string{NetworkVisa, NetworkMastercard, NetworkAmex, "", "discover", " Visa", "MASTERCARD "}
	return p
}

func pick(r *rand.Rand, pool []string) string { return pool[r.IntN(len(pool))] }

// mangle changes case and surrounding space without changing meaning.
func mangle(r *rand.Rand, s string) string {
	switch r.IntN(4) {
	case 0:
		s = strings.ToUpper(s)
	case 1:
		s = strings.ToLower(s)
	}
	if r.IntN(3) == 0 {
		s = " " + s + "\t"
	}
	return s
}

func (p codePools) input(r *rand.Rand) Input {
	return Input{
		Gateway:            pick(r, []string{"stripe", "http", "simulator", ""}),
		DeclineCode:        pick(r, p.declines),
		AdviceCode:         pick(r, p.advices),
		NetworkDeclineCode: pick(r, p.iso),
		NetworkAdviceCode:  pick(r, p.macs),
		Network:            pick(r, p.networks),
		RequiresAction:     r.IntN(8) == 0,
	}
}

// expectedSources recomputes, straight from Table(), which input codes the
// mapping recognises.
func expectedSources(in Input, table []Entry) []Source {
	has := func(kind, code string) bool {
		return slices.ContainsFunc(table, func(e Entry) bool { return e.Kind == kind && e.Code == code })
	}
	var out []Source
	network := strings.ToLower(strings.TrimSpace(in.Network))
	if c := normStripe(in.DeclineCode); has(KindStripeDecline, c) {
		out = append(out, Source{KindStripeDecline, c})
	}
	if c := normStripe(in.AdviceCode); has(KindStripeAdvice, c) {
		out = append(out, Source{KindStripeAdvice, c})
	}
	if in.RequiresAction {
		out = append(out, Source{KindGateway, "requires_action"})
	}
	if c := normNetworkCode(in.NetworkDeclineCode); has(KindISO8583, c) {
		out = append(out, Source{KindISO8583, c})
		if network == NetworkVisa {
			out = append(out, Source{KindVisa, c})
		}
	}
	if c := normNetworkCode(in.NetworkAdviceCode); network == NetworkMastercard && has(KindMastercardMAC, c) {
		out = append(out, Source{KindMastercardMAC, c})
	}
	return out
}

func TestClassifyProperties(t *testing.T) {
	const iterations = 20000
	r := rand.New(rand.NewPCG(2026, 8583))
	pools := newCodePools()
	table := Table()
	cat1 := map[string]bool{}
	for _, c := range visaCategory1 {
		cat1[c] = true
	}

	stops := 0
	for i := range iterations {
		in := pools.input(r)
		got := classifySafely(t, in)
		if t.Failed() {
			return
		}
		network := strings.ToLower(strings.TrimSpace(in.Network))
		iso := normNetworkCode(in.NetworkDeclineCode)
		mac := normNetworkCode(in.NetworkAdviceCode)

		mustStop := (network == NetworkVisa && cat1[iso]) ||
			(network == NetworkMastercard && (mac == "03" || mac == "21")) ||
			normStripe(in.AdviceCode) == "do_not_try_again"
		if mustStop {
			stops++
			if got.Advice != Stop || got.Category != Hard {
				t.Fatalf("#%d %+v: must stop, got %s", i, in, got)
			}
		}
		networkNever := (network == NetworkVisa && cat1[iso]) ||
			(network == NetworkMastercard && (mac == "03" || mac == "21"))
		if networkNever != (got.NoRetryWindow == 30*24*time.Hour) {
			t.Fatalf("#%d %+v: NoRetryWindow %v", i, in, got.NoRetryWindow)
		}
		if got.NoRetryWindow > 0 && got.Advice != Stop {
			t.Fatalf("#%d %+v: a no-retry window without stop: %s", i, in, got)
		}
		if got.RetryAfter < 0 || (got.RetryAfter > 0 && got.Advice != RetryLater) {
			t.Fatalf("#%d %+v: RetryAfter %v with %s", i, in, got.RetryAfter, got.Advice)
		}
		if got.Known != (len(got.Sources) > 0) {
			t.Fatalf("#%d %+v: Known=%v with sources %v", i, in, got.Known, got.Sources)
		}
		if got.Known && got.Category != categoryOf(got.Advice) {
			t.Fatalf("#%d %+v: category %s with advice %s", i, in, got.Category, got.Advice)
		}
		if !got.Known && (got.Category != Unknown || got.Advice != Retry || got.Reason != reasonUnknown) {
			t.Fatalf("#%d %+v: unknown input must get the safe default, got %s", i, in, got)
		}
		if got.Reason == "" {
			t.Fatalf("#%d %+v: empty reason", i, in)
		}
		if want := expectedSources(in, table); !reflect.DeepEqual(got.Sources, want) {
			t.Fatalf("#%d %+v: Sources %v, want %v", i, in, got.Sources, want)
		}
		wantVisa := network == NetworkVisa && iso != "" && iso != "00"
		if wantVisa != (got.VisaCategory >= 1 && got.VisaCategory <= 4) || (!wantVisa && got.VisaCategory != 0) {
			t.Fatalf("#%d %+v: VisaCategory %d", i, in, got.VisaCategory)
		}
		// Same input, same answer; case and spacing do not matter.
		if again := Classify(in); !reflect.DeepEqual(again, got) {
			t.Fatalf("#%d %+v: not deterministic: %s then %s", i, in, got, again)
		}
		m := in
		m.DeclineCode, m.AdviceCode = mangle(r, in.DeclineCode), mangle(r, in.AdviceCode)
		m.NetworkDeclineCode, m.NetworkAdviceCode = mangle(r, in.NetworkDeclineCode), mangle(r, in.NetworkAdviceCode)
		m.Network = mangle(r, in.Network)
		if other := Classify(m); !reflect.DeepEqual(other, got) {
			t.Fatalf("#%d: %+v and %+v differ: %s vs %s", i, in, m, got, other)
		}
	}
	if stops == 0 {
		t.Fatal("the generator never produced a must-stop input")
	}
	t.Logf("%d random inputs, %d must-stop", iterations, stops)
}

func classifySafely(t *testing.T, in Input) (d Decline) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("Classify(%+v) panicked: %v", in, p)
		}
	}()
	return Classify(in)
}

func FuzzClassify(f *testing.F) {
	f.Add("insufficient_funds", "try_again_later", "51", "24", "mastercard", false)
	f.Add("", "", "r0", "", "visa", false)
	f.Add("nonsense", "do_not_try_again", "\x00", "3", "MasterCard", true)
	f.Fuzz(func(t *testing.T, dc, ac, ndc, nac, network string, ra bool) {
		in := Input{DeclineCode: dc, AdviceCode: ac, NetworkDeclineCode: ndc, NetworkAdviceCode: nac, Network: network, RequiresAction: ra}
		got := Classify(in)
		if got.Known != (len(got.Sources) > 0) {
			t.Fatalf("%+v: Known=%v with sources %v", in, got.Known, got.Sources)
		}
		if got.Known && got.Category != categoryOf(got.Advice) {
			t.Fatalf("%+v: category %s with advice %s", in, got.Category, got.Advice)
		}
		if got.RetryAfter < 0 || got.NoRetryWindow < 0 || got.VisaCategory < 0 || got.VisaCategory > 4 {
			t.Fatalf("%+v: out of range: %s", in, got)
		}
		if normStripe(ac) == "do_not_try_again" && got.Advice != Stop {
			t.Fatalf("%+v: must stop, got %s", in, got)
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	inputs := []Input{
		{Gateway: "stripe", DeclineCode: "insufficient_funds", NetworkDeclineCode: "51", Network: "visa"},
		{Gateway: "stripe", DeclineCode: "do_not_honor", AdviceCode: "try_again_later", NetworkDeclineCode: "05", NetworkAdviceCode: "24", Network: "mastercard"},
		{Gateway: "stripe", DeclineCode: "stolen_card", NetworkDeclineCode: "43", Network: "visa"},
		{Gateway: "http", DeclineCode: "expired_card"},
		{Gateway: "stripe", DeclineCode: "Generic_Decline ", NetworkDeclineCode: "r1", Network: "Visa"},
		{Gateway: "simulator", DeclineCode: "card_exploded"},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = Classify(inputs[i%len(inputs)])
		i++
	}
}
