package gateway

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Simulator is a deterministic gateway for dev mode, demos and tests. The
// payment method is a script, like a gateway's test card numbers:
//
//	sim:succeed                          every charge succeeds (also "")
//	sim:decline;code=insufficient_funds  every charge is declined
//	sim:succeed-on=3;code=do_not_honor   declined until dunning attempt 3
//	sim:...;advice=try_again_later       advice code on declines
//	sim:...;network_code=14              card network response code on declines
//	sim:...;network_advice=03            network advice (Mastercard MAC) on declines
//	sim:...;flaky=1                      the first call per key charges but
//	                                     the answer is lost (a transient error)
//	sim:...;refuse_key=1                 dunning attempts up to 1 are refused
//	                                     as if our API key were revoked
//	                                     (ErrNotAuthorized; nothing charged)
//
// Like a real gateway it honours idempotency keys: a repeated key returns
// the first result and never charges again.
type Simulator struct {
	mu      sync.Mutex
	results map[string]ChargeResult
	invoice map[string]string // key -> invoice charged
	calls   map[string]int
	now     func() time.Time
}

// NewSimulator returns an empty simulator.
func NewSimulator() *Simulator {
	return &Simulator{results: map[string]ChargeResult{}, invoice: map[string]string{}, calls: map[string]int{}, now: time.Now}
}

// Name implements Gateway.
func (s *Simulator) Name() string { return NameSimulator }

// Charge implements Gateway.
func (s *Simulator) Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error) {
	script, err := parseScript(req.PaymentMethod)
	if err != nil {
		return ChargeResult{}, fmt.Errorf("simulator: %w: %v", ErrPermanent, err)
	}
	if req.IdempotencyKey == "" {
		return ChargeResult{}, fmt.Errorf("simulator: %w: idempotency key is required", ErrPermanent)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[req.IdempotencyKey]++
	if req.Attempt <= script.refuseKey {
		return ChargeResult{}, fmt.Errorf("simulator: %w: HTTP 401: invalid API key for attempt %d", ErrNotAuthorized, req.Attempt)
	}
	res, seen := s.results[req.IdempotencyKey]
	if !seen {
		res = script.outcome(req)
		res.At = s.now().UTC()
		res.Ref = fmt.Sprintf("sim_ch_%d", len(s.results)+1)
		s.results[req.IdempotencyKey] = res
		s.invoice[req.IdempotencyKey] = req.InvoiceID
	}
	if s.calls[req.IdempotencyKey] <= script.flaky {
		return ChargeResult{}, fmt.Errorf("simulator: connection reset after charge %s (call %d)", res.Ref, s.calls[req.IdempotencyKey])
	}
	return res, nil
}

// Charges is how many distinct charges were processed (keys seen); a retried
// key never adds one.
func (s *Simulator) Charges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.results)
}

// ChargesFor is how many distinct charges were processed for one invoice.
func (s *Simulator) ChargesFor(invoiceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, inv := range s.invoice {
		if inv == invoiceID {
			n++
		}
	}
	return n
}

// Calls is how many times a key was sent.
func (s *Simulator) Calls(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

type script struct {
	decline   bool
	succeedOn int
	code      string
	advice    string
	netCode   string
	netAdvice string
	flaky     int
	refuseKey int
}

func (sc script) outcome(req ChargeRequest) ChargeResult {
	if sc.decline || (sc.succeedOn > 0 && req.Attempt < sc.succeedOn) {
		return ChargeResult{Outcome: Declined, DeclineCode: sc.code, AdviceCode: sc.advice, Message: "simulated decline: " + sc.code,
			NetworkDeclineCode: sc.netCode, NetworkAdviceCode: sc.netAdvice}
	}
	return ChargeResult{Outcome: Succeeded, Message: "simulated charge"}
}

// ValidateScript checks a simulator payment method with the parser Charge
// uses, so a script the intake accepts is one the simulator can run.
func ValidateScript(pm string) error {
	if len(pm) > MaxPaymentMethodLen {
		return fmt.Errorf("a simulator script is at most %d characters, this one is %d", MaxPaymentMethodLen, len(pm))
	}
	_, err := parseScript(pm)
	return err
}

// parseScript reads a script strictly: unknown or repeated directives,
// values on the verb, keyed directives without a value and negative counts
// are refused, so a typo fails at intake rather than quietly charging.
func parseScript(pm string) (script, error) {
	sc := script{code: "insufficient_funds"}
	if pm == "" || pm == "sim:succeed" {
		return sc, nil
	}
	rest, ok := strings.CutPrefix(pm, "sim:")
	if !ok {
		return sc, fmt.Errorf("payment method %q is not a simulator script (sim:...)", pm)
	}
	seen := map[string]bool{}
	for i, part := range strings.Split(rest, ";") {
		k, v, hasValue := strings.Cut(part, "=")
		if seen[k] {
			return sc, fmt.Errorf("simulator directive %q is given twice in %q", k, pm)
		}
		seen[k] = true
		var err error
		switch {
		case i == 0 && k == "succeed" && !hasValue:
		case i == 0 && k == "decline" && !hasValue:
			sc.decline = true
		case k == "succeed-on":
			sc.succeedOn, err = strconv.Atoi(v)
			if err == nil && sc.succeedOn < 1 {
				err = fmt.Errorf("must be at least 1")
			}
		case k == "code" && v != "":
			sc.code = v
		case k == "advice" && v != "":
			sc.advice = v
		case k == "network_code" && v != "":
			sc.netCode = v
		case k == "network_advice" && v != "":
			sc.netAdvice = v
		case k == "refuse_key":
			sc.refuseKey, err = strconv.Atoi(v)
			if err == nil && sc.refuseKey < 0 {
				err = fmt.Errorf("must not be negative")
			}
		case k == "flaky":
			sc.flaky, err = strconv.Atoi(v)
			if err == nil && sc.flaky < 0 {
				err = fmt.Errorf("must not be negative")
			}
		default:
			return sc, fmt.Errorf("unknown simulator directive %q in %q", part, pm)
		}
		if err != nil {
			return sc, fmt.Errorf("simulator directive %q: %v", part, err)
		}
	}
	return sc, nil
}
