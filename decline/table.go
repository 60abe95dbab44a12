package decline

import (
	"slices"
	"strings"
	"time"
)

// Entry is one row of the mapping: how one code of one kind is read on its
// own. Classify combines the entries an input matches.
type Entry struct {
	Kind          string        `json:"kind"`
	Code          string        `json:"code"`
	Reason        string        `json:"reason"`
	Category      Category      `json:"category"`
	Advice        Advice        `json:"advice"`
	RetryAfter    time.Duration `json:"retry_after,omitempty"`
	NoRetryWindow time.Duration `json:"no_retry_window,omitempty"`
	VisaCategory  int           `json:"visa_category,omitempty"`
	// Note is the code's meaning at its source and, where the reading is a
	// judgement, why.
	Note string `json:"note"`
}

// Table returns the whole mapping, grouped by kind (Stripe decline codes,
// Stripe advice codes, gateway flags, ISO 8583 response codes, Visa
// categories 1-3, Mastercard Merchant Advice Codes) and sorted by code within
// a kind (all-digit codes first). Visa category 4 is every other decline response code and has no
// rows of its own. The slice is a copy.
func Table() []Entry {
	out := make([]Entry, 0, len(stripeDeclineEntries)+len(stripeAdviceEntries)+1+
		len(isoEntries)+len(visaEntries)+len(macEntries))
	for _, group := range [][]Entry{
		stripeDeclineEntries,
		stripeAdviceEntries,
		{requiresActionEntry},
		isoEntries,
		visaEntries,
		macEntries,
	} {
		out = append(out, group...)
	}
	return out
}

const (
	day = 24 * time.Hour
	// networkNoRetryWindow is the card networks' ban on retrying a card
	// after a never-approve answer: Mastercard MAC 03/21 (no retry within 30
	// days) and Visa category 1 (never; reattempts within 30 days draw
	// excessive-reattempt fees).
	networkNoRetryWindow = 30 * day
)

func entry(kind, code, reason string, a Advice, note string) Entry {
	return Entry{Kind: kind, Code: code, Reason: reason, Category: categoryOf(a), Advice: a, Note: note}
}

func sd(code string, a Advice, note string) Entry {
	return entry(KindStripeDecline, code, code, a, note)
}

// stripeDeclineEntries reads Stripe's decline_code.
//
// Source: Stripe, "Decline codes" (docs.stripe.com/declines/codes), the
// whole documented list (the same list as stripe-go's DeclineCode values).
// Hard codes are the ones DESIGN.md section 3 names plus those whose cause a
// retry cannot change; codes Stripe describes only as "declined for an
// unknown reason" are soft; codes that need corrected or new card details, or
// authentication, are customer_action.
//
//	code                              category         advice
//	approve_with_id                   soft             retry
//	authentication_required           customer_action  authenticate
//	call_issuer                       soft             retry
//	card_not_supported                hard             stop
//	card_velocity_exceeded            soft             retry
//	currency_not_supported            hard             stop
//	do_not_honor                      soft             retry
//	do_not_try_again                  hard             stop
//	duplicate_transaction             soft             retry_later
//	expired_card                      customer_action  update_payment_method
//	fraudulent                        hard             stop
//	generic_decline                   soft             retry
//	incorrect_cvc                     customer_action  update_payment_method
//	incorrect_number                  hard             stop
//	incorrect_pin                     customer_action  update_payment_method
//	incorrect_zip                     customer_action  update_payment_method
//	insufficient_funds                soft             retry
//	invalid_account                   hard             stop
//	invalid_amount                    customer_action  update_payment_method
//	invalid_cvc                       customer_action  update_payment_method
//	invalid_expiry_month              customer_action  update_payment_method
//	invalid_expiry_year               customer_action  update_payment_method
//	invalid_number                    hard             stop
//	invalid_pin                       customer_action  update_payment_method
//	issuer_not_available              soft             retry
//	lost_card                         hard             stop
//	merchant_blacklist                hard             stop
//	new_account_information_available customer_action  update_payment_method
//	no_action_taken                   soft             retry
//	not_permitted                     soft             retry
//	offline_pin_required              customer_action  update_payment_method
//	online_or_offline_pin_required    customer_action  update_payment_method
//	pickup_card                       hard             stop
//	pin_try_exceeded                  customer_action  update_payment_method
//	processing_error                  soft             retry
//	reenter_transaction               soft             retry
//	restricted_card                   hard             stop
//	revocation_of_all_authorizations  hard             stop
//	revocation_of_authorization       hard             stop
//	security_violation                hard             stop
//	service_not_allowed               soft             retry
//	stolen_card                       hard             stop
//	stop_payment_order                hard             stop
//	testmode_decline                  hard             stop
//	transaction_not_allowed           soft             retry
//	try_again_later                   soft             retry
//	withdrawal_count_limit_exceeded   soft             retry
var stripeDeclineEntries = []Entry{
	sd("approve_with_id", Retry, "the payment could not be authorized; Stripe: attempt again"),
	sd("authentication_required", Authenticate, "authentication (3-D Secure) required; bring the customer on-session"),
	sd("call_issuer", Retry, "declined for an unknown reason; the customer may need to call the issuer"),
	sd("card_not_supported", Stop, "the card does not support this kind of purchase; a retry cannot change that (judgement)"),
	sd("card_velocity_exceeded", Retry, "balance, credit or amount limit exceeded; DESIGN.md: soft"),
	sd("currency_not_supported", Stop, "the card does not support the invoice currency; a retry cannot change that (judgement)"),
	sd("do_not_honor", Retry, "generic issuer refusal (ISO 05); DESIGN.md: soft"),
	sd("do_not_try_again", Stop, "the issuer asks not to retry"),
	sd("duplicate_transaction", RetryLater, "an identical charge was submitted very recently; retry later, not at once (judgement)"),
	sd("expired_card", UpdatePaymentMethod, "expired; needs a new expiry date (an account updater may supply it)"),
	sd("fraudulent", Stop, "suspected fraud; Stripe: show the customer a generic decline, not this reason"),
	sd("generic_decline", Retry, "declined for an unknown reason; DESIGN.md: soft"),
	sd("incorrect_cvc", UpdatePaymentMethod, "the CVC is wrong; the customer must correct it"),
	sd("incorrect_number", Stop, "the card number is wrong; DESIGN.md: hard"),
	sd("incorrect_pin", UpdatePaymentMethod, "the PIN is wrong (card-present); the customer must act"),
	sd("incorrect_zip", UpdatePaymentMethod, "the postal code is wrong; the customer must correct it"),
	sd("insufficient_funds", Retry, "not enough funds (ISO 51); DESIGN.md: soft, best near paydays"),
	sd("invalid_account", Stop, "the card or its account is invalid; DESIGN.md: hard"),
	sd("invalid_amount", UpdatePaymentMethod, "the amount is invalid or above the card's limit; the customer checks with the issuer or uses another card (judgement)"),
	sd("invalid_cvc", UpdatePaymentMethod, "the CVC is invalid; the customer must correct it"),
	sd("invalid_expiry_month", UpdatePaymentMethod, "the expiry month is invalid; the customer must correct it"),
	sd("invalid_expiry_year", UpdatePaymentMethod, "the expiry year is invalid; the customer must correct it"),
	sd("invalid_number", Stop, "the card number is invalid; DESIGN.md: hard"),
	sd("invalid_pin", UpdatePaymentMethod, "the PIN is invalid (card-present); the customer must act"),
	sd("issuer_not_available", Retry, "the issuer could not be reached (ISO 91); DESIGN.md: soft"),
	sd("lost_card", Stop, "reported lost; DESIGN.md: hard"),
	sd("merchant_blacklist", Stop, "matches the merchant's block list; retrying cannot succeed"),
	sd("new_account_information_available", UpdatePaymentMethod, "the card was replaced or updated; fetch or ask for the new details"),
	sd("no_action_taken", Retry, "declined for an unknown reason"),
	sd("not_permitted", Retry, "not permitted, no further reason given; soft (judgement): a network code such as Visa 57 escalates it"),
	sd("offline_pin_required", UpdatePaymentMethod, "a card-present PIN is required; an off-session charge cannot supply one"),
	sd("online_or_offline_pin_required", UpdatePaymentMethod, "a card-present PIN is required; an off-session charge cannot supply one"),
	sd("pickup_card", Stop, "the issuer asks to retain the card (ISO 04/07); DESIGN.md: hard"),
	sd("pin_try_exceeded", UpdatePaymentMethod, "PIN tries exceeded; Stripe: use another card or method"),
	sd("processing_error", Retry, "an error occurred processing the card; DESIGN.md: soft"),
	sd("reenter_transaction", Retry, "the issuer asks to submit again (ISO 19)"),
	sd("restricted_card", Stop, "restricted, possibly lost or stolen (ISO 62); DESIGN.md: hard"),
	sd("revocation_of_all_authorizations", Stop, "the cardholder revoked all recurring authorizations (Visa R3); DESIGN.md: hard"),
	sd("revocation_of_authorization", Stop, "the cardholder revoked this recurring authorization (Visa R1); DESIGN.md: hard"),
	sd("security_violation", Stop, "security violation (ISO 63); retrying cannot succeed"),
	sd("service_not_allowed", Retry, "declined for an unknown reason"),
	sd("stolen_card", Stop, "reported stolen; DESIGN.md: hard"),
	sd("stop_payment_order", Stop, "the cardholder stopped this payment (Visa R0); DESIGN.md: hard"),
	sd("testmode_decline", Stop, "a Stripe test card; it never succeeds in live mode"),
	sd("transaction_not_allowed", Retry, "declined for an unknown reason; soft (judgement): a network code such as Visa 57 escalates it"),
	sd("try_again_later", Retry, "declined for an unknown reason; Stripe: attempt again; DESIGN.md: soft"),
	sd("withdrawal_count_limit_exceeded", Retry, "withdrawal count limit reached; soft"),
}

// stripeAdviceEntries reads Stripe's advice_code, which overrides the
// decline code's advice.
//
// Source: Stripe API, charge outcome.advice_code (docs.stripe.com/api/charges/object).
//
//	code               category         advice
//	confirm_card_data  customer_action  update_payment_method
//	do_not_try_again   hard             stop
//	try_again_later    soft             retry_later
var stripeAdviceEntries = []Entry{
	entry(KindStripeAdvice, "confirm_card_data", "confirm_card_data", UpdatePaymentMethod, "the card data must be confirmed or updated before a retry can succeed"),
	entry(KindStripeAdvice, "do_not_try_again", "do_not_try_again", Stop, "retrying will not succeed"),
	entry(KindStripeAdvice, "try_again_later", "try_again_later", RetryLater, "the issuer may approve a later attempt"),
}

// requiresActionEntry reads the gateway's requires-action flag (Stripe
// PaymentIntent status requires_action: 3-D Secure is needed).
var requiresActionEntry = entry(KindGateway, "requires_action", "authentication_required", Authenticate,
	"the charge awaits customer authentication (3-D Secure)")

func iso(code, reason string, a Advice, note string) Entry {
	return entry(KindISO8583, code, reason, a, note)
}

// isoEntries reads the network's raw response code as an ISO 8583 field 39
// response code, whatever the network. "00" (approved) is not a decline and
// contributes nothing.
//
// Source: ISO 8583 field 39 response codes as published in network and
// processor references (Visa response codes in the Worldpay, Checkout.com and
// payabl references; Mastercard's 79/82/83 decline reasons, which come with a
// Merchant Advice Code). Readings agree with the Stripe decline code of the
// same name where Stripe has one.
//
//	code  reason                            category         advice
//	01    call_issuer                       soft             retry
//	02    call_issuer                       soft             retry
//	03    invalid_merchant                  soft             retry
//	04    pickup_card                       hard             stop
//	05    do_not_honor                      soft             retry
//	06    processing_error                  soft             retry
//	07    pickup_card                       hard             stop
//	12    invalid_transaction               hard             stop
//	13    invalid_amount                    customer_action  update_payment_method
//	14    invalid_number                    hard             stop
//	15    no_such_issuer                    hard             stop
//	19    reenter_transaction               soft             retry
//	21    no_action_taken                   soft             retry
//	28    processing_error                  soft             retry
//	41    lost_card                         hard             stop
//	43    stolen_card                       hard             stop
//	46    account_closed                    hard             stop
//	51    insufficient_funds                soft             retry
//	52    no_checking_account               soft             retry
//	53    no_savings_account                soft             retry
//	54    expired_card                      customer_action  update_payment_method
//	55    incorrect_pin                     customer_action  update_payment_method
//	57    transaction_not_allowed           hard             stop
//	58    transaction_not_allowed           hard             stop
//	59    suspected_fraud                   soft             retry
//	61    card_velocity_exceeded            soft             retry
//	62    restricted_card                   hard             stop
//	63    security_violation                hard             stop
//	65    withdrawal_count_limit_exceeded   soft             retry
//	70    pin_required                      customer_action  update_payment_method
//	75    pin_try_exceeded                  customer_action  update_payment_method
//	78    card_not_activated                soft             retry
//	79    lifecycle_decline                 soft             retry
//	82    policy_decline                    soft             retry
//	83    suspected_fraud                   soft             retry
//	86    issuer_not_available              soft             retry
//	91    issuer_not_available              soft             retry
//	92    issuer_not_available              soft             retry
//	93    transaction_cannot_be_completed   soft             retry
//	96    processing_error                  soft             retry
//	1A    authentication_required           customer_action  authenticate
//	5C    transaction_not_supported         soft             retry
//	9G    blocked_by_cardholder             soft             retry
//	N3    issuer_not_available              soft             retry
//	N4    card_velocity_exceeded            soft             retry
//	N7    incorrect_cvc                     customer_action  update_payment_method
//	R0    stop_payment_order                hard             stop
//	R1    revocation_of_authorization       hard             stop
//	R3    revocation_of_all_authorizations  hard             stop
//	Z5    issuer_cannot_approve             soft             retry
var isoEntries = []Entry{
	iso("01", "call_issuer", Retry, "refer to card issuer"),
	iso("02", "call_issuer", Retry, "refer to card issuer, special condition"),
	iso("03", "invalid_merchant", Retry, "invalid merchant or service provider: the merchant's setup, not the card (Visa category 2)"),
	iso("04", "pickup_card", Stop, "pick up card (no fraud)"),
	iso("05", "do_not_honor", Retry, "do not honor"),
	iso("06", "processing_error", Retry, "error"),
	iso("07", "pickup_card", Stop, "pick up card, special condition (fraud account)"),
	iso("12", "invalid_transaction", Stop, "invalid transaction; the issuer will never approve it (Visa category 1)"),
	iso("13", "invalid_amount", UpdatePaymentMethod, "invalid amount; read like Stripe invalid_amount (judgement)"),
	iso("14", "invalid_number", Stop, "invalid account number (no such number)"),
	iso("15", "no_such_issuer", Stop, "no such issuer"),
	iso("19", "reenter_transaction", Retry, "re-enter transaction"),
	iso("21", "no_action_taken", Retry, "no action taken"),
	iso("28", "processing_error", Retry, "file temporarily unavailable"),
	iso("41", "lost_card", Stop, "lost card, pick up"),
	iso("43", "stolen_card", Stop, "stolen card, pick up"),
	iso("46", "account_closed", Stop, "closed account (also a deactivated token)"),
	iso("51", "insufficient_funds", Retry, "not sufficient funds"),
	iso("52", "no_checking_account", Retry, "no checking account; Visa category 2 (issuer cannot approve at this time)"),
	iso("53", "no_savings_account", Retry, "no savings account; Visa category 2"),
	iso("54", "expired_card", UpdatePaymentMethod, "expired card or expiry date missing"),
	iso("55", "incorrect_pin", UpdatePaymentMethod, "incorrect PIN or PIN missing"),
	iso("57", "transaction_not_allowed", Stop, "transaction not permitted to cardholder; the issuer will never approve it (Visa category 1)"),
	iso("58", "transaction_not_allowed", Stop, "transaction not permitted to terminal/merchant; a retry of the same card cannot change that (judgement)"),
	iso("59", "suspected_fraud", Retry, "suspected fraud; Visa category 2: the issuer may approve once the cardholder confirms"),
	iso("61", "card_velocity_exceeded", Retry, "exceeds approval amount limit"),
	iso("62", "restricted_card", Stop, "restricted card; DESIGN.md: hard (Visa files it under category 2; the stricter reading is kept)"),
	iso("63", "security_violation", Stop, "security violation"),
	iso("65", "withdrawal_count_limit_exceeded", Retry, "exceeds withdrawal frequency limit (Mastercard issuers in the EEA also use 65 to ask for authentication)"),
	iso("70", "pin_required", UpdatePaymentMethod, "PIN data required; Visa category 3 (data quality)"),
	iso("75", "pin_try_exceeded", UpdatePaymentMethod, "allowable number of PIN tries exceeded; read like Stripe pin_try_exceeded"),
	iso("78", "card_not_activated", Retry, "blocked, first used: the card is not yet activated; Visa category 2"),
	iso("79", "lifecycle_decline", Retry, "Mastercard: life-cycle decline, the Merchant Advice Code says more; Visa: already reversed"),
	iso("82", "policy_decline", Retry, "Mastercard: policy decline, the Merchant Advice Code says more; Visa: negative CAM/dCVV/iCVV/CVV result (category 3)"),
	iso("83", "suspected_fraud", Retry, "Mastercard: fraud/security decline, the Merchant Advice Code says more"),
	iso("86", "issuer_not_available", Retry, "cannot verify PIN / ATM malfunction; Visa category 2"),
	iso("91", "issuer_not_available", Retry, "issuer or switch inoperative"),
	iso("92", "issuer_not_available", Retry, "destination cannot be found for routing"),
	iso("93", "transaction_cannot_be_completed", Retry, "transaction cannot be completed (violation of law); Visa category 2 in current references, category 1 in older ones"),
	iso("96", "processing_error", Retry, "system malfunction"),
	iso("1A", "authentication_required", Authenticate, "Visa: additional customer authentication required (SCA soft decline)"),
	iso("5C", "transaction_not_supported", Retry, "Visa: transaction not supported or blocked by the issuer for the card range; category 2 since April 2025"),
	iso("9G", "blocked_by_cardholder", Retry, "Visa: blocked by the cardholder's card controls; category 2 since April 2025"),
	iso("N3", "issuer_not_available", Retry, "Visa: cash service not available; category 2"),
	iso("N4", "card_velocity_exceeded", Retry, "Visa: cash request exceeds issuer or approved limit; category 2"),
	iso("N7", "incorrect_cvc", UpdatePaymentMethod, "Visa: decline for CVV2 failure"),
	iso("R0", "stop_payment_order", Stop, "Visa: stop payment order (cardholder stopped this recurring payment)"),
	iso("R1", "revocation_of_authorization", Stop, "Visa: revocation of authorization order (all future payments to the merchant)"),
	iso("R3", "revocation_of_all_authorizations", Stop, "Visa: revocation of all authorizations order (every merchant)"),
	iso("Z5", "issuer_cannot_approve", Retry, "Visa category 2 code; its description is not confirmed in the references consulted"),
}

// Visa decline categories (Visa Core Rules, reattempt rules and the
// System Integrity Fee program), applied only when Network is "visa":
//
//	1  issuer will never approve      no reattempt, ever (30-day window recorded)
//	2  issuer cannot approve now      reattempts allowed within Visa's limits
//	3  data quality                   revalidate the payment data before a reattempt
//	4  generic                        every other decline response code
//
// Sources: DESIGN.md section 3 (category 1), the acquirer references that
// publish Visa's lists (Checkout.com "Visa response codes", Worldpay raw
// response codes, Forte "Visa decline response code rules", TabaPay "Visa
// response code updates"). They disagree at the edges: older lists put 03,
// 62, 78 and 93 in category 1 and 14 in category 3; current ones put 03, 62,
// 78 and 93 in category 2 and 14 in category 1, and add 5C and 9G (April
// 2025) to category 2. The lists below follow the current reading; 62 keeps
// its hard ISO reading anyway because the stricter of the two wins. Not
// included: 6P (some lists, category 3), 39 (some lists, category 2), 83
// (category 2 from October 2026); they fall to category 4.
var (
	visaCategory1 = []string{"04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"}
	visaCategory2 = []string{"03", "19", "51", "52", "53", "59", "61", "62", "65", "75", "78", "86", "91", "93", "96", "N3", "N4", "Z5", "5C", "9G"}
	visaCategory3 = []string{"54", "55", "70", "82", "1A", "N7"}
)

// visaReasons overrides the ISO reason where Visa gives the code a narrower
// meaning.
var visaReasons = map[string]string{
	"82": "invalid_card_verification",
}

// visaEntries are Visa's categories 1-3 as mapping rows. Category 1 stops
// with the network no-retry window; category 2 permits retries (combined with
// the ISO reading, the stricter wins); category 3 asks for revalidated data
// (1A: authentication).
var visaEntries = buildVisaEntries()

func buildVisaEntries() []Entry {
	var out []Entry
	for cat, codes := range [][]string{visaCategory1, visaCategory2, visaCategory3} {
		for _, code := range codes {
			reason := isoReason(code)
			if r, ok := visaReasons[code]; ok {
				reason = r
			}
			var e Entry
			switch cat + 1 {
			case 1:
				e = entry(KindVisa, code, reason, Stop, "category 1: issuer will never approve; no reattempt")
				e.NoRetryWindow = networkNoRetryWindow
			case 2:
				e = entry(KindVisa, code, reason, Retry, "category 2: issuer cannot approve at this time; reattempts within Visa's limits")
			case 3:
				a := UpdatePaymentMethod
				if code == "1A" {
					a = Authenticate
				}
				e = entry(KindVisa, code, reason, a, "category 3: data quality; revalidate the payment data before a reattempt")
			}
			e.VisaCategory = cat + 1
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return compareCodes(a.Code, b.Code) })
	return out
}

// compareCodes orders codes within a kind: all-digit codes first, then the
// rest, each alphabetically ("96" before "1A" before "R0").
func compareCodes(a, b string) int {
	if da, db := allDigits(a), allDigits(b); da != db {
		if da {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isoReason(code string) string {
	for _, e := range isoEntries {
		if e.Code == code {
			return e.Reason
		}
	}
	return reasonUnknown
}

// visaGenericIndex holds Visa category 4 for every ISO code Visa does not
// list: the ISO reading, recorded as a Visa source.
var visaGenericIndex = buildVisaGeneric()

func buildVisaGeneric() map[string]*Entry {
	listed := index(visaEntries)
	out := make(map[string]*Entry)
	for _, e := range isoEntries {
		if _, ok := listed[e.Code]; ok {
			continue
		}
		g := e
		g.Kind = KindVisa
		g.VisaCategory = 4
		g.Note = "category 4: generic response code; reattempts within Visa's limits"
		out[e.Code] = &g
	}
	return out
}

func mac(code, reason string, a Advice, note string) Entry {
	return entry(KindMastercardMAC, code, reason, a, note)
}

func macAfter(code string, after time.Duration, note string) Entry {
	e := mac(code, "try_again_later", RetryLater, note)
	e.RetryAfter = after
	return e
}

func macNever(code, reason, note string) Entry {
	e := mac(code, reason, Stop, note)
	e.NoRetryWindow = networkNoRetryWindow
	return e
}

// macEntries reads Mastercard Merchant Advice Codes (NetworkAdviceCode, only
// when Network is "mastercard").
//
// Source: Mastercard Merchant Advice Codes (DE 48 subelement 84) as listed in
// DESIGN.md section 3 and the Braintree, Adyen and Antom references; the
// 30-day ban after 03/21 is Mastercard's excessive-retry rule. 04 ("token
// requirements not fulfilled for this token type") is read as
// update_payment_method: the stored credential cannot be used as it is, and a
// re-entered card yields a usable one; retrying the same token cannot help.
// 02 names no wait, so RetryAfter stays 0 and the schedule decides. Codes
// 22, 40, 41 and 43 (product information, mostly on approvals) are not
// mapped.
//
//	code  reason                             advice                 wait / window
//	01    new_account_information_available  update_payment_method
//	02    try_again_later                    retry_later
//	03    do_not_try_again                   stop                   30 days
//	04    token_requirements_not_fulfilled   update_payment_method
//	21    recurring_payment_cancelled        stop                   30 days
//	24    try_again_later                    retry_later            1 hour
//	25    try_again_later                    retry_later            24 hours
//	26    try_again_later                    retry_later            2 days
//	27    try_again_later                    retry_later            4 days
//	28    try_again_later                    retry_later            6 days
//	29    try_again_later                    retry_later            8 days
//	30    try_again_later                    retry_later            10 days
var macEntries = []Entry{
	mac("01", "new_account_information_available", UpdatePaymentMethod, "new account information available: update the card, then retry"),
	mac("02", "try_again_later", RetryLater, "cannot approve at this time, try again later"),
	macNever("03", "do_not_try_again", "do not try again"),
	mac("04", "token_requirements_not_fulfilled", UpdatePaymentMethod, "token requirements not fulfilled for this token type (judgement: update, not stop)"),
	macNever("21", "recurring_payment_cancelled", "payment cancellation: the cardholder stopped recurring payments"),
	macAfter("24", time.Hour, "retry after 1 hour"),
	macAfter("25", 24*time.Hour, "retry after 24 hours"),
	macAfter("26", 2*day, "retry after 2 days"),
	macAfter("27", 4*day, "retry after 4 days"),
	macAfter("28", 6*day, "retry after 6 days"),
	macAfter("29", 8*day, "retry after 8 days"),
	macAfter("30", 10*day, "retry after 10 days"),
}

func index(es []Entry) map[string]*Entry {
	m := make(map[string]*Entry, len(es))
	for i := range es {
		m[es[i].Code] = &es[i]
	}
	return m
}

var (
	stripeDeclineIndex = index(stripeDeclineEntries)
	stripeAdviceIndex  = index(stripeAdviceEntries)
	isoIndex           = index(isoEntries)
	visaIndex          = index(visaEntries)
	macIndex           = index(macEntries)
)
