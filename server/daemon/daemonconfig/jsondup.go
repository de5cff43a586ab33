package daemonconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxJSONDepth bounds the nesting findDuplicateKey walks.
const maxJSONDepth = 64

// errJSONTooDeep is returned for a document nested deeper than
// maxJSONDepth.
var errJSONTooDeep = errors.New("nested too deeply")

// findDuplicateKey returns the path ("access.names", "upstream.sources[1].nts")
// of the first key that appears twice in one JSON object of data, or ""
// when there is none. encoding/json would silently keep the last value
// (and matches keys without regard to case), so a file with two "access"
// sections would be half ignored; keys are compared the same way. A
// syntax error is returned as is, for the decoder to report.
func findDuplicateKey(data []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	path, err := walkJSON(dec, "", 0)
	if errors.Is(err, io.EOF) && len(bytes.TrimSpace(data)) > 0 {
		err = io.ErrUnexpectedEOF
	}
	return path, err
}

// walkJSON reads one JSON value from dec, at path, and returns the path
// of the first duplicate key in it.
func walkJSON(dec *json.Decoder, path string, depth int) (string, error) {
	if depth > maxJSONDepth {
		return "", fmt.Errorf("%s: %w", path, errJSONTooDeep)
	}
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return "", err
			}
			key, _ := kt.(string)
			p := key
			if path != "" {
				p = path + "." + key
			}
			if fold := strings.ToLower(key); seen[fold] {
				return p, nil
			} else {
				seen[fold] = true
			}
			if dup, err := walkJSON(dec, p, depth+1); dup != "" || err != nil {
				return dup, err
			}
		}
		_, err := dec.Token() // '}'
		return "", err
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if dup, err := walkJSON(dec, fmt.Sprintf("%s[%d]", path, i), depth+1); dup != "" || err != nil {
				return dup, err
			}
		}
		_, err := dec.Token() // ']'
		return "", err
	}
	return "", nil
}
