package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/audit"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/workflows"
)

// explainPolicy retries twice (1 s and 2 s after the decline), so an
// expedite after both is refused by the policy's cap, and retries 2 s after
// a card update; the service ladder waits a minute, longer than the test.
func explainPolicy() policy.Policy {
	p := fast()
	p.Name = "it-explain"
	p.RetryAfter = []policy.Duration{policy.Duration(time.Second), policy.Duration(2 * time.Second)}
	p.MaxAttempts = 2
	p.Window = policy.Duration(time.Minute)
	p.CardUpdateRetryDelay = policy.Duration(2 * time.Second)
	p.Ladder = []policy.LadderStep{{After: policy.Duration(time.Minute), State: policy.ServicePaused}}
	p.CloseAfter = policy.Duration(time.Minute)
	p.ActionReminders = nil
	return p
}

// TestAuditTrail runs an invoice through a decline, two failed retries, a
// card update, an expedite the policy's cap refuses, and recovery, and
// checks that the timeline lists every input, decision, refusal and charge
// in order with the expected reasons, field by field. Record its history
// as a replay fixture with RECORD_HISTORIES=../workflows/testdata/histories
// go test -run TestAuditTrail ./integration/.
func TestAuditTrail(t *testing.T) {
	p := start(t)
	t.Run("explained run", func(t *testing.T) { t.Parallel(); p.testExplainedRun(t) })
	t.Run("exhausted run", func(t *testing.T) {
		t.Parallel()
		if code, body := p.do(t, http.MethodPost, "/v1/declines", decline("inv-explain-exhausted", "sim:decline;code=insufficient_funds", "it-fast")); code != http.StatusAccepted {
			t.Fatalf("start: %d %v", code, body)
		}
		if res := p.result(t, "inv-explain-exhausted"); res.Outcome != policy.Exhausted {
			t.Fatalf("result = %+v", res)
		}
		tl := p.timeline(t, "inv-explain-exhausted")
		var retries, services int
		for _, e := range tl.Entries {
			switch {
			case e.Kind == audit.KindDecision && e.Action == "retry":
				retries++
			case e.Kind == audit.KindDecision && e.Action == "service":
				services++
			}
		}
		if retries != 3 || services != 2 || tl.Entries[len(tl.Entries)-1].Kind == "" {
			t.Fatalf("exhausted timeline: %d retry and %d service decisions, want 3 and 2: %+v", retries, services, tl.Entries)
		}
		p.recordHistory(t, workflows.WorkflowID("acme", "inv-explain-exhausted"), "v6-exhausted")
	})
}

func (p *platform) timeline(t *testing.T, invoice string) audit.Timeline {
	t.Helper()
	code, _, raw := p.send(t, http.MethodGet, "/v1/runs/acme/"+invoice+"/timeline", "")
	if code != http.StatusOK {
		t.Fatalf("timeline: %d %s", code, raw)
	}
	var tl audit.Timeline
	if err := json.Unmarshal([]byte(raw), &tl); err != nil {
		t.Fatalf("timeline is not JSON: %v: %s", err, raw)
	}
	return tl
}

func (p *platform) testExplainedRun(t *testing.T) {
	const invoice = "inv-explain"
	id := workflows.WorkflowID("acme", invoice)
	body := cardDecline(invoice, "sim:decline;code=insufficient_funds", "it-explain", "visa", "fp-explain-1",
		`{"gateway":"simulator","code":"insufficient_funds"}`)
	if code, out := p.do(t, http.MethodPost, "/v1/declines", body); code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, out)
	}
	waitFor(t, func() bool {
		rows, _ := p.store.Attempts(context.Background(), id)
		return len(rows) == 2 && rows[1].Status == "declined"
	})
	// The next step preview: after two failed retries the schedule is
	// exhausted, and a card update would earn an attempt 2 s later.
	var st map[string]any
	waitFor(t, func() bool {
		_, st = p.do(t, http.MethodGet, "/v1/runs/acme/"+invoice, "")
		next, _ := st["next_step"].(map[string]any)
		return next != nil && next["action"] == "service"
	})
	whatIfs, _ := st["what_would_change_it"].([]any)
	var card, expedite string
	for _, w := range whatIfs {
		m := w.(map[string]any)
		switch m["if"] {
		case policy.IfCardUpdate:
			card, _ = m["then"].(string)
		case policy.IfExpedite:
			expedite, _ = m["then"].(string)
		}
	}
	if !strings.HasPrefix(card, "a card update now would retry at ") ||
		expedite != "an expedite now would be refused: policy cap: 2 of 2 scheduled and expedited attempts used" {
		t.Fatalf("what would change it = %v", whatIfs)
	}
	mid := p.timeline(t, invoice)
	if mid.Next == nil || mid.Next.Action != "service" || len(mid.Next.WhatIfs) != 3 || !mid.Live {
		t.Fatalf("open run's timeline next = %+v", mid.Next)
	}
	var text strings.Builder
	if err := audit.WriteText(&text, mid); err != nil {
		t.Fatal(err)
	}
	t.Logf("explain while open:\n%s", text.String())
	if code, out := p.do(t, http.MethodPost, "/v1/runs/acme/"+invoice+"/payment-method-updated",
		`{"payment_method":"sim:succeed","card":{"network":"visa","fingerprint":"fp-explain-2"}}`); code != http.StatusAccepted {
		t.Fatalf("card update: %d %v", code, out)
	}
	code, out := p.do(t, http.MethodPost, "/v1/runs/acme/"+invoice+"/expedite", `{"reason":"customer called","by":"support"}`)
	if msg, _ := out["detail"].(string); code != http.StatusConflict || !strings.Contains(msg, "policy cap: 2 of 2") {
		t.Fatalf("expedite: %d %v, want 409 naming the cap", code, out)
	}
	if res := p.result(t, invoice); res.Outcome != policy.Recovered || res.Attempts != 3 {
		t.Fatalf("result = %+v, want recovered on the card-update attempt", res)
	}
	tl := p.timeline(t, invoice)
	if tl.Status != "recovered" || tl.WorkflowID != id || tl.Next != nil {
		t.Fatalf("timeline head = %+v", tl)
	}
	// What the run heard, decided, refused and charged, in order.
	type line struct {
		kind, action, words, by, rule, card, status string
		budget                                      string
	}
	var got []line
	for i, e := range tl.Entries {
		if i > 0 && e.At.Before(tl.Entries[i-1].At) {
			t.Errorf("entry %d (%s %s) at %s is before the one above it", i, e.Kind, e.Action, e.At)
		}
		if e.Unrecorded {
			t.Errorf("entry %s of a closed run is not in the ledger", e.Key)
		}
		switch e.Kind {
		case audit.KindInput, audit.KindRefusal, audit.KindCharge:
		case audit.KindDecision:
			if e.Action == "notify" {
				continue
			}
		default:
			continue
		}
		l := line{kind: e.Kind, action: e.Action, words: e.Words, by: e.By, rule: e.Rule, card: e.Card}
		if e.Charge != nil {
			l.status = e.Charge.Status + "/" + e.Charge.DeclineCode
			if e.Charge.IdempotencyKey != e.Key || !strings.HasPrefix(e.Key, id+"/attempt-") || e.Charge.Gateway != "simulator" {
				t.Errorf("charge %+v", e.Charge)
			}
			l.words = ""
		}
		if e.Budget != nil {
			l.budget = e.Budget.Network + " " + itoa(e.Budget.Used) + "/" + itoa(e.Budget.Limit) + " " + e.Budget.Window
		}
		got = append(got, l)
	}
	want := []line{
		{kind: "input", action: "decline", words: "decline reported at intake: insufficient_funds via simulator; source api"},
		{kind: "decision", action: "retry", card: "fp:fp-explain-1", budget: "visa 1/15 30 days",
			words: "scheduled retry 1 of 2, 1s after the decline: insufficient funds (soft decline); visa budget 1 of 15 used in 30 days"},
		{kind: "charge", action: "scheduled", status: "declined/insufficient_funds"},
		{kind: "decision", action: "retry", card: "fp:fp-explain-1", budget: "visa 2/15 30 days",
			words: "scheduled retry 2 of 2, 2s after the decline: insufficient funds (soft decline); visa budget 2 of 15 used in 30 days"},
		{kind: "charge", action: "scheduled", status: "declined/insufficient_funds"},
		{kind: "input", action: "payment-method-updated", words: "payment method updated: a new card (visa)"},
		{kind: "input", action: "expedite", by: "support", words: "expedite asked: customer called"},
		{kind: "refusal", action: "expedite", by: "support", card: "fp:fp-explain-2",
			rule:  "policy cap: 2 of 2 scheduled and expedited attempts used",
			words: "expedite attempt refused: policy cap: 2 of 2 scheduled and expedited attempts used"},
		{kind: "decision", action: "retry", card: "fp:fp-explain-2", budget: "visa 1/15 30 days",
			words: "payment method updated; visa budget 1 of 15 used in 30 days"},
		{kind: "charge", action: "card_updated", status: "succeeded/"},
		{kind: "decision", action: "close", words: "close as recovered: payment recovered"},
	}
	for i := range max(len(got), len(want)) {
		var g, w line
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			// Words of retry decisions end with when, which the test cannot
			// know; compare up to it.
			if g.kind == "decision" && g.action == "retry" && w.words != "" {
				if before, _, ok := strings.Cut(g.words, "; at "); ok {
					rest := g.words[strings.Index(g.words, "; at "):]
					if _, budget, ok := strings.Cut(rest, "; visa budget"); ok {
						g.words = before + "; visa budget" + budget
					}
				}
			}
			if g != w {
				t.Errorf("entry %d:\n got  %+v\n want %+v", i, g, w)
			}
		}
	}
	kinds := map[string]int{}
	for _, e := range tl.Entries {
		kinds[e.Kind]++
		if e.Kind == audit.KindMessage && (e.Message == nil || e.Message.Status != "dry-run" || e.Message.Channel == "") {
			t.Errorf("message entry %+v", e)
		}
	}
	if kinds[audit.KindMessage] == 0 || kinds[audit.KindBillingEvent] == 0 || kinds[audit.KindRun] != 2 {
		t.Errorf("entries by kind = %v, want messages, billing events, open and close", kinds)
	}
	if !slices.ContainsFunc(tl.Entries, func(e audit.Entry) bool { return e.Kind == audit.KindDecision && e.Action == "notify" }) {
		t.Error("no message decision in the timeline")
	}
	text.Reset()
	if err := audit.WriteText(&text, tl); err != nil {
		t.Fatal(err)
	}
	t.Logf("explain once recovered:\n%s", text.String())
	p.recordHistory(t, id, "v6-explained")
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + jsonNumber(n)) }

func jsonNumber(n int) string { b, _ := json.Marshal(n); return string(b) }
