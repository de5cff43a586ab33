package daemonconfig

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"reflect"
	"strings"
	"time"
)

// The package's own source: the field comments of the types the parser
// decodes into are the one description of every key, and Reference reads
// them from here, so that the reference cannot drift from the code.
//
//go:embed config.go policy.go nts.go upstream.go
var sourceFiles embed.FS

// Key describes one key of the configuration file.
type Key struct {
	// Path is the key's JSON path, "rate_limit.burst"; keys of the
	// objects in a list are written "upstream.sources[].address".
	Path string
	// Type is the JSON type: "string", "duration" (a string such as
	// "1s"), "integer", "number", "boolean", "list of strings", "object"
	// or "list of objects".
	Type string
	// Default is the default value as JSON; "" for objects, lists of
	// objects and the keys inside them, which have none of their own.
	Default string
	// Reload says whether a SIGHUP reload applies a change of the key.
	Reload string
	// Doc is the field's doc comment, on one line.
	Doc string
}

// Reference returns every key of the configuration file, in the order of
// the file, with its type, default, reload behaviour and meaning, all
// taken from the definitions Parse uses: the Config types, their doc
// comments, Default and Reloadable.
func Reference() ([]Key, error) {
	docs, err := fieldDocs()
	if err != nil {
		return nil, fmt.Errorf("config: reference: %w", err)
	}
	var def map[string]any
	if err := json.Unmarshal(defaultJSON, &def); err != nil {
		return nil, fmt.Errorf("config: reference: default: %w", err)
	}
	var keys []Key
	walkKeys(reflect.TypeOf(Config{}), "", "", def, docs, &keys)
	return keys, nil
}

// fieldDocs maps "Type.Field" to the field's doc comment. A field with no
// comment of its own right after a commented field on the previous line
// shares that comment ("ReadBuffer and WriteBuffer are ...").
func fieldDocs() (map[string]string, error) {
	docs := map[string]string{}
	fset := token.NewFileSet()
	entries, err := sourceFiles.ReadDir(".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		src, err := sourceFiles.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, e.Name(), src, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("config: reference: %w", err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			prevDoc, prevLine := "", -10
			for _, fld := range st.Fields.List {
				doc := strings.Join(strings.Fields(fld.Doc.Text()), " ")
				line := fset.Position(fld.Pos()).Line
				if doc == "" && line == prevLine+1 {
					doc = prevDoc
				}
				for _, name := range fld.Names {
					docs[ts.Name.Name+"."+name.Name] = doc
				}
				prevDoc, prevLine = doc, line
			}
			return false
		})
	}
	return docs, nil
}

func walkKeys(t reflect.Type, prefix, section string, def any, docs map[string]string, out *[]Key) {
	obj, _ := def.(map[string]any)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		sec := section
		if sec == "" {
			sec = name
		}
		k := Key{Path: path, Doc: docs[t.Name()+"."+f.Name], Reload: reloadText(sec, path)}
		v, has := obj[name]
		kind := f.Type.Kind()
		leaf := kind != reflect.Struct && !(kind == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct)
		if has && leaf {
			data, _ := json.Marshal(v)
			k.Default = string(data)
		}
		k.Type = typeName(f.Type, k.Default, k.Doc)
		switch {
		case f.Type.Kind() == reflect.Struct:
			*out = append(*out, k)
			walkKeys(f.Type, path, sec, v, docs, out)
			continue
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			*out = append(*out, k)
			walkKeys(f.Type.Elem(), path+"[]", sec, nil, docs, out)
			continue
		}
		*out = append(*out, k)
	}
}

// reloadText says what a SIGHUP does with a change of the key at path in
// the top-level section sec.
func reloadText(sec, path string) string {
	switch {
	case Reloadable(sec):
		return "yes"
	case path == "nts.cert_file" || path == "nts.key_file":
		return "no; the file is re-read"
	}
	return "no"
}

func typeName(t reflect.Type, def, doc string) string {
	switch t.Kind() {
	case reflect.Struct:
		return "object"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "list of objects"
		}
		return "list of strings"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.String:
		var s string
		if json.Unmarshal([]byte(def), &s) == nil && s != "" {
			if _, err := time.ParseDuration(s); err == nil {
				return "duration"
			}
		}
		if strings.Contains(doc, "duration") {
			return "duration"
		}
		return "string"
	}
	return t.Kind().String()
}

// WriteReference writes the configuration reference as Markdown: the
// text of examples/standalone/CONFIG.md, which "standalone
// -config-reference" prints.
func WriteReference(w io.Writer) error {
	keys, err := Reference()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(`# ntpkit daemon configuration reference

Every key of the daemon's JSON configuration file (examples/standalone,
` + "`-config file.json`" + `), generated from the Go definitions the parser
uses (package server/daemon/daemonconfig: the field comments, the embedded
default and the reload rules) by ` + "`standalone -config-reference`" + `. Do
not edit: a test fails when this file and the code disagree.

A file needs only the keys it changes; the others keep their defaults
(` + "`standalone -print-default-config`" + ` prints them all). Unknown keys,
wrong types and bad values are refused with the key's path. Durations are
strings such as "500ms", "64s" or "24h". "SIGHUP" says whether a reload
applies a change; other changes need a restart (the daemon logs which).

| key | type | default | SIGHUP | meaning |
| --- | --- | --- | --- | --- |
`)
	esc := strings.NewReplacer("|", `\|`)
	for _, k := range keys {
		def := "—"
		if k.Default != "" {
			def = "`" + k.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Path, k.Type, esc.Replace(def), k.Reload, esc.Replace(k.Doc))
	}
	_, err = w.Write(b.Bytes())
	return err
}
