// Package stackv1 is the HTTP adapter of the auth provider under /api/v1, compatible with
// Stack Auth's REST protocol and its official JavaScript SDK: x-stack-* and x-hexclave-*
// headers, known errors with their header and body, and Stack's user shapes.
package stackv1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/neonauth"
)

// Prefix is where the provider is served.
const Prefix = "/api/v1"

// API serves the provider.
type API struct {
	Identity *identity.Service
	Auth     *neonauth.Service
	Log      *slog.Logger
	// Limits are the sign-in rate limits (limits.go); nil allows everything.
	Limits *httpapi.Limiters
}

// header reads a Stack request header, preferring the x-hexclave- spelling.
func header(r *http.Request, name string) string {
	if v := r.Header.Get("x-hexclave-" + name); v != "" {
		return v
	}
	return r.Header.Get("x-stack-" + name)
}

func setBoth(w http.ResponseWriter, name, value string) {
	w.Header().Set("x-stack-"+name, value)
	w.Header().Set("x-hexclave-"+name, value)
}

// knownBody is a known error's body.
type knownBody struct {
	Code    string         `json:"code"`
	Details map[string]any `json:"details,omitempty"`
	Error   string         `json:"error"`
}

var plainStatus = map[errs.Kind]int{
	errs.NotFound:             http.StatusNotFound,
	errs.Conflict:             http.StatusConflict,
	errs.Unauthenticated:      http.StatusUnauthorized,
	errs.Forbidden:            http.StatusForbidden,
	errs.TooLarge:             http.StatusRequestEntityTooLarge,
	errs.TooManyRequests:      http.StatusTooManyRequests,
	errs.UnsupportedMediaType: http.StatusBadRequest,
	errs.Invalid:              http.StatusBadRequest,
	errs.PreconditionFailed:   http.StatusPreconditionFailed,
	errs.Unavailable:          http.StatusServiceUnavailable,
}

// writeError writes err as a Stack known error, or as plain text for errors that are not
// known errors. A domain validation error without a code becomes SCHEMA_ERROR.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := errs.As(err)
	if e.Known == "" && e.Kind == errs.Invalid && !e.Plain {
		e = errs.KnownError(errs.Invalid, "SCHEMA_ERROR", e.Message,
			map[string]any{"message": e.Message})
	}
	if e.Known == "" && e.Kind == errs.UnsupportedMediaType {
		e = bodyParsing(e.Message)
	}
	status, ok := plainStatus[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	if e.Known != "" {
		httpapi.AddLog(r.Context(), slog.String("error_code", e.Known))
		setBoth(w, "known-error", e.Known)
		a.write(w, r, status, "application/json; charset=utf-8",
			mustJSON(knownBody{Code: e.Known, Details: e.Details, Error: e.Message}))
		return
	}
	msg := e.Message
	if status == http.StatusInternalServerError {
		a.Log.Error("request failed", "request_id", httpapi.RequestID(r.Context()),
			"err", err.Error())
		msg = "Something went wrong. Request ID: " + httpapi.RequestID(r.Context())
	}
	a.write(w, r, status, "text/plain; charset=utf-8", []byte(msg))
}

// write sends a response, turning a 4xx into 200 with the real status in a header when the
// client asked for it with x-stack-override-error-status.
func (a *API) write(w http.ResponseWriter, r *http.Request, status int, ctype string, body []byte) {
	if status >= 400 && status < 500 && header(r, "override-error-status") != "" {
		setBoth(w, "actual-status", fmt.Sprint(status))
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("stackv1: encode response: " + err.Error())
	}
	return buf.Bytes()
}

func (a *API) json(w http.ResponseWriter, r *http.Request, status int, v any) {
	a.write(w, r, status, "application/json; charset=utf-8", mustJSON(v))
}

// allowedHeaders are the request headers browsers may send cross-origin.
var allowedHeaders = func() string {
	names := []string{"project-id", "branch-id", "access-type", "publishable-client-key",
		"secret-server-key", "super-secret-admin-key", "admin-access-token", "access-token",
		"refresh-token", "allow-anonymous-user", "allow-restricted-user",
		"override-error-status", "client-version", "random-nonce"}
	out := []string{"content-type", "authorization", "x-request-id", "ngrok-skip-browser-warning"}
	for _, n := range names {
		out = append(out, "x-stack-"+n, "x-hexclave-"+n)
	}
	return strings.Join(out, ", ")
}()

// Register adds the /api/v1 routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	a.routes(mux)
	mux.Handle(Prefix+"/", a.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return errs.E(errs.NotFound, "no such API route: %s %s", r.Method, r.URL.Path)
	}))
}

// wrap adds the response conventions every provider route shares: CORS, no caching, the
// request id in both header spellings, and error writing.
func (a *API) wrap(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", allowedHeaders)
		h.Set("Access-Control-Expose-Headers", "content-type, x-stack-actual-status, "+
			"x-stack-known-error, x-hexclave-actual-status, x-hexclave-known-error, "+
			"x-stack-request-id, x-hexclave-request-id")
		h.Set("Cache-Control", "no-store, max-age=0")
		setBoth(w, "request-id", httpapi.RequestID(r.Context()))
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		err := checkRequestText(r) // text.go
		if err == nil {
			err = fn(w, r)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}

// readBody decodes a request body of any content type Stack accepts (JSON, form, text/plain
// or octet-stream holding JSON) into a flat map. Unknown keys are the caller's to refuse.
func readBody(r *http.Request) (map[string]any, error) {
	if r.Method == http.MethodGet {
		return map[string]any{}, nil
	}
	body, err := httpapi.ReadBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, bodyParsing("the form body could not be parsed")
		}
		out := map[string]any{}
		for k, v := range vals {
			out[k] = v[len(v)-1]
		}
		return out, checkText(out)
	case mt == "" || httpapi.IsJSON(ct) || mt == "text/plain" || mt == "application/octet-stream":
		var out map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil || out == nil {
			return nil, bodyParsing("the request body is not a JSON object")
		}
		if dec.More() {
			return nil, bodyParsing("the request body holds more than one JSON value")
		}
		return out, checkText(out)
	default:
		return nil, bodyParsing("unsupported content type " + mt)
	}
}

// checkText refuses strings, anywhere in a decoded body, that PostgreSQL cannot store in
// text or jsonb: NUL characters and (from a form body) invalid UTF-8.
func checkText(v any) error {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) || strings.ContainsRune(x, 0) {
			return schemaError("Request body contains a string that is not valid UTF-8 " +
				"text or contains a NUL character")
		}
	case map[string]any:
		for k, e := range x {
			if err := checkText(k); err != nil {
				return err
			}
			if err := checkText(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkText(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// bodyParsing is BODY_PARSING_ERROR. Stack sends it without details, but the SDK reads
// details.message when it decodes the error, so the details are sent.
func bodyParsing(msg string) *errs.Error {
	return errs.KnownError(errs.Invalid, "BODY_PARSING_ERROR", msg, map[string]any{"message": msg})
}

func schemaError(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return errs.KnownError(errs.Invalid, "SCHEMA_ERROR", msg, map[string]any{"message": msg})
}

// fields reads a decoded body against the keys a route allows.
type fields struct {
	m   map[string]any
	err error
}

func newFields(m map[string]any, allowed ...string) *fields {
	f := &fields{m: m}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for k := range m {
		if !ok[k] {
			f.err = schemaError("Request body contains unknown properties: %s", k)
			break
		}
	}
	return f
}

func (f *fields) has(k string) bool { _, ok := f.m[k]; return ok }

// str reads an optional string; present-but-null gives nil.
func (f *fields) str(k string) *string {
	v, ok := f.m[k]
	if !ok || v == nil || f.err != nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		f.err = schemaError("body.%s must be a string", k)
		return nil
	}
	return &s
}

func (f *fields) required(k string) string {
	s := f.str(k)
	if s == nil && f.err == nil {
		f.err = schemaError("body.%s is required", k)
		return ""
	}
	if s == nil {
		return ""
	}
	return *s
}

func (f *fields) boolean(k string) *bool {
	v, ok := f.m[k]
	if !ok || v == nil || f.err != nil {
		return nil
	}
	switch b := v.(type) {
	case bool:
		return &b
	case string:
		if b == "true" || b == "false" {
			x := b == "true"
			return &x
		}
	}
	f.err = schemaError("body.%s must be a boolean", k)
	return nil
}

// raw returns the JSON of a metadata field; present-but-null gives "null".
func (f *fields) raw(k string) json.RawMessage {
	v, ok := f.m[k]
	if !ok || f.err != nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		f.err = schemaError("body.%s is not valid JSON", k)
		return nil
	}
	return b
}
