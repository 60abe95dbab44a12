package intake

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/dunningco/dunning/validation"
)

// ProblemContentType is the media type of every error answer (RFC 9457).
const ProblemContentType = "application/problem+json"

// Problem types: stable identifiers clients branch on. They are URI
// references relative to the API; README lists them. Answers whose HTTP
// status says all there is to say (404, 405, 413, 415, 5xx) use
// "about:blank", as RFC 9457 recommends.
const (
	ProblemMalformed = "/problems/malformed-request" // 400: not JSON, unknown field, wrong type, null
	ProblemInvalid   = "/problems/invalid-request"   // 422: well-formed but breaks a rule
	ProblemConflict  = "/problems/conflict"          // 409: the run ended, or holds another amount
	ProblemRejected  = "/problems/rejected"          // 409: the run refused (e.g. expedite)

	ProblemUnauthorized          = "/problems/unauthorized"           // 401: no API key, or not a valid one
	ProblemForbidden             = "/problems/forbidden"              // 403: the key lacks the scope, or names another tenant
	ProblemRateLimited           = "/problems/rate-limited"           // 429: the key's rate limit; see Retry-After
	ProblemIdempotencyMismatch   = "/problems/idempotency-key-reused" // 422: the Idempotency-Key came with another request
	ProblemIdempotencyInProgress = "/problems/idempotency-key-in-use" // 409: the key's first request is still running
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Errors names each bad field of a 400 or 422.
	Errors []FieldProblem `json:"errors,omitempty"`
	// Error repeats Detail for clients of the earlier {"error": "..."}
	// answer; an extension member, which RFC 9457 allows.
	Error string `json:"error"`
}

// FieldProblem is one bad field: a member of the body (Pointer, RFC 6901)
// or a path or query parameter (Parameter), and in both cases its dotted
// name (Field).
type FieldProblem struct {
	Pointer   *string `json:"pointer,omitempty"`
	Parameter string  `json:"parameter,omitempty"`
	Field     string  `json:"field"`
	Detail    string  `json:"detail"`
}

// bodyField is a problem with the body member at pointer.
func bodyField(pointer, detail string) FieldProblem {
	f := validation.FieldError{Pointer: pointer, Detail: detail}
	return FieldProblem{Pointer: &pointer, Field: f.Field(), Detail: detail}
}

// paramField is a problem with a path or query parameter.
func paramField(name, detail string) FieldProblem {
	return FieldProblem{Parameter: name, Field: name, Detail: detail}
}

// bodyFields are a validation error's problems as body fields.
func bodyFields(verr *validation.Error) []FieldProblem {
	out := make([]FieldProblem, len(verr.Problems))
	for i, p := range verr.Problems {
		out[i] = bodyField(p.Pointer, p.Detail)
	}
	return out
}

// problemType is the type of a plain error answer of status.
func problemType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return ProblemMalformed
	case http.StatusUnprocessableEntity:
		return ProblemInvalid
	case http.StatusConflict:
		return ProblemConflict
	}
	return "about:blank"
}

func problemTitle(typ string, status int) string {
	switch typ {
	case ProblemMalformed:
		return "Malformed request"
	case ProblemInvalid:
		return "Invalid request"
	case ProblemConflict:
		return "Conflict with the dunning run"
	case ProblemRejected:
		return "Refused by the dunning run"
	case ProblemUnauthorized:
		return "Unauthorized"
	case ProblemForbidden:
		return "Forbidden"
	case ProblemRateLimited:
		return "Too many requests"
	case ProblemIdempotencyMismatch:
		return "Idempotency-Key reused"
	case ProblemIdempotencyInProgress:
		return "Idempotency-Key in use"
	}
	return http.StatusText(status)
}

// writeError answers status with a problem of the status's type.
func writeError(w http.ResponseWriter, status int, detail string, fields ...FieldProblem) {
	writeProblem(w, problemType(status), status, detail, fields...)
}

func writeProblem(w http.ResponseWriter, typ string, status int, detail string, fields ...FieldProblem) {
	p := Problem{Type: typ, Title: problemTitle(typ, status), Status: status, Detail: detail, Errors: fields, Error: detail}
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p) // see writeJSON
}

// writeInvalid answers 422 for a request that breaks the intake rules,
// naming every bad field when err carries them.
func writeInvalid(w http.ResponseWriter, err error) {
	if verr, ok := errors.AsType[*validation.Error](err); ok {
		writeError(w, http.StatusUnprocessableEntity, invalidDetail(verr), bodyFields(verr)...)
		return
	}
	writeError(w, http.StatusUnprocessableEntity, err.Error())
}

// invalidDetail lists every problem in one line.
func invalidDetail(verr *validation.Error) string {
	parts := make([]string, len(verr.Problems))
	for i, p := range verr.Problems {
		parts[i] = p.Field() + ": " + p.Detail
	}
	return strings.Join(parts, "; ")
}
