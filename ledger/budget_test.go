package ledger_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

const day = 24 * time.Hour

// roomy limits let tests record any history without being denied.
var roomy = ledger.Limits{
	VisaMaxReattempts: 1000, VisaWindow: 30 * day,
	MastercardMaxDeclinesPerDay: 1000, MastercardMaxSameAmount: 1000, MastercardSameAmountWindow: 30 * day,
}

func reservation(key, card, network string, at time.Time) ledger.Reservation {
	return ledger.Reservation{
		IdempotencyKey: key, CardKey: card, Network: network, Merchant: "acme",
		AmountMinor: 4990, Currency: "EUR", WorkflowID: "dunning/acme/inv-1", At: at,
	}
}

// past is one earlier charge of a card.
type past struct {
	after    time.Duration // since t0
	outcome  string        // "" leaves the reservation pending
	amount   int64         // 0 means 4990
	merchant string        // "" means acme
}

// every returns n charges, the first at start and then one every step.
func every(n int, start, step time.Duration, outcome string) []past {
	out := make([]past, n)
	for i := range out {
		out[i] = past{after: start + time.Duration(i)*step, outcome: outcome}
	}
	return out
}

// seed records history for a card through the store's own API.
func seed(t *testing.T, s *ledger.Store, card, network string, history []past) {
	t.Helper()
	ctx := ctxFor(t)
	for i, p := range history {
		r := reservation(fmt.Sprintf("%s/seed-%d", card, i), card, network, t0.Add(p.after))
		if p.amount != 0 {
			r.AmountMinor = p.amount
		}
		if p.merchant != "" {
			r.Merchant = p.merchant
		}
		v, err := s.ReserveCardAttempt(ctx, r, roomy)
		if err != nil || !v.Allowed {
			t.Fatalf("seed %s: verdict %+v, err %v", r.IdempotencyKey, v, err)
		}
		if p.outcome != "" {
			if err := s.FinishCardAttempt(ctx, r.IdempotencyKey, p.outcome, r.At.Add(time.Second)); err != nil {
				t.Fatalf("seed %s: finish: %v", r.IdempotencyKey, err)
			}
		}
	}
}

func cardAttemptRows(t *testing.T, s *ledger.Store, card string) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(ctxFor(t), `SELECT count(*) FROM card_attempts WHERE card_key = $1`, card).Scan(&n); err != nil {
		t.Fatalf("count card attempts: %v", err)
	}
	return n
}

func TestDefaultLimits(t *testing.T) {
	want := ledger.Limits{
		VisaMaxReattempts: 15, VisaWindow: 30 * day,
		MastercardMaxDeclinesPerDay: 10, MastercardMaxSameAmount: 35, MastercardSameAmountWindow: 30 * day,
	}
	if got := ledger.DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*ledger.Limits)
		wantErr bool
	}{
		{"defaults", func(*ledger.Limits) {}, false},
		{"visa 20 under the April 2026 rules", func(l *ledger.Limits) { l.VisaMaxReattempts = 20 }, false},
		{"zero visa reattempts", func(l *ledger.Limits) { l.VisaMaxReattempts = 0 }, true},
		{"negative visa window", func(l *ledger.Limits) { l.VisaWindow = -day }, true},
		{"zero mastercard daily declines", func(l *ledger.Limits) { l.MastercardMaxDeclinesPerDay = 0 }, true},
		{"negative mastercard same amount", func(l *ledger.Limits) { l.MastercardMaxSameAmount = -1 }, true},
		{"zero mastercard same-amount window", func(l *ledger.Limits) { l.MastercardSameAmountWindow = 0 }, true},
		{"zero value", func(l *ledger.Limits) { *l = ledger.Limits{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := ledger.DefaultLimits()
			tt.change(&lim)
			err := lim.Validate()
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, ledger.ErrInvalid)) {
				t.Errorf("Validate() = %v, want ErrInvalid: %v", err, tt.wantErr)
			}
		})
	}
}

func TestReserveCardAttemptLimits(t *testing.T) {
	s := ledgertest.NewStore(t)
	visa20 := ledger.DefaultLimits()
	visa20.VisaMaxReattempts = 20

	tests := []struct {
		name    string
		network string
		history []past
		limits  ledger.Limits
		after   time.Duration // of the new reservation, since t0
		amount  int64         // 0 means 4990
		want    ledger.Verdict
	}{
		{
			name: "visa: 15th reattempt in 30 days", network: "visa",
			history: every(14, 0, day, "declined"), after: 20 * day,
			want: ledger.Verdict{Allowed: true},
		},
		{
			name: "visa: 16th reattempt in 30 days", network: "visa",
			history: every(15, 0, day, "declined"), after: 20 * day,
			want: ledger.Verdict{Rule: "visa: 15 reattempts per card in 30 days", NotBefore: t0.Add(30 * day)},
		},
		{
			name: "visa: the network name is case-insensitive", network: "VISA",
			history: every(15, 0, day, "declined"), after: 20 * day,
			want: ledger.Verdict{Rule: "visa: 15 reattempts per card in 30 days", NotBefore: t0.Add(30 * day)},
		},
		{
			name: "visa: not before the oldest that must leave the window", network: "visa",
			// 17 attempts against a limit of 15: the third oldest must leave.
			history: every(17, 0, day, "declined"), after: 20 * day,
			want: ledger.Verdict{Rule: "visa: 15 reattempts per card in 30 days", NotBefore: t0.Add(32 * day)},
		},
		{
			name: "visa: every outcome counts", network: "visa",
			history: append(append(every(5, 0, day, "succeeded"), every(5, 5*day, day, "failed")...), every(5, 10*day, day, "")...),
			after:   20 * day,
			want:    ledger.Verdict{Rule: "visa: 15 reattempts per card in 30 days", NotBefore: t0.Add(30 * day)},
		},
		{
			name: "visa: reattempts older than 30 days do not count", network: "visa",
			history: append(every(10, 0, time.Hour, "declined"), every(14, 31*day, time.Hour, "declined")...),
			after:   32 * day,
			want:    ledger.Verdict{Allowed: true},
		},
		{
			name: "visa: a reattempt exactly 30 days old has left the window", network: "visa",
			history: every(15, 0, day, "declined"), after: 30 * day,
			want: ledger.Verdict{Allowed: true},
		},
		{
			name: "visa: 20th reattempt with the limit at 20", network: "visa",
			history: every(19, 0, day, "declined"), limits: visa20, after: 20 * day,
			want: ledger.Verdict{Allowed: true},
		},
		{
			name: "visa: 21st reattempt with the limit at 20", network: "visa",
			history: every(20, 0, day, "declined"), limits: visa20, after: 20 * day,
			want: ledger.Verdict{Rule: "visa: 20 reattempts per card in 30 days", NotBefore: t0.Add(30 * day)},
		},
		{
			name: "mastercard: 11th decline in 24 hours", network: "mastercard",
			history: every(10, 0, time.Hour, "declined"), after: 12 * time.Hour,
			want: ledger.Verdict{Rule: "mastercard: 10 declines per card in 24 hours", NotBefore: t0.Add(24 * time.Hour)},
		},
		{
			name: "mastercard: pending attempts count as declines", network: "mastercard",
			history: every(10, 0, time.Hour, ""), after: 12 * time.Hour,
			want: ledger.Verdict{Rule: "mastercard: 10 declines per card in 24 hours", NotBefore: t0.Add(24 * time.Hour)},
		},
		{
			name: "mastercard: 11th attempt after successes", network: "mastercard",
			history: append(every(5, 0, time.Hour, "declined"), every(5, 5*time.Hour, time.Hour, "succeeded")...),
			after:   12 * time.Hour,
			want:    ledger.Verdict{Allowed: true},
		},
		{
			name: "mastercard: 11th attempt after failures that never reached the network", network: "mastercard",
			history: append(every(9, 0, time.Hour, "declined"), past{after: 10 * time.Hour, outcome: "failed"}),
			after:   12 * time.Hour,
			want:    ledger.Verdict{Allowed: true},
		},
		{
			name: "mastercard: declines older than 24 hours", network: "mastercard",
			history: every(10, 0, time.Hour, "declined"), after: 34 * time.Hour,
			want: ledger.Verdict{Allowed: true},
		},
		{
			name: "mastercard: 36th same-amount decline in 30 days", network: "mastercard",
			// One every 20 hours stays under the daily limit.
			history: every(35, 0, 20*time.Hour, "declined"), after: 700 * time.Hour,
			want: ledger.Verdict{Rule: "mastercard: 35 declines per card, merchant and amount in 30 days", NotBefore: t0.Add(30 * day)},
		},
		{
			name: "mastercard: 36th decline in 30 days for a different amount", network: "mastercard",
			history: every(35, 0, 20*time.Hour, "declined"), after: 700 * time.Hour, amount: 2495,
			want: ledger.Verdict{Allowed: true},
		},
		{
			name: "mastercard: 35 same-amount declines spread over merchants", network: "mastercard",
			history: append(every(30, 0, 20*time.Hour, "declined"),
				past{after: 600 * time.Hour, outcome: "declined", merchant: "globex"},
				past{after: 620 * time.Hour, outcome: "declined", merchant: "globex"},
				past{after: 640 * time.Hour, outcome: "declined", merchant: "globex"},
				past{after: 660 * time.Hour, outcome: "declined", merchant: "globex"},
				past{after: 680 * time.Hour, outcome: "declined", merchant: "globex"}),
			after: 700 * time.Hour,
			want:  ledger.Verdict{Allowed: true},
		},
		{
			name: "mastercard: same-amount declines older than 30 days", network: "mastercard",
			history: every(35, 0, 20*time.Hour, "declined"), after: 730 * time.Hour,
			want: ledger.Verdict{Allowed: true},
		},
		{
			name: "other networks are not limited", network: "amex",
			history: every(40, 0, time.Hour, "declined"), after: 41 * time.Hour,
			want: ledger.Verdict{Allowed: true},
		},
		{
			name: "an unknown network is not limited", network: "",
			history: every(40, 0, time.Hour, "declined"), after: 41 * time.Hour,
			want: ledger.Verdict{Allowed: true},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card := fmt.Sprintf("card_%02d", i) // one card per case
			seed(t, s, card, tt.network, tt.history)
			lim := tt.limits
			if lim == (ledger.Limits{}) {
				lim = ledger.DefaultLimits()
			}
			r := reservation(card+"/next", card, tt.network, t0.Add(tt.after))
			if tt.amount != 0 {
				r.AmountMinor = tt.amount
			}
			got, err := s.ReserveCardAttempt(ctxFor(t), r, lim)
			if err != nil {
				t.Fatalf("ReserveCardAttempt: %v", err)
			}
			if got != tt.want {
				t.Errorf("verdict = %+v, want %+v", got, tt.want)
			}
			wantRows := len(tt.history)
			if tt.want.Allowed {
				wantRows++ // denials write nothing
			}
			if n := cardAttemptRows(t, s, card); n != wantRows {
				t.Errorf("card_attempts rows = %d, want %d", n, wantRows)
			}
		})
	}
}

func TestCardBlock(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	const card = "card_blocked"
	until := t0.Add(30 * day)
	if err := s.BlockCard(ctx, card, "Mastercard", "mastercard advice 03", "inv-1/attempt-1", until, t0); err != nil {
		t.Fatalf("BlockCard: %v", err)
	}
	// Blocking again from the same charge keeps the first block.
	if err := s.BlockCard(ctx, card, "mastercard", "mastercard advice 03", "inv-1/attempt-1", t0.Add(90*day), t0.Add(time.Minute)); err != nil {
		t.Fatalf("BlockCard again: %v", err)
	}
	// An expired block from another charge denies nothing.
	if err := s.BlockCard(ctx, card, "mastercard", "mastercard advice 21", "inv-0/attempt-3", t0.Add(-day), t0.Add(-31*day)); err != nil {
		t.Fatalf("BlockCard expired: %v", err)
	}
	blocked := ledger.Verdict{
		Rule:      "mastercard: blocked until 2026-03-31T09:30:00Z (mastercard advice 03)",
		NotBefore: until,
	}

	tests := []struct {
		name    string
		network string
		at      time.Time
		want    ledger.Verdict
	}{
		{"right after the block", "mastercard", t0.Add(time.Hour), blocked},
		{"the day before it ends", "mastercard", until.Add(-day), blocked},
		{"whatever network the charge names", "visa", t0.Add(2 * time.Hour), blocked},
		{"when it ends", "mastercard", until, ledger.Verdict{Allowed: true}},
		{"after it ends", "mastercard", until.Add(day), ledger.Verdict{Allowed: true}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := reservation(fmt.Sprintf("inv-2/attempt-%d", i+1), card, tt.network, tt.at)
			got, err := s.ReserveCardAttempt(ctxFor(t), r, ledger.DefaultLimits())
			if err != nil {
				t.Fatalf("ReserveCardAttempt: %v", err)
			}
			if got != tt.want {
				t.Errorf("verdict = %+v, want %+v", got, tt.want)
			}
		})
	}
	if n := cardAttemptRows(t, s, card); n != 2 {
		t.Errorf("card_attempts rows = %d, want 2 (denials write nothing)", n)
	}
}

func TestReserveCardAttemptReplay(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	const card = "card_replay"
	first := reservation("inv-1/attempt-1", card, "visa", t0)
	one := ledger.DefaultLimits()
	one.VisaMaxReattempts = 1
	if v, err := s.ReserveCardAttempt(ctx, first, one); err != nil || v != (ledger.Verdict{Allowed: true}) {
		t.Fatalf("first reservation: verdict %+v, err %v", v, err)
	}

	tests := []struct {
		name    string
		change  func(*ledger.Reservation)
		want    ledger.Verdict
		wantErr error
	}{
		{"the same reservation, budget spent", func(*ledger.Reservation) {}, ledger.Verdict{Allowed: true, Replayed: true}, nil},
		{"retried later", func(r *ledger.Reservation) { r.At = t0.Add(time.Hour) }, ledger.Verdict{Allowed: true, Replayed: true}, nil},
		{"network in another case", func(r *ledger.Reservation) { r.Network = "Visa" }, ledger.Verdict{Allowed: true, Replayed: true}, nil},
		{"another amount", func(r *ledger.Reservation) { r.AmountMinor = 100 }, ledger.Verdict{}, ledger.ErrConflict},
		{"another currency", func(r *ledger.Reservation) { r.Currency = "USD" }, ledger.Verdict{}, ledger.ErrConflict},
		{"another run", func(r *ledger.Reservation) { r.WorkflowID = "dunning/acme/inv-9" }, ledger.Verdict{}, ledger.ErrConflict},
		{"another card", func(r *ledger.Reservation) { r.CardKey = "card_other" }, ledger.Verdict{}, ledger.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := first
			tt.change(&r)
			got, err := s.ReserveCardAttempt(ctxFor(t), r, one)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("verdict = %+v, want %+v", got, tt.want)
			}
		})
	}
	if n := cardAttemptRows(t, s, card); n != 1 {
		t.Errorf("card_attempts rows = %d, want 1", n)
	}
	if n := cardAttemptRows(t, s, "card_other"); n != 0 {
		t.Errorf("card_attempts rows of card_other = %d, want 0", n)
	}
}

func TestCardBudgetSharedAcrossRuns(t *testing.T) {
	s := ledgertest.NewStore(t)
	const card = "card_shared"
	runs := []string{"dunning/acme/inv-1", "dunning/acme/inv-2"}
	for i := range 15 {
		// The two runs take turns on the customer's one card.
		r := reservation(fmt.Sprintf("%s/attempt-%d", runs[i%2], i/2+1), card, "visa", t0.Add(time.Duration(i)*day))
		r.WorkflowID = runs[i%2]
		v, err := s.ReserveCardAttempt(ctxFor(t), r, ledger.DefaultLimits())
		if err != nil || !v.Allowed {
			t.Fatalf("reservation %d: verdict %+v, err %v", i+1, v, err)
		}
	}
	for _, run := range runs {
		r := reservation(run+"/attempt-9", card, "visa", t0.Add(20*day))
		r.WorkflowID = run
		v, err := s.ReserveCardAttempt(ctxFor(t), r, ledger.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", run, err)
		}
		if v.Allowed || v.Rule != "visa: 15 reattempts per card in 30 days" {
			t.Errorf("%s: verdict = %+v, want denied by the shared Visa budget", run, v)
		}
	}
	// Another card of the same customer has its own budget.
	r := reservation("dunning/acme/inv-3/attempt-1", "card_other", "visa", t0.Add(20*day))
	if v, err := s.ReserveCardAttempt(ctxFor(t), r, ledger.DefaultLimits()); err != nil || !v.Allowed {
		t.Errorf("other card: verdict %+v, err %v, want allowed", v, err)
	}
}

func TestReserveCardAttemptConcurrent(t *testing.T) {
	s := ledgertest.NewStore(t)
	const (
		card    = "card_concurrent"
		workers = 30
	)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		verdict = make([]ledger.Verdict, workers)
		errs    = make([]error, workers)
	)
	for i := range workers {
		wg.Go(func() {
			// Each worker is a different run charging the same card.
			r := reservation(fmt.Sprintf("dunning/acme/inv-%d/attempt-1", i), card, "visa", t0.Add(time.Duration(i)*time.Second))
			r.WorkflowID = fmt.Sprintf("dunning/acme/inv-%d", i)
			<-start
			verdict[i], errs[i] = s.ReserveCardAttempt(ctxFor(t), r, ledger.DefaultLimits())
		})
	}
	close(start)
	wg.Wait()

	allowed := 0
	for i := range workers {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if verdict[i].Allowed {
			allowed++
		} else if verdict[i].Rule != "visa: 15 reattempts per card in 30 days" {
			t.Errorf("worker %d: denied by %q", i, verdict[i].Rule)
		}
	}
	if allowed != 15 {
		t.Errorf("allowed = %d of %d, want exactly 15", allowed, workers)
	}
	if n := cardAttemptRows(t, s, card); n != 15 {
		t.Errorf("card_attempts rows = %d, want 15", n)
	}
}

func TestFinishCardAttempt(t *testing.T) {
	s := ledgertest.NewStore(t)
	seed(t, s, "card_finish", "mastercard", []past{{outcome: ""}, {after: time.Hour, outcome: "declined"}})
	const pending, declined = "card_finish/seed-0", "card_finish/seed-1"

	tests := []struct {
		name     string
		key      string
		outcome  string
		wantErr  error
		wantLeft string // outcome stored afterwards
	}{
		{"pending to declined", pending, "declined", nil, "declined"},
		{"declined again", pending, "declined", nil, "declined"},
		{"declined then succeeded", pending, "succeeded", ledger.ErrConflict, "declined"},
		{"declined then failed", declined, "failed", ledger.ErrConflict, "declined"},
		{"unknown key", "card_finish/nope", "declined", ledger.ErrNotFound, ""},
		{"no key", "", "declined", ledger.ErrInvalid, ""},
		{"back to pending", declined, "pending", ledger.ErrInvalid, "declined"},
		{"unknown outcome", declined, "refunded", ledger.ErrInvalid, "declined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.FinishCardAttempt(ctxFor(t), tt.key, tt.outcome, t0.Add(2*time.Hour))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("FinishCardAttempt = %v, want %v", err, tt.wantErr)
			}
			if tt.wantLeft == "" {
				return
			}
			var got string
			var finished *time.Time
			if err := s.Pool().QueryRow(ctxFor(t), `SELECT outcome, finished_at FROM card_attempts WHERE idempotency_key = $1`, tt.key).
				Scan(&got, &finished); err != nil {
				t.Fatalf("read back: %v", err)
			}
			if got != tt.wantLeft || finished == nil {
				t.Errorf("stored outcome = %q (finished %v), want %q and a finish time", got, finished, tt.wantLeft)
			}
		})
	}
}

func TestCardBudgetRejectsInvalidInput(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	reserve := func(change func(*ledger.Reservation)) func() error {
		return func() error {
			r := reservation("inv-1/attempt-1", "card_invalid", "visa", t0)
			change(&r)
			_, err := s.ReserveCardAttempt(ctx, r, ledger.DefaultLimits())
			return err
		}
	}
	block := func(card, reason, source string, until time.Time) func() error {
		return func() error { return s.BlockCard(ctx, card, "mastercard", reason, source, until, t0) }
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"reservation without key", reserve(func(r *ledger.Reservation) { r.IdempotencyKey = "" })},
		{"reservation without card", reserve(func(r *ledger.Reservation) { r.CardKey = "" })},
		{"reservation without merchant", reserve(func(r *ledger.Reservation) { r.Merchant = "" })},
		{"reservation without run", reserve(func(r *ledger.Reservation) { r.WorkflowID = "" })},
		{"negative amount", reserve(func(r *ledger.Reservation) { r.AmountMinor = -4990 })},
		{"zero amount", reserve(func(r *ledger.Reservation) { r.AmountMinor = 0 })},
		{"lower-case currency", reserve(func(r *ledger.Reservation) { r.Currency = "eur" })},
		{"long currency", reserve(func(r *ledger.Reservation) { r.Currency = "EURO" })},
		{"invalid limits", func() error {
			_, err := s.ReserveCardAttempt(ctx, reservation("inv-1/attempt-1", "card_invalid", "visa", t0), ledger.Limits{})
			return err
		}},
		{"block without card", block("", "mastercard advice 03", "inv-1/attempt-1", t0.Add(day))},
		{"block without reason", block("card_invalid", "", "inv-1/attempt-1", t0.Add(day))},
		{"block without source", block("card_invalid", "mastercard advice 03", "", t0.Add(day))},
		{"block ending before it starts", block("card_invalid", "mastercard advice 03", "inv-1/attempt-1", t0.Add(-time.Hour))},
		{"block ending as it starts", block("card_invalid", "mastercard advice 03", "inv-1/attempt-1", t0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ledger.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	var attempts, blocks int
	if err := s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM card_attempts), (SELECT count(*) FROM card_blocks)`).
		Scan(&attempts, &blocks); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	if attempts != 0 || blocks != 0 {
		t.Errorf("rows written: %d card_attempts, %d card_blocks, want none", attempts, blocks)
	}
}
