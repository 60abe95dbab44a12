package openapi

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gomarkdown/markdown"
	mdhtml "github.com/gomarkdown/markdown/html"
	"github.com/gomarkdown/markdown/parser"
)

// ServeDocument answers GET /openapi.json.
func ServeDocument(w http.ResponseWriter, _ *http.Request) {
	serve(w, "application/json", JSON)
}

// ServeReference answers GET /docs with the reference page.
func ServeReference(w http.ResponseWriter, _ *http.Request) {
	serve(w, "text/html; charset=utf-8", ReferencePage)
}

func serve(w http.ResponseWriter, contentType string, body func() ([]byte, error)) {
	b, err := body()
	if err != nil {
		// The document is embedded and checked by the tests; this is a
		// build that skipped them.
		http.Error(w, "the API document does not load", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	// Nothing on the page loads from anywhere, itself included.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(b)
}

// The reference page is rendered once, on the server, from the document:
// no script, font or stylesheet is fetched, so it works offline and behind
// any firewall.
var referenceTemplate = template.Must(template.New("reference").Funcs(template.FuncMap{
	"schemaType": schemaType,
	"lower":      strings.ToLower,
	"anchor":     anchor,
	"required":   func(s *openapi3.Schema, name string) bool { return slices.Contains(s.Required, name) },
	"sortedKeys": sortedKeys,
	"surface":    surfaceText,
	"keyless":    func(op opView) bool { return op.Security != nil && len(*op.Security) == 0 },
	"md":         markdownHTML,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Doc.Info.Title}} reference</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330}
nav{position:fixed;top:0;bottom:0;left:0;width:18rem;overflow:auto;background:#f4f5f7;padding:1rem;box-sizing:border-box;font-size:13px}
nav a{display:block;color:#1d2330;text-decoration:none;padding:1px 0}
nav h3{margin:1rem 0 .25rem;font-size:12px;text-transform:uppercase;color:#667}
main{margin-left:18rem;padding:1rem 2rem;max-width:60rem}
.op{border-top:1px solid #dde;padding:1rem 0}
.m{display:inline-block;min-width:4rem;text-align:center;border-radius:3px;color:#fff;font:bold 12px monospace;padding:2px 4px}
.get{background:#2f7d32}.post{background:#1565c0}.delete{background:#c62828}.put,.patch{background:#ef6c00}
code,.path{font-family:ui-monospace,monospace}.path{font-size:16px;font-weight:600}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:13px}
th,td{border:1px solid #dde;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f4f5f7}
td p{margin:0}.tag{color:#667;font-size:12px}
</style></head><body>
<nav><strong>{{.Doc.Info.Title}}</strong> <span class="tag">v{{.Doc.Info.Version}}</span>
<a href="/openapi.json">openapi.json</a>
{{range .Tags}}<h3>{{.Name}}</h3>{{range .Ops}}<a href="#{{anchor .}}"><code>{{.Method}}</code> {{.Path}}</a>{{end}}{{end}}
<h3>Schemas</h3>{{range sortedKeys .Doc.Components.Schemas}}<a href="#schema-{{.}}">{{.}}</a>{{end}}
</nav>
<main>
<h1>{{.Doc.Info.Title}}</h1>
{{md .Doc.Info.Description}}
{{range .Tags}}<h2>{{.Name}}</h2>{{if .Description}}{{md .Description}}{{end}}
{{range .Ops}}<section class="op" id="{{anchor .}}">
<div><span class="m {{lower .Method}}">{{.Method}}</span> <span class="path">{{.Path}}</span></div>
<p><strong>{{.Summary}}</strong> <span class="tag">{{.OperationID}} · {{surface .Surface}}{{if keyless .}} · no API key{{else}} · API key{{end}}</span></p>
{{if .Description}}{{md .Description}}{{end}}
{{with .Params}}<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>
{{range .}}<tr><td><code>{{.Value.Name}}</code>{{if .Value.Required}} <em>required</em>{{end}}</td><td>{{.Value.In}}</td><td>{{schemaType .Value.Schema}}</td><td>{{md .Value.Description}}</td></tr>{{end}}</table>{{end}}
{{with .RequestBody}}{{with .Value}}<p>Request body{{if .Required}} (required){{end}}:{{range $ct, $mt := .Content}} <code>{{$ct}}</code> {{schemaType $mt.Schema}}{{end}}</p>{{end}}{{end}}
<table><tr><th>status</th><th>answer</th><th>body</th></tr>
{{range .Answers}}<tr><td>{{.Code}}</td><td>{{md .Desc}}</td><td>{{range $ct, $mt := .Content}}<code>{{$ct}}</code> {{schemaType $mt.Schema}} {{end}}</td></tr>{{end}}
</table></section>{{end}}{{end}}
<h2>Schemas</h2>
{{range $name := sortedKeys .Doc.Components.Schemas}}{{with index $.Doc.Components.Schemas $name}}<section class="op" id="schema-{{$name}}"><h3>{{$name}}</h3>
{{$ref := .}}{{with .Value}}{{if .Description}}{{md .Description}}{{end}}
{{if .Properties}}<table><tr><th>field</th><th>type</th><th>description</th></tr>
{{$s := .}}{{range $p := sortedKeys .Properties}}{{with index $s.Properties $p}}<tr><td><code>{{$p}}</code>{{if required $s $p}} <em>required</em>{{end}}</td><td>{{schemaType .}}</td><td>{{md .Value.Description}}</td></tr>{{end}}{{end}}
</table>{{else}}<p>{{schemaType $ref}}</p>{{end}}{{end}}</section>{{end}}{{end}}
</main></body></html>
`))

type tagView struct {
	Name, Description string
	Ops               []opView
}

type opView struct {
	Operation
	Params  openapi3.Parameters
	Answers []responseView
}

func renderReference(doc *openapi3.T) ([]byte, error) {
	var tags []*tagView
	byName := map[string]*tagView{}
	for _, t := range doc.Tags {
		tv := &tagView{Name: t.Name, Description: t.Description}
		tags = append(tags, tv)
		byName[t.Name] = tv
	}
	for _, op := range Operations(doc) {
		name := "other"
		if len(op.Tags) > 0 {
			name = op.Tags[0]
		}
		tv, ok := byName[name]
		if !ok {
			tv = &tagView{Name: name}
			tags = append(tags, tv)
			byName[name] = tv
		}
		params := append(openapi3.Parameters{}, doc.Paths.Value(op.Path).Parameters...)
		params = append(params, op.Parameters...)
		var answers []responseView
		for _, code := range sortedKeys(op.Responses.Map()) {
			r := op.Responses.Value(code)
			if r == nil || r.Value == nil {
				continue
			}
			desc := ""
			if r.Value.Description != nil {
				desc = *r.Value.Description
			}
			answers = append(answers, responseView{Code: code, Desc: desc, Content: r.Value.Content})
		}
		tv.Ops = append(tv.Ops, opView{Operation: op, Params: params, Answers: answers})
	}
	tags = slices.DeleteFunc(tags, func(t *tagView) bool { return len(t.Ops) == 0 })
	var buf bytes.Buffer
	err := referenceTemplate.Execute(&buf, struct {
		Doc  *openapi3.T
		Tags []*tagView
	}{Doc: doc, Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("openapi: render the reference page: %w", err)
	}
	return buf.Bytes(), nil
}

type responseView struct {
	Code    string
	Desc    string
	Content openapi3.Content
}

// markdownHTML renders a description, which OpenAPI writes in CommonMark.
// The document is ours and embedded in the binary, not outside input.
func markdownHTML(text string) template.HTML {
	if text == "" {
		return ""
	}
	p := parser.NewWithExtensions(parser.CommonExtensions)
	r := mdhtml.NewRenderer(mdhtml.RendererOptions{Flags: mdhtml.CommonFlags | mdhtml.SkipHTML})
	return template.HTML(markdown.ToHTML([]byte(text), p, r))
}

func anchor(v any) string {
	switch op := v.(type) {
	case opView:
		return "op-" + op.OperationID
	case Operation:
		return "op-" + op.OperationID
	}
	return ""
}

func surfaceText(s string) string {
	switch s {
	case "private":
		return "private API"
	case "public":
		return "public surface"
	case "both":
		return "both listeners"
	}
	return s
}

// schemaType describes a schema in a few words, linking named schemas.
func schemaType(ref *openapi3.SchemaRef) template.HTML {
	if ref == nil {
		return ""
	}
	if ref.Ref != "" {
		name := ref.Ref[strings.LastIndex(ref.Ref, "/")+1:]
		return template.HTML(fmt.Sprintf(`<a href="#schema-%s">%s</a>`, template.HTMLEscapeString(name), template.HTMLEscapeString(name)))
	}
	s := ref.Value
	if s == nil {
		return ""
	}
	var typ string
	if s.Type != nil {
		typ = strings.Join(s.Type.Slice(), "|")
	}
	switch {
	case typ == "array" && s.Items != nil:
		return "array of " + schemaType(s.Items)
	case typ == "object" && s.AdditionalProperties.Schema != nil:
		return "map of " + schemaType(s.AdditionalProperties.Schema)
	}
	out := template.HTMLEscapeString(typ)
	if s.Format != "" {
		out += " (" + template.HTMLEscapeString(s.Format) + ")"
	}
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			vals[i] = fmt.Sprint(e)
		}
		out += ": " + template.HTMLEscapeString(strings.Join(vals, ", "))
	}
	if s.Pattern != "" {
		out += " matching <code>" + template.HTMLEscapeString(s.Pattern) + "</code>"
	}
	return template.HTML(out)
}

func sortedKeys(v any) []string {
	var keys []string
	switch m := v.(type) {
	case openapi3.Schemas:
		for k := range m {
			keys = append(keys, k)
		}
	case map[string]*openapi3.ResponseRef:
		for k := range m {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
