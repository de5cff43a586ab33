package daemonconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"
)

// position returns the 1-based line and column of byte offset off in data.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// describeJSONError turns encoding/json's errors into errors that point at
// the field and the line: unknown fields with their whole path
// ("rate_limit.brust"), type errors with the field and line:column, syntax
// errors with line:column.
// scan (scanJSON's) locates keys and values and gives list elements
// their index ("listen[1]", "upstream.sources[1].key").
func describeJSONError(data []byte, scan *jsonScan, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field, off := scan.valuePath(te.Field, te.Offset)
		line, col := position(data, off)
		return fieldErr(field, "wrong type at line %d, column %d: got JSON %s, want %s", line, col, te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Offset counts the bytes read, the offending one included.
		line, col := position(data, max(se.Offset-1, 0))
		return fmt.Errorf("config: JSON syntax error at line %d, column %d: %w", line, col, err)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		if path, known := unknownField(data, scan); path != "" {
			if off, ok := scan.keys[path]; ok {
				line, col := position(data, off)
				return fieldErr(path, "unknown field at line %d, column %d; the keys here are %s", line, col, known)
			}
			return fieldErr(path, "unknown field; the keys here are %s", known)
		}
	}
	if errors.Is(err, io.EOF) {
		return errors.New("config: the file is empty; want a JSON object")
	}
	return fmt.Errorf("config: %w", err)
}

// unknownField finds the first key of data (in document order) that
// Config has no field for, and returns its path and the keys allowed
// beside it.
func unknownField(data []byte, scan *jsonScan) (path, known string) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	if dec.Decode(&v) != nil {
		return "", ""
	}
	return walkUnknown(scan, v, reflect.TypeOf(Config{}), "")
}

func walkUnknown(scan *jsonScan, v any, t reflect.Type, prefix string) (string, string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return "", ""
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		// Visit keys in document order, so the first unknown one is
		// reported.
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return keyOffset(scan, join(prefix, keys[i])) < keyOffset(scan, join(prefix, keys[j]))
		})
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, k) {
						ft, ok = fields[name], true // encoding/json matches case-insensitively
					}
				}
			}
			if !ok {
				return join(prefix, k), strings.Join(names, ", ")
			}
			if p, kn := walkUnknown(scan, obj[k], ft, join(prefix, k)); p != "" {
				return p, kn
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return "", ""
		}
		for i, e := range arr {
			if p, kn := walkUnknown(scan, e, t.Elem(), fmt.Sprintf("%s[%d]", prefix, i)); p != "" {
				return p, kn
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return "", ""
		}
		for k, e := range obj {
			if p, kn := walkUnknown(scan, e, t.Elem(), join(prefix, k)); p != "" {
				return p, kn
			}
		}
	}
	return "", ""
}

// keyOffset is where the key at path starts in the document; keys the
// scan did not reach sort last.
func keyOffset(scan *jsonScan, path string) int64 {
	if off, ok := scan.keys[path]; ok {
		return off
	}
	return 1 << 62
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// parseDurationField parses a configuration duration and says precisely
// what is wrong with a bad one: not a duration at all, negative, or (when
// positive is set) zero.
func parseDurationField(field, s string, positive bool) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fieldErr(field, "%q is not a duration; write a number and a unit, such as \"500ms\", \"64s\" or \"24h\"", s)
	case d < 0:
		return 0, fieldErr(field, "%q is negative; want a duration of 0 or more", s)
	case d == 0 && positive:
		return 0, fieldErr(field, "%q is zero; want a duration above 0 (or leave the field empty for the default)", s)
	}
	return d, nil
}
