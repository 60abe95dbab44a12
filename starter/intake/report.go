package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/dunningco/dunning/workflows"
)

// MaxBodyBytes bounds request bodies and decline report files.
const MaxBodyBytes = 1 << 20

// DeclineReport is the body of POST /v1/declines (and of `dunning start -f`):
// one failed charge as the billing system reports it.
type DeclineReport struct {
	Tenant    string             `json:"tenant"`
	InvoiceID string             `json:"invoice_id"`
	Customer  workflows.Customer `json:"customer"`
	// Amount is a decimal string such as "49.90"; JSON numbers are refused.
	Amount        string         `json:"amount"`
	Currency      string         `json:"currency"`
	PaymentMethod string         `json:"payment_method,omitempty"`
	Card          workflows.Card `json:"card,omitzero"`
	PeriodDays    int            `json:"period_days,omitempty"`
	Decline       ReportDecline  `json:"decline"`
	Policy        string         `json:"policy,omitempty"`
	// Plan and Segment describe the customer for policy selection when
	// Policy is empty (see policy.Selection).
	Plan               string `json:"plan,omitempty"`
	Segment            string `json:"segment,omitempty"`
	BillingCallbackURL string `json:"billing_callback_url,omitempty"`
}

// ReportDecline is the failed charge inside a DeclineReport. It has no
// received_at: the run stamps that itself.
type ReportDecline struct {
	ID         string `json:"id,omitempty"`
	Gateway    string `json:"gateway"`
	Code       string `json:"code"`
	AdviceCode string `json:"advice_code,omitempty"`
	// Card-network codes, where the gateway reports them (ISO 8583 response
	// code; Mastercard Merchant Advice Code).
	NetworkDeclineCode string    `json:"network_decline_code,omitempty"`
	NetworkAdviceCode  string    `json:"network_advice_code,omitempty"`
	Message            string    `json:"message,omitempty"`
	OccurredAt         time.Time `json:"occurred_at,omitzero"`
}

// Input is the run input the report asks for. Values are copied as sent, so
// an amount of "49.90" stays "49.90"; validation.Rules.Decline checks and
// normalizes it.
func (r DeclineReport) Input() workflows.Input {
	return workflows.Input{
		Tenant:        r.Tenant,
		InvoiceID:     r.InvoiceID,
		Customer:      r.Customer,
		Amount:        r.Amount,
		Currency:      r.Currency,
		PaymentMethod: r.PaymentMethod,
		Card:          r.Card,
		PeriodDays:    r.PeriodDays,
		Decline: workflows.Decline{
			ID:                 r.Decline.ID,
			Gateway:            r.Decline.Gateway,
			Code:               r.Decline.Code,
			AdviceCode:         r.Decline.AdviceCode,
			NetworkDeclineCode: r.Decline.NetworkDeclineCode,
			NetworkAdviceCode:  r.Decline.NetworkAdviceCode,
			Message:            r.Decline.Message,
			OccurredAt:         r.Decline.OccurredAt,
		},
		PolicyName:         r.Policy,
		Plan:               r.Plan,
		Segment:            r.Segment,
		BillingCallbackURL: r.BillingCallbackURL,
	}
}

// DecodeDeclineReport decodes a report strictly: one JSON object, no unknown
// fields, no trailing data, amounts as strings.
func DecodeDeclineReport(data []byte) (DeclineReport, error) {
	var r DeclineReport
	if err := decodeStrict(data, &r, false); err != nil {
		return DeclineReport{}, err
	}
	return r, nil
}

// BodyError is a request body that is not the JSON the endpoint takes:
// malformed, not an object, an unknown field or a value of the wrong type.
// It names the offending member when it can.
type BodyError struct {
	// Pointer is the member's RFC 6901 JSON pointer; "" is the whole body.
	Pointer string
	Detail  string
}

func (e *BodyError) Error() string { return e.Detail }

func bodyErr(pointer, format string, args ...any) *BodyError {
	return &BodyError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)}
}

// decodeStrict decodes exactly one JSON object from data into v. An empty
// body leaves v untouched when allowEmpty is set; null is never an object.
// Errors are *BodyError, meant for the sender: they say what is wrong and
// where.
func decodeStrict(data []byte, v any, allowEmpty bool) error {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0 && allowEmpty:
		return nil
	case len(trimmed) == 0:
		return bodyErr("", "the request body is empty; send a JSON object")
	case bytes.Equal(trimmed, []byte("null")):
		// json.Unmarshal would quietly leave v as it is.
		return bodyErr("", "the body must be a JSON object, not null")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(data, reflect.TypeOf(v), err)
	}
	end := dec.InputOffset()
	if rest := bytes.TrimLeft(data[end:], " \t\r\n"); len(rest) > 0 {
		line, col := position(data, int64(len(data)-len(rest)))
		return bodyErr("", "unexpected data after the JSON value at line %d, column %d; send exactly one JSON object", line, col)
	}
	return nil
}

func describeJSONError(data []byte, t reflect.Type, err error) *BodyError {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &syntaxErr):
		// Offset counts the bytes read, the offending one included.
		line, col := position(data, syntaxErr.Offset-1)
		return bodyErr("", "malformed JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(syntaxErr.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bodyErr("", "malformed JSON: the body ends before the JSON value is complete")
	case errors.As(err, &typeErr):
		line, col := position(data, typeErr.Offset-1)
		pointer := dottedToPointer(typeErr.Field)
		switch {
		case typeErr.Field == "":
			return bodyErr("", "the body must be a JSON object, not %s", typeErr.Value)
		case typeErr.Field == "amount" || strings.HasSuffix(typeErr.Field, ".amount"):
			return bodyErr(pointer, "%s must be a JSON string such as \"49.90\", not %s (line %d, column %d): amounts are decimal strings because floating-point numbers cannot hold money exactly",
				typeErr.Field, typeErr.Value, line, col)
		default:
			return bodyErr(pointer, "%s must be a JSON %s, not %s (line %d, column %d)", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value, line, col)
		}
	case errors.As(err, &timeErr):
		return bodyErr(locate(data, t, ""), "times must be RFC 3339 such as \"2026-03-01T10:00:00Z\": %q is not", timeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return bodyErr(locate(data, t, name), "%s", strings.TrimPrefix(err.Error(), "json: "))
	default:
		return bodyErr("", "invalid JSON value: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
}

// dottedToPointer turns encoding/json's "customer.id" into "/customer/id".
func dottedToPointer(field string) string {
	if field == "" {
		return ""
	}
	return "/" + strings.ReplaceAll(field, ".", "/")
}

// jsonKind names a Go kind the way a JSON sender thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	case "string":
		return "string"
	}
	return "number"
}

// position is the 1-based line and column of the byte at index i.
func position(data []byte, i int64) (line, col int) {
	i = min(max(i, 0), int64(len(data)))
	before := data[:i]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(i) - bytes.LastIndexByte(before, '\n')
	return line, col
}
