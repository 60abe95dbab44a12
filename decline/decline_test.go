package decline

import (
	"reflect"
	"testing"
	"time"
)

type want struct {
	category Category
	advice   Advice
	reason   string
}

func check(t *testing.T, got Decline, w want) {
	t.Helper()
	if got.Category != w.category || got.Advice != w.advice || got.Reason != w.reason {
		t.Errorf("got %s/%s reason=%s, want %s/%s reason=%s",
			got.Category, got.Advice, got.Reason, w.category, w.advice, w.reason)
	}
}

var (
	hardStop     = func(r string) want { return want{Hard, Stop, r} }
	softRetry    = func(r string) want { return want{Soft, Retry, r} }
	softLater    = func(r string) want { return want{Soft, RetryLater, r} }
	updatePM     = func(r string) want { return want{CustomerAction, UpdatePaymentMethod, r} }
	authenticate = func(r string) want { return want{CustomerAction, Authenticate, r} }
)

func TestStripeDeclineCodes(t *testing.T) {
	tests := []struct {
		code string
		want want
	}{
		{"authentication_required", authenticate("authentication_required")},
		{"approve_with_id", softRetry("approve_with_id")},
		{"call_issuer", softRetry("call_issuer")},
		{"card_not_supported", hardStop("card_not_supported")},
		{"card_velocity_exceeded", softRetry("card_velocity_exceeded")},
		{"currency_not_supported", hardStop("currency_not_supported")},
		{"do_not_honor", softRetry("do_not_honor")},
		{"do_not_try_again", hardStop("do_not_try_again")},
		{"duplicate_transaction", softLater("duplicate_transaction")},
		{"expired_card", updatePM("expired_card")},
		{"fraudulent", hardStop("fraudulent")},
		{"generic_decline", softRetry("generic_decline")},
		{"incorrect_number", hardStop("incorrect_number")},
		{"incorrect_cvc", updatePM("incorrect_cvc")},
		{"incorrect_pin", updatePM("incorrect_pin")},
		{"incorrect_zip", updatePM("incorrect_zip")},
		{"insufficient_funds", softRetry("insufficient_funds")},
		{"invalid_account", hardStop("invalid_account")},
		{"invalid_amount", updatePM("invalid_amount")},
		{"invalid_cvc", updatePM("invalid_cvc")},
		{"invalid_expiry_month", updatePM("invalid_expiry_month")},
		{"invalid_expiry_year", updatePM("invalid_expiry_year")},
		{"invalid_number", hardStop("invalid_number")},
		{"invalid_pin", updatePM("invalid_pin")},
		{"issuer_not_available", softRetry("issuer_not_available")},
		{"lost_card", hardStop("lost_card")},
		{"merchant_blacklist", hardStop("merchant_blacklist")},
		{"new_account_information_available", updatePM("new_account_information_available")},
		{"no_action_taken", softRetry("no_action_taken")},
		{"not_permitted", softRetry("not_permitted")},
		{"offline_pin_required", updatePM("offline_pin_required")},
		{"online_or_offline_pin_required", updatePM("online_or_offline_pin_required")},
		{"pickup_card", hardStop("pickup_card")},
		{"pin_try_exceeded", updatePM("pin_try_exceeded")},
		{"processing_error", softRetry("processing_error")},
		{"reenter_transaction", softRetry("reenter_transaction")},
		{"restricted_card", hardStop("restricted_card")},
		{"revocation_of_all_authorizations", hardStop("revocation_of_all_authorizations")},
		{"revocation_of_authorization", hardStop("revocation_of_authorization")},
		{"security_violation", hardStop("security_violation")},
		{"service_not_allowed", softRetry("service_not_allowed")},
		{"stolen_card", hardStop("stolen_card")},
		{"stop_payment_order", hardStop("stop_payment_order")},
		{"testmode_decline", hardStop("testmode_decline")},
		{"transaction_not_allowed", softRetry("transaction_not_allowed")},
		{"try_again_later", softRetry("try_again_later")},
		{"withdrawal_count_limit_exceeded", softRetry("withdrawal_count_limit_exceeded")},
	}
	if len(tests) != len(stripeDeclineEntries) {
		t.Errorf("test lists %d Stripe decline codes, mapping has %d", len(tests), len(stripeDeclineEntries))
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			got := Classify(Input{Gateway: "stripe", DeclineCode: tt.code})
			check(t, got, tt.want)
			wantSources := []Source{{KindStripeDecline, tt.code}}
			if !got.Known || !reflect.DeepEqual(got.Sources, wantSources) {
				t.Errorf("Known=%v Sources=%v, want true %v", got.Known, got.Sources, wantSources)
			}
			if got.NoRetryWindow != 0 || got.VisaCategory != 0 || got.RetryAfter != 0 {
				t.Errorf("network fields set from a Stripe code alone: %s", got)
			}
		})
	}
}

func TestStripeAdviceCodes(t *testing.T) {
	tests := []struct {
		code string
		want want
	}{
		{"do_not_try_again", hardStop("do_not_try_again")},
		{"try_again_later", softLater("try_again_later")},
		{"confirm_card_data", updatePM("confirm_card_data")},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			got := Classify(Input{AdviceCode: tt.code})
			check(t, got, tt.want)
			if want := []Source{{KindStripeAdvice, tt.code}}; !reflect.DeepEqual(got.Sources, want) {
				t.Errorf("Sources = %v, want %v", got.Sources, want)
			}
		})
	}
}

func TestISOCodes(t *testing.T) {
	tests := []struct {
		code string
		want want
	}{
		{"01", softRetry("call_issuer")},
		{"02", softRetry("call_issuer")},
		{"03", softRetry("invalid_merchant")},
		{"04", hardStop("pickup_card")},
		{"05", softRetry("do_not_honor")},
		{"06", softRetry("processing_error")},
		{"07", hardStop("pickup_card")},
		{"12", hardStop("invalid_transaction")},
		{"13", updatePM("invalid_amount")},
		{"14", hardStop("invalid_number")},
		{"15", hardStop("no_such_issuer")},
		{"19", softRetry("reenter_transaction")},
		{"21", softRetry("no_action_taken")},
		{"28", softRetry("processing_error")},
		{"41", hardStop("lost_card")},
		{"43", hardStop("stolen_card")},
		{"46", hardStop("account_closed")},
		{"51", softRetry("insufficient_funds")},
		{"52", softRetry("no_checking_account")},
		{"53", softRetry("no_savings_account")},
		{"54", updatePM("expired_card")},
		{"55", updatePM("incorrect_pin")},
		{"57", hardStop("transaction_not_allowed")},
		{"58", hardStop("transaction_not_allowed")},
		{"59", softRetry("suspected_fraud")},
		{"61", softRetry("card_velocity_exceeded")},
		{"62", hardStop("restricted_card")},
		{"63", hardStop("security_violation")},
		{"65", softRetry("withdrawal_count_limit_exceeded")},
		{"70", updatePM("pin_required")},
		{"75", updatePM("pin_try_exceeded")},
		{"78", softRetry("card_not_activated")},
		{"79", softRetry("lifecycle_decline")},
		{"82", softRetry("policy_decline")},
		{"83", softRetry("suspected_fraud")},
		{"86", softRetry("issuer_not_available")},
		{"91", softRetry("issuer_not_available")},
		{"92", softRetry("issuer_not_available")},
		{"93", softRetry("transaction_cannot_be_completed")},
		{"96", softRetry("processing_error")},
		{"1A", authenticate("authentication_required")},
		{"5C", softRetry("transaction_not_supported")},
		{"9G", softRetry("blocked_by_cardholder")},
		{"N3", softRetry("issuer_not_available")},
		{"N4", softRetry("card_velocity_exceeded")},
		{"N7", updatePM("incorrect_cvc")},
		{"R0", hardStop("stop_payment_order")},
		{"R1", hardStop("revocation_of_authorization")},
		{"R3", hardStop("revocation_of_all_authorizations")},
		{"Z5", softRetry("issuer_cannot_approve")},
	}
	if len(tests) != len(isoEntries) {
		t.Errorf("test lists %d ISO codes, mapping has %d", len(tests), len(isoEntries))
	}
	for _, network := range []string{"", NetworkAmex, NetworkMastercard} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.code, func(t *testing.T) {
				got := Classify(Input{NetworkDeclineCode: tt.code, Network: network})
				check(t, got, tt.want)
				if want := []Source{{KindISO8583, tt.code}}; !reflect.DeepEqual(got.Sources, want) {
					t.Errorf("Sources = %v, want %v", got.Sources, want)
				}
				if got.VisaCategory != 0 || got.NoRetryWindow != 0 {
					t.Errorf("Visa fields set off the Visa network: %s", got)
				}
			})
		}
	}

	t.Run("00 is not a decline", func(t *testing.T) {
		for _, network := range []string{"", NetworkVisa, NetworkMastercard} {
			got := Classify(Input{NetworkDeclineCode: "00", Network: network})
			if got.Known || got.Sources != nil || got.Unrecognized != nil || got.VisaCategory != 0 {
				t.Errorf("%s: 00 contributed: %s", network, got)
			}
			got = Classify(Input{DeclineCode: "fraudulent", NetworkDeclineCode: "00", Network: network})
			check(t, got, hardStop("fraudulent"))
			if want := []Source{{KindStripeDecline, "fraudulent"}}; !reflect.DeepEqual(got.Sources, want) {
				t.Errorf("%s: Sources = %v, want %v", network, got.Sources, want)
			}
		}
	})
}

func TestVisaCategories(t *testing.T) {
	tests := []struct {
		code     string
		category int
		want     want
	}{
		// Category 1: never approve.
		{"04", 1, hardStop("pickup_card")},
		{"07", 1, hardStop("pickup_card")},
		{"12", 1, hardStop("invalid_transaction")},
		{"14", 1, hardStop("invalid_number")},
		{"15", 1, hardStop("no_such_issuer")},
		{"41", 1, hardStop("lost_card")},
		{"43", 1, hardStop("stolen_card")},
		{"46", 1, hardStop("account_closed")},
		{"57", 1, hardStop("transaction_not_allowed")},
		{"R0", 1, hardStop("stop_payment_order")},
		{"R1", 1, hardStop("revocation_of_authorization")},
		{"R3", 1, hardStop("revocation_of_all_authorizations")},
		// Category 2: cannot approve now; the ISO reading decides, the
		// stricter of the two wins (62, 75).
		{"03", 2, softRetry("invalid_merchant")},
		{"19", 2, softRetry("reenter_transaction")},
		{"51", 2, softRetry("insufficient_funds")},
		{"52", 2, softRetry("no_checking_account")},
		{"53", 2, softRetry("no_savings_account")},
		{"59", 2, softRetry("suspected_fraud")},
		{"61", 2, softRetry("card_velocity_exceeded")},
		{"62", 2, hardStop("restricted_card")},
		{"65", 2, softRetry("withdrawal_count_limit_exceeded")},
		{"75", 2, updatePM("pin_try_exceeded")},
		{"78", 2, softRetry("card_not_activated")},
		{"86", 2, softRetry("issuer_not_available")},
		{"91", 2, softRetry("issuer_not_available")},
		{"93", 2, softRetry("transaction_cannot_be_completed")},
		{"96", 2, softRetry("processing_error")},
		{"N3", 2, softRetry("issuer_not_available")},
		{"N4", 2, softRetry("card_velocity_exceeded")},
		{"Z5", 2, softRetry("issuer_cannot_approve")},
		{"5C", 2, softRetry("transaction_not_supported")},
		{"9G", 2, softRetry("blocked_by_cardholder")},
		// Category 3: data quality.
		{"54", 3, updatePM("expired_card")},
		{"55", 3, updatePM("incorrect_pin")},
		{"70", 3, updatePM("pin_required")},
		{"82", 3, updatePM("invalid_card_verification")},
		{"1A", 3, authenticate("authentication_required")},
		{"N7", 3, updatePM("incorrect_cvc")},
		// Category 4: everything else.
		{"01", 4, softRetry("call_issuer")},
		{"05", 4, softRetry("do_not_honor")},
		{"13", 4, updatePM("invalid_amount")},
		{"58", 4, hardStop("transaction_not_allowed")},
		{"63", 4, hardStop("security_violation")},
		{"79", 4, softRetry("lifecycle_decline")},
		{"83", 4, softRetry("suspected_fraud")},
	}
	if n := len(visaCategory1) + len(visaCategory2) + len(visaCategory3); len(tests) < n {
		t.Errorf("test lists fewer codes than the Visa categories 1-3 (%d)", n)
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			got := Classify(Input{NetworkDeclineCode: tt.code, Network: NetworkVisa})
			check(t, got, tt.want)
			if got.VisaCategory != tt.category {
				t.Errorf("VisaCategory = %d, want %d", got.VisaCategory, tt.category)
			}
			wantWindow := time.Duration(0)
			if tt.category == 1 {
				wantWindow = 30 * 24 * time.Hour
			}
			if got.NoRetryWindow != wantWindow {
				t.Errorf("NoRetryWindow = %v, want %v", got.NoRetryWindow, wantWindow)
			}
			wantSources := []Source{{KindISO8583, tt.code}, {KindVisa, tt.code}}
			if !reflect.DeepEqual(got.Sources, wantSources) {
				t.Errorf("Sources = %v, want %v", got.Sources, wantSources)
			}
		})
	}

	t.Run("unknown code is category 4 but not recognised", func(t *testing.T) {
		got := Classify(Input{NetworkDeclineCode: "Q9", Network: NetworkVisa})
		if got.VisaCategory != 4 || got.Known || got.Sources != nil {
			t.Errorf("got %s", got)
		}
		if want := []Source{{KindISO8583, "Q9"}}; !reflect.DeepEqual(got.Unrecognized, want) {
			t.Errorf("Unrecognized = %v, want %v", got.Unrecognized, want)
		}
	})
	t.Run("no code, no category", func(t *testing.T) {
		if got := Classify(Input{DeclineCode: "insufficient_funds", Network: NetworkVisa}); got.VisaCategory != 0 {
			t.Errorf("VisaCategory = %d, want 0", got.VisaCategory)
		}
	})
}

func TestMastercardMACs(t *testing.T) {
	const d = 24 * time.Hour
	tests := []struct {
		code   string
		want   want
		after  time.Duration
		window time.Duration
	}{
		{"01", updatePM("new_account_information_available"), 0, 0},
		{"02", softLater("try_again_later"), 0, 0},
		{"03", hardStop("do_not_try_again"), 0, 30 * d},
		{"04", updatePM("token_requirements_not_fulfilled"), 0, 0},
		{"21", hardStop("recurring_payment_cancelled"), 0, 30 * d},
		{"24", softLater("try_again_later"), time.Hour, 0},
		{"25", softLater("try_again_later"), 24 * time.Hour, 0},
		{"26", softLater("try_again_later"), 2 * d, 0},
		{"27", softLater("try_again_later"), 4 * d, 0},
		{"28", softLater("try_again_later"), 6 * d, 0},
		{"29", softLater("try_again_later"), 8 * d, 0},
		{"30", softLater("try_again_later"), 10 * d, 0},
	}
	if len(tests) != len(macEntries) {
		t.Errorf("test lists %d MACs, mapping has %d", len(tests), len(macEntries))
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			got := Classify(Input{NetworkAdviceCode: tt.code, Network: NetworkMastercard})
			check(t, got, tt.want)
			if got.RetryAfter != tt.after || got.NoRetryWindow != tt.window {
				t.Errorf("RetryAfter=%v NoRetryWindow=%v, want %v %v", got.RetryAfter, got.NoRetryWindow, tt.after, tt.window)
			}
			if want := []Source{{KindMastercardMAC, tt.code}}; !reflect.DeepEqual(got.Sources, want) {
				t.Errorf("Sources = %v, want %v", got.Sources, want)
			}
			// The same digits mean nothing on other networks.
			for _, network := range []string{"", NetworkVisa, NetworkAmex} {
				other := Classify(Input{NetworkAdviceCode: tt.code, Network: network})
				if other.Known || other.Sources != nil || other.Unrecognized != nil {
					t.Errorf("network %q: MAC %s was read: %s", network, tt.code, other)
				}
			}
		})
	}
}

func TestUnknownAndEmpty(t *testing.T) {
	safe := want{Unknown, Retry, "unknown"}
	tests := []struct {
		name         string
		in           Input
		want         want
		known        bool
		sources      []Source
		unrecognized []Source
	}{
		{"empty", Input{}, safe, false, nil, nil},
		{"blank fields", Input{DeclineCode: "  ", AdviceCode: "\t", NetworkDeclineCode: " ", NetworkAdviceCode: " ", Network: "mastercard"}, safe, false, nil, nil},
		{"gateway only", Input{Gateway: "stripe"}, safe, false, nil, nil},
		{"unknown Stripe code", Input{DeclineCode: "card_exploded"}, safe, false, nil,
			[]Source{{KindStripeDecline, "card_exploded"}}},
		{"unknown advice code", Input{AdviceCode: "Maybe_Later"}, safe, false, nil,
			[]Source{{KindStripeAdvice, "maybe_later"}}},
		{"unknown ISO code", Input{NetworkDeclineCode: "zz"}, safe, false, nil,
			[]Source{{KindISO8583, "ZZ"}}},
		{"unknown MAC", Input{NetworkAdviceCode: "99", Network: "mastercard"}, safe, false, nil,
			[]Source{{KindMastercardMAC, "99"}}},
		{"all unknown", Input{DeclineCode: "x", AdviceCode: "y", NetworkDeclineCode: "Q1", NetworkAdviceCode: "98", Network: "mastercard"}, safe, false, nil,
			[]Source{{KindStripeDecline, "x"}, {KindStripeAdvice, "y"}, {KindISO8583, "Q1"}, {KindMastercardMAC, "98"}}},
		{"unknown Stripe code, known ISO code", Input{DeclineCode: "brand_new_code", NetworkDeclineCode: "51"},
			softRetry("insufficient_funds"), true,
			[]Source{{KindISO8583, "51"}}, []Source{{KindStripeDecline, "brand_new_code"}}},
		{"known Stripe code, unknown MAC", Input{DeclineCode: "insufficient_funds", NetworkAdviceCode: "77", Network: "mastercard"},
			softRetry("insufficient_funds"), true,
			[]Source{{KindStripeDecline, "insufficient_funds"}}, []Source{{KindMastercardMAC, "77"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.in)
			check(t, got, tt.want)
			if got.Known != tt.known {
				t.Errorf("Known = %v, want %v", got.Known, tt.known)
			}
			if !reflect.DeepEqual(got.Sources, tt.sources) {
				t.Errorf("Sources = %v, want %v", got.Sources, tt.sources)
			}
			if !reflect.DeepEqual(got.Unrecognized, tt.unrecognized) {
				t.Errorf("Unrecognized = %v, want %v", got.Unrecognized, tt.unrecognized)
			}
			if !got.Retryable() {
				t.Errorf("safe default must stay retryable: %s", got)
			}
		})
	}
}

func TestNormalization(t *testing.T) {
	tests := []struct {
		name    string
		in      Input
		want    want
		sources []Source
	}{
		{"Stripe code case and space", Input{DeclineCode: "  Insufficient_FUNDS \n"},
			softRetry("insufficient_funds"), []Source{{KindStripeDecline, "insufficient_funds"}}},
		{"Stripe advice case", Input{DeclineCode: "DO_NOT_HONOR", AdviceCode: " Try_Again_Later"},
			softLater("do_not_honor"), []Source{{KindStripeDecline, "do_not_honor"}, {KindStripeAdvice, "try_again_later"}}},
		{"ISO letters upper-cased", Input{NetworkDeclineCode: " r0 "},
			hardStop("stop_payment_order"), []Source{{KindISO8583, "R0"}}},
		{"Visa code and network case", Input{NetworkDeclineCode: "r1", Network: " VISA "},
			hardStop("revocation_of_authorization"), []Source{{KindISO8583, "R1"}, {KindVisa, "R1"}}},
		{"Visa 1a", Input{NetworkDeclineCode: "1a", Network: "Visa"},
			authenticate("authentication_required"), []Source{{KindISO8583, "1A"}, {KindVisa, "1A"}}},
		{"Visa n7", Input{NetworkDeclineCode: "n7", Network: "visa"},
			updatePM("incorrect_cvc"), []Source{{KindISO8583, "N7"}, {KindVisa, "N7"}}},
		{"lone digit padded", Input{NetworkDeclineCode: "5"},
			softRetry("do_not_honor"), []Source{{KindISO8583, "05"}}},
		{"MAC lone digit and network case", Input{NetworkAdviceCode: "3", Network: "MasterCard"},
			hardStop("do_not_try_again"), []Source{{KindMastercardMAC, "03"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.in)
			check(t, got, tt.want)
			if !reflect.DeepEqual(got.Sources, tt.sources) {
				t.Errorf("Sources = %v, want %v", got.Sources, tt.sources)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	const (
		d      = 24 * time.Hour
		window = 30 * d
	)
	mc, visa := NetworkMastercard, NetworkVisa
	tests := []struct {
		name   string
		in     Input
		want   want
		after  time.Duration
		window time.Duration
	}{
		// 1. Never-retry is sticky, whatever else says retry.
		{"insufficient_funds + MAC 03 stops",
			Input{DeclineCode: "insufficient_funds", NetworkDeclineCode: "51", NetworkAdviceCode: "03", Network: mc},
			hardStop("do_not_try_again"), 0, window},
		{"generic_decline + MAC 21 stops, reason is the cancellation",
			Input{DeclineCode: "generic_decline", NetworkAdviceCode: "21", Network: mc},
			hardStop("recurring_payment_cancelled"), 0, window},
		{"MAC 21 beats Stripe advice try_again_later",
			Input{AdviceCode: "try_again_later", NetworkAdviceCode: "21", Network: mc},
			hardStop("recurring_payment_cancelled"), 0, window},
		{"Visa category 1 beats a soft decline code",
			Input{DeclineCode: "insufficient_funds", NetworkDeclineCode: "43", Network: visa},
			hardStop("stolen_card"), 0, window},
		{"Visa category 1 beats Stripe advice try_again_later",
			Input{DeclineCode: "do_not_honor", AdviceCode: "try_again_later", NetworkDeclineCode: "R1", Network: visa},
			hardStop("revocation_of_authorization"), 0, window},
		{"Stripe do_not_try_again beats MAC retry-after",
			Input{DeclineCode: "do_not_honor", AdviceCode: "do_not_try_again", NetworkAdviceCode: "24", Network: mc},
			hardStop("do_not_try_again"), 0, 0},
		{"Stripe do_not_try_again + MAC 03 keeps the network window",
			Input{AdviceCode: "do_not_try_again", NetworkAdviceCode: "03", Network: mc},
			hardStop("do_not_try_again"), 0, window},
		{"hard decline code beats MAC retry-after (never retry beats retry)",
			Input{DeclineCode: "lost_card", NetworkAdviceCode: "24", Network: mc},
			hardStop("lost_card"), 0, 0},
		{"hard decline code beats Stripe advice try_again_later",
			Input{DeclineCode: "stolen_card", AdviceCode: "try_again_later"},
			hardStop("stolen_card"), 0, 0},
		{"hard decline code keeps its reason next to MAC 03",
			Input{DeclineCode: "lost_card", NetworkDeclineCode: "41", NetworkAdviceCode: "03", Network: mc},
			hardStop("lost_card"), 0, window},
		{"Visa 62 (category 2) stays hard: the stricter reading wins",
			Input{DeclineCode: "restricted_card", NetworkDeclineCode: "62", Network: visa},
			hardStop("restricted_card"), 0, 0},
		{"hard ISO code beats soft Stripe code in the same layer",
			Input{DeclineCode: "generic_decline", NetworkDeclineCode: "62"},
			hardStop("restricted_card"), 0, 0},

		// 2. Otherwise the highest layer decides the advice.
		{"do_not_honor + advice try_again_later retries later",
			Input{DeclineCode: "do_not_honor", AdviceCode: "try_again_later"},
			softLater("do_not_honor"), 0, 0},
		{"insufficient_funds + MAC 24 waits an hour",
			Input{DeclineCode: "insufficient_funds", NetworkDeclineCode: "51", NetworkAdviceCode: "24", Network: mc},
			softLater("insufficient_funds"), time.Hour, 0},
		{"MAC 25 + advice try_again_later waits 24 hours",
			Input{DeclineCode: "do_not_honor", AdviceCode: "try_again_later", NetworkAdviceCode: "25", Network: mc},
			softLater("do_not_honor"), 24 * time.Hour, 0},
		{"Visa 51 (category 2) ignores a MAC off Mastercard",
			Input{DeclineCode: "insufficient_funds", NetworkDeclineCode: "51", NetworkAdviceCode: "24", Network: visa},
			softRetry("insufficient_funds"), 0, 0},
		{"MAC 03 on Visa is ignored",
			Input{DeclineCode: "insufficient_funds", NetworkAdviceCode: "03", Network: visa},
			softRetry("insufficient_funds"), 0, 0},
		{"MAC 01 beats Stripe advice try_again_later",
			Input{AdviceCode: "try_again_later", NetworkAdviceCode: "01", Network: mc},
			updatePM("new_account_information_available"), 0, 0},
		{"MAC 02 beats Stripe advice confirm_card_data",
			Input{DeclineCode: "insufficient_funds", AdviceCode: "confirm_card_data", NetworkAdviceCode: "02", Network: mc},
			softLater("insufficient_funds"), 0, 0},
		{"MAC 26 beats a customer-action decline code",
			Input{DeclineCode: "expired_card", NetworkAdviceCode: "26", Network: mc},
			softLater("expired_card"), 2 * d, 0},
		{"Stripe advice overrides a customer-action decline code",
			Input{DeclineCode: "expired_card", AdviceCode: "try_again_later"},
			softLater("expired_card"), 0, 0},
		{"Stripe confirm_card_data overrides a soft decline code",
			Input{DeclineCode: "insufficient_funds", AdviceCode: "confirm_card_data"},
			updatePM("insufficient_funds"), 0, 0},
		{"Visa category 3 beats a soft ISO reading (82)",
			Input{DeclineCode: "generic_decline", NetworkDeclineCode: "82", Network: visa},
			updatePM("invalid_card_verification"), 0, 0},
		{"82 on Mastercard is a policy decline, the MAC decides",
			Input{NetworkDeclineCode: "82", NetworkAdviceCode: "27", Network: mc},
			softLater("policy_decline"), 4 * d, 0},
		{"customer action beats soft in the same layer",
			Input{DeclineCode: "insufficient_funds", NetworkDeclineCode: "54"},
			updatePM("expired_card"), 0, 0},
		{"requires action alone authenticates",
			Input{RequiresAction: true},
			authenticate("authentication_required"), 0, 0},
		{"requires action beats a soft decline code",
			Input{DeclineCode: "generic_decline", RequiresAction: true},
			authenticate("authentication_required"), 0, 0},
		{"update beats authenticate in the same layer",
			Input{DeclineCode: "expired_card", RequiresAction: true},
			updatePM("expired_card"), 0, 0},
		{"Stripe and ISO agree",
			Input{DeclineCode: "insufficient_funds", NetworkDeclineCode: "51", Network: visa},
			softRetry("insufficient_funds"), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.in)
			check(t, got, tt.want)
			if got.RetryAfter != tt.after || got.NoRetryWindow != tt.window {
				t.Errorf("RetryAfter=%v NoRetryWindow=%v, want %v %v (%s)", got.RetryAfter, got.NoRetryWindow, tt.after, tt.window, got)
			}
		})
	}
}

func TestSourcesOrder(t *testing.T) {
	got := Classify(Input{
		Gateway:            "stripe",
		DeclineCode:        "insufficient_funds",
		AdviceCode:         "try_again_later",
		RequiresAction:     true,
		NetworkDeclineCode: "51",
		NetworkAdviceCode:  "24",
		Network:            "mastercard",
	})
	want := []Source{
		{KindStripeDecline, "insufficient_funds"},
		{KindStripeAdvice, "try_again_later"},
		{KindGateway, "requires_action"},
		{KindISO8583, "51"},
		{KindMastercardMAC, "24"},
	}
	if !reflect.DeepEqual(got.Sources, want) {
		t.Errorf("Sources = %v, want %v", got.Sources, want)
	}
	if got.Advice != RetryLater || got.RetryAfter != time.Hour {
		t.Errorf("got %s, want retry_later after 1h", got)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		in   Input
		want string
	}{
		{Input{}, "unknown/retry reason=unknown known=false"},
		{Input{DeclineCode: "insufficient_funds", NetworkDeclineCode: "51", NetworkAdviceCode: "24", Network: "mastercard"},
			"soft/retry_later reason=insufficient_funds after=1h0m0s sources=[stripe_decline_code:insufficient_funds iso8583:51 mastercard_mac:24]"},
		{Input{NetworkDeclineCode: "43", Network: "visa"},
			"hard/stop reason=stolen_card no_retry_window=720h0m0s visa_category=1 sources=[iso8583:43 visa:43]"},
		{Input{DeclineCode: "nope"},
			"unknown/retry reason=unknown unrecognized=[stripe_decline_code:nope] known=false"},
	}
	for _, tt := range tests {
		if got := Classify(tt.in).String(); got != tt.want {
			t.Errorf("String() =\n  %s\nwant\n  %s", got, tt.want)
		}
	}
}

func TestLogValue(t *testing.T) {
	d := Classify(Input{NetworkDeclineCode: "43", NetworkAdviceCode: "x", Network: "visa", DeclineCode: "nope"})
	got := map[string]string{}
	for _, a := range d.LogValue().Group() {
		got[a.Key] = a.Value.String()
	}
	want := map[string]string{
		"category":        "hard",
		"advice":          "stop",
		"reason":          "stolen_card",
		"known":           "true",
		"no_retry_window": "720h0m0s",
		"visa_category":   "1",
		"sources":         "iso8583:43,visa:43",
		"unrecognized":    "stripe_decline_code:nope",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LogValue = %v, want %v", got, want)
	}
}

func TestRetryable(t *testing.T) {
	for a, want := range map[Advice]bool{
		Retry: true, RetryLater: true, Authenticate: false, UpdatePaymentMethod: false, Stop: false,
	} {
		if got := (Decline{Advice: a}).Retryable(); got != want {
			t.Errorf("%s: Retryable = %v, want %v", a, got, want)
		}
	}
}
