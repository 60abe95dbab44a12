package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

var t0 = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// exact is a decimal with its scale, so "12.50" and "12.5" differ.
func exact(d decimal.Decimal) string {
	if d.Exponent() < 0 {
		return d.StringFixed(-d.Exponent())
	}
	return d.String()
}

func newRun(id, invoice string) ledger.Run {
	return ledger.Run{
		WorkflowID: id, Tenant: "acme", InvoiceID: invoice, CustomerID: "cus_1",
		Amount: dec("12.50"), Currency: "EUR", Policy: "default@v1", Status: "open", OpenedAt: t0,
	}
}

func mustOpenRun(t *testing.T, s *ledger.Store, r ledger.Run) ledger.Run {
	t.Helper()
	got, err := s.OpenRun(ctxFor(t), r)
	if err != nil {
		t.Fatalf("OpenRun(%s): %v", r.WorkflowID, err)
	}
	return got
}

// sameRun compares runs field by field; decimals hold pointers, so == on the
// struct would compare identity, not value and scale.
func sameRun(a, b ledger.Run) bool {
	ea, eb := exact(a.Amount), exact(b.Amount)
	a.Amount, b.Amount = decimal.Decimal{}, decimal.Decimal{}
	return ea == eb && a == b
}

func sameAttempt(a, b ledger.Attempt) bool {
	ea, eb := exact(a.Amount), exact(b.Amount)
	a.Amount, b.Amount = decimal.Decimal{}, decimal.Decimal{}
	return ea == eb && a == b
}

func migrationVersions(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migration files found: %v", err)
	}
	var versions []string
	for _, f := range files {
		versions = append(versions, strings.TrimSuffix(filepath.Base(f), ".sql"))
	}
	slices.Sort(versions)
	return versions
}

func appliedVersions(t *testing.T, s *ledger.Store) []string {
	t.Helper()
	rows, err := s.Pool().Query(ctxFor(t), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenCreatesDatabaseAndMigratesOnce(t *testing.T) {
	ctx := ctxFor(t)
	dbURL := ledgertest.NewDatabaseURL(t)
	want := migrationVersions(t)

	first, err := ledger.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	mustOpenRun(t, first, newRun("wf-1", "inv-1"))
	first.Close()

	second, err := ledger.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer second.Close()
	if got := appliedVersions(t, second); !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
	if _, err := second.GetRun(ctx, "wf-1"); err != nil {
		t.Errorf("run written before the second Open is gone: %v", err)
	}
}

func TestOpenConcurrentlyOnNewDatabase(t *testing.T) {
	ctx := ctxFor(t)
	dbURL := ledgertest.NewDatabaseURL(t)
	const workers = 4
	stores := make([]*ledger.Store, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { stores[i], errs[i] = ledger.Open(ctx, dbURL) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	if got, want := appliedVersions(t, stores[0]), migrationVersions(t); !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	if _, err := ledger.Open(ctxFor(t), "postgres://%zz"); err == nil {
		t.Fatal("Open with a malformed URL succeeded")
	}
}

func TestRunLifecycle(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)

	opened := mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	if opened.Status != "open" || !opened.OpenedAt.Equal(t0) || !opened.ClosedAt.IsZero() {
		t.Fatalf("opened run = %+v", opened)
	}
	again := mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	if !sameRun(again, opened) {
		t.Errorf("second OpenRun = %+v, want %+v", again, opened)
	}

	if _, err := s.OpenRun(ctx, newRun("wf-2", "inv-1")); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("OpenRun of the same invoice under another workflow: err = %v, want ErrConflict", err)
	}

	closedAt := t0.Add(72 * time.Hour)
	if err := s.CloseRun(ctx, "wf-1", "recovered", "charge succeeded", closedAt); err != nil {
		t.Fatalf("CloseRun: %v", err)
	}
	for _, tc := range []struct {
		name, status string
		wantErr      error
	}{
		{"same status again", "recovered", nil},
		{"different status", "exhausted", ledger.ErrRunClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.CloseRun(ctx, "wf-1", tc.status, "later", closedAt.Add(time.Hour)); !errors.Is(err, tc.wantErr) {
				t.Errorf("CloseRun(%s) = %v, want %v", tc.status, err, tc.wantErr)
			}
		})
	}

	got, err := s.GetRun(ctx, "wf-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "recovered" || !got.ClosedAt.Equal(closedAt) || got.ClosingReason != "charge succeeded" {
		t.Errorf("closed run = %+v", got)
	}

	row, err := s.OpenRun(ctx, newRun("wf-1", "inv-1"))
	if !errors.Is(err, ledger.ErrRunClosed) {
		t.Errorf("OpenRun of a closed run: err = %v, want ErrRunClosed", err)
	}
	if row.Status != "recovered" {
		t.Errorf("OpenRun of a closed run returned %+v, want the stored row", row)
	}

	if err := s.CloseRun(ctx, "wf-missing", "exhausted", "", t0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("CloseRun of unknown run = %v, want ErrNotFound", err)
	}
	if _, err := s.GetRun(ctx, "wf-missing"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("GetRun of unknown run = %v, want ErrNotFound", err)
	}
}

func TestMoneyRoundTripsExactly(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	for i, tc := range []struct{ amount, currency string }{
		{"12.50", "EUR"},
		{"1200", "JPY"},
		{"1.234", "BHD"},
		{"123456789012.34", "USD"},
		{"0.01", "EUR"},
	} {
		t.Run(tc.amount+" "+tc.currency, func(t *testing.T) {
			id := "wf-money-" + tc.currency + tc.amount
			r := newRun(id, "inv-"+tc.amount+tc.currency)
			r.Amount, r.Currency = dec(tc.amount), tc.currency
			mustOpenRun(t, s, r)

			got, err := s.GetRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if exact(got.Amount) != tc.amount || got.Currency != tc.currency {
				t.Errorf("run amount = %s %s, want %s %s", exact(got.Amount), got.Currency, tc.amount, tc.currency)
			}
			var stored string
			if err := s.Pool().QueryRow(ctx, "SELECT amount::text FROM runs WHERE workflow_id = $1", id).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if stored != tc.amount {
				t.Errorf("stored numeric = %s, want %s", stored, tc.amount)
			}

			a, err := s.BeginAttempt(ctx, ledger.Attempt{
				IdempotencyKey: id + "/attempt-1", WorkflowID: id, Number: 1, Reason: "scheduled",
				Amount: r.Amount, Currency: r.Currency, Gateway: "sim", StartedAt: t0.Add(time.Duration(i) * time.Second),
			})
			if err != nil {
				t.Fatal(err)
			}
			if exact(a.Amount) != tc.amount || a.Currency != tc.currency {
				t.Errorf("attempt amount = %s %s, want %s %s", exact(a.Amount), a.Currency, tc.amount, tc.currency)
			}
		})
	}
}

func newAttempt(wf string, n int, key string) ledger.Attempt {
	return ledger.Attempt{
		IdempotencyKey: key, WorkflowID: wf, Number: n, Reason: "scheduled",
		Amount: dec("12.50"), Currency: "EUR", Gateway: "sim", PaymentMethod: "pm_card",
		Status: "pending", StartedAt: t0.Add(time.Duration(n) * time.Hour),
	}
}

func TestAttemptsAreIdempotent(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))

	first, err := s.BeginAttempt(ctx, newAttempt("wf-1", 1, "wf-1/attempt-1"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != "pending" || !first.FinishedAt.IsZero() {
		t.Fatalf("new attempt = %+v", first)
	}
	retry, err := s.BeginAttempt(ctx, newAttempt("wf-1", 1, "wf-1/attempt-1"))
	if err != nil || !sameAttempt(retry, first) {
		t.Fatalf("BeginAttempt retry = %+v, %v; want %+v", retry, err, first)
	}

	finishedAt := t0.Add(90 * time.Minute)
	if err := s.FinishAttempt(ctx, "wf-1/attempt-1", ledger.AttemptOutcome{Status: "declined", DeclineCode: "insufficient_funds",
		AdviceCode: "try_again_later", Message: "Insufficient funds", GatewayRef: "ch_1", NetworkDeclineCode: "51",
		NetworkAdviceCode: "03", RequiresAction: true, At: finishedAt}); err != nil {
		t.Fatal(err)
	}
	replay, err := s.BeginAttempt(ctx, newAttempt("wf-1", 1, "wf-1/attempt-1"))
	if err != nil {
		t.Fatal(err)
	}
	if replay.Status != "declined" || replay.DeclineCode != "insufficient_funds" || replay.AdviceCode != "try_again_later" ||
		replay.Message != "Insufficient funds" || replay.GatewayRef != "ch_1" || !replay.FinishedAt.Equal(finishedAt) ||
		replay.NetworkDeclineCode != "51" || replay.NetworkAdviceCode != "03" || !replay.RequiresAction {
		t.Errorf("replayed attempt = %+v, want the finished result", replay)
	}

	for _, tc := range []struct {
		name, key, status string
		wantErr           error
	}{
		{"same final status", "wf-1/attempt-1", "declined", nil},
		{"different final status", "wf-1/attempt-1", "succeeded", ledger.ErrConflict},
		{"unknown key", "wf-1/attempt-9", "succeeded", ledger.ErrNotFound},
		{"pending is not final", "wf-1/attempt-1", "pending", ledger.ErrInvalid},
	} {
		t.Run("finish/"+tc.name, func(t *testing.T) {
			if err := s.FinishAttempt(ctx, tc.key, ledger.AttemptOutcome{Status: tc.status, At: finishedAt}); !errors.Is(err, tc.wantErr) {
				t.Errorf("FinishAttempt = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if a, _ := s.BeginAttempt(ctx, newAttempt("wf-1", 1, "wf-1/attempt-1")); a.Status != "declined" {
		t.Errorf("attempt status changed to %s", a.Status)
	}

	mismatched := newAttempt("wf-1", 1, "wf-1/attempt-1")
	mismatched.Amount = dec("99.00")
	for _, tc := range []struct {
		name    string
		a       ledger.Attempt
		wantErr error
	}{
		{"number taken by another key", newAttempt("wf-1", 1, "other-key"), ledger.ErrConflict},
		{"key reused for another amount", mismatched, ledger.ErrConflict},
		{"unknown run", newAttempt("wf-missing", 1, "wf-missing/attempt-1"), ledger.ErrNotFound},
	} {
		t.Run("begin/"+tc.name, func(t *testing.T) {
			if _, err := s.BeginAttempt(ctx, tc.a); !errors.Is(err, tc.wantErr) {
				t.Errorf("BeginAttempt = %v, want %v", err, tc.wantErr)
			}
		})
	}

	if _, err := s.BeginAttempt(ctx, newAttempt("wf-1", 2, "wf-1/attempt-2")); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAttempt(ctx, "wf-1/attempt-2", ledger.AttemptOutcome{Status: "succeeded", GatewayRef: "ch_2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseRun(ctx, "wf-1", "recovered", "paid", t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginAttempt(ctx, newAttempt("wf-1", 3, "wf-1/attempt-3")); !errors.Is(err, ledger.ErrRunClosed) {
		t.Errorf("new attempt on a closed run: err = %v, want ErrRunClosed", err)
	}
	if a, err := s.BeginAttempt(ctx, newAttempt("wf-1", 2, "wf-1/attempt-2")); err != nil || a.Status != "succeeded" {
		t.Errorf("retried attempt on a closed run = %+v, %v; want the succeeded row", a, err)
	}

	all, err := s.Attempts(ctx, "wf-1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range all {
		got = append(got, a.IdempotencyKey+"="+a.Status)
	}
	if want := []string{"wf-1/attempt-1=declined", "wf-1/attempt-2=succeeded"}; !slices.Equal(got, want) {
		t.Errorf("Attempts = %v, want %v", got, want)
	}
	if none, err := s.Attempts(ctx, "wf-missing"); err != nil || len(none) != 0 {
		t.Errorf("Attempts of unknown run = %v, %v", none, err)
	}
}

func newMessage(wf, key string, at time.Time) ledger.Message {
	return ledger.Message{
		IdempotencyKey: key, WorkflowID: wf, Kind: "payment_failed", Channel: "email",
		Recipient: "ana@example.com", Locale: "pt-PT", Subject: "Pagamento falhou", Body: "…",
		Status: "pending", CreatedAt: at,
	}
}

func TestMessagesAreIdempotent(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))

	first, err := s.BeginMessage(ctx, newMessage("wf-1", "wf-1/m2", t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != "pending" || first.Body != "…" {
		t.Fatalf("new message = %+v", first)
	}
	if retry, err := s.BeginMessage(ctx, newMessage("wf-1", "wf-1/m2", t0.Add(2*time.Hour))); err != nil || retry != first {
		t.Fatalf("BeginMessage retry = %+v, %v; want %+v", retry, err, first)
	}
	if err := s.FinishMessage(ctx, "wf-1/m2", "sent", "smtp", "msg-1", "", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	replay, err := s.BeginMessage(ctx, newMessage("wf-1", "wf-1/m2", t0))
	if err != nil || replay.Status != "sent" || replay.Provider != "smtp" || replay.ProviderRef != "msg-1" {
		t.Errorf("replayed message = %+v, %v; want the sent row", replay, err)
	}

	for _, tc := range []struct {
		name, key, status string
		wantErr           error
	}{
		{"same final status", "wf-1/m2", "sent", nil},
		{"different final status", "wf-1/m2", "failed", ledger.ErrConflict},
		{"unknown key", "wf-1/nope", "sent", ledger.ErrNotFound},
		{"unknown status", "wf-1/m2", "bounced", ledger.ErrInvalid},
	} {
		t.Run("finish/"+tc.name, func(t *testing.T) {
			if err := s.FinishMessage(ctx, tc.key, tc.status, "", "", "", t0); !errors.Is(err, tc.wantErr) {
				t.Errorf("FinishMessage = %v, want %v", err, tc.wantErr)
			}
		})
	}

	sms := newMessage("wf-1", "wf-1/m2", t0)
	sms.Channel = "sms"
	if _, err := s.BeginMessage(ctx, sms); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("key reused for another channel: err = %v, want ErrConflict", err)
	}
	// Reminder runs have no dunning run row; their messages are kept all the same.
	if _, err := s.BeginMessage(ctx, newMessage("reminders/acme/pre-due/inv-9", "reminders/acme/pre-due/inv-9/m1", t0)); err != nil {
		t.Errorf("message of a reminder run: %v", err)
	}

	// Messages may follow the close, e.g. the "recovered" notice.
	if err := s.CloseRun(ctx, "wf-1", "recovered", "paid", t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginMessage(ctx, newMessage("wf-1", "wf-1/m1", t0)); err != nil {
		t.Fatalf("message after close: %v", err)
	}
	all, err := s.Messages(ctx, "wf-1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range all {
		got = append(got, m.IdempotencyKey+"="+m.Status)
	}
	if want := []string{"wf-1/m1=pending", "wf-1/m2=sent"}; !slices.Equal(got, want) {
		t.Errorf("Messages = %v, want %v", got, want)
	}
}

func TestServiceChangesAreIdempotent(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))

	pause := ledger.ServiceChange{IdempotencyKey: "wf-1/pause", WorkflowID: "wf-1", State: "paused",
		Reason: "7 days unpaid", CallbackStatus: "pending", CreatedAt: t0.Add(time.Hour)}
	first, err := s.RecordServiceChange(ctx, pause)
	if err != nil {
		t.Fatal(err)
	}
	if first.CallbackStatus != "pending" || !first.CreatedAt.Equal(pause.CreatedAt) {
		t.Fatalf("recorded change = %+v", first)
	}
	if err := s.MarkServiceCallback(ctx, "wf-1/pause", "delivered", ""); err != nil {
		t.Fatal(err)
	}
	replay, err := s.RecordServiceChange(ctx, pause)
	if err != nil || replay.CallbackStatus != "delivered" {
		t.Errorf("replayed change = %+v, %v; want the delivered row", replay, err)
	}

	for _, tc := range []struct {
		name, key, status string
		wantErr           error
	}{
		{"delivered again", "wf-1/pause", "delivered", nil},
		{"delivered then failed", "wf-1/pause", "failed", ledger.ErrConflict},
		{"unknown key", "wf-1/nope", "delivered", ledger.ErrNotFound},
		{"unknown status", "wf-1/pause", "lost", ledger.ErrInvalid},
	} {
		t.Run("mark/"+tc.name, func(t *testing.T) {
			if err := s.MarkServiceCallback(ctx, tc.key, tc.status, "detail"); !errors.Is(err, tc.wantErr) {
				t.Errorf("MarkServiceCallback = %v, want %v", err, tc.wantErr)
			}
		})
	}

	restore, err := s.RecordServiceChange(ctx, ledger.ServiceChange{IdempotencyKey: "wf-1/restore", WorkflowID: "wf-1",
		State: "active", Reason: "recovered", CreatedAt: t0.Add(2 * time.Hour)})
	if err != nil || restore.CallbackStatus != "none" {
		t.Fatalf("change without callback = %+v, %v; want callback status none", restore, err)
	}
	if err := s.MarkServiceCallback(ctx, "wf-1/restore", "failed", "billing said 422"); err != nil {
		t.Fatal(err)
	}

	suspend := pause
	suspend.State = "suspended"
	if _, err := s.RecordServiceChange(ctx, suspend); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("key reused for another state: err = %v, want ErrConflict", err)
	}
	missing := pause
	missing.IdempotencyKey, missing.WorkflowID = "wf-missing/pause", "wf-missing"
	if _, err := s.RecordServiceChange(ctx, missing); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("change for unknown run: err = %v, want ErrNotFound", err)
	}

	all, err := s.ServiceChanges(ctx, "wf-1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range all {
		got = append(got, c.State+"/"+c.CallbackStatus+"/"+c.CallbackDetail)
	}
	if want := []string{"paused/delivered/", "active/failed/billing said 422"}; !slices.Equal(got, want) {
		t.Errorf("ServiceChanges = %v, want %v", got, want)
	}
}

func TestInvalidInputWritesNothing(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	before, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}

	run := func(mut func(*ledger.Run)) func() error {
		return func() error {
			r := newRun("wf-bad", "inv-bad")
			mut(&r)
			_, err := s.OpenRun(ctx, r)
			return err
		}
	}
	attempt := func(mut func(*ledger.Attempt)) func() error {
		return func() error {
			a := newAttempt("wf-1", 1, "wf-1/attempt-1")
			mut(&a)
			_, err := s.BeginAttempt(ctx, a)
			return err
		}
	}
	message := func(mut func(*ledger.Message)) func() error {
		return func() error {
			m := newMessage("wf-1", "wf-1/m1", t0)
			mut(&m)
			_, err := s.BeginMessage(ctx, m)
			return err
		}
	}
	change := func(mut func(*ledger.ServiceChange)) func() error {
		return func() error {
			c := ledger.ServiceChange{IdempotencyKey: "wf-1/pause", WorkflowID: "wf-1", State: "paused"}
			mut(&c)
			_, err := s.RecordServiceChange(ctx, c)
			return err
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"run without workflow ID", run(func(r *ledger.Run) { r.WorkflowID = "" })},
		{"run without invoice", run(func(r *ledger.Run) { r.InvoiceID = "" })},
		{"run with zero amount", run(func(r *ledger.Run) { r.Amount = decimal.Zero })},
		{"run with negative amount", run(func(r *ledger.Run) { r.Amount = dec("-1.00") })},
		{"run with lower-case currency", run(func(r *ledger.Run) { r.Currency = "eur" })},
		{"run with long currency", run(func(r *ledger.Run) { r.Currency = "EURO" })},
		{"run opened closed", run(func(r *ledger.Run) { r.Status = "recovered" })},
		{"run without policy", run(func(r *ledger.Run) { r.Policy = "" })},
		{"close with open status", func() error { return s.CloseRun(ctx, "wf-1", "open", "", t0) }},
		{"close with unknown status", func() error { return s.CloseRun(ctx, "wf-1", "paid", "", t0) }},
		{"close without workflow ID", func() error { return s.CloseRun(ctx, "", "recovered", "", t0) }},
		{"attempt without key", attempt(func(a *ledger.Attempt) { a.IdempotencyKey = "" })},
		{"attempt number zero", attempt(func(a *ledger.Attempt) { a.Number = 0 })},
		{"attempt with zero amount", attempt(func(a *ledger.Attempt) { a.Amount = decimal.Zero })},
		{"attempt without currency", attempt(func(a *ledger.Attempt) { a.Currency = "" })},
		{"attempt without gateway", attempt(func(a *ledger.Attempt) { a.Gateway = "" })},
		{"attempt begun finished", attempt(func(a *ledger.Attempt) { a.Status = "succeeded" })},
		{"finish attempt without key", func() error { return s.FinishAttempt(ctx, "", ledger.AttemptOutcome{Status: "declined", At: t0}) }},
		{"message without key", message(func(m *ledger.Message) { m.IdempotencyKey = "" })},
		{"message on unknown channel", message(func(m *ledger.Message) { m.Channel = "pigeon" })},
		{"message without kind", message(func(m *ledger.Message) { m.Kind = "" })},
		{"message begun sent", message(func(m *ledger.Message) { m.Status = "sent" })},
		{"finish message as pending", func() error { return s.FinishMessage(ctx, "wf-1/m1", "pending", "", "", "", t0) }},
		{"service change without key", change(func(c *ledger.ServiceChange) { c.IdempotencyKey = "" })},
		{"service change to unknown state", change(func(c *ledger.ServiceChange) { c.State = "frozen" })},
		{"service change with unknown callback", change(func(c *ledger.ServiceChange) { c.CallbackStatus = "sent" })},
		{"mark callback without key", func() error { return s.MarkServiceCallback(ctx, "", "delivered", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ledger.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}

	after, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(before, after) {
		t.Errorf("counts changed from %v to %v", before, after)
	}
	if got, _ := s.GetRun(ctx, "wf-1"); got.Status != "open" {
		t.Errorf("run status changed to %s", got.Status)
	}
}

func TestCounts(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	got, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	zero := map[string]int64{"runs": 0, "attempts": 0, "messages": 0, "service_changes": 0, "outbox": 0}
	if !mapsEqual(got, zero) {
		t.Errorf("Counts on an empty ledger = %v", got)
	}

	for _, id := range []string{"wf-1", "wf-2"} {
		mustOpenRun(t, s, newRun(id, "inv-"+id))
	}
	for n := 1; n <= 3; n++ {
		if _, err := s.BeginAttempt(ctx, newAttempt("wf-1", n, "wf-1/attempt-"+string(rune('0'+n)))); err != nil {
			t.Fatal(err)
		}
	}
	// Repeats add nothing.
	if _, err := s.BeginAttempt(ctx, newAttempt("wf-1", 1, "wf-1/attempt-1")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.BeginMessage(ctx, newMessage("wf-2", "wf-2/m1", t0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RecordServiceChange(ctx, ledger.ServiceChange{IdempotencyKey: "wf-2/pause", WorkflowID: "wf-2", State: "paused"}); err != nil {
		t.Fatal(err)
	}

	got, err = s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"runs": 2, "attempts": 3, "messages": 1, "service_changes": 1, "outbox": 0}
	if !mapsEqual(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The first content given is the one kept, HTML included, and the row
// tracks provider calls whose answer was never recorded.
func TestMessageSendState(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))

	m := newMessage("wf-1", "wf-1/m1", t0)
	m.HTML = "<p>Pagamento falhou</p>"
	first, err := s.BeginMessage(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if !first.HTMLStored || first.HTML != m.HTML || first.SendAttempts != 0 || first.OutcomeUnknown() {
		t.Fatalf("new message = %+v", first)
	}
	again := m
	again.Subject, again.Body, again.HTML = "other", "other", "<p>other</p>"
	if kept, err := s.BeginMessage(ctx, again); err != nil || kept.Subject != m.Subject || kept.Body != m.Body || kept.HTML != m.HTML {
		t.Fatalf("second BeginMessage = %+v, %v; want the first content", kept, err)
	}

	prev, err := s.StartMessageSend(ctx, m.IdempotencyKey, t0.Add(time.Minute))
	if err != nil || prev.SendAttempts != 0 || prev.OutcomeUnknown() {
		t.Fatalf("first StartMessageSend = %+v, %v; want the untouched row", prev, err)
	}
	prev, err = s.StartMessageSend(ctx, m.IdempotencyKey, t0.Add(2*time.Minute))
	if err != nil || prev.SendAttempts != 1 || !prev.OutcomeUnknown() ||
		!prev.FirstSendAt.Equal(t0.Add(time.Minute)) || !prev.UnknownSince.Equal(t0.Add(time.Minute)) {
		t.Fatalf("second StartMessageSend = %+v, %v; want one call whose outcome is unknown", prev, err)
	}
	if err := s.MessageSendNotAccepted(ctx, m.IdempotencyKey); err != nil {
		t.Fatal(err)
	}
	row, err := s.BeginMessage(ctx, m)
	if err != nil || row.SendAttempts != 2 || row.OutcomeUnknown() || !row.FirstSendAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after a refusal = %+v, %v; want two calls, outcome known", row, err)
	}

	if err := s.FinishMessage(ctx, m.IdempotencyKey, "sent", "smtp", "msg-1", "", t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartMessageSend(ctx, m.IdempotencyKey, t0); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("StartMessageSend after the send = %v, want ErrConflict", err)
	}
	if _, err := s.StartMessageSend(ctx, "wf-1/nope", t0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("StartMessageSend of an unknown key = %v, want ErrNotFound", err)
	}
}
