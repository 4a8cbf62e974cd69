package stackv1_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/testserver"
)

// providerCase is one provider call with one credential or id replaced by a fuzzed value;
// everything else in it is valid.
type providerCase struct {
	method, path string
	// set fills in the request from the fuzzed value v and the valid credentials c.
	set func(v string, c creds) (hdr []string, body string)
}

// creds are the valid credentials and ids of the fuzz integration, by name.
type creds = map[string]string

// clientHeaders are valid client access headers of the fuzz integration, with a user.
func clientHeaders(c creds) []string {
	return []string{"x-stack-project-id", c["project"], "x-stack-access-type", "client",
		"x-stack-publishable-client-key", c["pck"], "x-stack-access-token", c["access"]}
}

// with replaces the value of header name in h.
func with(h []string, name, v string) []string {
	for i := 0; i+1 < len(h); i += 2 {
		if h[i] == name {
			h[i+1] = v
			return h
		}
	}
	return append(h, name, v)
}

func serverHeaders(c creds) []string {
	return []string{"x-stack-project-id", c["project"], "x-stack-access-type", "server",
		"x-stack-secret-server-key", c["ssk"]}
}

// jsonBody is a JSON object of string fields, given as name, value pairs.
func jsonBody(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// validHeader reports whether v can be sent as a header value at all.
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

const formType = "application/x-www-form-urlencoded"

var providerCases = []providerCase{
	{"GET", "/users/me", func(v string, c creds) ([]string, string) {
		return with(clientHeaders(c), "x-stack-project-id", v), ""
	}},
	{"GET", "/users/me", func(v string, c creds) ([]string, string) {
		return with(clientHeaders(c), "x-stack-access-type", v), ""
	}},
	{"GET", "/users/me", func(v string, c creds) ([]string, string) {
		return with(clientHeaders(c), "x-stack-publishable-client-key", v), ""
	}},
	{"GET", "/users/me", func(v string, c creds) ([]string, string) {
		return with(clientHeaders(c), "x-stack-access-token", v), ""
	}},
	{"GET", "/users/me", func(v string, c creds) ([]string, string) {
		return with(clientHeaders(c), "x-stack-branch-id", v), ""
	}},
	{"GET", "/users?limit=1", func(v string, c creds) ([]string, string) {
		return with(serverHeaders(c), "x-stack-secret-server-key", v), ""
	}},
	{"POST", "/auth/sessions/current/refresh", func(v string, c creds) ([]string, string) {
		return with(clientHeaders(c), "x-stack-refresh-token", v), "{}"
	}},
	{"GET", "/users/{v}", func(v string, c creds) ([]string, string) {
		return serverHeaders(c), ""
	}},
	{"POST", "/auth/sessions", func(v string, c creds) ([]string, string) {
		return serverHeaders(c), jsonBody("user_id", v)
	}},
	{"POST", "/auth/password/sign-in", func(v string, c creds) ([]string, string) {
		return clientHeaders(c), jsonBody("email", v, "password", "not-the-password")
	}},
	{"POST", "/integrations/neon/projects/transfer/confirm/check",
		func(v string, c creds) ([]string, string) {
			return []string{"x-stack-project-id", "internal", "x-stack-access-type", "client"},
				jsonBody("code", v)
		}},
	{"POST", "/auth/oauth/token", func(v string, c creds) ([]string, string) {
		return []string{"Content-Type", formType}, url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {v}, "client_id": {c["project"]},
			"client_secret": {c["pck"]}}.Encode()
	}},
	{"POST", "/auth/oauth/token", func(v string, c creds) ([]string, string) {
		return []string{"Content-Type", formType}, url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {c["refresh"]}, "client_id": {v},
			"client_secret": {c["pck"]}}.Encode()
	}},
	{"POST", "/auth/oauth/token", func(v string, c creds) ([]string, string) {
		basic := base64.StdEncoding.EncodeToString([]byte(v + ":" + c["pck"]))
		return []string{"Content-Type", formType, "Authorization", "Basic " + basic},
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c["refresh"]}}.Encode()
	}},
	{"GET", "/projects/{v}/.well-known/jwks.json", func(string, creds) ([]string, string) {
		return nil, ""
	}},
}

// FuzzProviderIDs sends provider calls with one credential or id replaced by an arbitrary
// value: project ids, access types, publishable and secret keys, access and refresh tokens,
// user ids (UUIDs), emails and transfer codes. Every answer must be a client error or a
// success, never a 5xx, and a known error must carry the same code in header and body.
func FuzzProviderIDs(f *testing.F) {
	c := testserver.ForFuzz(f, func(s *testserver.Server) map[string]string {
		return providerSetup(f, s)
	})
	seeds := []string{c["project"], c["pck"], c["ssk"], c["access"], c["refresh"], c["user"],
		"internal", "client", "server", "admin", "", " ", "00000000-0000-0000-0000-000000000000",
		"{" + c["user"] + "}", "urn:uuid:" + c["user"], "pck_" + c["ssk"][4:], "a@b.co",
		"A@B.CO ", "\x00", "\xff", "main", "..", "%2e"}
	for i := range providerCases {
		for _, s := range seeds[:6] {
			f.Add(uint8(i), s)
		}
	}
	for i, s := range seeds[6:] {
		f.Add(uint8(i), s)
	}
	client := &http.Client{Timeout: 8 * time.Second}
	f.Fuzz(func(t *testing.T, which uint8, v string) {
		pc := providerCases[int(which)%len(providerCases)]
		hdr, body := pc.set(v, c)
		path := strings.ReplaceAll(pc.path, "{v}", url.PathEscape(v))
		req, err := http.NewRequest(pc.method, c["url"]+"/api/v1"+path,
			bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatalf("not a request: %v", err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			if !validHeader(hdr[i+1]) {
				return
			}
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", pc.method, path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s → %d: %s", pc.method, path, resp.StatusCode, out)
		}
		if k := resp.Header.Get("x-stack-known-error"); k != "" {
			var e struct{ Code string }
			if err := json.Unmarshal(out, &e); err != nil || e.Code != k {
				t.Fatalf("known error %s with body %s", k, out)
			}
		}
	})
}

// providerSetup makes the fuzz targets' integration and a signed-up user, through the Go
// API (the HTTP helpers check every management call against the OpenAPI documents).
func providerSetup(f *testing.F, s *testserver.Server) map[string]string {
	ctx := context.Background()
	fail := func(what string, err error) { f.Fatalf("fuzz setup: %s: %v", what, err) }
	admin, err := s.Env.Console.Authenticate(ctx, s.APIKey, "127.0.0.1")
	if err != nil {
		fail("admin key", err)
	}
	p, err := s.Env.Console.CreateProject(ctx, admin, console.CreateProjectInput{Name: "fuzz"})
	if err != nil {
		fail("create project", err)
	}
	in, err := s.Env.Auth.Create(ctx, admin, neonauth.CreateInput{
		AuthProvider: neonauth.ProviderStack, ProjectID: p.Project.ID, BranchID: p.Branch.ID})
	if err != nil {
		fail("create integration", err)
	}
	id := in.Integration.AuthProjectID
	tk, err := s.Env.Identity.SignUp(ctx, id, "fuzz@example.com", "correct-horse")
	if err != nil {
		fail("sign up", err)
	}
	return map[string]string{"project": id, "pck": in.Keys.PublishableClientKey,
		"ssk": in.Keys.SecretServerKey, "access": tk.AccessToken, "refresh": tk.RefreshToken,
		"user": tk.UserID.String()}
}
