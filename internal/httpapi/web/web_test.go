package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/testserver"
)

const (
	sessionCookie = "neonauth_session"
	csrfCookie    = "neonauth_csrf"
	password      = "correct horse battery"
)

// visitor is a browser without scripts: a cookie jar and no automatic redirects.
type visitor struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newVisitor(t *testing.T, s *testserver.Server) *visitor {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatalf("cookie jar: %v", err)
	}
	return &visitor{t: t, base: s.URL, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}}
}

// page is one response of the web pages.
type page struct {
	Status int
	Header http.Header
	Body   string
}

// csrf returns the CSRF token of the page's forms.
func (p page) csrf(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("page has no CSRF field (status %d): %s", p.Status, p.Body)
	}
	return m[1]
}

// cookie returns a cookie the page set, or nil.
func (p page) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (v *visitor) do(req *http.Request) page {
	v.t.Helper()
	resp, err := v.c.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		v.t.Fatalf("read %s: %v", req.URL, err)
	}
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

func (v *visitor) get(path string) page {
	v.t.Helper()
	req, err := http.NewRequest("GET", v.base+path, nil)
	if err != nil {
		v.t.Fatalf("new request: %v", err)
	}
	return v.do(req)
}

// post sends a form; headers are name, value pairs. The Origin is ours unless a header
// sets another one.
func (v *visitor) post(path string, form url.Values, headers ...string) page {
	v.t.Helper()
	req, err := http.NewRequest("POST", v.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		v.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", v.base)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return v.do(req)
}

// want fails the test unless the page has the status and contains every text.
func (p page) want(t *testing.T, step string, status int, texts ...string) {
	t.Helper()
	if p.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", step, p.Status, status, p.Body)
	}
	for _, s := range texts {
		if !strings.Contains(p.Body, s) {
			t.Errorf("%s: page does not contain %q: %s", step, s, p.Body)
		}
	}
}

// transferCode asks the management API for a transfer URL and returns its path and code.
func transferCode(t *testing.T, s *testserver.Server, projectID string) (string, string) {
	t.Helper()
	r := s.Neon(t, "POST", "/projects/auth/transfer_ownership",
		map[string]string{"project_id": projectID, "auth_provider": "stack"})
	if r.Status != http.StatusOK {
		t.Fatalf("transfer_ownership: %d %s", r.Status, r.Body)
	}
	raw, _ := r.JSON(t)["url"].(string)
	u, err := url.Parse(raw)
	if err != nil || u.Path != neonauth.TransferPath || u.Query().Get("code") == "" {
		t.Fatalf("transfer url %q is not a confirm link", raw)
	}
	if got := u.Scheme + "://" + u.Host; got != s.URL {
		t.Fatalf("transfer url %q is not on the service %s", raw, s.URL)
	}
	return u.RequestURI(), u.Query().Get("code")
}

type integrationState struct {
	OwnedBy        string  `json:"owned_by"`
	TransferStatus *string `json:"transfer_status"`
}

func (st integrationState) String() string {
	ts := "<absent>"
	if st.TransferStatus != nil {
		ts = *st.TransferStatus
	}
	return fmt.Sprintf("owned_by %q, transfer_status %s", st.OwnedBy, ts)
}

// integration returns the project's integration as the management API lists it.
func integration(t *testing.T, s *testserver.Server, projectID string) integrationState {
	t.Helper()
	r := s.Neon(t, "GET", "/projects/"+projectID+"/auth/integrations", nil)
	var out struct {
		Data []integrationState `json:"data"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &out) != nil || len(out.Data) != 1 {
		t.Fatalf("list integrations: %d %s", r.Status, r.Body)
	}
	return out.Data[0]
}

func wantNeonOwned(t *testing.T, s *testserver.Server, projectID string) {
	t.Helper()
	if st := integration(t, s, projectID); st.OwnedBy != "neon" {
		t.Errorf("integration %s, want owned_by neon", st)
	}
}

func wantUserOwned(t *testing.T, s *testserver.Server, projectID string) {
	t.Helper()
	st := integration(t, s, projectID)
	if st.OwnedBy != "user" || st.TransferStatus == nil || *st.TransferStatus != "finished" {
		t.Errorf("integration %s, want owned_by user, transfer_status finished", st)
	}
}

// shared is the one service the page tests share; each test makes its own projects and
// accounts.
type shared struct {
	s   *testserver.Server
	clk *clock
}

// TestPages runs the page tests (plain HTTP, no browser) against one service.
func TestPages(t *testing.T) {
	s := testserver.Start(t)
	sh := &shared{s: s, clk: installClock(t, s)}
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *shared)
	}{
		{"ConfirmPageGetChangesNothing", testConfirmPageGetChangesNothing},
		{"ConfirmPostNeedsCSRFToken", testConfirmPostNeedsCSRFToken},
		{"PostFromForeignOriginRefused", testPostFromForeignOriginRefused},
		{"PagesCarrySecurityHeaders", testPagesCarrySecurityHeaders},
		{"CookiesAreHttpOnlyAndSameSite", testCookiesAreHttpOnlyAndSameSite},
		{"UnusableCodesShowErrorPage", testUnusableCodesShowErrorPage},
		{"UseAnotherAccount", testUseAnotherAccount},
		{"ConfirmAsSignedInOwner", testConfirmAsSignedInOwner},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, sh) })
	}
}

// fixture is one project whose integration has an outstanding transfer.
type fixture struct {
	s    *testserver.Server
	p    testserver.Project
	in   testserver.Integration
	path string // the confirm page, with ?code=
	code string
}

func newFixture(t *testing.T, s *testserver.Server, name string) fixture {
	p := s.CreateProject(t, name)
	in := s.CreateIntegration(t, p)
	path, code := transferCode(t, s, p.ID)
	return fixture{s: s, p: p, in: in, path: path, code: code}
}

// signUpForm is the confirm page's "Create account and transfer".
func signUpForm(csrf, code, email string) url.Values {
	return url.Values{"csrf": {csrf}, "code": {code}, "email": {email},
		"password": {password}, "action": {"sign-up"}}
}

// wantTransferred checks the answer of a successful confirmation: a redirect to the
// owner's projects.
func wantTransferred(t *testing.T, step string, p page, authProjectID string) {
	t.Helper()
	want := "/projects?transferred=" + authProjectID
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != want {
		t.Fatalf("%s: %d to %q, want 303 to %q: %s", step, p.Status,
			p.Header.Get("Location"), want, p.Body)
	}
}

// testConfirmPageGetChangesNothing opens the confirm page more often than a code may be
// tried: the project stays with Neon and the code still works afterwards.
func testConfirmPageGetChangesNothing(t *testing.T, sh *shared) {
	f := newFixture(t, sh.s, "get-alpha")
	v := newVisitor(t, f.s)
	var p page
	for i := range 25 {
		p = v.get(f.path)
		p.want(t, fmt.Sprintf("GET %d", i+1), http.StatusOK, "get-alpha",
			f.in.AuthProjectID, "Create account and transfer")
	}
	if st := integration(t, f.s, f.p.ID); st.OwnedBy != "neon" ||
		st.TransferStatus == nil || *st.TransferStatus != "initiated" {
		t.Errorf("after GETs: integration %s, want owned_by neon, transfer_status initiated",
			st)
	}
	r := v.post(neonauth.TransferPath, signUpForm(p.csrf(t), f.code, "get@example.com"))
	wantTransferred(t, "confirm after 25 GETs", r, f.in.AuthProjectID)
	wantUserOwned(t, f.s, f.p.ID)
}

// testConfirmPostNeedsCSRFToken refuses forms without the right token: nothing moves and no
// account is created.
func testConfirmPostNeedsCSRFToken(t *testing.T, sh *shared) {
	f := newFixture(t, sh.s, "csrf-alpha")
	good := newVisitor(t, f.s)
	token := good.get(f.path).csrf(t)
	cases := []struct {
		name string
		v    *visitor
		csrf string
	}{
		{"no cookie, no field", newVisitor(t, f.s), ""},
		{"no cookie, a field", newVisitor(t, f.s), token},
		{"cookie, no field", good, ""},
		{"cookie, wrong field", good, strings.Repeat("x", len(token))},
		{"cookie, token of another visitor", good, newVisitor(t, f.s).get(f.path).csrf(t)},
	}
	for _, c := range cases {
		r := c.v.post(neonauth.TransferPath, signUpForm(c.csrf, f.code, "csrf@example.com"))
		r.want(t, c.name, http.StatusForbidden, "Reload the page")
	}
	wantNeonOwned(t, f.s, f.p.ID)
	signIn := f.s.Do(t, "POST", "/api/v1/auth/password/sign-in",
		map[string]string{"email": "csrf@example.com", "password": password},
		internalHeaders...)
	if signIn.Status == http.StatusOK {
		t.Errorf("a refused form created the account csrf@example.com")
	}
	r := good.post(neonauth.TransferPath, signUpForm(token, f.code, "csrf@example.com"))
	wantTransferred(t, "with the right token", r, f.in.AuthProjectID)
}

// testPostFromForeignOriginRefused refuses forms from other sites even with a valid token.
func testPostFromForeignOriginRefused(t *testing.T, sh *shared) {
	f := newFixture(t, sh.s, "origin-alpha")
	v := newVisitor(t, f.s)
	token := v.get(f.path).csrf(t)
	form := signUpForm(token, f.code, "origin@example.com")
	for _, origin := range []string{"http://evil.example", "null",
		strings.Replace(f.s.URL, "127.0.0.1", "localhost", 1)} {
		r := v.post(neonauth.TransferPath, form, "Origin", origin)
		r.want(t, "confirm from "+origin, http.StatusForbidden, "another site")
	}
	wantNeonOwned(t, f.s, f.p.ID)
	wantTransferred(t, "confirm from our origin", v.post(neonauth.TransferPath, form),
		f.in.AuthProjectID)

	signOut := url.Values{"csrf": {token}}
	v.post("/sign-out", signOut, "Origin", "http://evil.example").
		want(t, "sign out from another site", http.StatusForbidden)
	v.get("/projects").want(t, "projects after a refused sign-out", http.StatusOK,
		"origin-alpha")
	other := newVisitor(t, f.s)
	signIn := url.Values{"csrf": {other.get("/sign-in").csrf(t)},
		"email": {"origin@example.com"}, "password": {password}}
	r := other.post("/sign-in", signIn, "Origin", "http://evil.example")
	r.want(t, "sign in from another site", http.StatusForbidden)
	if r.cookie(sessionCookie) != nil {
		t.Errorf("a refused sign-in set a session cookie")
	}
}

// testPagesCarrySecurityHeaders checks the headers of every kind of page, and that no page
// has a script.
func testPagesCarrySecurityHeaders(t *testing.T, sh *shared) {
	f := newFixture(t, sh.s, "headers-alpha")
	v := newVisitor(t, f.s)
	confirm := v.get(f.path)
	pages := map[string]page{
		"confirm":   confirm,
		"error":     v.get(neonauth.TransferPath + "?code=nope"),
		"sign-in":   v.get("/sign-in"),
		"forbidden": v.post("/sign-in", url.Values{"csrf": {"wrong"}}),
		"confirm error": v.post(neonauth.TransferPath,
			url.Values{"csrf": {confirm.csrf(t)}, "code": {"nope"}}),
	}
	wantTransferred(t, "confirm", v.post(neonauth.TransferPath,
		signUpForm(confirm.csrf(t), f.code, "headers@example.com")), f.in.AuthProjectID)
	pages["projects"] = v.get("/projects")
	for name, p := range pages {
		h := p.Header
		csp := h.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "form-action 'self'",
			"frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s page (%d): CSP %q lacks %q", name, p.Status, csp, d)
			}
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY",
			"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
			"Referrer-Policy": "same-origin",
			"Content-Type":    "text/html; charset=utf-8"} {
			if got := h.Get(k); got != want {
				t.Errorf("%s page: %s %q, want %q", name, k, got, want)
			}
		}
		if strings.Contains(strings.ToLower(p.Body), "<script") {
			t.Errorf("%s page has a script", name)
		}
	}
}

// testCookiesAreHttpOnlyAndSameSite checks the flags of the session and CSRF cookies.
func testCookiesAreHttpOnlyAndSameSite(t *testing.T, sh *shared) {
	f := newFixture(t, sh.s, "cookie-alpha")
	v := newVisitor(t, f.s)
	confirm := v.get(f.path)
	r := v.post(neonauth.TransferPath, signUpForm(confirm.csrf(t), f.code,
		"cookie@example.com"))
	wantTransferred(t, "confirm", r, f.in.AuthProjectID)
	for _, c := range []struct {
		name string
		p    page
		same http.SameSite
	}{{csrfCookie, confirm, http.SameSiteStrictMode}, {sessionCookie, r, http.SameSiteLaxMode}} {
		ck := c.p.cookie(c.name)
		switch {
		case ck == nil:
			t.Errorf("cookie %s not set", c.name)
		case !ck.HttpOnly || ck.SameSite != c.same || ck.Path != "/":
			t.Errorf("cookie %s: HttpOnly %v, SameSite %v, Path %q; want HttpOnly, "+
				"SameSite %v, Path /", c.name, ck.HttpOnly, ck.SameSite, ck.Path, c.same)
		}
	}
	out := v.post("/sign-out", url.Values{"csrf": {confirm.csrf(t)}})
	if out.Status != http.StatusSeeOther || out.Header.Get("Location") != "/sign-in" {
		t.Fatalf("sign out: %d to %q", out.Status, out.Header.Get("Location"))
	}
	if ck := out.cookie(sessionCookie); ck == nil || ck.MaxAge >= 0 || !ck.HttpOnly {
		t.Errorf("sign-out does not clear the session cookie: %v", ck)
	}
}

// clock moves the transfer clock of a running service; it is installed before requests.
type clock struct{ offset atomic.Int64 }

func installClock(t *testing.T, s *testserver.Server) *clock {
	c := &clock{}
	s.Env.Auth.Now = func() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }
	t.Cleanup(func() { s.Env.Auth.Now = nil })
	return c
}

// testUnusableCodesShowErrorPage checks the error page for unknown, missing, used, expired
// and exhausted codes, and for another code of a transferred project, on GET and on POST.
func testUnusableCodesShowErrorPage(t *testing.T, sh *shared) {
	f := newFixture(t, sh.s, "bad-alpha")
	clk := sh.clk
	defer clk.offset.Store(0)
	v := newVisitor(t, f.s)
	token := v.get(f.path).csrf(t)
	v.get(neonauth.TransferPath+"?code="+strings.Repeat("a", 45)).
		want(t, "unknown code", http.StatusBadRequest, "not valid",
			"VERIFICATION_CODE_NOT_FOUND")
	v.get(neonauth.TransferPath).want(t, "no code", http.StatusBadRequest, "has no code")

	clk.offset.Store(int64(61 * time.Minute))
	v.get(f.path).want(t, "expired code", http.StatusBadRequest, "expired",
		"VERIFICATION_CODE_EXPIRED")
	v.post(neonauth.TransferPath, signUpForm(token, f.code, "late@example.com")).
		want(t, "confirm an expired code", http.StatusBadRequest, "expired")
	clk.offset.Store(0)
	wantNeonOwned(t, f.s, f.p.ID)

	path2, code2 := transferCode(t, f.s, f.p.ID)
	for range 21 {
		f.s.Do(t, "POST", "/api/v1/integrations/neon/projects/transfer/confirm/check",
			map[string]string{"code": code2}, internalHeaders...)
	}
	v.get(path2).want(t, "exhausted code", http.StatusBadRequest, "too many times")
	wantNeonOwned(t, f.s, f.p.ID)

	path3, _ := transferCode(t, f.s, f.p.ID)
	wantTransferred(t, "confirm", v.post(neonauth.TransferPath,
		signUpForm(token, f.code, "bad@example.com")), f.in.AuthProjectID)
	v.get(f.path).want(t, "used code", http.StatusBadRequest, "already been used",
		`href="/sign-in"`)
	v.post(neonauth.TransferPath, url.Values{"csrf": {token}, "code": {f.code},
		"action": {"confirm"}}).want(t, "confirm a used code", http.StatusBadRequest,
		"already been used")
	v.get(path3).want(t, "other code of a transferred project", http.StatusBadRequest,
		"already been transferred")
}

// internalHeaders are client access to the internal project, as the dashboard sends them.
var internalHeaders = []string{"x-stack-project-id", "internal",
	"x-stack-access-type", "client", "Content-Type", "application/json"}

// signUpOwner creates an owner account through the API.
func signUpOwner(t *testing.T, s *testserver.Server, email string) {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/auth/password/sign-up",
		map[string]string{"email": email, "password": password}, internalHeaders...)
	if r.Status != http.StatusOK {
		t.Fatalf("sign up %s through the API: %d %s", email, r.Status, r.Body)
	}
}

// signIn signs a visitor in on the sign-in page.
func (v *visitor) signIn(email string) {
	v.t.Helper()
	r := v.post("/sign-in", url.Values{"csrf": {v.get("/sign-in").csrf(v.t)},
		"email": {email}, "password": {password}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/projects" {
		v.t.Fatalf("sign in %s: %d to %q: %s", email, r.Status, r.Header.Get("Location"),
			r.Body)
	}
}

// testUseAnotherAccount signs out from the confirm page and transfers to another, existing
// account with "Sign in and transfer".
func testUseAnotherAccount(t *testing.T, sh *shared) {
	f := newFixture(t, sh.s, "switch-alpha")
	signUpOwner(t, f.s, "first@example.com")
	signUpOwner(t, f.s, "second@example.com")
	v := newVisitor(t, f.s)
	v.signIn("first@example.com")
	first := v.c.Jar.Cookies(mustURL(t, f.s.URL))
	p := v.get(f.path)
	p.want(t, "signed-in confirm page", http.StatusOK, "first@example.com",
		"Use another account", "Transfer to this account")
	r := v.post(neonauth.TransferPath, url.Values{"csrf": {p.csrf(t)},
		"code": {f.code}, "action": {"switch-account"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != f.path {
		t.Fatalf("use another account: %d to %q, want 303 to %q", r.Status,
			r.Header.Get("Location"), f.path)
	}
	p = v.get(f.path)
	p.want(t, "confirm page after switching", http.StatusOK, "Sign in and transfer")
	wantNeonOwned(t, f.s, f.p.ID)
	old := newVisitor(t, f.s)
	old.c.Jar.SetCookies(mustURL(t, f.s.URL), first)
	if r := old.get("/projects"); r.Status != http.StatusSeeOther {
		t.Errorf("the session ended by switching still works: %d", r.Status)
	}

	form := url.Values{"csrf": {p.csrf(t)}, "code": {f.code}, "action": {"sign-in"},
		"email": {"second@example.com"}, "password": {"wrong password"}}
	v.post(neonauth.TransferPath, form).want(t, "sign in and transfer, wrong password",
		http.StatusBadRequest, "Wrong email or password", `value="second@example.com"`,
		"switch-alpha")
	wantNeonOwned(t, f.s, f.p.ID)
	form.Set("password", password)
	wantTransferred(t, "sign in and transfer", v.post(neonauth.TransferPath, form),
		f.in.AuthProjectID)
	v.get("/projects").want(t, "second owner's projects", http.StatusOK, "switch-alpha",
		"second@example.com")
	v = newVisitor(t, f.s)
	v.signIn("first@example.com")
	v.get("/projects").want(t, "first owner's projects", http.StatusOK, "No auth project")
}

// testConfirmAsSignedInOwner confirms with the "Transfer to this account" button of a
// signed-in owner, and shows the notice of a transfer only for the owner's own project.
func testConfirmAsSignedInOwner(t *testing.T, sh *shared) {
	f := newFixture(t, sh.s, "owner-alpha")
	signUpOwner(t, f.s, "owner@example.com")
	v := newVisitor(t, f.s)
	v.signIn("owner@example.com")
	p := v.get(f.path)
	p.want(t, "confirm page of a signed-in owner", http.StatusOK, "owner@example.com")
	r := v.post(neonauth.TransferPath, url.Values{"csrf": {p.csrf(t)},
		"code": {f.code}, "action": {"confirm"}})
	wantTransferred(t, "confirm as the signed-in owner", r, f.in.AuthProjectID)
	wantUserOwned(t, f.s, f.p.ID)
	v.get("/projects?transferred="+f.in.AuthProjectID).want(t, "projects", http.StatusOK,
		"owner-alpha", `id="transferred"`)
	if p := v.get("/projects?transferred=spoofed-project"); strings.Contains(p.Body,
		`id="transferred"`) || strings.Contains(p.Body, "spoofed-project") {
		t.Errorf("the projects page repeats a transfer notice from the URL: %s", p.Body)
	}
	bad := newVisitor(t, f.s)
	bad.post("/sign-in", url.Values{"csrf": {bad.get("/sign-in").csrf(t)},
		"email": {"owner@example.com"}, "password": {"wrong password"}}).
		want(t, "sign in with a wrong password", http.StatusBadRequest,
			"Wrong email or password")
}

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return u
}
