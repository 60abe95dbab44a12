package gateway

import (
	"strings"
	"testing"
)

func TestPaymentMethodFormats(t *testing.T) {
	long := strings.Repeat("a", MaxPaymentMethodLen)
	tests := []struct {
		gateway string
		pm      string
		wantErr string // empty: accepted
	}{
		{NameStripe, "", ""},
		{NameStripe, "pm_1MqLiJLkdIwHu7ixUEgbFdYF", ""},
		{NameStripe, "pm_card_visa", ""},
		{NameStripe, "card_1N3T00LkdIwHu7ixRdxpVI1Q", ""},
		{NameStripe, "src_1N3T00LkdIwHu7ixRdxpVI1Q", ""},
		{NameStripe, "pm_" + long[:MaxPaymentMethodLen-3], ""},
		{NameStripe, "pm_" + long[:MaxPaymentMethodLen-2], "at most 255"},
		{NameStripe, "pm_", "is not a Stripe payment method ID"},
		{NameStripe, "ch_3MqLiJLkdIwHu7ix", "is not a Stripe payment method ID"},
		{NameStripe, "cus_NffrFeUfNV2Hib", "is not a Stripe payment method ID"},
		{NameStripe, "sim:succeed", "is not a Stripe payment method ID"},
		{NameStripe, "pm_abc def", "is not a Stripe payment method ID"},
		{NameStripe, "pm_abc\r\nX-Injected: 1", "is not a Stripe payment method ID"},
		{NameStripe, "pm_abc-def", "is not a Stripe payment method ID"},
		{NameStripe, "PM_ABC", "is not a Stripe payment method ID"},
		{NameSimulator, "", ""},
		{NameSimulator, "sim:succeed", ""},
		{NameSimulator, "sim:succeed-on=2;code=do_not_honor;advice=try_again_later", ""},
		{NameSimulator, "sim:decline;code=x;colour=red", "unknown simulator directive"},
		{NameSimulator, "sim:decline;flaky=-1", "must not be negative"},
		{NameSimulator, "pm_card_visa", "is not a simulator script"},
		{NameSimulator, "sim:decline;code=" + long, "at most 255"},
		{NameHTTP, "", ""},
		{NameHTTP, "tok_abc/123:xyz", ""},
		{NameHTTP, long, ""},
		{NameHTTP, long + "a", "at most 255"},
		{NameHTTP, "has space", "printable ASCII"},
		{NameHTTP, "line\nbreak", "printable ASCII"},
		{NameHTTP, "ünïcode", "printable ASCII"},
	}
	formats := Formats()
	for _, tt := range tests {
		t.Run(tt.gateway+"/"+truncate(tt.pm), func(t *testing.T) {
			err := formats[tt.gateway](tt.pm)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused %q: %v", tt.pm, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFormatsFor(t *testing.T) {
	got, err := FormatsFor([]string{NameSimulator, NameStripe})
	if err != nil || len(got) != 2 || got[NameSimulator] == nil || got[NameStripe] == nil {
		t.Fatalf("FormatsFor = %v, %v", got, err)
	}
	if _, err := FormatsFor([]string{"paypal"}); err == nil || !strings.Contains(err.Error(), `"paypal" is not one the platform ships (http, simulator, stripe)`) {
		t.Fatalf("FormatsFor(paypal) error = %v", err)
	}
}

func TestSimulatorNameHasAFormat(t *testing.T) {
	if _, ok := Formats()[NewSimulator().Name()]; !ok {
		t.Fatal("the simulator's name has no payment-method format")
	}
}
