package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
)

// nulField finds the first string of a JSON text, key or value, that holds a NUL character
// (only the \u0000 escape can put one there) and returns where it is, as the decoder's
// errors name fields ("project.name"); a key with a NUL is named by the object holding it.
// PostgreSQL cannot store NUL in text, so such a string would fail deep inside a handler
// instead of being refused up front. Malformed JSON is left to the decoder to report.
func nulField(body []byte) (string, bool) {
	if !bytes.Contains(body, []byte(`\u0000`)) {
		return "", false
	}
	type frame struct {
		object, wantKey bool
		key             string
	}
	var stack []frame
	path := func(withKey bool) string {
		var parts []string
		for i, f := range stack {
			if f.object && f.key != "" && (withKey || i < len(stack)-1) {
				parts = append(parts, f.key)
			}
		}
		if len(parts) == 0 {
			return "request body"
		}
		return strings.Join(parts, ".")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				stack = append(stack, frame{object: d == '{', wantKey: d == '{'})
				continue
			}
			stack = stack[:top]
			top--
		} else if s, ok := tok.(string); ok {
			isKey := top >= 0 && stack[top].object && stack[top].wantKey
			if strings.ContainsRune(s, 0) {
				return path(!isKey), true
			}
			if isKey {
				stack[top].key, stack[top].wantKey = s, false
				continue
			}
		}
		// A value is complete: the object holding it wants a key next.
		if top >= 0 && stack[top].object {
			stack[top].wantKey = true
		}
	}
}
