package openapi

import (
	"context"
	"encoding/json"
	"html"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/getkin/kin-openapi/openapi3"
)

func TestDocumentValidates(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	// Validate with the strictest options kin-openapi has: examples are
	// checked against their schemas too.
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}
	if n := len(Operations(doc)); n < 15 {
		t.Fatalf("the document has %d operations; the API has more", n)
	}
}

// TestDocumentLint holds every operation to the house rules: an
// operationId (unique), a summary, a tag, the surface it is served on, and
// RFC 9457 problem details (application/problem+json, schema Problem) as
// the only body of every 4xx and 5xx answer.
func TestDocumentLint(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range lint(doc) {
		t.Error(problem)
	}
}

func lint(doc *openapi3.T) []string {
	var problems []string
	seen := map[string]string{}
	for _, op := range Operations(doc) {
		where := op.Method + " " + op.Path
		if op.OperationID == "" {
			problems = append(problems, where+": no operationId")
		} else if other, dup := seen[op.OperationID]; dup {
			problems = append(problems, where+": operationId "+op.OperationID+" is also "+other)
		}
		seen[op.OperationID] = where
		if strings.TrimSpace(op.Summary) == "" {
			problems = append(problems, where+": no summary")
		}
		if len(op.Tags) == 0 {
			problems = append(problems, where+": no tag")
		}
		switch op.Surface {
		case "private", "public", "both":
		default:
			problems = append(problems, where+`: x-surface must be "private", "public" or "both"`)
		}
		if op.Surface == "public" || op.Surface == "both" {
			if op.Security == nil || len(*op.Security) != 0 {
				problems = append(problems, where+": served without an API key, so it needs security: []")
			}
		}
		success := false
		for code, ref := range op.Responses.Map() {
			status, err := strconv.Atoi(code)
			if err != nil {
				problems = append(problems, where+": response "+code+" is not a status code")
				continue
			}
			if status < 400 {
				success = success || status < 300
				continue
			}
			r := ref.Value
			if r == nil || len(r.Content) != 1 || r.Content.Get("application/problem+json") == nil {
				problems = append(problems, where+": response "+code+" must have application/problem+json, and only that")
				continue
			}
			if s := r.Content.Get("application/problem+json").Schema; s == nil || s.Ref != "#/components/schemas/Problem" {
				problems = append(problems, where+": response "+code+" must use the Problem schema")
			}
		}
		if !success {
			problems = append(problems, where+": no 2xx answer")
		}
	}
	return problems
}

func TestLintCatchesBreaches(t *testing.T) {
	doc := &openapi3.T{OpenAPI: "3.0.3", Info: &openapi3.Info{Title: "t", Version: "1"}, Paths: openapi3.NewPaths()}
	plain := openapi3.NewResponse().WithDescription("x").WithJSONSchema(openapi3.NewStringSchema())
	op := openapi3.NewOperation()
	op.AddResponse(400, plain)
	doc.AddOperation("/x", http.MethodGet, op)
	got := strings.Join(lint(doc), "\n")
	for _, want := range []string{"no operationId", "no summary", "no tag", "x-surface", "response 400 must have application/problem+json", "no 2xx answer"} {
		if !strings.Contains(got, want) {
			t.Errorf("lint missed %q; it said:\n%s", want, got)
		}
	}
}

func TestFragmentsMerge(t *testing.T) {
	main := []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      responses:
        200: {description: ok}
components:
  schemas:
    Problem: {type: object}
`)
	frag := `paths:
  /b:
    get:
      operationId: getB
      responses:
        '404':
          description: no
          content:
            application/problem+json:
              schema: {$ref: '#/components/schemas/Problem'}
components:
  schemas:
    B: {type: string}
tags:
  - name: b
`
	out, err := merged(main, fstest.MapFS{"fragments/b.yaml": {Data: []byte(frag)}, "fragments/README.md": {Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(out)
	if err != nil {
		t.Fatalf("merged document does not load: %v\n%s", err, out)
	}
	if doc.Paths.Value("/a") == nil || doc.Paths.Value("/b") == nil || doc.Components.Schemas["B"] == nil {
		t.Fatalf("merged document lacks a path or schema:\n%s", out)
	}
	if doc.Paths.Value("/a").Get.Responses.Value("200") == nil {
		t.Error("an unquoted status code was lost")
	}
	if got := doc.Paths.Value("/b").Get.Extensions["x-fragment"]; got != "b.yaml" {
		t.Errorf("x-fragment of a fragment's operation = %v, want b.yaml", got)
	}
	if _, ok := doc.Paths.Value("/a").Get.Extensions["x-fragment"]; ok {
		t.Error("the main document's operation is marked as a fragment's")
	}
	same := "components:\n  schemas:\n    Problem: {type: object}\nservers: []\n"
	if _, err := merged(main, fstest.MapFS{"fragments/same.yaml": {Data: []byte(same)}}); err != nil {
		t.Errorf("a fragment repeating a definition exactly (and a servers header) was refused: %v", err)
	}

	for name, bad := range map[string]string{
		"path twice":   "paths:\n  /a: {}\n",
		"schema twice": "components:\n  schemas:\n    Problem: {type: string}\n",
		"other key":    "webhooks: {}\n",
	} {
		if _, err := merged(main, fstest.MapFS{"fragments/x.yaml": {Data: []byte(bad)}}); err == nil {
			t.Errorf("%s: merged without an error", name)
		}
	}
}

func TestServe(t *testing.T) {
	rec := httptest.NewRecorder()
	ServeDocument(rec, httptest.NewRequest(http.MethodGet, DocumentPath, nil))
	var doc map[string]any
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &doc) != nil {
		t.Fatalf("GET /openapi.json = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if doc["openapi"] != "3.0.3" {
		t.Errorf("openapi = %v", doc["openapi"])
	}

	rec = httptest.NewRecorder()
	ServeReference(rec, httptest.NewRequest(http.MethodGet, ReferencePath, nil))
	page := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	d, _ := Document()
	for _, op := range Operations(d) {
		if !strings.Contains(page, `id="op-`+op.OperationID+`"`) {
			t.Errorf("the reference page lacks %s", op.OperationID)
		}
	}
	for _, want := range []string{`id="schema-Problem"`, "application/problem+json", "/v1/declines"} {
		if !strings.Contains(html.UnescapeString(page), want) {
			t.Errorf("the reference page lacks %q", want)
		}
	}
	// Offline: nothing is loaded from elsewhere.
	for _, remote := range []string{"<script", "src=\"http", "href=\"http", "@import"} {
		if strings.Contains(page, remote) {
			t.Errorf("the reference page loads an outside asset (%s)", remote)
		}
	}
}

func TestMatch(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		method, path, op string
		params           map[string]string
	}{
		{"POST", "/v1/declines", "reportDecline", map[string]string{}},
		{"GET", "/v1/runs/acme/inv-1", "getRunStatus", map[string]string{"tenant": "acme", "invoice": "inv-1"}},
		{"post", "/v1/runs/acme/inv-1/expedite", "expediteRun", map[string]string{"tenant": "acme", "invoice": "inv-1"}},
		{"GET", "/v1/reminders/acme/pre-due/inv-1", "getReminderStatus", map[string]string{"id": "acme/pre-due/inv-1"}},
		{"DELETE", "/v1/reminders/acme/pre-due/inv-1", "cancelReminders", map[string]string{"id": "acme/pre-due/inv-1"}},
		{"GET", "/v1/runs/acme", "", nil},
		{"PUT", "/v1/declines", "", nil},
	} {
		op, params, ok := Match(doc, tt.method, tt.path)
		id := ""
		if ok {
			id = op.OperationID
		}
		if ok != (tt.op != "") || id != tt.op || (ok && !maps.Equal(params, tt.params)) {
			t.Errorf("Match(%s %s) = %s %v %v, want %s %v", tt.method, tt.path, id, params, ok, tt.op, tt.params)
		}
	}
}
