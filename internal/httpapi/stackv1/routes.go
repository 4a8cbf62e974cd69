package stackv1

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/identity"
)

type route func(w http.ResponseWriter, r *http.Request, ra *reqAuth) error

func (a *API) handle(mux *http.ServeMux, pattern string, fn route) {
	method, path, _ := strings.Cut(pattern, " ")
	mux.Handle(method+" "+Prefix+path, a.wrap(func(w http.ResponseWriter, r *http.Request) error {
		ra, err := a.authenticate(r)
		if err != nil {
			return err
		}
		return fn(w, r, ra)
	}))
}

func (a *API) routes(mux *http.ServeMux) {
	mux.Handle("GET "+Prefix+"/{$}", a.wrap(func(w http.ResponseWriter, r *http.Request) error {
		a.write(w, r, http.StatusOK, "text/plain; charset=utf-8", []byte(
			"Welcome to the Stack-compatible API endpoint of neonauth! "+
				"Authentication: None | Client | Server, with the x-stack-* headers.\n"))
		return nil
	}))
	mux.Handle("GET "+Prefix+"/projects/{project_id}/.well-known/jwks.json", a.wrap(a.jwks))
	mux.Handle("POST "+Prefix+"/auth/oauth/token", a.wrap(a.oauthToken))

	a.handle(mux, "POST /auth/password/sign-up", a.signUp)
	a.handle(mux, "POST /auth/password/sign-in", a.signIn)
	a.handle(mux, "POST /auth/sessions/current/refresh", a.refreshREST)
	a.handle(mux, "DELETE /auth/sessions/current", a.signOut)
	a.handle(mux, "POST /auth/sessions", a.createSession)

	a.handle(mux, "GET /users/me", a.getMe)
	a.handle(mux, "PATCH /users/me", a.patchMe)
	a.handle(mux, "GET /users", a.listUsers)
	a.handle(mux, "POST /users", a.createUser)
	a.handle(mux, "GET /users/{user_id}", a.getUser)
	a.handle(mux, "PATCH /users/{user_id}", a.patchUser)
	a.handle(mux, "DELETE /users/{user_id}", a.deleteUser)

	a.handle(mux, "POST /integrations/neon/projects/transfer/confirm/check", a.transferCheck)
	a.handle(mux, "POST /integrations/neon/projects/transfer/confirm", a.transferConfirm)
}

func (a *API) jwks(w http.ResponseWriter, r *http.Request) error {
	set, err := a.Identity.JWKS(r.Context(), r.PathValue("project_id"))
	if errs.Is(err, errs.NotFound) {
		a.write(w, r, http.StatusNotFound, "text/plain; charset=utf-8",
			[]byte("Project not found\n"))
		return nil
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	a.json(w, r, http.StatusOK, set)
	return nil
}

type tokensJSON struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	UserID       string `json:"user_id"`
}

func (a *API) signUp(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessClient, accessServer, accessAdmin); err != nil {
		return err
	}
	m, err := readBody(r)
	if err != nil {
		return err
	}
	f := newFields(m, "email", "password", "verification_callback_url",
		"bot_challenge_token", "bot_challenge_phase", "bot_challenge_unavailable")
	email, password := f.required("email"), f.required("password")
	callback := f.str("verification_callback_url")
	if f.err != nil {
		return f.err
	}
	if err := checkCallback(callback); err != nil {
		return err
	}
	if ok, wait := a.Limits.AllowSignUp(httpapi.ClientAddr(r)); !ok {
		return a.tooManySignIns(w, r, wait, "sign_up", "Too many sign-ups from this address")
	}
	t, err := a.Identity.SignUp(r.Context(), ra.ProjectID, email, password)
	if err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, tokensJSON{t.AccessToken, t.RefreshToken, t.UserID.String()})
	return nil
}

// checkCallback validates a sign-up's verification callback URL. No verification email is
// sent, so the URL is never followed: any absolute http or https URL is accepted (there is
// no list of trusted domains to check it against, so REDIRECT_URL_NOT_WHITELISTED is never
// returned).
func checkCallback(callback *string) error {
	if callback == nil {
		return nil
	}
	u, err := url.Parse(*callback)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return schemaError("body.verification_callback_url must be an absolute http(s) URL")
	}
	return nil
}

func (a *API) signIn(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessClient, accessServer, accessAdmin); err != nil {
		return err
	}
	m, err := readBody(r)
	if err != nil {
		return err
	}
	f := newFields(m, "email", "password")
	email, password := f.required("email"), f.required("password")
	if f.err != nil {
		return f.err
	}
	if err := a.signInAllowed(w, r, ra.ProjectID, email); err != nil {
		return err
	}
	t, err := a.Identity.SignIn(r.Context(), ra.ProjectID, email, password)
	if err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, tokensJSON{t.AccessToken, t.RefreshToken, t.UserID.String()})
	return nil
}

// oauthToken is the OAuth2 refresh_token grant that the SDK uses, sent form-encoded with the
// project id as client_id and the publishable key as client_secret (in the body, or as HTTP
// Basic credentials). As an OAuth endpoint it ignores parameters it does not know.
func (a *API) oauthToken(w http.ResponseWriter, r *http.Request) error {
	m, err := readBody(r)
	if err != nil {
		return err
	}
	if id, pw, ok := r.BasicAuth(); ok {
		m["client_id"], m["client_secret"] = id, pw
		if !isText(id) || !isText(pw) {
			return schemaError("The client credentials are not valid UTF-8 text")
		}
	}
	f := &fields{m: m}
	grant, rt := f.required("grant_type"), f.required("refresh_token")
	clientID, secret := f.required("client_id"), f.str("client_secret")
	if f.err != nil {
		return f.err
	}
	if grant != "refresh_token" {
		return schemaError("grant_type must be refresh_token")
	}
	projectID, _, _ := strings.Cut(clientID, "#")
	if err := a.checkClient(r, projectID, secret); err != nil {
		return err
	}
	t, err := a.Identity.Refresh(r.Context(), projectID, rt)
	if err != nil {
		return err
	}
	w.Header().Set("Pragma", "no-cache")
	a.json(w, r, http.StatusOK, map[string]any{
		"access_token": t.AccessToken, "token_type": "Bearer",
		"expires_in": int(a.Identity.AccessTTL.Seconds()), "scope": "legacy",
		"refresh_token": t.RefreshToken,
	})
	return nil
}

func (a *API) checkClient(r *http.Request, projectID string, secret *string) error {
	bad := known(errs.Invalid, "INVALID_OAUTH_CLIENT_ID_OR_SECRET",
		"The OAuth client ID or secret is invalid.", map[string]any{"client_id": projectID})
	if _, err := a.Identity.GetProject(r.Context(), projectID); err != nil {
		return bad
	}
	if projectID == identity.InternalProject {
		return nil
	}
	if secret == nil {
		return bad
	}
	ok, err := a.Identity.CheckPublishableKey(r.Context(), projectID, *secret)
	if err != nil {
		return err
	}
	if !ok {
		return bad
	}
	return nil
}

func (a *API) refreshREST(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessClient, accessServer, accessAdmin); err != nil {
		return err
	}
	rt := header(r, "refresh-token")
	if rt == "" {
		return known(errs.Unauthenticated, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED",
			"Refresh token not found for this project, or the session has expired/been revoked.",
			nil)
	}
	t, err := a.Identity.Refresh(r.Context(), ra.ProjectID, rt)
	if err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, map[string]string{"access_token": t.AccessToken})
	return nil
}

func (a *API) signOut(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessClient, accessServer, accessAdmin); err != nil {
		return err
	}
	if _, err := readBody(r); err != nil {
		return err
	}
	if err := needUser(ra); err != nil {
		return err
	}
	sid, err := uuid.Parse(ra.Claims.RefreshTokenID)
	if err != nil {
		return known(errs.Unauthenticated, "UNPARSABLE_ACCESS_TOKEN",
			"Access token is not parsable.", nil)
	}
	if err := a.Identity.SignOut(r.Context(), ra.ProjectID, sid); err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, map[string]bool{"success": true})
	return nil
}

// maxSession is Stack's longest session, 367 days.
const maxSession = 367 * 24 * time.Hour

func (a *API) createSession(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := need(ra, accessServer, accessAdmin); err != nil {
		return err
	}
	m, err := readBody(r)
	if err != nil {
		return err
	}
	f := newFields(m, "user_id", "expires_in_millis", "is_impersonation")
	uidText := f.required("user_id")
	if f.err != nil {
		return f.err
	}
	uid, err := uuid.Parse(uidText)
	if err != nil {
		return known(errs.Invalid, "USER_ID_DOES_NOT_EXIST", "The user does not exist.",
			map[string]any{"user_id": uidText})
	}
	u, err := a.Identity.GetUser(r.Context(), ra.ProjectID, uid)
	if errs.Is(err, errs.NotFound) {
		return known(errs.Invalid, "USER_ID_DOES_NOT_EXIST", "The user does not exist.",
			map[string]any{"user_id": uidText})
	}
	if err != nil {
		return err
	}
	var ttl time.Duration
	if v, ok := m["expires_in_millis"]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(toString(v)), 10, 64)
		if err != nil || n <= 0 || time.Duration(n)*time.Millisecond > maxSession {
			return schemaError("body.expires_in_millis must be a positive number of at most "+
				"%d", maxSession.Milliseconds())
		}
		ttl = time.Duration(n) * time.Millisecond
	}
	t, err := a.Identity.StartSession(r.Context(), u, ttl)
	if err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, map[string]string{"refresh_token": t.RefreshToken,
		"access_token": t.AccessToken})
	return nil
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	default:
		return strings.TrimSpace(string(mustJSON(x)))
	}
}

func (a *API) transferCheck(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := needInternal(ra); err != nil {
		return err
	}
	code, err := readCode(r)
	if err != nil {
		return err
	}
	if _, err := a.Auth.CheckTransfer(r.Context(), code); err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, map[string]bool{"is_code_valid": true})
	return nil
}

func (a *API) transferConfirm(w http.ResponseWriter, r *http.Request, ra *reqAuth) error {
	if err := needInternal(ra); err != nil {
		return err
	}
	code, err := readCode(r)
	if err != nil {
		return err
	}
	if err := needUser(ra); err != nil {
		return err
	}
	info, err := a.Auth.ConfirmTransfer(r.Context(), code, ra.User.ID)
	if err != nil {
		return err
	}
	a.json(w, r, http.StatusOK, map[string]string{"project_id": info.AuthProjectID})
	return nil
}

func needInternal(ra *reqAuth) error {
	if err := need(ra, accessClient, accessServer, accessAdmin); err != nil {
		return err
	}
	if ra.ProjectID != identity.InternalProject {
		return known(errs.Unauthenticated, "INSUFFICIENT_ACCESS_TYPE",
			"Transfers are confirmed through the internal project.",
			map[string]any{"actual_access_type": ra.AccessType,
				"allowed_access_types": []string{"client"}})
	}
	return nil
}

func readCode(r *http.Request) (string, error) {
	m, err := readBody(r)
	if err != nil {
		return "", err
	}
	f := newFields(m, "code")
	code := f.required("code")
	return code, f.err
}
