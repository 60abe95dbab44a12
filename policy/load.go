package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SelectionFile is the name of the selection file among policy files.
const SelectionFile = "selection.yaml"

// Parse reads one policy file: YAML (.yaml, .yml) or JSON (.json), chosen by
// name's extension. Decoding is strict (unknown fields are errors) and the
// policy is validated; every error starts with name and names the field.
func Parse(name string, data []byte) (Policy, error) {
	var p Policy
	if err := decodeStrict(name, data, &p); err != nil {
		return Policy{}, err
	}
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// decodeStrict decodes YAML or JSON into v, refusing unknown fields and
// trailing data. YAML is read into plain values and re-encoded as JSON, so
// both formats share the JSON field names and the same strict decoder.
func decodeStrict(name string, data []byte, v any) error {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml":
		var node yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&node); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: %w: the file is empty", name, ErrInvalid)
			}
			return fmt.Errorf("%s: %w: %w", name, ErrInvalid, err)
		}
		var extra any
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w: a policy file holds exactly one YAML document", name, ErrInvalid)
		}
		doc, err := plain(&node)
		if err != nil {
			return fmt.Errorf("%s: %w: %w", name, ErrInvalid, err)
		}
		js, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("%s: %w: %w", name, ErrInvalid, err)
		}
		data = js
	case ".json":
	default:
		return fmt.Errorf("%s: %w: not a .yaml, .yml or .json file", name, ErrInvalid)
	}
	var generic any
	if json.Unmarshal(data, &generic) == nil {
		if field := unknownField(generic, reflect.TypeOf(v).Elem(), ""); field != "" {
			return fmt.Errorf("%s: %w: unknown field %q", name, ErrInvalid, field)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w: %s", name, ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w: data after the top-level value", name, ErrInvalid)
	}
	return nil
}

// LoadDir reads every policy file (.yaml, .yml, .json) in dir, sorted by
// file name, skipping subdirectories and the selection file. Names must be
// unique across the files.
func LoadDir(dir string) ([]Policy, error) {
	return loadPolicies(os.DirFS(dir), ".", dir)
}

func loadPolicies(fsys fs.FS, dir, label string) ([]Policy, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read policy directory: %w", err)
	}
	var out []Policy
	where := map[string]string{}
	for _, e := range entries { // fs.ReadDir sorts by name
		if e.IsDir() || e.Name() == SelectionFile || !isPolicyFile(e.Name()) {
			continue
		}
		file := path.Join(label, e.Name())
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		p, err := Parse(file, data)
		if err != nil {
			return nil, err
		}
		if prev, dup := where[p.Name]; dup {
			return nil, fmt.Errorf("%s: %w: name %q is already used by %s", file, ErrInvalid, p.Name, prev)
		}
		where[p.Name] = file
		out = append(out, p)
	}
	return out, nil
}

func isPolicyFile(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// loadSelection reads dir's selection file; ok is false when there is none.
func loadSelection(fsys fs.FS, dir, label string) (s Selection, ok bool, err error) {
	data, err := fs.ReadFile(fsys, path.Join(dir, SelectionFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Selection{}, false, nil
	}
	if err != nil {
		return Selection{}, false, fmt.Errorf("read %s: %w", path.Join(label, SelectionFile), err)
	}
	s, err = ParseSelection(path.Join(label, SelectionFile), data)
	return s, err == nil, err
}

func loadFS(fsys fs.FS, dir string) (*Catalog, error) {
	ps, err := loadPolicies(fsys, dir, dir)
	if err != nil {
		return nil, err
	}
	c, err := NewCatalog(ps...)
	if err != nil {
		return nil, err
	}
	s, ok, err := loadSelection(fsys, dir, dir)
	if err != nil {
		return nil, err
	}
	if ok {
		return c.WithSelection(s)
	}
	return c, nil
}

// WithDir is c with the policy files in dir (see LoadDir and With) and, when
// dir holds a selection.yaml, that selection instead of c's.
func (c *Catalog) WithDir(dir string) (*Catalog, error) {
	ps, err := LoadDir(dir)
	if err != nil {
		return nil, err
	}
	s, ok, err := loadSelection(os.DirFS(dir), ".", dir)
	if err != nil {
		return nil, err
	}
	base := c
	if ok {
		// Check the new selection against the new policies, not the old.
		base = &Catalog{policies: c.policies}
	}
	out, err := base.With(ps...)
	if err != nil {
		return nil, err
	}
	if ok {
		return out.WithSelection(s)
	}
	return out, nil
}

// sortedCopy returns the offsets in ascending order.
func sortedCopy(ds []Duration) []Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

// plain turns a YAML node into maps, slices and scalars for re-encoding as
// JSON. Timestamps stay strings ("2026-12-25" is a date, not an instant).
func plain(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return plain(n.Content[0])
	case yaml.AliasNode:
		return plain(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := plain(c)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				return nil, fmt.Errorf("line %d: keys must be plain names", k.Line)
			}
			if _, dup := out[k.Value]; dup {
				return nil, fmt.Errorf("line %d: field %q is set twice", k.Line, k.Value)
			}
			v, err := plain(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!timestamp":
			return n.Value, nil
		case "!!null":
			return nil, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// unknownField returns the path (e.g. "ladder[1].when") of the first field
// in v that t does not have, matching JSON names exactly (encoding/json
// alone would accept "Name" for "name" and not say where a field was).
func unknownField(v any, t reflect.Type, at string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		fields := map[string]reflect.Type{}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[k]
			p := k
			if at != "" {
				p = at + "." + k
			}
			if !ok {
				return p
			}
			if bad := unknownField(m[k], ft, p); bad != "" {
				return bad
			}
		}
	case reflect.Slice, reflect.Array:
		if list, ok := v.([]any); ok {
			for i, e := range list {
				if bad := unknownField(e, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); bad != "" {
					return bad
				}
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if bad := unknownField(m[k], t.Elem(), fmt.Sprintf("%s[%s]", at, k)); bad != "" {
					return bad
				}
			}
		}
	}
	return ""
}
