// Package neonv2 is the HTTP adapter of the management API under /api/v2: Neon's paths,
// JSON shapes, statuses and error body {code, message, request_id}.
package neonv2

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/usersync"
)

// Prefix is where the management API is served.
const Prefix = "/api/v2"

// API serves the management API.
type API struct {
	Console  *console.Service
	Auth     *neonauth.Service
	Identity *identity.Service
	// Sync answers the sync status and resync extensions.
	Sync *usersync.Worker
	Log  *slog.Logger
	// Limits are the rate limits; nil allows everything.
	Limits *httpapi.Limiters
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, p console.Principal) error

var statuses = map[errs.Kind]int{
	errs.Invalid:              http.StatusBadRequest,
	errs.NotFound:             http.StatusNotFound,
	errs.Conflict:             http.StatusConflict,
	errs.Unauthenticated:      http.StatusUnauthorized,
	errs.Forbidden:            http.StatusForbidden,
	errs.UnsupportedMediaType: http.StatusUnsupportedMediaType,
	errs.TooLarge:             http.StatusRequestEntityTooLarge,
	errs.PreconditionFailed:   http.StatusPreconditionFailed,
	errs.TooManyRequests:      http.StatusTooManyRequests,
	errs.Unavailable:          http.StatusServiceUnavailable,
}

// Status returns the HTTP status of an error kind.
func Status(k errs.Kind) int {
	if s, ok := statuses[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// WriteError writes err as Neon's error body. The client sees the public message; the
// cause of an internal error goes to the log only.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := errs.As(err)
	status := Status(e.Kind)
	msg := e.Message
	if e.Kind == errs.Internal {
		log.Error("request failed", "request_id", httpapi.RequestID(r.Context()),
			"err", err.Error())
		if msg == "" {
			msg = "internal error"
		}
	}
	httpapi.AddLog(r.Context(), slog.String("error_code", e.Kind.String()))
	writeJSON(w, status, errorBody{Code: e.Kind.String(), Message: msg,
		RequestID: httpapi.RequestID(r.Context())})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Register adds every /api/v2 route to mux.
func (a *API) Register(mux *http.ServeMux) {
	a.routes(mux)
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, a.Log, errs.E(errs.NotFound, "no such API route: %s %s",
			r.Method, r.URL.Path))
	})
	mux.Handle(Prefix+"/", notFound)
	// Without this, ServeMux would redirect the bare prefix to Prefix+"/".
	mux.Handle(Prefix, notFound)
}

// handle registers a route: it authenticates the caller, applies the rate limits, and
// writes the error the route returns in Neon's error body.
func (a *API) handle(mux *http.ServeMux, pattern string, fn handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	full := method + " " + Prefix + path
	lim := a.Limits
	if lim == nil {
		lim = &httpapi.Limiters{}
	}
	mux.Handle(full, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.limited(w, r, lim, full)
		if err == nil {
			err = fn(w, r, p)
		}
		if err != nil {
			WriteError(w, r, a.Log, err)
		}
	}))
}

// limited authenticates a request and applies the rate limits: the failed authentications
// of its client address, then the burst of its account on the route, then the account's
// requests a minute. A request refused by a limit is a TooManyRequests error, with
// Retry-After set.
func (a *API) limited(w http.ResponseWriter, r *http.Request, lim *httpapi.Limiters,
	route string) (console.Principal, error) {
	addr := httpapi.ClientAddr(r)
	if blocked, wait := lim.AuthFailures.Blocked(addr); blocked {
		httpapi.AddLog(r.Context(), slog.String("rate_limit", "auth_failures"))
		return console.Principal{}, httpapi.TooManyRequests(w, wait,
			"too many failed authentications from this address")
	}
	p, err := a.authenticate(r)
	if errs.Is(err, errs.Unauthenticated) {
		lim.AuthFailures.Allow(addr)
	}
	if err != nil {
		return p, err
	}
	if err := checkText(r); err != nil {
		return p, err
	}
	account := p.AccountID.String()
	httpapi.AddLog(r.Context(), slog.String("account_id", account),
		slog.Int64("api_key_id", p.KeyID))
	if ok, wait := lim.Route.Allow(account + " " + route); !ok {
		httpapi.AddLog(r.Context(), slog.String("rate_limit", "route"))
		return p, httpapi.TooManyRequests(w, wait,
			"rate limit exceeded: at most %d requests a second to this route",
			lim.Limits.RouteBurst)
	}
	if ok, wait := lim.Account.Allow(account); !ok {
		httpapi.AddLog(r.Context(), slog.String("rate_limit", "account"))
		return p, httpapi.TooManyRequests(w, wait,
			"rate limit exceeded: at most %d requests a minute per account",
			lim.Limits.AccountPerMinute)
	}
	return p, nil
}

func (a *API) authenticate(r *http.Request) (console.Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return console.Principal{}, errs.E(errs.Unauthenticated,
			"authorization failed: send Authorization: Bearer <API key>")
	}
	return a.Console.Authenticate(r.Context(), strings.TrimSpace(token), httpapi.ClientAddr(r))
}

// checkText refuses a path or query that PostgreSQL could not even compare with what it
// stores: invalid UTF-8 or a NUL character, which would make every lookup fail.
func checkText(r *http.Request) error {
	if !isText(r.URL.Path) {
		return errs.E(errs.Invalid, "request path must be UTF-8 text without NUL characters")
	}
	for k, vs := range r.URL.Query() {
		ok := isText(k)
		for _, v := range vs {
			ok = ok && isText(v)
		}
		if !ok {
			return errs.E(errs.Invalid, "query parameters must be UTF-8 text without NUL "+
				"characters")
		}
	}
	return nil
}

func isText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
