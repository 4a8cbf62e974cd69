package stackv1

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/httpapi"
)

// FuzzReadBody feeds the provider's body reader arbitrary bodies of every content type it
// takes (JSON, form, text/plain and octet-stream holding JSON) and some it refuses, then the
// field readers of a route. Nothing may panic; a refusal must be written as a client error
// (never a 500); an accepted body must hold only text PostgreSQL can store.
func FuzzReadBody(f *testing.F) {
	for _, c := range []struct{ ctype, body string }{
		{"application/json", `{"email":"a@b.co","password":"correct-horse"}`},
		{"application/json; charset=utf-8",
			`{"display_name":null,"client_metadata":{"a":[1,2.5e3]}}`},
		{"text/plain", `{"email":"x"}`},
		{"application/octet-stream", `{"primary_email_auth_enabled":"true"}`},
		{"", `{"n":12345678901234567890123456789}`},
		{"application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=x&a=1&a=2"},
		{"application/x-www-form-urlencoded", "email=%FF%00&password=%zz"},
		{"application/json", `{"email":"\u0000"}`},
		{"application/json", `{"\u0000":1}`},
		{"application/json", `{"a":{"b":["\ud800"]}}`},
		{"application/json", `{} {}`},
		{"application/json", `[]`},
		{"application/json", `null`},
		{"multipart/form-data; boundary=x", "--x--"},
		{"application/xml", `<a/>`},
		{"text/plain; charset", `{}`},
	} {
		f.Add(c.ctype, []byte(c.body), false)
	}
	f.Add("application/json", []byte(`{"email":"a"}`), true)
	a := &API{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.Fuzz(func(t *testing.T, ctype string, body []byte, get bool) {
		method := http.MethodPost
		if get {
			method = http.MethodGet
		}
		r := httptest.NewRequest(method, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, httpapi.MaxBody)
		m, err := readBody(r)
		if err == nil {
			if m == nil {
				t.Fatal("no error and no body")
			}
			if err := checkText(m); err != nil {
				t.Fatalf("accepted text PostgreSQL cannot store: %v", err)
			}
			// The field readers of a route: whatever they say must be a client error too.
			fs := newFields(m, "email", "password", "display_name", "client_metadata")
			fs.str("email")
			fs.required("password")
			fs.boolean("primary_email_auth_enabled")
			fs.raw("client_metadata")
			err = fs.err
		}
		if err == nil {
			return
		}
		if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge {
			t.Fatalf("error of kind %v: %v", k, err)
		}
		w := httptest.NewRecorder()
		a.writeError(w, r, err)
		if w.Code >= 500 {
			t.Fatalf("written as %d: %s", w.Code, w.Body)
		}
	})
}
