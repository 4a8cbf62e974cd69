package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/neonauth/neonauth/internal/errs"
)

// fuzzBody has a field of each shape the management API's bodies use: strings, optional
// strings, numbers, booleans and nested optional objects.
type fuzzBody struct {
	Project *struct {
		Name      string `json:"name"`
		PGVersion int    `json:"pg_version"`
		Branch    *struct {
			Name string `json:"name"`
		} `json:"branch"`
	} `json:"project"`
	ProjectID  *string `json:"project_id"`
	DeleteData *bool   `json:"delete_data"`
	KeyName    string  `json:"key_name"`
}

// FuzzDecodeJSON feeds DecodeJSON arbitrary bodies and content types. It must never panic;
// every refusal is a client error with a message that names no Go type; and whatever it
// accepts is one JSON object without NUL characters.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"project":{"name":"p","pg_version":17,"branch":{"name":"main"}}}`,
		`{"project_id":"cold-poetry-00000000","delete_data":true,"key_name":"k"}`,
		`{"project":{"pg_version":"17"}}`, `{"project":{"branch":[]}}`, `{"delete_data":1}`,
		`{"project_id":"\u0000"}`, `{"a\u0000":1}`, `{"key_name":"\\u0000"}`,
		`{} {}`, `{}x`, `[]`, `null`, `"s"`, ` {"key_name":"\ud800"} `, `{"project":` +
			strings.Repeat(`{"branch":`, 200) + `null` + strings.Repeat(`}`, 201),
		`{"project":{"pg_version":1e400}}`, "\xef\xbb\xbf{}", "{\"key_name\":\"\xff\"}",
	} {
		f.Add("application/json", []byte(s), true)
	}
	f.Add("application/json; charset=utf-8", []byte(`{}`), false)
	f.Add("application/merge-patch+json", []byte(`{"delete_data":false}`), false)
	f.Add("text/plain", []byte(`{}`), true)
	f.Add("", []byte(""), true)
	f.Add("application/json", []byte(" \n\t"), false)
	f.Fuzz(func(t *testing.T, ctype string, body []byte, required bool) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, MaxBody)
		var v fuzzBody
		err := DecodeJSON(r, &v, required)
		if err == nil {
			trimmed := bytes.TrimSpace(body)
			if len(trimmed) == 0 {
				if required {
					t.Fatal("an empty body was accepted where one is required")
				}
				return
			}
			if !json.Valid(body) || trimmed[0] != '{' || hasNULString(body) {
				t.Fatalf("accepted %q", body)
			}
			return
		}
		var e *errs.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is not a domain error", err)
		}
		switch e.Kind {
		case errs.Invalid, errs.UnsupportedMediaType, errs.TooLarge:
		default:
			t.Fatalf("error of kind %v: %v", e.Kind, err)
		}
		if e.Message == "" || strings.Contains(e.Message, "httpapi.") ||
			strings.Contains(e.Message, "struct") || strings.Contains(e.Message, "json:") {
			t.Fatalf("message %q", e.Message)
		}
	})
}

// hasNULString decodes a JSON text generically and reports whether a key or string value in
// it holds a NUL character: the oracle for what DecodeJSON must refuse.
func hasNULString(body []byte) bool {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case string:
			return strings.ContainsRune(x, 0)
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for k, e := range x {
				if strings.ContainsRune(k, 0) || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
