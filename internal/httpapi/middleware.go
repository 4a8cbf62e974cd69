// Package httpapi holds what every HTTP adapter shares: request ids, the one request log
// line, panic recovery, body limits and JSON body decoding. The adapters for the management
// API (neonv2), the auth provider (stackv1) and the web pages (web) build on it.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/neonauth/neonauth/internal/errs"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

type ctxKey int

const (
	requestIDKey ctxKey = iota
	logAttrsKey
)

// RequestID returns the id of the request being served.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// logAttrs collects attributes that handlers add to the request's log line.
type logAttrs struct{ attrs []slog.Attr }

// AddLog adds attributes to the request's log line (never secrets).
func AddLog(ctx context.Context, attrs ...slog.Attr) {
	if la, ok := ctx.Value(logAttrsKey).(*logAttrs); ok {
		la.attrs = append(la.attrs, attrs...)
	}
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validRequestID accepts an incoming id only if it is short and printable.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Flush lets streaming responses through.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Observe is the outermost middleware: it assigns the request id (echoing a valid incoming
// X-Request-ID), recovers panics into a 500, caps the body size, and logs one line per
// request with stable keys. rec, when not nil, is told each request's route pattern,
// status and duration.
func Observe(log *slog.Logger, rec Recorder, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inner := r
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			id = newRequestID()
		}
		la := &logAttrs{}
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		ctx = context.WithValue(ctx, logAttrsKey, la)
		w.Header().Set("X-Request-ID", id)
		sw := &statusWriter{ResponseWriter: w}
		r.Body = http.MaxBytesReader(sw, r.Body, MaxBody)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic", "request_id", id, "panic", fmt.Sprint(v))
				if sw.status == 0 {
					http.Error(sw, "internal error", http.StatusInternalServerError)
				}
			}
			attrs := []slog.Attr{
				slog.String("request_id", id), slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", sw.status),
				slog.Int("bytes", sw.bytes),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("remote", ClientAddr(r)),
			}
			attrs = append(attrs, la.attrs...)
			log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
			if rec != nil {
				rec.ObserveHTTP(inner.Pattern, r.Method, sw.status, time.Since(start))
			}
		}()
		if strings.HasPrefix(r.URL.Path, mgmtPrefix) && !cleanPath(r.URL.Path) {
			notCleanRoute(sw, r, id)
			return
		}
		inner = r.WithContext(ctx)
		next.ServeHTTP(sw, inner)
	})
}

// Recorder records finished requests (the metrics).
type Recorder interface {
	ObserveHTTP(route, method string, status int, d time.Duration)
}

// mgmtPrefix is the management API's path prefix (neonv2.Prefix plus the slash).
const mgmtPrefix = "/api/v2/"

// cleanPath reports whether p is in canonical form (no "//", "." or ".." segments), a
// trailing slash allowed. net/http's ServeMux answers any other path with a redirect to its
// canonical form, which an API must not do.
func cleanPath(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// notCleanRoute answers a management API request for a path that is not canonical with
// the 404 that the management API gives every unknown route, in Neon's error body.
func notCleanRoute(w http.ResponseWriter, r *http.Request, id string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": errs.NotFound.String(),
		"message": "no such API route: " + r.Method + " " + r.URL.Path, "request_id": id})
}

// ClientAddr returns the client's IP address.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// IsJSON reports whether a Content-Type names JSON (parameters such as charset allowed).
func IsJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// ReadBody reads a request body within MaxBody. A larger body is a TooLarge error.
func ReadBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errs.E(errs.TooLarge, "request body is larger than %d bytes", MaxBody)
	}
	if err != nil {
		return nil, errs.E(errs.Invalid, "could not read the request body")
	}
	return b, nil
}

// DecodeJSON decodes a JSON object body into v. An empty body is an error when required and
// leaves v untouched otherwise; a non-JSON content type is UnsupportedMediaType; malformed
// JSON, a non-object and a mistyped field are Invalid errors that name the field.
func DecodeJSON(r *http.Request, v any, required bool) error {
	body, err := ReadBody(r)
	if err != nil {
		return err
	}
	if len(trimJSONSpace(string(body))) == 0 {
		if required {
			return errs.E(errs.Invalid, "request body is required: a JSON object")
		}
		return nil
	}
	if !IsJSON(r.Header.Get("Content-Type")) {
		return errs.E(errs.UnsupportedMediaType,
			"request body must be JSON: set Content-Type: application/json")
	}
	return UnmarshalObject(body, v)
}

// trimJSONSpace trims the four characters JSON counts as white space, and no others (a form
// feed or a no-break space is not white space to a JSON parser).
func trimJSONSpace(s string) string { return strings.Trim(s, " \t\r\n") }

// UnmarshalObject decodes body, which must be one JSON object, into v.
func UnmarshalObject(body []byte, v any) error {
	trimmed := trimJSONSpace(string(body))
	if !strings.HasPrefix(trimmed, "{") {
		if json.Valid(body) {
			return errs.E(errs.Invalid, "request body must be a JSON object")
		}
		return errs.E(errs.Invalid, "request body is not valid JSON")
	}
	dec := json.NewDecoder(strings.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// More would miss a stray "}" or "]" after the object.
	if trimJSONSpace(trimmed[dec.InputOffset():]) != "" {
		return errs.E(errs.Invalid, "request body must hold exactly one JSON object")
	}
	if field, ok := nulField(body); ok {
		return errs.E(errs.Invalid, "%s: must not contain NUL characters", field)
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return errs.E(errs.Invalid, "request body must be a JSON object")
		}
		return errs.E(errs.Invalid, "%s: must be a JSON %s", field, jsonKind(te.Type.Kind().String()))
	}
	return errs.E(errs.Invalid, "request body is not valid JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return "number"
	}
}
