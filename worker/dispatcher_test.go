package worker

import (
	"log/slog"
	"testing"

	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/outbox"
)

func TestNewDispatcher(t *testing.T) {
	store := ledgertest.NewStore(t)
	d := NewDispatcher(store, Config{BillingCallbackSecret: "whsec_prod"}, slog.New(slog.DiscardHandler))
	if d.Ledger != store {
		t.Errorf("dispatcher ledger = %v, want the worker's store", d.Ledger)
	}
	if d.Callback.Secret != "whsec_prod" {
		t.Errorf("callback secret = %q, want BILLING_CALLBACK_SECRET", d.Callback.Secret)
	}
	if d.Interval != outbox.DefaultInterval {
		t.Errorf("interval = %s, want %s", d.Interval, outbox.DefaultInterval)
	}
	if n, err := d.DispatchOnce(t.Context()); n != 0 || err != nil {
		t.Errorf("DispatchOnce on an empty outbox = %d, %v", n, err)
	}
}
