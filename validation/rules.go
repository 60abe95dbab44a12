package validation

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/workflows"
)

// Rules are the intake rules that depend on the deployment: which gateways
// it charges through and how large an amount it accepts. The zero value
// accepts every gateway the platform ships and caps every currency at
// money.DefaultMaxMinor.
type Rules struct {
	// Gateways maps each configured gateway to its payment-method format;
	// nil means gateway.Formats().
	Gateways map[string]gateway.MethodFormat
	// Limits caps amounts per currency.
	Limits money.Limits
}

// NewRules are the rules for a deployment with the named gateways (see
// worker.Providers.GatewayNames) and amount limits.
func NewRules(gatewayNames []string, limits money.Limits) (Rules, error) {
	formats, err := gateway.FormatsFor(gatewayNames)
	if err != nil {
		return Rules{}, err
	}
	return Rules{Gateways: formats, Limits: limits}, nil
}

func (r Rules) gateways() map[string]gateway.MethodFormat {
	if r.Gateways == nil {
		return gateway.Formats()
	}
	return r.Gateways
}

// GatewayNames lists the configured gateways, sorted.
func (r Rules) GatewayNames() []string {
	names := make([]string, 0, len(r.gateways()))
	for name := range r.gateways() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Decline checks a decline report (the input of a new dunning run) and
// returns it normalized as the run will hold it (see Customer). The error
// is an *Error naming every bad field.
func (r Rules) Decline(in workflows.Input) (workflows.Input, error) {
	var p problems
	p.checkID("/tenant", in.Tenant, MaxTenantLen, true)
	p.checkID("/invoice_id", in.InvoiceID, MaxIDLen, true)
	if in.Tenant != "" && in.InvoiceID != "" {
		p.checkRunID("/invoice_id", workflows.WorkflowID(in.Tenant, in.InvoiceID))
	}
	in.Customer = p.customer(in.Customer, "/customer")
	p.checkAmount(r.Limits, in.Amount, in.Currency, true)
	gw := r.checkGateway(&p, in.Decline.Gateway)
	if gw != nil {
		if err := gw(in.PaymentMethod); err != nil {
			p.add("/payment_method", "%v", err)
		}
	}
	if in.PeriodDays < 0 || in.PeriodDays > 366 {
		p.add("/period_days", "must be between 0 and 366, not %d", in.PeriodDays)
	}
	p.checkCard("/card", in.Card)
	p.checkDecline(in.Decline)
	p.checkID("/plan", in.Plan, MaxIDLen, false)
	p.checkID("/segment", in.Segment, MaxIDLen, false)
	if in.BillingCallbackURL != "" {
		// Where the workers POST must never be the caller's choice: that
		// would let anyone who can report a decline make them send requests
		// into our own network. Refused out loud rather than ignored, so a
		// billing system still sending it learns where its events go now.
		p.add("/billing_callback_url", "is no longer accepted: billing events go to the endpoint configured for the tenant (DUNNING_TENANTS_FILE); remove this field")
	}
	if in.Policy != nil {
		if err := in.Policy.Validate(); err != nil {
			p.add("/policy_inline", "%v", err)
		}
	}
	if in.Resume != nil {
		p.add("/resume", "is set only by a run continuing as new")
	}
	return in, p.err()
}

// checkRunID keeps the run's ID within what card-update links carry.
func (p *problems) checkRunID(pointer, id string) {
	if len(id) > MaxRunIDLen {
		p.add(pointer, "makes the run ID %d bytes long; at most %d (card-update links carry it)", len(id), MaxRunIDLen)
	}
}

// checkAmount checks an amount and its currency: a positive decimal string
// with at most the currency's decimals, at most the currency's limit.
func (p *problems) checkAmount(limits money.Limits, amount, currency string, required bool) {
	switch {
	case amount == "" && currency == "" && !required:
		return
	case amount == "":
		p.add("/amount", "is required, as a decimal string such as \"49.90\"")
	case currency == "":
		p.add("/currency", "is required (ISO 4217, e.g. \"EUR\")")
	default:
		a, err := money.Parse(amount, currency)
		switch {
		case errors.Is(err, money.ErrUnknownCurrency):
			p.add("/currency", "%v", err)
		case err != nil:
			p.add("/amount", "%v", err)
		default:
			if err := a.Within(limits); err != nil {
				p.add("/amount", "%v", err)
			}
		}
	}
}

// checkGateway checks the decline's gateway against the configured ones
// and returns its payment-method format (nil when there is none to check).
func (r Rules) checkGateway(p *problems, name string) gateway.MethodFormat {
	if name == "" {
		p.add("/decline/gateway", "is required (configured here: %s)", strings.Join(r.GatewayNames(), ", "))
		return nil
	}
	f, ok := r.gateways()[name]
	if !ok {
		p.add("/decline/gateway", "%s is not a gateway configured here (%s)", quote(name), strings.Join(r.GatewayNames(), ", "))
		return nil
	}
	return f
}

var networkPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (p *problems) checkCard(base string, c workflows.Card) {
	if c.Network != "" && (len(c.Network) > 32 || !networkPattern.MatchString(c.Network)) {
		p.add(base+"/network", "%s is not a card network name such as \"visa\" or \"mastercard\"", quote(c.Network))
	}
	p.checkID(base+"/fingerprint", c.Fingerprint, MaxIDLen, false)
}

func (p *problems) checkDecline(d workflows.Decline) {
	if d.ID != "" {
		if len(d.ID) > MaxDeclineIDLen {
			p.add("/decline/id", "is %d bytes long; at most %d", len(d.ID), MaxDeclineIDLen)
		} else if strings.ContainsFunc(d.ID, func(r rune) bool { return r <= ' ' || r > '~' }) {
			p.add("/decline/id", "%s must be printable ASCII without spaces", quote(d.ID))
		}
	}
	p.checkCode("/decline/code", d.Code, MaxCodeLen, true)
	p.checkCode("/decline/advice_code", d.AdviceCode, MaxCodeLen, false)
	p.checkCode("/decline/network_decline_code", d.NetworkDeclineCode, MaxNetworkCode, false)
	p.checkCode("/decline/network_advice_code", d.NetworkAdviceCode, MaxNetworkCode, false)
	p.checkText("/decline/message", d.Message, MaxMessageLen, false)
	if !d.ReceivedAt.IsZero() {
		p.add("/decline/received_at", "is set by the run")
	}
}

// Reminder checks a reminder request and returns it normalized like
// Decline does.
func (r Rules) Reminder(in workflows.ReminderInput) (workflows.ReminderInput, error) {
	var p problems
	p.checkID("/tenant", in.Tenant, MaxTenantLen, true)
	in.Customer = p.customer(in.Customer, "/customer")
	p.checkCard("/card", in.Card)
	switch in.Kind {
	case workflows.ReminderPreDue:
		p.checkID("/invoice_id", in.InvoiceID, MaxIDLen, true)
		p.checkAmount(r.Limits, in.Amount, in.Currency, true)
	case workflows.ReminderCardExpiry:
		p.checkID("/card/fingerprint", in.Card.Fingerprint, MaxIDLen, true)
		p.checkAmount(r.Limits, in.Amount, in.Currency, false)
	default:
		p.add("/kind", "%s is not %q or %q", quote(in.Kind), workflows.ReminderPreDue, workflows.ReminderCardExpiry)
	}
	if in.Anchor.IsZero() {
		p.add("/anchor", "is required (RFC 3339, e.g. \"2026-03-01T00:00:00Z\")")
	}
	if in.Policy != nil {
		if err := in.Policy.Validate(); err != nil {
			p.add("/policy_inline", "%v", err)
		}
	}
	if len(p.list) == 0 {
		pointer := "/invoice_id"
		if in.Kind == workflows.ReminderCardExpiry {
			pointer = "/card/fingerprint"
		}
		p.checkRunID(pointer, workflows.ReminderWorkflowID(in))
	}
	return in, p.err()
}

// PaymentMethodUpdate checks a payment-method-updated request. The run's
// gateway is not known here, so a new payment method must be in the format
// of at least one configured gateway.
func (r Rules) PaymentMethodUpdate(u workflows.PaymentMethodUpdate) error {
	var p problems
	if u.PaymentMethod != "" {
		var reasons []string
		for _, name := range r.GatewayNames() {
			err := r.gateways()[name](u.PaymentMethod)
			if err == nil {
				reasons = nil
				break
			}
			reasons = append(reasons, fmt.Sprintf("%s: %v", name, err))
		}
		if len(reasons) > 0 {
			p.add("/payment_method", "is not a payment method any configured gateway takes (%s)", strings.Join(reasons, "; "))
		}
	}
	if u.Card != nil {
		p.checkCard("/card", *u.Card)
	}
	return p.err()
}

// Cancel checks a cancel request: a reason is required.
func Cancel(req workflows.CancelRequest) error {
	var p problems
	if strings.TrimSpace(req.Reason) == "" {
		p.add("/reason", "is required to cancel a run")
	}
	p.checkText("/reason", req.Reason, MaxReasonLen, true)
	p.checkText("/by", req.By, MaxActorLen, false)
	return p.err()
}

// Expedite checks an expedite request.
func Expedite(req workflows.ExpediteRequest) error {
	var p problems
	p.checkText("/reason", req.Reason, MaxReasonLen, true)
	p.checkText("/by", req.By, MaxActorLen, false)
	return p.err()
}

// Resume checks a resume request: reason and by are optional.
func Resume(req workflows.ResumeRequest) error {
	var p problems
	p.checkText("/reason", req.Reason, MaxReasonLen, true)
	p.checkText("/by", req.By, MaxActorLen, false)
	return p.err()
}

// Paid checks a paid-out-of-band request.
func Paid(req workflows.PaidOutOfBand) error {
	var p problems
	p.checkText("/reference", req.Reference, MaxReferenceLen, false)
	p.checkText("/note", req.Note, MaxReasonLen, true)
	return p.err()
}
