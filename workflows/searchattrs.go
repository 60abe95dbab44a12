package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Search attributes ops filter runs by in the Web UI, e.g.
// `DunningStatus = "paused" AND DunningCurrency = "EUR"`. Amounts are in the
// currency's minor unit: exact, and comparable within a currency.
var (
	SAStatus       = temporal.NewSearchAttributeKeyKeyword("DunningStatus")
	SATenant       = temporal.NewSearchAttributeKeyKeyword("DunningTenant")
	SACustomerID   = temporal.NewSearchAttributeKeyKeyword("DunningCustomerID")
	SAInvoiceID    = temporal.NewSearchAttributeKeyKeyword("DunningInvoiceID")
	SACurrency     = temporal.NewSearchAttributeKeyKeyword("DunningCurrency")
	SAPolicy       = temporal.NewSearchAttributeKeyKeyword("DunningPolicy")
	SADeclineCode  = temporal.NewSearchAttributeKeyKeyword("DunningDeclineCode")
	SAAmountMinor  = temporal.NewSearchAttributeKeyInt64("DunningAmountMinor")
	SAAttempts     = temporal.NewSearchAttributeKeyInt64("DunningAttempts")
	SANextActionAt = temporal.NewSearchAttributeKeyTime("DunningNextActionAt")
	// SANextAction is the action of the step at DunningNextActionAt (lean
	// runs set both in one upsert, so it costs nothing more).
	SANextAction = temporal.NewSearchAttributeKeyKeyword("DunningNextAction")
	// SAAttention is why a run needs attention (unknown_gateway,
	// gateway_auth, unavailable); unset otherwise.
	SAAttention = temporal.NewSearchAttributeKeyKeyword("DunningAttention")
)

// SearchAttributeTypes lists every custom search attribute and its type, for
// registering them on a namespace.
func SearchAttributeTypes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		SAStatus.GetName():       enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SATenant.GetName():       enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SACustomerID.GetName():   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SAInvoiceID.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SACurrency.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SAPolicy.GetName():       enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SADeclineCode.GetName():  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SAAmountMinor.GetName():  enumspb.INDEXED_VALUE_TYPE_INT,
		SAAttempts.GetName():     enumspb.INDEXED_VALUE_TYPE_INT,
		SANextActionAt.GetName(): enumspb.INDEXED_VALUE_TYPE_DATETIME,
		SAAttention.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SANextAction.GetName():   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

// InitialSearchAttributes are set when a run starts, so a run is findable
// from its first moment.
func InitialSearchAttributes(in Input, amountMinor int64) temporal.SearchAttributes {
	policyName := in.PolicyName
	if policyName == "" {
		policyName = "default"
	}
	return temporal.NewSearchAttributes(
		SAStatus.ValueSet(string(PhaseRecovering)),
		SATenant.ValueSet(in.Tenant),
		SACustomerID.ValueSet(in.Customer.ID),
		SAInvoiceID.ValueSet(in.InvoiceID),
		SACurrency.ValueSet(in.Currency),
		SAPolicy.ValueSet(policyName),
		SADeclineCode.ValueSet(in.Decline.Code),
		SAAmountMinor.ValueSet(amountMinor),
		SAAttempts.ValueSet(0),
	)
}
