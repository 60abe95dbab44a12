package stripehooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	stripe "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// The event types the receiver acts on; every other type is acknowledged
// and ignored.
const (
	TypeInvoicePaymentFailed       = "invoice.payment_failed"
	TypeInvoicePaid                = "invoice.paid"
	TypeInvoicePaymentSucceeded    = "invoice.payment_succeeded"
	TypeInvoiceVoided              = "invoice.voided"
	TypeInvoiceMarkedUncollectible = "invoice.marked_uncollectible"
	TypePaymentMethodAttached      = "payment_method.attached"
	TypePaymentMethodAutoUpdated   = "payment_method.automatically_updated"
	TypeCustomerUpdated            = "customer.updated"
)

// By is who the runs record as having asked, for cancels.
const By = "stripe"

// fallbackDeclineCode stands for a failed payment whose event carries no
// decline details: Stripe's own code for a decline without a reason,
// which the platform reads as soft.
const fallbackDeclineCode = "generic_decline"

var (
	eventIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_]{1,255}$`)
	eventTypePattern = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)
	codePattern      = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	networkPattern   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	countryPattern   = regexp.MustCompile(`^[A-Z]{2}$`)
)

// ParseEvent checks payload against the Stripe-Signature header with
// secret, refusing signatures older than tolerance, and decodes the event.
// A missing, malformed, wrong or stale signature is ErrSignature; a signed
// body that is not an event is ErrMalformed.
//
// The event's API version is not checked against stripe-go's: a tenant's
// endpoint sends the version it was created with, and the fields read
// here (see plan) have kept their shape across versions.
func ParseEvent(payload []byte, signature, secret string, tolerance time.Duration) (stripe.Event, error) {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ev, err := webhook.ConstructEventWithOptions(payload, signature, secret, webhook.ConstructEventOptions{
		Tolerance:                tolerance,
		IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		for _, sigErr := range []error{webhook.ErrNotSigned, webhook.ErrInvalidHeader, webhook.ErrNoValidSignature, webhook.ErrTooOld} {
			if errors.Is(err, sigErr) {
				return stripe.Event{}, fmt.Errorf("%w: %w", ErrSignature, err)
			}
		}
		// Signed, so Stripe (or whoever holds the secret) sent it; the
		// library's message says what did not parse.
		return stripe.Event{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch {
	case !eventIDPattern.MatchString(ev.ID):
		return stripe.Event{}, fmt.Errorf("%w: the event ID %.40q is not a Stripe event ID", ErrMalformed, ev.ID)
	case len(ev.Type) > 128 || !eventTypePattern.MatchString(string(ev.Type)):
		return stripe.Event{}, fmt.Errorf("%w: the event type %.40q is not a Stripe event type", ErrMalformed, ev.Type)
	case ev.Data == nil || len(ev.Data.Raw) == 0:
		return stripe.Event{}, fmt.Errorf("%w: event %s has no data.object", ErrMalformed, ev.ID)
	}
	return ev, nil
}

type planKind int

const (
	kindIgnore planKind = iota
	kindStart
	kindPaid
	kindCancel
	kindCardUpdated
)

// plan is what an event asks of the runs, read from the event alone.
type plan struct {
	kind    planKind
	reason  string // kindIgnore: why
	invoice string // kindStart, kindPaid, kindCancel
	input   workflows.Input
	paid    workflows.PaidOutOfBand
	cancel  workflows.CancelRequest
	// kindCardUpdated: the customer whose open runs hear of the card.
	customer string
	update   workflows.PaymentMethodUpdate
	// dropped names the event's fields left out of the run because they
	// do not pass the intake's rules (a free-text phone number): one bad
	// contact field must not keep the invoice from being dunned.
	dropped []string
}

// planEvent reads what the event asks of tenant's runs. The event is the
// only source: no call goes back to Stripe.
func planEvent(tenant string, ev stripe.Event) (plan, error) {
	switch string(ev.Type) {
	case TypeInvoicePaymentFailed:
		inv, err := decodeInvoice(ev)
		if err != nil {
			return plan{}, err
		}
		return planDecline(tenant, ev, inv)

	case TypeInvoicePaid, TypeInvoicePaymentSucceeded:
		inv, err := decodeInvoice(ev)
		if err != nil {
			return plan{}, err
		}
		// A partial payment (invoice.payment_succeeded) leaves a debt to
		// dun; only a settled invoice ends the run.
		if inv.Status != stripe.InvoiceStatusPaid && inv.AmountRemaining > 0 {
			return plan{kind: kindIgnore, reason: fmt.Sprintf("invoice %s is %s with %d (minor units) still due", inv.ID, orUnknown(string(inv.Status)), inv.AmountRemaining)}, nil
		}
		return plan{kind: kindPaid, invoice: inv.ID, paid: workflows.PaidOutOfBand{
			Reference: ev.ID,
			Note:      fmt.Sprintf("Stripe %s for invoice %s", ev.Type, inv.ID),
		}}, nil

	case TypeInvoiceVoided, TypeInvoiceMarkedUncollectible:
		inv, err := decodeInvoice(ev)
		if err != nil {
			return plan{}, err
		}
		what := "voided"
		if ev.Type == TypeInvoiceMarkedUncollectible {
			what = "marked uncollectible"
		}
		return plan{kind: kindCancel, invoice: inv.ID, cancel: workflows.CancelRequest{
			Reason: fmt.Sprintf("invoice %s was %s in Stripe (event %s)", inv.ID, what, ev.ID),
			By:     By,
		}}, nil

	case TypePaymentMethodAttached, TypePaymentMethodAutoUpdated:
		var pm stripe.PaymentMethod
		if err := decodeObject(ev, "payment_method", &pm, &pm.Object, &pm.ID); err != nil {
			return plan{}, err
		}
		if pm.Customer == nil || pm.Customer.ID == "" {
			return plan{kind: kindIgnore, reason: fmt.Sprintf("payment method %s belongs to no customer", pm.ID)}, nil
		}
		return plan{kind: kindCardUpdated, customer: pm.Customer.ID,
			update: workflows.PaymentMethodUpdate{PaymentMethod: pm.ID, Card: paymentMethodCard(&pm)}}, nil

	case TypeCustomerUpdated:
		var c stripe.Customer
		if err := decodeObject(ev, "customer", &c, &c.Object, &c.ID); err != nil {
			return plan{}, err
		}
		pm, changed := newDefaultPaymentMethod(ev, &c)
		switch {
		case !changed:
			return plan{kind: kindIgnore, reason: "the customer's default payment method did not change"}, nil
		case pm == "":
			return plan{kind: kindIgnore, reason: "the customer's default payment method was removed"}, nil
		}
		return plan{kind: kindCardUpdated, customer: c.ID, update: workflows.PaymentMethodUpdate{PaymentMethod: pm}}, nil
	}
	return plan{kind: kindIgnore, reason: fmt.Sprintf("event type %s needs nothing of dunning", ev.Type)}, nil
}

// decodeObject decodes data.object into v and checks it is a want, with an
// ID.
func decodeObject(ev stripe.Event, want string, v any, object, id *string) error {
	if err := json.Unmarshal(ev.Data.Raw, v); err != nil {
		return fmt.Errorf("%w: %s: data.object is not a %s: %s", ErrMalformed, ev.Type, want, jsonErrorText(err))
	}
	if *object != want || *id == "" {
		return fmt.Errorf("%w: %s: data.object is %.40q, not a %s with an ID", ErrMalformed, ev.Type, *object, want)
	}
	return nil
}

func decodeInvoice(ev stripe.Event) (*stripe.Invoice, error) {
	var inv stripe.Invoice
	if err := decodeObject(ev, "invoice", &inv, &inv.Object, &inv.ID); err != nil {
		return nil, err
	}
	return &inv, nil
}

// planDecline builds the run's input from a failed invoice: the invoice's
// amount remaining and customer, the card it was charged on, and the
// decline as the payment's error tells it.
func planDecline(tenant string, ev stripe.Event, inv *stripe.Invoice) (plan, error) {
	switch {
	case inv.Status == stripe.InvoiceStatusPaid || inv.Status == stripe.InvoiceStatusVoid || inv.Status == stripe.InvoiceStatusUncollectible:
		// Settled or given up by the time Stripe took this snapshot.
		return plan{kind: kindIgnore, reason: fmt.Sprintf("invoice %s is %s", inv.ID, inv.Status)}, nil
	case inv.AmountRemaining <= 0:
		return plan{kind: kindIgnore, reason: fmt.Sprintf("invoice %s has nothing left to pay", inv.ID)}, nil
	}
	// Stripe sends currencies in lower case; ISO 4217 and the platform
	// use upper case. Amounts are in the currency's minor units (JPY has
	// none, BHD three), as the Stripe gateway charges them.
	code := strings.ToUpper(string(inv.Currency))
	cur, err := money.LookupCurrency(code)
	if err != nil {
		return plan{}, fmt.Errorf("%w: %w", starter.ErrInvalid,
			validation.Invalid("/data/object/currency", "%.16q is not an ISO 4217 currency the platform knows", inv.Currency))
	}
	p := plan{kind: kindStart, invoice: inv.ID}
	in := workflows.Input{
		Tenant:    tenant,
		InvoiceID: inv.ID,
		Amount:    money.FromMinorUnits(inv.AmountRemaining, cur).Decimal(),
		Currency:  cur.Code,
	}
	if inv.Customer != nil {
		in.Customer.ID = inv.Customer.ID
	}
	if inv.CustomerAddress != nil && countryPattern.MatchString(inv.CustomerAddress.Country) {
		in.Customer.Country = inv.CustomerAddress.Country
	}
	if inv.CustomerEmail != "" {
		if email, err := validation.Email(inv.CustomerEmail); err == nil {
			in.Customer.Email = email
		} else {
			p.dropped = append(p.dropped, "customer_email")
		}
	}
	if inv.CustomerPhone != "" {
		// Stripe keeps the phone as typed; a national number is read in
		// the billing address's country.
		if phone, err := validation.ParsePhone(inv.CustomerPhone, in.Customer.Country); err == nil {
			in.Customer.Phone = phone.E164
		} else {
			p.dropped = append(p.dropped, "customer_phone")
		}
	}

	payment := latestPayment(inv, ev.Data.Raw)
	in.PaymentMethod, in.Card = paymentMethodOf(inv, payment)
	in.Decline = declineOf(ev, inv, payment)
	p.input = in
	return p, nil
}

// details are the decline fields of a Stripe error object that
// stripe-go's Error does not decode (gateway/stripe reads them the same
// way).
type details struct {
	AdviceCode         string `json:"advice_code"`
	NetworkAdviceCode  string `json:"network_advice_code"`
	NetworkDeclineCode string `json:"network_decline_code"`
}

// payment is the invoice's latest payment attempt as far as the event
// shows it: the PaymentIntent (when the invoice's payments are expanded,
// which Stripe does not do in webhooks by default) and the decline fields
// of its last error.
type payment struct {
	intent  *stripe.PaymentIntent
	details details
}

// latestPayment finds the invoice's default payment, else its newest, and
// reads its error's extra fields from the raw object at the same index.
func latestPayment(inv *stripe.Invoice, raw json.RawMessage) payment {
	if inv.Payments == nil || len(inv.Payments.Data) == 0 {
		return payment{}
	}
	best := -1
	for i, ip := range inv.Payments.Data {
		if ip == nil || ip.Payment == nil || ip.Payment.PaymentIntent == nil {
			continue
		}
		if ip.IsDefault {
			best = i
			break
		}
		if best < 0 || ip.Created > inv.Payments.Data[best].Created {
			best = i
		}
	}
	if best < 0 {
		return payment{}
	}
	p := payment{intent: inv.Payments.Data[best].Payment.PaymentIntent}
	var x struct {
		Payments struct {
			Data []struct {
				Payment struct {
					PaymentIntent json.RawMessage `json:"payment_intent"`
				} `json:"payment"`
			} `json:"data"`
		} `json:"payments"`
	}
	if json.Unmarshal(raw, &x) == nil && best < len(x.Payments.Data) {
		var pi struct {
			LastPaymentError *details `json:"last_payment_error"`
			LatestCharge     struct {
				Outcome *details `json:"outcome"`
			} `json:"latest_charge"`
		}
		// An unexpanded payment_intent is its ID, a string: nothing to read.
		if raw := x.Payments.Data[best].Payment.PaymentIntent; len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &pi) == nil {
			if pi.LastPaymentError != nil {
				p.details = *pi.LastPaymentError
			}
			if o := pi.LatestCharge.Outcome; o != nil {
				p.details.fill(*o)
			}
		}
	}
	return p
}

func (d *details) fill(o details) {
	if d.AdviceCode == "" {
		d.AdviceCode = o.AdviceCode
	}
	if d.NetworkAdviceCode == "" {
		d.NetworkAdviceCode = o.NetworkAdviceCode
	}
	if d.NetworkDeclineCode == "" {
		d.NetworkDeclineCode = o.NetworkDeclineCode
	}
}

// declineOf reads the decline from the payment's last error, else the
// invoice's last finalization error, else records a decline without
// details: Stripe's invoice events do not carry the payment's error unless
// the payments are expanded, and the Stripe gateway's own attempts then
// read the real codes.
func declineOf(ev stripe.Event, inv *stripe.Invoice, p payment) workflows.Decline {
	d := workflows.Decline{ID: ev.ID, Gateway: gateway.NameStripe, Source: "stripe-webhook"}
	if ev.Created > 0 {
		d.OccurredAt = time.Unix(ev.Created, 0).UTC()
	}
	var (
		se *stripe.Error
		x  details
	)
	switch {
	case p.intent != nil && p.intent.LastPaymentError != nil:
		se, x = p.intent.LastPaymentError, p.details
	case inv.LastFinalizationError != nil:
		se = inv.LastFinalizationError
		x = finalizationDetails(ev.Data.Raw)
	}
	if se != nil {
		d.Code = code(string(se.DeclineCode), validation.MaxCodeLen)
		if d.Code == "" {
			d.Code = code(string(se.Code), validation.MaxCodeLen)
		}
		d.Message = text(se.Msg, validation.MaxMessageLen)
	}
	if p.intent != nil && p.intent.Status == stripe.PaymentIntentStatusRequiresAction {
		// The customer has to authenticate on session (3-D Secure); an
		// off-session retry cannot succeed.
		d.Code = "authentication_required"
	}
	if p.intent != nil && p.intent.LatestCharge != nil && p.intent.LatestCharge.Outcome != nil {
		o := p.intent.LatestCharge.Outcome
		x.fill(details{AdviceCode: string(o.AdviceCode), NetworkAdviceCode: o.NetworkAdviceCode, NetworkDeclineCode: o.NetworkDeclineCode})
	}
	d.AdviceCode = code(x.AdviceCode, validation.MaxCodeLen)
	d.NetworkDeclineCode = code(x.NetworkDeclineCode, validation.MaxNetworkCode)
	d.NetworkAdviceCode = code(x.NetworkAdviceCode, validation.MaxNetworkCode)
	if d.Code == "" {
		d.Code = fallbackDeclineCode
		if d.Message == "" {
			d.Message = fmt.Sprintf("Stripe reported %s without decline details (attempt %d)", ev.Type, inv.AttemptCount)
		}
	}
	return d
}

// finalizationDetails reads the extra decline fields of the invoice's
// last_finalization_error.
func finalizationDetails(raw json.RawMessage) details {
	var x struct {
		LastFinalizationError *details `json:"last_finalization_error"`
	}
	if json.Unmarshal(raw, &x) != nil || x.LastFinalizationError == nil {
		return details{}
	}
	return *x.LastFinalizationError
}

// paymentMethodOf picks the payment method the run retries, in the order
// Stripe charges an invoice with: its default_payment_method, its
// default_source, else the one the failed payment used. None leaves the
// choice to Stripe (the subscription's, then the customer's default). The
// card behind it is read where the event expands it.
func paymentMethodOf(inv *stripe.Invoice, p payment) (string, workflows.Card) {
	var piMethod, errMethod *stripe.PaymentMethod
	if p.intent != nil {
		piMethod = p.intent.PaymentMethod
		if p.intent.LastPaymentError != nil {
			errMethod = p.intent.LastPaymentError.PaymentMethod
		}
	}
	var id string
	switch {
	case inv.DefaultPaymentMethod != nil && inv.DefaultPaymentMethod.ID != "":
		id = inv.DefaultPaymentMethod.ID
	case inv.DefaultSource != nil && inv.DefaultSource.ID != "":
		id = inv.DefaultSource.ID
	case piMethod != nil && piMethod.ID != "":
		id = piMethod.ID
	case errMethod != nil && errMethod.ID != "":
		id = errMethod.ID
	default:
		return "", workflows.Card{}
	}
	var card workflows.Card
	for _, pm := range []*stripe.PaymentMethod{inv.DefaultPaymentMethod, piMethod, errMethod} {
		if pm != nil && pm.ID == id {
			if c := paymentMethodCard(pm); c != nil {
				card = *c
				break
			}
		}
	}
	// The failed charge went through the PaymentIntent's payment method
	// and names the network it actually used.
	if piMethod == nil || piMethod.ID != id || p.intent.LatestCharge == nil || p.intent.LatestCharge.PaymentMethodDetails == nil {
		return id, card
	}
	if c := p.intent.LatestCharge.PaymentMethodDetails.Card; c != nil {
		if card.Fingerprint == "" {
			card.Fingerprint = fingerprint(c.Fingerprint)
		}
		if n := network(string(c.Network)); n != "" {
			card.Network = n
		} else if card.Network == "" {
			card.Network = network(string(c.Brand))
		}
	}
	return id, card
}

// paymentMethodCard is what the card-network rules need of a payment
// method: nil when it is not a card or not expanded.
func paymentMethodCard(pm *stripe.PaymentMethod) *workflows.Card {
	if pm == nil || pm.Card == nil {
		return nil
	}
	c := workflows.Card{Fingerprint: fingerprint(pm.Card.Fingerprint), Network: network(string(pm.Card.Brand))}
	if pm.Card.Networks != nil {
		// A co-branded card's chosen network is the one charged.
		if n := network(string(pm.Card.Networks.Preferred)); n != "" && n != "invalid_preference" {
			c.Network = n
		}
	}
	if c == (workflows.Card{}) {
		return nil
	}
	return &c
}

// network maps Stripe's brand or network name to the platform's ("visa",
// "mastercard", ...); "unknown" and anything unlike a name are "".
func network(s string) string {
	if s == "unknown" || !networkPattern.MatchString(s) {
		return ""
	}
	return s
}

func fingerprint(s string) string {
	if len(s) > validation.MaxIDLen || !codePattern.MatchString(s) {
		return ""
	}
	return s
}

// newDefaultPaymentMethod reads a customer.updated event: whether the
// customer's default payment method changed (invoice_settings, else the
// legacy default_source), and to what.
func newDefaultPaymentMethod(ev stripe.Event, c *stripe.Customer) (string, bool) {
	prev := ev.Data.PreviousAttributes
	if settings, ok := prev["invoice_settings"].(map[string]any); ok {
		if _, ok := settings["default_payment_method"]; ok {
			if c.InvoiceSettings == nil || c.InvoiceSettings.DefaultPaymentMethod == nil {
				return "", true
			}
			return c.InvoiceSettings.DefaultPaymentMethod.ID, true
		}
	}
	if _, ok := prev["default_source"]; ok {
		if c.DefaultSource == nil {
			return "", true
		}
		return c.DefaultSource.ID, true
	}
	return "", false
}

// code keeps a code that passes the intake's rules and drops one that
// does not, so an odd value in one optional field cannot refuse a decline.
func code(s string, maxLen int) string {
	if len(s) > maxLen || !codePattern.MatchString(s) {
		return ""
	}
	return s
}

// text cuts s to at most n bytes of valid UTF-8 without control
// characters.
func text(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func orUnknown(s string) string {
	if s == "" {
		return "in an unknown state"
	}
	return s
}

// jsonErrorText describes a decoding error without quoting the body,
// which holds customers' details.
func jsonErrorText(err error) string {
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if e.Field != "" {
			return fmt.Sprintf("field %s: expected %s, got %s", e.Field, e.Type, e.Value)
		}
		return fmt.Sprintf("expected %s, got %s", e.Type, e.Value)
	}
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("syntax error at byte %d", e.Offset)
	}
	return "invalid JSON"
}
