// Package validation holds the intake rules: what a decline report, a
// reminder request or a request to a run must look like before anything is
// started or sent. The HTTP intake, the Go client (starter) and the CLI all
// check requests here, so the three refuse exactly the same input, and
// name every bad field the same way.
//
// The rules are stricter than workflows.Input.Validate on purpose. That
// check runs inside the workflow, on replay and after continue-as-new too,
// so it must keep accepting every input an earlier release started a run
// with; these rules only ever see new requests, so they can tighten.
package validation

import (
	"fmt"
	"strings"

	"github.com/dunningco/dunning/workflows"
)

// FieldError is one problem with one field of a request.
type FieldError struct {
	// Pointer is the field's RFC 6901 JSON pointer in the request body,
	// e.g. "/customer/email"; "" is the whole body.
	Pointer string `json:"pointer"`
	// Detail says what is wrong, for the sender.
	Detail string `json:"detail"`
}

// Field is the pointer as a dotted path, e.g. "customer.email", the way
// error messages and CLI users name fields.
func (f FieldError) Field() string {
	if f.Pointer == "" {
		return "(body)"
	}
	return strings.ReplaceAll(strings.TrimPrefix(f.Pointer, "/"), "/", ".")
}

// Error is every problem found in one request, in the order the fields
// appear. It wraps workflows.ErrInvalidInput.
type Error struct {
	Problems []FieldError
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field() + ": " + p.Detail
	}
	return workflows.ErrInvalidInput.Error() + ": " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, workflows.ErrInvalidInput) hold.
func (e *Error) Unwrap() error { return workflows.ErrInvalidInput }

// Invalid is an Error about one field.
func Invalid(pointer, format string, args ...any) *Error {
	return &Error{Problems: []FieldError{{Pointer: pointer, Detail: fmt.Sprintf(format, args...)}}}
}

// problems collects FieldErrors while a request is checked.
type problems struct {
	list []FieldError
}

func (p *problems) add(pointer, format string, args ...any) {
	p.list = append(p.list, FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
}

// err is nil when nothing was found, else an *Error.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &Error{Problems: p.list}
}
