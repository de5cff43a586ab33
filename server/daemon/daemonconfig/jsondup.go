package daemonconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxJSONDepth bounds the nesting scanJSON walks.
const maxJSONDepth = 64

// errJSONTooDeep is returned for a document nested deeper than
// maxJSONDepth.
var errJSONTooDeep = errors.New("nested too deeply")

// jsonScan is what scanJSON learns about a document: the first key given
// twice in one object, and where every key and value starts, by path
// ("upstream.sources[1].key"), so that errors can name the list element
// and point at the line.
type jsonScan struct {
	dup    string           // path of the first duplicate key; "": none
	dupOff int64            // its offset
	keys   map[string]int64 // offset of each key (its opening quote), by path
	values map[string]int64 // offset of each value, by path
}

// findDuplicateKey returns the path ("access.names", "upstream.sources[1].nts")
// of the first key that appears twice in one JSON object of data, or ""
// when there is none. encoding/json would silently keep the last value
// (and matches keys without regard to case), so a file with two "access"
// sections would be half ignored; keys are compared the same way. A
// syntax error is returned as is, for the decoder to report.
func findDuplicateKey(data []byte) (string, error) {
	s, err := scanJSON(data)
	return s.dup, err
}

// scanJSON walks data token by token, stopping at the first duplicate
// key.
func scanJSON(data []byte) (*jsonScan, error) {
	w := &jsonWalker{
		data: data,
		dec:  json.NewDecoder(bytes.NewReader(data)),
		s:    &jsonScan{keys: map[string]int64{}, values: map[string]int64{}},
	}
	w.dec.UseNumber()
	err := w.walk("", 0)
	if errors.Is(err, io.EOF) && len(bytes.TrimSpace(data)) > 0 {
		err = io.ErrUnexpectedEOF
	}
	return w.s, err
}

type jsonWalker struct {
	data []byte
	dec  *json.Decoder
	s    *jsonScan
}

// next returns the offset of the next token: the decoder's offset past
// white space, commas and colons.
func (w *jsonWalker) next() int64 {
	off := w.dec.InputOffset()
	for off < int64(len(w.data)) && strings.IndexByte(" \t\r\n,:", w.data[off]) >= 0 {
		off++
	}
	return off
}

// walk reads one JSON value, at path, and records what it finds; it
// stops at the first duplicate key.
func (w *jsonWalker) walk(path string, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%s: %w", path, errJSONTooDeep)
	}
	w.s.values[path] = w.next()
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for w.dec.More() {
			off := w.next()
			kt, err := w.dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			p := join(path, key)
			if fold := strings.ToLower(key); seen[fold] {
				w.s.dup, w.s.dupOff = p, off
				return nil
			} else {
				seen[fold] = true
			}
			w.s.keys[p] = off
			if err := w.walk(p, depth+1); err != nil || w.s.dup != "" {
				return err
			}
		}
		_, err := w.dec.Token() // '}'
		return err
	case json.Delim('['):
		for i := 0; w.dec.More(); i++ {
			if err := w.walk(fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil || w.s.dup != "" {
				return err
			}
		}
		_, err := w.dec.Token() // ']'
		return err
	}
	return nil
}

// valuePath finds the value an encoding/json type error is about. The
// decoder names it without list indexes ("upstream.sources.key") and
// gives the offset just past it (end), so the value is the last one
// starting before end whose path, indexes removed, is field. It returns
// the value's path with its indexes and its offset; field and end when
// the scan has no such value.
func (s *jsonScan) valuePath(field string, end int64) (string, int64) {
	best, bestOff, found := field, end, false
	for p, off := range s.values {
		if off < end && stripIndexes(p) == field && (!found || off > bestOff) {
			best, bestOff, found = p, off, true
		}
	}
	return best, bestOff
}

// stripIndexes removes the list indexes from a path: "a[2].b" is "a.b".
func stripIndexes(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '[')
		if i < 0 {
			return b.String() + p
		}
		b.WriteString(p[:i])
		j := strings.IndexByte(p[i:], ']')
		if j < 0 {
			return b.String() + p[i:]
		}
		p = p[i+j+1:]
	}
}
