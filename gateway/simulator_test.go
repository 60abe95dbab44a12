package gateway

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

var simNow = time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)

func newTestSimulator() *Simulator {
	s := NewSimulator()
	s.now = func() time.Time { return simNow }
	return s
}

func chargeReq(key, invoice, pm string, attempt int) ChargeRequest {
	return ChargeRequest{
		IdempotencyKey: key, Attempt: attempt, Tenant: "acme", InvoiceID: invoice,
		CustomerID: "cus_1", PaymentMethod: pm, AmountMinor: 4990, Currency: "EUR",
	}
}

func TestParseScript(t *testing.T) {
	tests := []struct {
		name    string
		pm      string
		want    script
		wantErr string
	}{
		{name: "empty succeeds", pm: "", want: script{code: "insufficient_funds"}},
		{name: "succeed", pm: "sim:succeed", want: script{code: "insufficient_funds"}},
		{name: "decline default code", pm: "sim:decline", want: script{decline: true, code: "insufficient_funds"}},
		{name: "decline with code", pm: "sim:decline;code=do_not_honor", want: script{decline: true, code: "do_not_honor"}},
		{name: "decline with code and advice", pm: "sim:decline;code=do_not_honor;advice=try_again_later",
			want: script{decline: true, code: "do_not_honor", advice: "try_again_later"}},
		{name: "succeed-on first", pm: "sim:succeed-on=3;code=do_not_honor", want: script{succeedOn: 3, code: "do_not_honor"}},
		{name: "succeed with flaky", pm: "sim:succeed;flaky=2", want: script{code: "insufficient_funds", flaky: 2}},
		{name: "decline with flaky", pm: "sim:decline;flaky=1", want: script{decline: true, code: "insufficient_funds", flaky: 1}},
		{name: "refused key", pm: "sim:succeed;refuse_key=1", want: script{code: "insufficient_funds", refuseKey: 1}},
		{name: "no sim prefix", pm: "not-a-script", wantErr: "is not a simulator script"},
		{name: "card number", pm: "4242424242424242", wantErr: "is not a simulator script"},
		{name: "empty script", pm: "sim:", wantErr: "unknown simulator directive"},
		{name: "unknown verb", pm: "sim:refund", wantErr: "unknown simulator directive"},
		{name: "unknown directive", pm: "sim:decline;colour=red", wantErr: "unknown simulator directive"},
		{name: "verb not first", pm: "sim:code=x;decline", wantErr: "unknown simulator directive"},
		{name: "empty code", pm: "sim:decline;code=", wantErr: "unknown simulator directive"},
		{name: "trailing separator", pm: "sim:succeed;", wantErr: "unknown simulator directive"},
		{name: "succeed-on zero", pm: "sim:succeed-on=0", wantErr: "must be at least 1"},
		{name: "succeed-on not a number", pm: "sim:succeed-on=three", wantErr: `directive "succeed-on=three"`},
		{name: "flaky not a number", pm: "sim:succeed;flaky=x", wantErr: `directive "flaky=x"`},
		{name: "value on the verb", pm: "sim:succeed=1", wantErr: "unknown simulator directive"},
		{name: "value on decline", pm: "sim:decline=yes", wantErr: "unknown simulator directive"},
		{name: "empty advice", pm: "sim:decline;advice=", wantErr: "unknown simulator directive"},
		{name: "advice without value", pm: "sim:decline;advice", wantErr: "unknown simulator directive"},
		{name: "empty network code", pm: "sim:decline;network_code=", wantErr: "unknown simulator directive"},
		{name: "repeated code", pm: "sim:decline;code=a;code=b", wantErr: "given twice"},
		{name: "negative flaky", pm: "sim:succeed;flaky=-1", wantErr: "must not be negative"},
		{name: "negative refuse_key", pm: "sim:succeed;refuse_key=-1", wantErr: "must not be negative"},
		{name: "network codes", pm: "sim:decline;network_code=14;network_advice=03",
			want: script{decline: true, code: "insufficient_funds", netCode: "14", netAdvice: "03"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseScript(tt.pm)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseScript(%q) error = %v, want one containing %q", tt.pm, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseScript(%q): %v", tt.pm, err)
			}
			if got != tt.want {
				t.Errorf("parseScript(%q) = %+v, want %+v", tt.pm, got, tt.want)
			}
		})
	}
}

func TestSimulatorInvalidScriptIsPermanent(t *testing.T) {
	tests := []struct {
		name string
		req  ChargeRequest
	}{
		{name: "not a script", req: chargeReq("k1", "inv-1", "not-a-script", 1)},
		{name: "missing key", req: chargeReq("", "inv-1", "sim:succeed", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSimulator()
			_, err := s.Charge(context.Background(), tt.req)
			if !errors.Is(err, ErrPermanent) {
				t.Fatalf("Charge error = %v, want ErrPermanent", err)
			}
			if got := s.Charges(); got != 0 {
				t.Errorf("Charges() = %d, want 0", got)
			}
		})
	}
}

func TestSimulatorOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		pm          string
		attempt     int
		wantOutcome Outcome
		wantCode    string
		wantAdvice  string
		wantMessage string
	}{
		{name: "succeed", pm: "sim:succeed", attempt: 1, wantOutcome: Succeeded, wantMessage: "simulated charge"},
		{name: "empty payment method", pm: "", attempt: 1, wantOutcome: Succeeded, wantMessage: "simulated charge"},
		{name: "decline default code", pm: "sim:decline", attempt: 5, wantOutcome: Declined,
			wantCode: "insufficient_funds", wantMessage: "simulated decline: insufficient_funds"},
		{name: "decline with advice", pm: "sim:decline;code=do_not_honor;advice=try_again_later", attempt: 1,
			wantOutcome: Declined, wantCode: "do_not_honor", wantAdvice: "try_again_later", wantMessage: "simulated decline: do_not_honor"},
		{name: "succeed-on=3 attempt 1", pm: "sim:succeed-on=3;code=do_not_honor", attempt: 1,
			wantOutcome: Declined, wantCode: "do_not_honor", wantMessage: "simulated decline: do_not_honor"},
		{name: "succeed-on=3 attempt 2", pm: "sim:succeed-on=3;code=do_not_honor", attempt: 2,
			wantOutcome: Declined, wantCode: "do_not_honor", wantMessage: "simulated decline: do_not_honor"},
		{name: "succeed-on=3 attempt 3", pm: "sim:succeed-on=3;code=do_not_honor", attempt: 3,
			wantOutcome: Succeeded, wantMessage: "simulated charge"},
		{name: "succeed-on=3 attempt 4", pm: "sim:succeed-on=3;code=do_not_honor", attempt: 4,
			wantOutcome: Succeeded, wantMessage: "simulated charge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSimulator()
			res, err := s.Charge(context.Background(), chargeReq("key-1", "inv-1", tt.pm, tt.attempt))
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			want := ChargeResult{Outcome: tt.wantOutcome, DeclineCode: tt.wantCode, AdviceCode: tt.wantAdvice,
				Message: tt.wantMessage, Ref: "sim_ch_1", At: simNow}
			if res != want {
				t.Errorf("Charge = %+v, want %+v", res, want)
			}
		})
	}
}

func TestSimulatorIdempotency(t *testing.T) {
	s := newTestSimulator()
	ctx := context.Background()

	first, err := s.Charge(ctx, chargeReq("run-1/attempt-1", "inv-1", "sim:decline;code=do_not_honor", 1))
	if err != nil {
		t.Fatalf("first Charge: %v", err)
	}
	// The same key with another script and attempt still gets the first answer.
	later := func() time.Time { return simNow.Add(time.Hour) }
	s.now = later
	again, err := s.Charge(ctx, chargeReq("run-1/attempt-1", "inv-1", "sim:succeed", 2))
	if err != nil {
		t.Fatalf("repeated Charge: %v", err)
	}
	if again != first {
		t.Errorf("repeated Charge = %+v, want the first result %+v", again, first)
	}
	if first.Outcome != Declined || first.Ref != "sim_ch_1" || !first.At.Equal(simNow) {
		t.Errorf("first Charge = %+v, want a decline sim_ch_1 at %v", first, simNow)
	}
	second, err := s.Charge(ctx, chargeReq("run-1/attempt-2", "inv-1", "sim:succeed", 2))
	if err != nil {
		t.Fatalf("second key Charge: %v", err)
	}
	if second.Outcome != Succeeded || second.Ref != "sim_ch_2" || !second.At.Equal(later()) {
		t.Errorf("second key Charge = %+v, want a success sim_ch_2 at %v", second, later())
	}

	tests := []struct {
		key       string
		wantCalls int
	}{
		{"run-1/attempt-1", 2},
		{"run-1/attempt-2", 1},
		{"run-1/attempt-3", 0},
	}
	for _, tt := range tests {
		if got := s.Calls(tt.key); got != tt.wantCalls {
			t.Errorf("Calls(%q) = %d, want %d", tt.key, got, tt.wantCalls)
		}
	}
	if got := s.Charges(); got != 2 {
		t.Errorf("Charges() = %d, want 2", got)
	}
}

func TestSimulatorFlaky(t *testing.T) {
	tests := []struct {
		name       string
		flaky      int
		calls      int
		wantFailed int // leading calls whose answer is lost
	}{
		{name: "not flaky", flaky: 0, calls: 2, wantFailed: 0},
		{name: "flaky=1", flaky: 1, calls: 3, wantFailed: 1},
		{name: "flaky=2", flaky: 2, calls: 4, wantFailed: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSimulator()
			pm := "sim:succeed"
			if tt.flaky > 0 {
				pm += ";flaky=" + strconv.Itoa(tt.flaky)
			}
			var results []ChargeResult
			for call := 1; call <= tt.calls; call++ {
				res, err := s.Charge(context.Background(), chargeReq("key-1", "inv-1", pm, 1))
				if call <= tt.wantFailed {
					if err == nil {
						t.Fatalf("call %d: want a transient error, got %+v", call, res)
					}
					if errors.Is(err, ErrPermanent) {
						t.Fatalf("call %d: error %v must be transient, not ErrPermanent", call, err)
					}
					if !strings.Contains(err.Error(), "sim_ch_1") {
						t.Errorf("call %d: error %q should name the charge sim_ch_1", call, err)
					}
					// The charge happened even though the answer was lost.
					if got := s.Charges(); got != 1 {
						t.Errorf("call %d: Charges() = %d, want 1", call, got)
					}
					continue
				}
				if err != nil {
					t.Fatalf("call %d: %v", call, err)
				}
				results = append(results, res)
			}
			want := ChargeResult{Outcome: Succeeded, Message: "simulated charge", Ref: "sim_ch_1", At: simNow}
			for i, res := range results {
				if res != want {
					t.Errorf("answer %d = %+v, want %+v", i+1, res, want)
				}
			}
			if got := s.Charges(); got != 1 {
				t.Errorf("Charges() = %d, want 1", got)
			}
			if got := s.Calls("key-1"); got != tt.calls {
				t.Errorf("Calls = %d, want %d", got, tt.calls)
			}
		})
	}
}

func TestSimulatorChargesFor(t *testing.T) {
	s := newTestSimulator()
	ctx := context.Background()
	reqs := []ChargeRequest{
		chargeReq("a/1", "inv-a", "sim:decline", 1),
		chargeReq("a/2", "inv-a", "sim:succeed", 2),
		chargeReq("a/2", "inv-a", "sim:succeed", 2), // retry: no new charge
		chargeReq("b/1", "inv-b", "sim:succeed;flaky=1", 1),
		chargeReq("c/1", "inv-c", "not-a-script", 1), // refused: no charge
	}
	for _, r := range reqs {
		_, _ = s.Charge(ctx, r)
	}
	tests := []struct {
		invoice string
		want    int
	}{
		{"inv-a", 2},
		{"inv-b", 1},
		{"inv-c", 0},
		{"inv-unknown", 0},
	}
	for _, tt := range tests {
		if got := s.ChargesFor(tt.invoice); got != tt.want {
			t.Errorf("ChargesFor(%q) = %d, want %d", tt.invoice, got, tt.want)
		}
	}
	if got := s.Charges(); got != 3 {
		t.Errorf("Charges() = %d, want 3", got)
	}
}

func TestSimulatorName(t *testing.T) {
	var g Gateway = NewSimulator()
	if got := g.Name(); got != "simulator" {
		t.Errorf("Name() = %q, want %q", got, "simulator")
	}
}

// A refused key charges nothing and reads as our configuration error.
func TestSimulatorRefusedKey(t *testing.T) {
	sim := NewSimulator()
	req := ChargeRequest{IdempotencyKey: "k-1", Attempt: 1, InvoiceID: "inv-1", PaymentMethod: "sim:succeed;refuse_key=1", AmountMinor: 100, Currency: "EUR"}
	if _, err := sim.Charge(context.Background(), req); !errors.Is(err, ErrNotAuthorized) || !errors.Is(err, ErrPermanent) {
		t.Fatalf("attempt 1: err = %v, want ErrNotAuthorized", err)
	}
	req.IdempotencyKey, req.Attempt = "k-2", 2
	if res, err := sim.Charge(context.Background(), req); err != nil || res.Outcome != Succeeded {
		t.Fatalf("attempt 2 = %+v, %v; want charged", res, err)
	}
	if sim.Charges() != 1 {
		t.Errorf("charges = %d, want 1", sim.Charges())
	}
}
