package validation

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/workflows"
)

// assertPointers checks that err is an *Error naming exactly the pointers.
func assertPointers(t *testing.T, err error, want ...string) {
	t.Helper()
	verr, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error = %v, want a *validation.Error naming %v", err, want)
	}
	if !errors.Is(err, workflows.ErrInvalidInput) {
		t.Errorf("error %v does not wrap workflows.ErrInvalidInput", err)
	}
	var got []string
	for _, p := range verr.Problems {
		got = append(got, p.Pointer)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pointers = %v, want %v (%v)", got, want, err)
	}
}

func validDecline() workflows.Input {
	return workflows.Input{
		Tenant: "acme", InvoiceID: "inv-1001",
		Customer:      workflows.Customer{ID: "cus_42", Email: "ada@example.com", Phone: "+48123456789", TimeZone: "Europe/Warsaw"},
		Amount:        "49.90",
		Currency:      "EUR",
		PaymentMethod: "pm_card_visa",
		Decline:       workflows.Decline{ID: "ch_1", Gateway: "stripe", Code: "insufficient_funds"},
	}
}

func TestDeclineAcceptsAndNormalizes(t *testing.T) {
	in := validDecline()
	in.Customer.Phone = "+48 123 456 789"
	in.Plan, in.Segment = "pro", "smb"
	got, err := Rules{}.Decline(in)
	if err != nil {
		t.Fatal(err)
	}
	want := validDecline()
	want.Customer.Country = "PL"
	want.Plan, want.Segment = "pro", "smb"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decline = %+v, want %+v", got, want)
	}
	// The intake's rules are stricter than the run's own check, never looser.
	if err := got.Validate(); err != nil {
		t.Fatalf("normalized input fails the run's check: %v", err)
	}
}

func TestDeclineProblems(t *testing.T) {
	simulatorOnly, err := NewRules([]string{"simulator"}, money.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	eurCap, err := money.ParseLimits("EUR=1000.00")
	if err != nil {
		t.Fatal(err)
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		rules Rules
		edit  func(*workflows.Input)
		want  []string
	}{
		{"tenant missing", Rules{}, func(in *workflows.Input) { in.Tenant = "" }, []string{"/tenant"}},
		{"tenant over 64", Rules{}, func(in *workflows.Input) { in.Tenant = long(65) }, []string{"/tenant"}},
		{"tenant with a slash", Rules{}, func(in *workflows.Input) { in.Tenant = "a/b" }, []string{"/tenant"}},
		{"invoice over 128", Rules{}, func(in *workflows.Input) { in.InvoiceID = long(129) }, []string{"/invoice_id"}},
		{"run ID over the card-link limit", Rules{}, func(in *workflows.Input) { in.Tenant, in.InvoiceID = long(64), long(128) }, []string{"/invoice_id"}},
		{"tenant and invoice at the card-link limit", Rules{}, func(in *workflows.Input) { in.Tenant, in.InvoiceID = long(63), long(128) }, nil},
		{"customer id over the card-link limit", Rules{}, func(in *workflows.Input) { in.Customer.ID = long(201) }, []string{"/customer/id"}},
		{"customer id of 300 kB", Rules{}, func(in *workflows.Input) { in.Customer.ID = long(300_000) }, []string{"/customer/id"}},
		{"amount missing", Rules{}, func(in *workflows.Input) { in.Amount = "" }, []string{"/amount"}},
		{"currency missing", Rules{}, func(in *workflows.Input) { in.Currency = "" }, []string{"/currency"}},
		{"currency unknown", Rules{}, func(in *workflows.Input) { in.Currency = "XYZ" }, []string{"/currency"}},
		{"amount zero", Rules{}, func(in *workflows.Input) { in.Amount = "0.00" }, []string{"/amount"}},
		{"amount decimals", Rules{}, func(in *workflows.Input) { in.Amount = "1.234" }, []string{"/amount"}},
		{"amount wraps to 1 cent", Rules{}, func(in *workflows.Input) { in.Amount = "184467440737095516.17" }, []string{"/amount"}},
		{"amount wraps big", Rules{}, func(in *workflows.Input) { in.Amount = "100000000000000000000000.00" }, []string{"/amount"}},
		{"amount wraps negative", Rules{}, func(in *workflows.Input) { in.Amount = "92233720368547758.08" }, []string{"/amount"}},
		{"amount over the default cap", Rules{}, func(in *workflows.Input) { in.Amount = "1000000000.00" }, []string{"/amount"}},
		{"amount over a configured cap", Rules{Limits: eurCap}, func(in *workflows.Input) { in.Amount = "1000.01" }, []string{"/amount"}},
		{"amount at a configured cap", Rules{Limits: eurCap}, func(in *workflows.Input) { in.Amount = "1000.00" }, nil},
		{"gateway missing", Rules{}, func(in *workflows.Input) { in.Decline.Gateway = "" }, []string{"/decline/gateway"}},
		{"gateway unknown", Rules{}, func(in *workflows.Input) { in.Decline.Gateway = "paypal" }, []string{"/decline/gateway"}},
		{"gateway not configured", simulatorOnly, func(in *workflows.Input) {}, []string{"/decline/gateway"}},
		{"stripe method malformed", Rules{}, func(in *workflows.Input) { in.PaymentMethod = "tok_visa" }, []string{"/payment_method"}},
		{"simulator script malformed", Rules{}, func(in *workflows.Input) {
			in.Decline.Gateway, in.PaymentMethod = "simulator", "sim:decline;colour=red"
		}, []string{"/payment_method"}},
		{"simulator script fine", simulatorOnly, func(in *workflows.Input) {
			in.Decline.Gateway, in.PaymentMethod = "simulator", "sim:succeed-on=2;code=do_not_honor"
		}, nil},
		{"decline code missing", Rules{}, func(in *workflows.Input) { in.Decline.Code = "" }, []string{"/decline/code"}},
		{"decline code huge", Rules{}, func(in *workflows.Input) { in.Decline.Code = long(65) }, []string{"/decline/code"}},
		{"decline id over 255", Rules{}, func(in *workflows.Input) { in.Decline.ID = long(256) }, []string{"/decline/id"}},
		{"decline id with CR/LF", Rules{}, func(in *workflows.Input) { in.Decline.ID = "ch_1\r\n" }, []string{"/decline/id"}},
		{"network code too long", Rules{}, func(in *workflows.Input) { in.Decline.NetworkAdviceCode = "123456789" }, []string{"/decline/network_advice_code"}},
		{"message with a line break", Rules{}, func(in *workflows.Input) { in.Decline.Message = "a\nb" }, []string{"/decline/message"}},
		{"received_at set", Rules{}, func(in *workflows.Input) { in.Decline.ReceivedAt = time.Now() }, []string{"/decline/received_at"}},
		{"plan with a space", Rules{}, func(in *workflows.Input) { in.Plan = "pro plan" }, []string{"/plan"}},
		{"segment too long", Rules{}, func(in *workflows.Input) { in.Segment = long(129) }, []string{"/segment"}},
		{"period days", Rules{}, func(in *workflows.Input) { in.PeriodDays = 400 }, []string{"/period_days"}},
		{"card network", Rules{}, func(in *workflows.Input) { in.Card.Network = "Visa Card" }, []string{"/card/network"}},
		{"callback URL, even a fine one", Rules{}, func(in *workflows.Input) { in.BillingCallbackURL = "https://billing.example.com/dunning" }, []string{"/billing_callback_url"}},
		{"callback URL into our network", Rules{}, func(in *workflows.Input) { in.BillingCallbackURL = "http://169.254.169.254/latest/meta-data" }, []string{"/billing_callback_url"}},
		{"resume", Rules{}, func(in *workflows.Input) { in.Resume = &workflows.Carried{} }, []string{"/resume"}},
		{"several at once", Rules{}, func(in *workflows.Input) {
			in.Tenant, in.Customer.Email, in.Customer.Phone, in.Amount = "", "a@b.c\r\n", "123", "-1"
		}, []string{"/tenant", "/customer/email", "/customer/phone", "/amount"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := validDecline()
			tt.edit(&in)
			_, err := tt.rules.Decline(in)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			assertPointers(t, err, tt.want...)
		})
	}
}

func TestDeclineErrorNamesTheLimit(t *testing.T) {
	in := validDecline()
	in.Amount = "184467440737095516.17"
	_, err := Rules{}.Decline(in)
	if err == nil || !strings.Contains(err.Error(), "amount: ") || !strings.Contains(err.Error(), "999999999.99 EUR") {
		t.Fatalf("error = %v, want it to name the field and the limit", err)
	}
}

func TestReminder(t *testing.T) {
	anchor := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	valid := workflows.ReminderInput{Tenant: "acme", Kind: workflows.ReminderPreDue, InvoiceID: "inv-1",
		Amount: "10.00", Currency: "EUR", Anchor: anchor, Customer: workflows.Customer{ID: "c1", Phone: "+33612345678"}}
	got, err := Rules{}.Reminder(valid)
	if err != nil {
		t.Fatal(err)
	}
	if got.Customer.Country != "FR" || got.Customer.TimeZone != "Europe/Paris" {
		t.Errorf("customer = %+v, want country and zone from the phone", got.Customer)
	}
	tests := []struct {
		name string
		edit func(*workflows.ReminderInput)
		want []string
	}{
		{"bad kind", func(in *workflows.ReminderInput) { in.Kind = "renewal" }, []string{"/kind"}},
		{"no anchor", func(in *workflows.ReminderInput) { in.Anchor = time.Time{} }, []string{"/anchor"}},
		{"amount overflows", func(in *workflows.ReminderInput) { in.Amount = "92233720368547758.08" }, []string{"/amount"}},
		{"card-expiry without fingerprint", func(in *workflows.ReminderInput) { in.Kind = workflows.ReminderCardExpiry }, []string{"/card/fingerprint"}},
		{"card-expiry run ID too long", func(in *workflows.ReminderInput) {
			in.Kind, in.Tenant, in.Customer.ID, in.Card.Fingerprint = workflows.ReminderCardExpiry, strings.Repeat("t", 64), strings.Repeat("c", 100), strings.Repeat("f", 100)
		}, []string{"/card/fingerprint"}},
		{"email with CR/LF", func(in *workflows.ReminderInput) { in.Customer.Email = "a@b.example\nBcc: x@y.example" }, []string{"/customer/email"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := valid
			tt.edit(&in)
			_, err := Rules{}.Reminder(in)
			assertPointers(t, err, tt.want...)
		})
	}
}

func TestRequestsToRuns(t *testing.T) {
	stripeOnly, err := NewRules([]string{"stripe"}, money.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"cancel without reason", Cancel(workflows.CancelRequest{Reason: "  "}), []string{"/reason"}},
		{"cancel reason too long", Cancel(workflows.CancelRequest{Reason: strings.Repeat("r", MaxReasonLen+1)}), []string{"/reason"}},
		{"cancel by with CR/LF", Cancel(workflows.CancelRequest{Reason: "r", By: "ops\r\nX: y"}), []string{"/by"}},
		{"cancel fine", Cancel(workflows.CancelRequest{Reason: "invoice voided\nby the customer", By: "ops@example.com"}), nil},
		{"expedite reason not UTF-8", Expedite(workflows.ExpediteRequest{Reason: "\xff"}), []string{"/reason"}},
		{"resume by with CR/LF", Resume(workflows.ResumeRequest{By: "ops\r\nX: y"}), []string{"/by"}},
		{"resume fine without anything", Resume(workflows.ResumeRequest{}), nil},
		{"paid reference too long", Paid(workflows.PaidOutOfBand{Reference: strings.Repeat("r", 256)}), []string{"/reference"}},
		{"new method in no configured format", stripeOnly.PaymentMethodUpdate(workflows.PaymentMethodUpdate{PaymentMethod: "sim:succeed"}), []string{"/payment_method"}},
		{"new method fine", stripeOnly.PaymentMethodUpdate(workflows.PaymentMethodUpdate{PaymentMethod: "pm_123"}), nil},
		{"new method in any shipped format", Rules{}.PaymentMethodUpdate(workflows.PaymentMethodUpdate{PaymentMethod: "sim:succeed"}), nil},
		{"new card fingerprint", Rules{}.PaymentMethodUpdate(workflows.PaymentMethodUpdate{Card: &workflows.Card{Fingerprint: "a b"}}), []string{"/card/fingerprint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == nil {
				if tt.err != nil {
					t.Fatalf("refused: %v", tt.err)
				}
				return
			}
			assertPointers(t, tt.err, tt.want...)
		})
	}
}

func TestNewRulesRefusesUnknownGateways(t *testing.T) {
	if _, err := NewRules([]string{"simulator", "paypal"}, money.Limits{}); err == nil {
		t.Fatal("NewRules accepted a gateway the platform does not ship")
	}
}

func TestFieldErrorField(t *testing.T) {
	if got := (FieldError{Pointer: "/customer/email"}).Field(); got != "customer.email" {
		t.Errorf("Field() = %q", got)
	}
	if got := (FieldError{Pointer: ""}).Field(); got != "(body)" {
		t.Errorf("Field() of the body = %q", got)
	}
}
