package stackv1

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// checkRequestText refuses a request whose path, query or Stack headers hold text that
// PostgreSQL cannot compare with what it stores (invalid UTF-8, NUL characters): each of
// them ends up in a lookup, which would fail with a 500 instead of a client error.
func checkRequestText(r *http.Request) error {
	bad := schemaError("The request path, query or x-stack-* headers hold text that is not " +
		"valid UTF-8 or contains a NUL character")
	if !isText(r.URL.Path) {
		return bad
	}
	for k, vs := range r.URL.Query() {
		if !isText(k) || !allText(vs) {
			return bad
		}
	}
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if (strings.HasPrefix(lk, "x-stack-") || strings.HasPrefix(lk, "x-hexclave-")) &&
			!allText(vs) {
			return bad
		}
	}
	return nil
}

func allText(vs []string) bool {
	for _, v := range vs {
		if !isText(v) {
			return false
		}
	}
	return true
}

func isText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
