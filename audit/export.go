package audit

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dunningco/dunning/ledger"
)

// ExportLedger is what an export reads; *ledger.Store implements it.
type ExportLedger interface {
	Ledger
	TenantRuns(ctx context.Context, tenant string, from, to time.Time) ([]ledger.Run, error)
}

// Row is one timeline entry of an export, with the run it belongs to.
type Row struct {
	WorkflowID string `json:"workflow_id"`
	InvoiceID  string `json:"invoice_id"`
	CustomerID string `json:"customer_id"`
	Entry
}

// MaxExportWindow bounds one export; longer periods are exported in parts.
const MaxExportWindow = 366 * 24 * time.Hour

// CheckWindow refuses an empty, inverted or too long period.
func CheckWindow(from, to time.Time, max time.Duration) error {
	switch {
	case from.IsZero() || to.IsZero():
		return fmt.Errorf("from and to are required")
	case !to.After(from):
		return fmt.Errorf("to (%s) must be after from (%s)", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	case to.Sub(from) > max:
		return fmt.Errorf("the period from %s to %s is longer than %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), window(max))
	}
	return nil
}

// Export lists every timeline entry of the tenant's runs that happened in
// [from, to), run by run in the order the runs opened, each run's entries
// in time order. It reads the ledger only.
func Export(ctx context.Context, l ExportLedger, tenant string, from, to time.Time) ([]Row, error) {
	if err := CheckWindow(from, to, MaxExportWindow); err != nil {
		return nil, err
	}
	runs, err := l.TenantRuns(ctx, tenant, from, to)
	if err != nil {
		return nil, err
	}
	rows := []Row{}
	for _, r := range runs {
		t, err := Build(ctx, l, r.WorkflowID, nil)
		if err != nil {
			return nil, err
		}
		for _, e := range t.Entries {
			if e.At.Before(from) || !e.At.Before(to) {
				continue
			}
			rows = append(rows, Row{WorkflowID: t.WorkflowID, InvoiceID: t.InvoiceID, CustomerID: t.CustomerID, Entry: e})
		}
	}
	return rows, nil
}

// ExportColumns are the CSV export's columns.
var ExportColumns = []string{"at", "workflow_id", "invoice_id", "customer_id", "kind", "action", "key", "words", "by", "rule",
	"card", "attempt_key", "status", "amount", "currency", "gateway_ref", "decline_code", "advice_code",
	"network_decline_code", "network_advice_code", "channel", "provider_id", "budget_used", "budget_limit"}

// WriteCSV writes rows as CSV with a header line.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ExportColumns); err != nil {
		return err
	}
	for _, r := range rows {
		rec := make([]string, len(ExportColumns))
		rec[0], rec[1], rec[2], rec[3] = r.At.UTC().Format(time.RFC3339Nano), r.WorkflowID, r.InvoiceID, r.CustomerID
		rec[4], rec[5], rec[6], rec[7], rec[8], rec[9] = r.Kind, r.Action, r.Key, r.Words, r.By, r.Rule
		rec[10], rec[11] = r.Card, r.AttemptKey
		switch {
		case r.Charge != nil:
			c := r.Charge
			rec[12], rec[13], rec[14], rec[15] = c.Status, c.Amount, c.Currency, c.GatewayRef
			rec[16], rec[17], rec[18], rec[19] = c.DeclineCode, c.AdviceCode, c.NetworkDeclineCode, c.NetworkAdviceCode
		case r.Message != nil:
			rec[12], rec[20], rec[21] = r.Message.Status, r.Message.Channel, r.Message.ProviderRef
		case r.Service != nil:
			rec[12] = r.Service.CallbackStatus
		case r.Event != nil:
			rec[12] = r.Event.Status
		}
		if r.Budget != nil {
			rec[22], rec[23] = strconv.Itoa(r.Budget.Used), strconv.Itoa(r.Budget.Limit)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes rows as one JSON array.
func WriteJSON(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

// WriteText prints a timeline for people: a header, one line per entry,
// and the next step with what would change it.
func WriteText(w io.Writer, t Timeline) error {
	state := t.Status
	if t.Phase != "" && t.Phase != t.Status {
		state += " (" + t.Phase + ")"
	}
	fmt.Fprintf(w, "Run %s: invoice %s, customer %s, %s %s, policy %s, %s\n", t.WorkflowID, t.InvoiceID, t.CustomerID, t.Amount, t.Currency, t.Policy, state)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTIME\tKIND\tACTION\tWHAT")
	for _, e := range t.Entries {
		what := e.Words
		if e.By != "" {
			what += " [by " + e.By + "]"
		}
		if e.Charge != nil {
			what += " [key " + e.Charge.IdempotencyKey + "]"
		}
		if e.Message != nil && e.Message.ProviderRef != "" {
			what += " [provider id " + e.Message.ProviderRef + "]"
		}
		if e.Unrecorded {
			what += " [not yet in the ledger]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Kind, e.Action, oneLine(what))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	switch {
	case t.Next != nil:
		why := t.Next.Why
		if t.Next.Explain != nil {
			why = t.Next.Explain.Words
		}
		fmt.Fprintf(w, "\nNext: %s at %s: %s\n", t.Next.Action, t.Next.At.UTC().Format(time.RFC3339), why)
		for _, wi := range t.Next.WhatIfs {
			fmt.Fprintf(w, "  - %s\n", wi.Then)
		}
	case !t.ClosedAt.IsZero():
		fmt.Fprintf(w, "\nClosed %s as %s: %s\n", t.ClosedAt.UTC().Format(time.RFC3339), t.Status, t.ClosingReason)
	case !t.Live:
		fmt.Fprintln(w, "\nNext: unknown (the live run was not asked)")
	}
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
