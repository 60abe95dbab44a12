package intake

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// locate finds the JSON pointer of the member of data that encoding/json
// refused without saying where: an unknown key named unknown (its error
// names the key, not its path), or, when unknown is "", a value its field's
// own UnmarshalJSON refuses (a malformed time). t is the type decoded into.
// It answers "" (the whole body) when it cannot tell.
func locate(data []byte, t reflect.Type, unknown string) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return ""
	}
	var found []string
	walk(doc, t, "", unknown, &found)
	if len(found) == 0 {
		return ""
	}
	return found[0]
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// walk appends to found the pointer of every member of v (at pointer p) that
// t does not take.
func walk(v any, t reflect.Type, p, unknown string, found *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if unknown == "" && v != nil {
			raw, _ := json.Marshal(v)
			if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
				*found = append(*found, p)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			child := p + "/" + escapePointer(k)
			field, ok := fieldFor(t, k)
			switch {
			case !ok && k == unknown:
				*found = append(*found, child)
			case ok:
				walk(obj[k], field.Type, child, unknown, found)
			}
		}
	case reflect.Map:
		if obj, ok := v.(map[string]any); ok {
			for k, child := range obj {
				walk(child, t.Elem(), p+"/"+escapePointer(k), unknown, found)
			}
		}
	case reflect.Slice, reflect.Array:
		if arr, ok := v.([]any); ok {
			for i, child := range arr {
				walk(child, t.Elem(), p+"/"+strconv.Itoa(i), unknown, found)
			}
		}
	}
}

// fieldFor is the struct field encoding/json decodes key into: its JSON
// name, matched exactly first and then case-insensitively, as the decoder
// does.
func fieldFor(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold *reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if fold == nil && strings.EqualFold(name, key) {
			fold = &f
		}
	}
	if fold != nil {
		return *fold, true
	}
	return reflect.StructField{}, false
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
