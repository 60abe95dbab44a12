package stripe

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/gateway/stripe/stripetest"
)

// seenBy converts a request stripe-mock's proxy recorded.
func seenBy(r stripetest.Request) seen {
	return seen{method: r.Method, path: r.Path, header: r.Header, form: r.Form}
}

func TestStripeMock(t *testing.T) {
	mock := stripetest.StartMock(t)
	g, _ := newTestGatewayAt(t, mock.URL())

	// stripe-mock's invoice fixture is for 1000 USD.
	request := func(invoiceID string, amount int64) gateway.ChargeRequest {
		return gateway.ChargeRequest{
			IdempotencyKey: "dunning/acme/" + invoiceID + "/attempt-1",
			Attempt:        1,
			Tenant:         "acme",
			InvoiceID:      invoiceID,
			CustomerID:     "cus_QXg1o8vcGmoR32",
			PaymentMethod:  "pm_card_visa",
			AmountMinor:    amount,
			Currency:       "USD",
		}
	}

	t.Run("pays an open invoice; a repeated key gets the same result", func(t *testing.T) {
		req := request("in_open_mock0001", 1000)
		first, err := g.Charge(context.Background(), req)
		if err != nil {
			t.Fatalf("Charge: %v", err)
		}
		if first.Outcome != gateway.Succeeded || first.Ref != req.InvoiceID || first.DeclineCode != "" {
			t.Errorf("Charge = %+v, want succeeded with Ref %s", first, req.InvoiceID)
		}
		again, err := g.Charge(context.Background(), req)
		if err != nil {
			t.Fatalf("repeated Charge: %v", err)
		}
		if again != first {
			t.Errorf("repeated key = %+v, first = %+v", again, first)
		}
		gets, pays := mock.InvoiceRequests(req.InvoiceID)
		if len(gets) != 2 || len(pays) != 2 {
			t.Fatalf("requests: %d reads, %d pays; want 2 of each", len(gets), len(pays))
		}
		for _, p := range pays {
			checkPayRequest(t, seenBy(p), req)
		}
	})

	t.Run("stripe-mock's draft invoice is refused before paying", func(t *testing.T) {
		req := request("in_draft_mock0001", 1000)
		_, err := g.Charge(context.Background(), req)
		if !errors.Is(err, gateway.ErrPermanent) || !strings.Contains(err.Error(), "is draft") {
			t.Fatalf("Charge error = %v, want a permanent error for a draft", err)
		}
		if _, pays := mock.InvoiceRequests(req.InvoiceID); len(pays) != 0 {
			t.Errorf("pay calls = %d, want none", len(pays))
		}
	})

	t.Run("amount mismatch is refused before paying", func(t *testing.T) {
		req := request("in_open_mock0002", 1200)
		_, err := g.Charge(context.Background(), req)
		if !errors.Is(err, gateway.ErrPermanent) || !strings.Contains(err.Error(), "has 1000 USD remaining, the request is for 1200 USD") {
			t.Fatalf("Charge error = %v, want a permanent amount mismatch", err)
		}
		if _, pays := mock.InvoiceRequests(req.InvoiceID); len(pays) != 0 {
			t.Errorf("pay calls = %d, want none", len(pays))
		}
	})

	if mock.Answers() == 0 {
		t.Error("no answer came from stripe-mock")
	}
}
