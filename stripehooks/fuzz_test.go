package stripehooks

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/validation"
)

// FuzzStripeWebhook feeds the verification and the mapping bodies and
// headers from outside. Unsigned inputs must never verify unless they carry
// the payload's own HMAC; signed ones (signIt) must never be refused as
// unsigned, and whatever they map to must be a well-formed request or a
// typed refusal, never a panic.
func FuzzStripeWebhook(f *testing.F) {
	for _, seed := range [][]byte{
		event(f, "evt_1", "invoice.payment_failed", invoice(), nil),
		event(f, "evt_2", "invoice.payment_failed", expandedPayments(invoice()), nil),
		event(f, "evt_3", "invoice.paid", with(invoice(), map[string]any{"status": "paid", "amount_remaining": 0}), nil),
		event(f, "evt_4", "invoice.voided", invoice(), nil),
		event(f, "evt_5", "payment_method.attached", paymentMethod("cus_42"), nil),
		event(f, "evt_6", "customer.updated",
			map[string]any{"id": "cus_42", "object": "customer", "invoice_settings": map[string]any{"default_payment_method": "pm_4"}},
			map[string]any{"invoice_settings": map[string]any{"default_payment_method": nil}}),
		event(f, "evt_7", "charge.refunded", map[string]any{"id": "ch_1", "object": "charge"}, nil),
		[]byte(`{"id":"evt_8","object":"event","type":"invoice.payment_failed","data":{"object":"in_1"}}`),
		[]byte(`{}`),
	} {
		f.Add(seed, "", true)
		f.Add(seed, "t=1700000000,v1=00", false)
	}
	f.Add([]byte(`{"object":"event"}`), "t=,v1=,v0=x", false)

	f.Fuzz(func(t *testing.T, payload []byte, header string, signIt bool) {
		if signIt {
			header = sign(payload, testSecret, time.Now())
		}
		ev, err := ParseEvent(payload, header, testSecret, DefaultTolerance)
		if err != nil {
			switch {
			case signIt && errors.Is(err, ErrSignature):
				t.Fatalf("a correctly signed payload was refused: %v", err)
			case !errors.Is(err, ErrSignature) && !errors.Is(err, ErrMalformed):
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if !signIt && !carriesHMAC(header, payload) {
			t.Fatalf("header %q verified without the payload's signature", header)
		}

		p, err := planEvent("acme", ev)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, starter.ErrInvalid) {
				t.Fatalf("untyped error from the mapping: %v", err)
			}
			return
		}
		if p.kind != kindStart {
			return
		}
		in := p.input
		if in.Tenant != "acme" || in.InvoiceID == "" || in.Decline.Code == "" || in.Decline.Gateway != "stripe" {
			t.Fatalf("incomplete input: %+v", in)
		}
		if in.Currency != strings.ToUpper(in.Currency) {
			t.Fatalf("currency %q is not upper case", in.Currency)
		}
		if _, err := money.Parse(in.Amount, in.Currency); err != nil {
			t.Fatalf("amount %q %s does not parse: %v", in.Amount, in.Currency, err)
		}
		if in.Customer.Email != "" {
			if _, err := validation.Email(in.Customer.Email); err != nil {
				t.Fatalf("kept an email the intake refuses: %v", err)
			}
		}
	})
}

// carriesHMAC reports whether header holds a v1 signature that is the
// HMAC of payload at one of its timestamps.
func carriesHMAC(header string, payload []byte) bool {
	var stamps, sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			stamps = append(stamps, v)
		case "v1":
			sigs = append(sigs, v)
		}
	}
	for _, ts := range stamps {
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			continue
		}
		want := hex.EncodeToString(webhook.ComputeSignature(time.Unix(sec, 0), payload, testSecret))
		for _, s := range sigs {
			if strings.EqualFold(s, want) {
				return true
			}
		}
	}
	return false
}
