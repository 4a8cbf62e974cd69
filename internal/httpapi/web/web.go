// Package web serves the pages people use in a browser: the confirm page of an ownership
// transfer, and the owner's sign-in and project list. Owners are users of the internal auth
// project. Pages are plain HTML with a strict Content-Security-Policy; every POST carries a
// CSRF token (double-submit cookie) and must come from our own origin.
package web

import (
	"crypto/subtle"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/identity"
	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/secret"
)

//go:embed templates/*.html
var templateFiles embed.FS

var pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// Cookie names.
const (
	sessionCookie = "neonauth_session"
	csrfCookie    = "neonauth_csrf"
)

// Pages serves the web pages.
type Pages struct {
	Auth      *neonauth.Service
	Identity  *identity.Service
	Log       *slog.Logger
	PublicURL string
}

// Register adds the pages to mux.
func (p *Pages) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+neonauth.TransferPath, p.page(p.confirmForm))
	mux.HandleFunc("POST "+neonauth.TransferPath, p.page(p.confirmPost))
	mux.HandleFunc("GET /sign-in", p.page(p.signInForm))
	mux.HandleFunc("POST /sign-in", p.page(p.signInPost))
	mux.HandleFunc("POST /sign-out", p.page(p.signOut))
	mux.HandleFunc("GET /projects", p.page(p.projects))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/projects", http.StatusSeeOther)
	})
}

type pageFunc func(w http.ResponseWriter, r *http.Request) error

// page sets the security headers every page shares and renders errors as an error page.
func (p *Pages) page(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "+
			"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if err := fn(w, r); err != nil {
			p.errorPage(w, r, err)
		}
	}
}

func (p *Pages) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	e := errs.As(err)
	status := http.StatusBadRequest
	switch e.Kind {
	case errs.Internal:
		status = http.StatusInternalServerError
		p.Log.Error("page failed", "request_id", httpapi.RequestID(r.Context()), "err", err)
	case errs.Forbidden:
		status = http.StatusForbidden
	case errs.TooLarge:
		status = http.StatusRequestEntityTooLarge
	}
	msg := e.Message
	if status == http.StatusInternalServerError {
		msg = "Something went wrong. Request ID: " + httpapi.RequestID(r.Context())
	}
	p.render(w, status, "error.html", map[string]any{"Title": "This link cannot be used",
		"Message": msg, "Code": e.Known})
}

func (p *Pages) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		p.Log.Error("render page", "page", name, "err", err)
	}
}

// csrfToken returns the request's CSRF token, setting the cookie when it has none.
func (p *Pages) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	tok := secret.Code()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/", HttpOnly: true,
		Secure: p.secure(), SameSite: http.SameSiteStrictMode})
	return tok
}

func (p *Pages) secure() bool { return strings.HasPrefix(p.PublicURL, "https://") }

// checkPost refuses a POST that did not come from one of our pages: a foreign Origin, or a
// missing or wrong CSRF token.
func (p *Pages) checkPost(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return errs.E(errs.Invalid, "the form could not be read")
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" && !p.sameOrigin(r, origin) {
		return errs.E(errs.Forbidden, "this form was sent from another site")
	}
	c, err := r.Cookie(csrfCookie)
	form := r.PostForm.Get("csrf")
	if err != nil || form == "" ||
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		return errs.E(errs.Forbidden, "the form has expired; reload the page and try again")
	}
	return nil
}

func (p *Pages) sameOrigin(r *http.Request, origin string) bool {
	o, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if pu, err := url.Parse(p.PublicURL); err == nil && pu.Scheme == o.Scheme && pu.Host == o.Host {
		return true
	}
	return o.Host == r.Host
}

func (p *Pages) setSession(w http.ResponseWriter, refreshToken string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: refreshToken, Path: "/",
		HttpOnly: true, Secure: p.secure(), SameSite: http.SameSiteLaxMode,
		MaxAge: int(p.Identity.RefreshTTL.Seconds())})
}

// owner returns the signed-in owner, or nil.
func (p *Pages) owner(r *http.Request) *identity.User {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	u, err := p.Identity.SessionUser(r.Context(), identity.InternalProject, c.Value)
	if err != nil {
		return nil
	}
	return &u
}
