// Package openapi holds the API's OpenAPI 3 document, the contract of both
// HTTP listeners, and serves it: GET /openapi.json and a reference page
// rendered on the server from the document, with no outside assets.
//
// The document is written by hand (openapi.yaml) and checked against the
// handlers by the contract tests in starter/intake: each handler's answers
// are validated against it, and the routes the server registers must be
// exactly its paths. Endpoints added beside the core API bring their own
// fragment (fragments/*.yaml), merged in when the document is loaded.
package openapi

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var mainDocument []byte

// fragments holds fragments/*.yaml; the README keeps the directory
// embeddable when there is no fragment.
//
//go:embed fragments
var fragments embed.FS

// Paths of the document and the reference page on both listeners.
const (
	DocumentPath  = "/openapi.json"
	ReferencePath = "/docs"
)

// httpMethods are the keys of a path item that are operations.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// componentKinds are the components a fragment may add.
var componentKinds = []string{"schemas", "responses", "parameters", "headers", "requestBodies", "examples", "securitySchemes"}

var load = sync.OnceValues(func() (*loaded, error) {
	raw, err := merged(mainDocument, fragments)
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("openapi: load the document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: the document is not valid: %w", err)
	}
	page, err := renderReference(doc)
	if err != nil {
		return nil, err
	}
	return &loaded{doc: doc, json: raw, page: page}, nil
})

type loaded struct {
	doc  *openapi3.T
	json []byte
	page []byte
}

// Document is the API's OpenAPI document, fragments merged, loaded and
// validated once. Callers must not change it.
func Document() (*openapi3.T, error) {
	l, err := load()
	if err != nil {
		return nil, err
	}
	return l.doc, nil
}

// JSON is the document as served at /openapi.json.
func JSON() ([]byte, error) {
	l, err := load()
	if err != nil {
		return nil, err
	}
	return l.json, nil
}

// ReferencePage is the HTML reference page served at /docs.
func ReferencePage() ([]byte, error) {
	l, err := load()
	if err != nil {
		return nil, err
	}
	return l.page, nil
}

// merged is the main document with every fragment's paths, tags and
// components added, as indented JSON.
func merged(main []byte, fsys fs.FS) ([]byte, error) {
	doc, err := decodeYAML("openapi.yaml", main)
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(fsys, "fragments/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("openapi: list fragments: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("openapi: read %s: %w", name, err)
		}
		frag, err := decodeYAML(name, data)
		if err != nil {
			return nil, err
		}
		if err := mergeFragment(doc, frag, path.Base(name)); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi: encode the document: %w", err)
	}
	return buf.Bytes(), nil
}

func decodeYAML(name string, data []byte) (map[string]any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("openapi: %s: %w", name, err)
	}
	m, ok := jsonable(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("openapi: %s is not a YAML mapping", name)
	}
	return m, nil
}

// jsonable turns what YAML decodes into what JSON encodes: mapping keys
// become strings (an unquoted status code such as 200 decodes as a number).
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	}
	return v
}

// mergeFragment adds frag's paths, tags and components to doc. Anything
// defined twice is an error: a fragment never replaces another's
// definition.
func mergeFragment(doc, frag map[string]any, name string) error {
	var errs []error
	for key := range frag {
		switch key {
		case "paths", "tags", "components", "openapi", "info", "servers", "security":
			// A fragment written as a whole document may repeat its
			// header; the main document's own is kept.
		default:
			errs = append(errs, fmt.Errorf("openapi: fragment %s: top-level %q is not merged; use paths, tags and components", name, key))
		}
	}
	if paths, ok := frag["paths"].(map[string]any); ok {
		dst := child(doc, "paths")
		for p, item := range paths {
			if _, dup := dst[p]; dup {
				errs = append(errs, fmt.Errorf("openapi: fragment %s: path %s is already defined", name, p))
				continue
			}
			// Each operation says which fragment brought it (x-fragment),
			// for the reference page and the contract tests.
			if ops, ok := item.(map[string]any); ok {
				for method, op := range ops {
					if opm, ok := op.(map[string]any); ok && slices.Contains(httpMethods, method) {
						opm["x-fragment"] = name
					}
				}
			}
			dst[p] = item
		}
	}
	if tags, ok := frag["tags"].([]any); ok {
		have, _ := doc["tags"].([]any)
		for _, t := range tags {
			tm, _ := t.(map[string]any)
			if slices.ContainsFunc(have, func(h any) bool { hm, _ := h.(map[string]any); return hm["name"] == tm["name"] }) {
				errs = append(errs, fmt.Errorf("openapi: fragment %s: tag %v is already defined", name, tm["name"]))
				continue
			}
			have = append(have, t)
		}
		doc["tags"] = have
	}
	if comps, ok := frag["components"].(map[string]any); ok {
		dstComps := child(doc, "components")
		for kind, defs := range comps {
			if !slices.Contains(componentKinds, kind) {
				errs = append(errs, fmt.Errorf("openapi: fragment %s: components.%s is not merged", name, kind))
				continue
			}
			src, _ := defs.(map[string]any)
			dst := child(dstComps, kind)
			for n, def := range src {
				if have, dup := dst[n]; dup && reflect.DeepEqual(have, def) {
					continue // the same definition repeated: no conflict
				} else if dup {
					errs = append(errs, fmt.Errorf("openapi: fragment %s: components.%s.%s is already defined", name, kind, n))
					continue
				}
				dst[n] = def
			}
		}
	}
	return errors.Join(errs...)
}

func child(m map[string]any, key string) map[string]any {
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

// Operation is one operation of the document, by method and path.
type Operation struct {
	Method, Path string
	*openapi3.Operation
	// Surface is the listener that serves it: "private", "public" or
	// "both" (the x-surface extension).
	Surface string
	// Fragment is the fragment file that added the operation; "" for the
	// main document's.
	Fragment string
}

// Operations lists the document's operations, ordered by path and method.
func Operations(doc *openapi3.T) []Operation {
	var out []Operation
	for _, p := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(p)
		for method, op := range item.Operations() {
			surface, _ := op.Extensions["x-surface"].(string)
			fragment, _ := op.Extensions["x-fragment"].(string)
			out = append(out, Operation{Method: method, Path: p, Operation: op, Surface: surface, Fragment: fragment})
		}
	}
	slices.SortFunc(out, func(a, b Operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return out
}

// Match finds the operation that serves method and path (a request's
// decoded URL path), and the path's parameters. A path parameter marked
// x-rest-of-path takes the rest of the path, slashes included, as the
// server's {name...} pattern does.
func Match(doc *openapi3.T, method, urlPath string) (Operation, map[string]string, bool) {
	for _, op := range Operations(doc) {
		if op.Method != strings.ToUpper(method) {
			continue
		}
		if params, ok := matchPath(doc, op, urlPath); ok {
			return op, params, true
		}
	}
	return Operation{}, nil, false
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func matchPath(doc *openapi3.T, op Operation, urlPath string) (map[string]string, bool) {
	rest := map[string]bool{}
	for _, p := range append(slices.Clone(doc.Paths.Value(op.Path).Parameters), op.Parameters...) {
		if p.Value != nil && p.Value.In == "path" && p.Value.Extensions["x-rest-of-path"] == true {
			rest[p.Value.Name] = true
		}
	}
	var names []string
	var pattern strings.Builder
	last := 0
	for _, loc := range pathParam.FindAllStringSubmatchIndex(op.Path, -1) {
		pattern.WriteString(regexp.QuoteMeta(op.Path[last:loc[0]]))
		name := op.Path[loc[2]:loc[3]]
		names = append(names, name)
		if rest[name] {
			pattern.WriteString("(.+)")
		} else {
			pattern.WriteString("([^/]+)")
		}
		last = loc[1]
	}
	pattern.WriteString(regexp.QuoteMeta(op.Path[last:]))
	m := regexp.MustCompile("^" + pattern.String() + "$").FindStringSubmatch(urlPath)
	if m == nil {
		return nil, false
	}
	out := make(map[string]string, len(names))
	for i, n := range names {
		out[n] = m[i+1]
	}
	return out, true
}
