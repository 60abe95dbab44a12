package integration

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/dunningco/dunning/openapi"
)

func init() {
	// The reference page is checked as text.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

// checkContract sends a request to the API of a real stack (Temporal, a
// worker, PostgreSQL) and validates the answer against the OpenAPI
// document: its status must be documented, and its headers and body must
// match. It returns the answer's status.
func (p *platform) checkContract(t *testing.T, method, path, body string) int {
	t.Helper()
	doc, err := openapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, p.api.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+p.apiKey)
	op, params, ok := openapi.Match(doc, method, req.URL.Path)
	if !ok {
		t.Fatalf("%s %s: no operation of the document serves it", method, path)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params,
		Route: &routers.Route{Spec: doc, Path: op.Path, PathItem: doc.Paths.Value(op.Path), Method: op.Method, Operation: op.Operation}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(raw)), Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s (%s): the answer does not match the document: %v\n%d %.600s", method, path, op.OperationID, err, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// testAnswersMatchTheDocument steers one real run through the API, from
// its decline to after its close, plus a reminder run, and holds every
// answer, success or refusal, to the OpenAPI document.
func (p *platform) testAnswersMatchTheDocument(t *testing.T) {
	const run = "/v1/runs/acme/inv-contract"
	steps := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/declines", decline("inv-contract", "sim:decline;code=do_not_honor", "default"), http.StatusAccepted},
		{"GET", run, "", http.StatusOK},
		{"POST", run + "/expedite", `{"reason":"customer called","by":"support"}`, http.StatusOK},
		// The minimum gap between attempts refuses a second one now.
		{"POST", run + "/expedite", `{"reason":"again"}`, http.StatusConflict},
		{"POST", run + "/expedite", `{"reason":`, http.StatusBadRequest},
		{"POST", run + "/payment-method-updated", `{"payment_method":"sim:decline;code=do_not_honor"}`, http.StatusAccepted},
		{"POST", run + "/resume", `{"reason":"nothing held","by":"ops"}`, http.StatusAccepted},
		{"POST", run + "/cancel", `{"by":"ops"}`, http.StatusUnprocessableEntity},
		{"POST", run + "/cancel", `{"reason":"invoice voided","by":"ops"}`, http.StatusAccepted},
		{"GET", "/v1/runs/acme/inv-contract-none", "", http.StatusNotFound},
		{"GET", "/v1/runs?tenant=acme", "", http.StatusNotImplemented}, // this stack's API has no read model
		{"POST", "/v1/reminders", `{"tenant":"acme","kind":"pre-due","invoice_id":"inv-contract-r","customer":{"id":"cus-r","email":"ada@example.com"},
			"amount":"49.90","currency":"EUR","anchor":"` + time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339) + `"}`, http.StatusAccepted},
		{"GET", "/v1/reminders/acme/pre-due/inv-contract-r", "", http.StatusOK},
		{"DELETE", "/v1/reminders/acme/pre-due/inv-contract-r?reason=invoice+paid", "", http.StatusAccepted},
		{"GET", "/v1/reminders/acme/pre-due/inv-contract-none", "", http.StatusNotFound},
		{"GET", "/healthz", "", http.StatusOK},
		{"GET", "/readyz", "", http.StatusOK},
		{"GET", "/openapi.json", "", http.StatusOK},
		{"GET", "/docs", "", http.StatusOK},
	}
	for _, s := range steps {
		if got := p.checkContract(t, s.method, s.path, s.body); got != s.want {
			t.Errorf("%s %s = %d, want %d", s.method, s.path, got, s.want)
		}
	}
	// Closed: the status of an ended run, and refusals of what comes after.
	p.result(t, "inv-contract")
	for _, s := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", run, "", http.StatusOK},
		{"POST", "/v1/declines", decline("inv-contract", "sim:succeed", "default"), http.StatusConflict},
		{"POST", run + "/paid", `{"reference":"wire-1"}`, http.StatusConflict},
	} {
		if got := p.checkContract(t, s.method, s.path, s.body); got != s.want {
			t.Errorf("%s %s = %d, want %d", s.method, s.path, got, s.want)
		}
	}
}
