package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

// demoRun is one decline dev mode reports with -demo: real runs on the
// "demo" policy (seconds instead of days) charging the simulator, chosen so
// the dashboard has something in each of its views: recoveries on the
// first and later attempts, runs that exhaust, a hard decline that waits
// for a new card, two currencies.
type demoRun struct {
	invoice, customer, amount, currency, method, code, locale string
}

// The USD runs come first: the dashboard opens on the currency declined
// last, EUR, which has the most runs.
var demoRuns = []demoRun{
	{"h", "cus-hu", "89.00", "USD", "sim:succeed-on=2;code=insufficient_funds", "insufficient_funds", "en-US"},
	{"i", "cus-io", "42.00", "USD", "sim:decline;code=expired_card", "expired_card", "en-US"},
	{"a", "cus-ada", "49.90", "EUR", "sim:succeed-on=2;code=insufficient_funds", "insufficient_funds", "en-GB"},
	{"b", "cus-bo", "120.00", "EUR", "sim:succeed", "insufficient_funds", "fr-FR"},
	{"c", "cus-cy", "19.00", "EUR", "sim:succeed-on=3;code=do_not_honor", "do_not_honor", "pl-PL"},
	{"d", "cus-di", "75.50", "EUR", "sim:decline;code=do_not_honor", "do_not_honor", "en-GB"},
	{"e", "cus-ed", "230.00", "EUR", "sim:decline;code=insufficient_funds", "insufficient_funds", "fr-FR"},
	{"f", "cus-fa", "310.00", "EUR", "sim:decline;code=stolen_card", "stolen_card", "en-GB"},
	{"g", "cus-gu", "15.99", "EUR", "sim:succeed-on=2;code=generic_decline", "generic_decline", "pl-PL"},
}

// startDemoRuns reports the demo declines for tenant acme. Invoice IDs
// carry the start time, so each start of dev mode adds fresh runs instead
// of meeting the closed ones of the last (an ended invoice is never dunned
// again).
func startDemoRuns(ctx context.Context, runs *starter.Client, logger *slog.Logger, now time.Time) int {
	started := 0
	for _, d := range demoRuns {
		in := workflows.Input{
			Tenant:    "acme",
			InvoiceID: fmt.Sprintf("demo-%s-%s", now.UTC().Format("20060102T150405"), d.invoice),
			Customer: workflows.Customer{ID: d.customer, Email: d.customer + "@example.com", Locale: d.locale,
				TimeZone: "Europe/Warsaw"},
			Amount: d.amount, Currency: d.currency, PaymentMethod: d.method,
			Decline:    workflows.Decline{Gateway: "simulator", Code: d.code},
			PolicyName: "demo",
		}
		if _, err := runs.Start(ctx, in); err != nil {
			logger.Warn("demo run not started", "invoice", in.InvoiceID, "error", err)
			continue
		}
		started++
	}
	return started
}
