// Package web serves the pages people use in a browser: the confirm page of an ownership
// transfer, and the owner's sign-in and project list. Owners are users of the internal auth
// project. Pages are plain HTML with a strict Content-Security-Policy; every POST carries a
// CSRF token (double-submit cookie) and must come from our own origin.
package web

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
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
	// Limits are the sign-in rate limits of owner accounts; nil allows everything.
	Limits *httpapi.Limiters
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

// csp allows nothing but our own inline styles and forms that post back to us: the pages
// run no scripts and load nothing.
const csp = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// maxForm is the largest form body a page accepts.
const maxForm = 16 << 10

// page sets the security headers every page shares and renders errors as an error page.
func (p *Pages) page(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// same-origin keeps the code in the URL from leaking to other sites, and still
		// lets the browser send our own Origin with a form (no-referrer makes it "null").
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		if err := fn(w, r); err != nil {
			p.errorPage(w, r, err)
		}
	}
}

type errorData struct {
	Title    string
	Message  string
	Code     string
	Link     string
	LinkText string
}

// codeMessages explain to a person why a transfer link cannot be used.
var codeMessages = map[string]string{
	"VERIFICATION_CODE_NOT_FOUND": "This transfer link is not valid. Check that you " +
		"opened the whole link, or ask for a new one.",
	"VERIFICATION_CODE_EXPIRED": "This transfer link has expired. Transfer links are " +
		"valid for one hour; ask for a new one.",
	"VERIFICATION_CODE_ALREADY_USED": "This transfer link has already been used, so the " +
		"project has already been transferred.",
	"VERIFICATION_CODE_MAX_ATTEMPTS_REACHED": "This transfer link has been tried too many " +
		"times and no longer works. Ask for a new one.",
}

// describe turns an error into what the error page says, and its status.
func describe(e *errs.Error) (int, errorData) {
	d := errorData{Title: "This request cannot be completed", Message: e.Message,
		Code: e.Known}
	status := http.StatusBadRequest
	switch {
	case e.Kind == errs.Internal:
		status, d.Title = http.StatusInternalServerError, "Something went wrong"
	case e.Kind == errs.Forbidden:
		status, d.Title = http.StatusForbidden, "This form cannot be accepted"
	case e.Kind == errs.TooLarge:
		status = http.StatusRequestEntityTooLarge
	case codeMessages[e.Known] != "" || e.Plain:
		d.Title = "This transfer link cannot be used"
		if msg := codeMessages[e.Known]; msg != "" {
			d.Message = msg
		}
	}
	if e.Known == "VERIFICATION_CODE_ALREADY_USED" || e.Plain {
		d.Link, d.LinkText = "/sign-in", "Sign in to see your projects"
	}
	return status, d
}

func (p *Pages) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	status, d := describe(errs.As(err))
	if status == http.StatusInternalServerError {
		id := httpapi.RequestID(r.Context())
		p.Log.Error("page failed", "request_id", id, "err", err)
		d.Message = "Something went wrong on our side. Please try again later. " +
			"Request ID: " + id
	}
	p.render(w, status, "error.html", d)
}

func (p *Pages) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.Log.Error("render page", "page", name, "err", err)
		http.Error(w, "Something went wrong.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
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

// checkPost refuses a POST that did not come from one of our pages: a foreign or opaque
// ("null") Origin, or a missing or wrong CSRF token. A request without Origin (an old
// browser, a script) still needs the token.
func (p *Pages) checkPost(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return errs.E(errs.TooLarge, "the form is too large")
		}
		return errs.E(errs.Invalid, "the form could not be read")
	}
	if origin := r.Header.Get("Origin"); origin != "" && !p.sameOrigin(r, origin) {
		return errs.E(errs.Forbidden, "This form was sent from another site, so it was "+
			"refused. Open the page on this site and send the form from there.")
	}
	c, err := r.Cookie(csrfCookie)
	form := r.PostForm.Get("csrf")
	if err != nil || form == "" ||
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		return errs.E(errs.Forbidden, "This form has expired or was not sent from this "+
			"site. Reload the page and try again.")
	}
	return nil
}

func (p *Pages) sameOrigin(r *http.Request, origin string) bool {
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false
	}
	pu, err := url.Parse(p.PublicURL)
	if err == nil && pu.Scheme == o.Scheme && pu.Host == o.Host {
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

// endSession revokes the visitor's session, if any, and clears its cookie.
func (p *Pages) endSession(w http.ResponseWriter, r *http.Request) error {
	if err := p.revokeSession(r); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: p.secure(), SameSite: http.SameSiteLaxMode})
	return nil
}

// revokeSession ends the session of the request's cookie, if any, on the server.
func (p *Pages) revokeSession(r *http.Request) error {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	err = p.Identity.SignOutToken(r.Context(), identity.InternalProject, c.Value)
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}
