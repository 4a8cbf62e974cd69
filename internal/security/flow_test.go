// Package security_test checks that the secrets neonauth issues or keeps do not show where
// they must not: in a dump of the metadata database (the secrets it reads back are sealed
// under the master key, the others are stored as hashes) and in the service's log, also at
// debug level; and that a master-key rotation keeps everything working.
package security_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/neonauth/neonauth/internal/identity/jwt"
	"github.com/neonauth/neonauth/internal/testserver"
)

// issued holds every secret one run of issue obtained, with the ids to use them again.
type issued struct {
	ProjectID, BranchID, ChildBranchID string
	OwnerRole, ExtraRole               string
	Integration                        testserver.Integration
	KID                                string
	Email, UserPassword                string
	// rounds counts the calls of verifyAgain, which names its databases after it.
	rounds int

	// secrets maps a description to a secret value.
	secrets map[string]string
	// passwords maps a role name to its password.
	passwords map[string]string
}

func (x *issued) add(name, value string, t testing.TB) {
	t.Helper()
	if value == "" {
		t.Fatalf("secret %s is empty", name)
	}
	if x.secrets == nil {
		x.secrets = map[string]string{}
	}
	x.secrets[name] = value
}

// issue creates one secret of every kind through the HTTP APIs: an API key, a project (the
// owner role's password and the branch's administrator password), a second role, a child
// branch, a Neon Auth integration (a pck_/ssk_ pair and a signing key), a second key pair,
// a sign-up (refresh and access tokens), a refresh, and a transfer code, and uses each once.
func issue(t *testing.T, s *testserver.Server) *issued {
	t.Helper()
	x := &issued{passwords: map[string]string{}}
	x.add("bootstrap API key", s.APIKey, t)

	r := s.Neon(t, "POST", "/api_keys", map[string]any{"key_name": "secrets"})
	want(t, "create API key", r, http.StatusOK)
	x.add("API key", str(t, r.JSON(t), "key"), t)

	p := s.CreateProject(t, "secrets")
	x.ProjectID, x.BranchID = p.ID, p.BranchID
	u, err := url.Parse(p.ConnectionURI)
	if err != nil {
		t.Fatalf("connection URI: %v", err)
	}
	pw, _ := u.User.Password()
	x.OwnerRole = u.User.Username()
	x.passwords[x.OwnerRole] = pw
	x.add("owner role password", pw, t)

	x.ExtraRole = "app_user"
	r = s.Neon(t, "POST", "/projects/"+x.ProjectID+"/branches/"+x.BranchID+"/roles",
		map[string]any{"role": map[string]any{"name": x.ExtraRole}})
	want(t, "create role", r, http.StatusCreated)
	var role struct {
		Role struct{ Password string } `json:"role"`
	}
	decode(t, r.Body, &role)
	x.passwords[x.ExtraRole] = role.Role.Password
	x.add("created role password", role.Role.Password, t)
	if got := reveal(t, s, x.ProjectID, x.BranchID, x.ExtraRole); got != role.Role.Password {
		t.Fatalf("reveal_password: %q, want the created role's password", got)
	}

	r = s.Neon(t, "POST", "/projects/"+x.ProjectID+"/branches",
		map[string]any{"branch": map[string]any{"name": "child"}})
	want(t, "create branch", r, http.StatusCreated)
	x.ChildBranchID = str(t, r.JSON(t)["branch"].(map[string]any), "id")

	x.Integration = s.CreateIntegration(t, p)
	x.add("publishable client key", x.Integration.PublishableKey, t)
	x.add("secret server key", x.Integration.SecretKey, t)
	r = s.Neon(t, "POST", "/projects/auth/keys",
		map[string]any{"project_id": x.ProjectID, "auth_provider": "stack"})
	want(t, "create key pair", r, http.StatusCreated)
	m := r.JSON(t)
	x.add("second publishable client key", str(t, m, "pub_client_key"), t)
	x.add("second secret server key", str(t, m, "secret_server_key"), t)
	second := x.Integration
	second.PublishableKey, second.SecretKey = x.secrets["second publishable client key"],
		x.secrets["second secret server key"]
	r = s.Stack(t, second, "server", "GET", "/users", nil)
	want(t, "list users with the second key pair", r, http.StatusOK)

	x.Email, x.UserPassword = "owner@example.com", "a user password 7Rq!"
	r = s.Stack(t, x.Integration, "client", "POST", "/auth/password/sign-up",
		map[string]string{"email": x.Email, "password": x.UserPassword})
	want(t, "sign up", r, http.StatusOK)
	m = r.JSON(t)
	x.add("user password", x.UserPassword, t)
	x.add("refresh token", str(t, m, "refresh_token"), t)
	x.add("access token", str(t, m, "access_token"), t)
	r = s.Stack(t, x.Integration, "client", "GET", "/users/me", nil,
		"x-stack-access-token", x.secrets["access token"])
	want(t, "users/me", r, http.StatusOK)
	r = s.Stack(t, x.Integration, "client", "POST", "/auth/sessions/current/refresh", nil,
		"x-stack-refresh-token", x.secrets["refresh token"])
	want(t, "refresh", r, http.StatusOK)
	x.add("refreshed access token", str(t, r.JSON(t), "access_token"), t)

	r = s.Neon(t, "POST", "/projects/auth/transfer_ownership",
		map[string]any{"project_id": x.ProjectID, "auth_provider": "stack"})
	want(t, "transfer", r, http.StatusOK)
	tu, err := url.Parse(str(t, r.JSON(t), "url"))
	if err != nil || tu.Query().Get("code") == "" {
		t.Fatalf("transfer url: %v %s", err, r.Body)
	}
	x.add("transfer code", tu.Query().Get("code"), t)
	checkTransferCode(t, s, x.secrets["transfer code"])

	x.KID = jwks(t, s, x.Integration.AuthProjectID)[0].KID
	return x
}

// verifyAgain checks that everything issue made still works: the API keys, the passwords
// (revealed as they were, on the child branch too), the administrator passwords (a database
// is created on each branch), the key pairs, the refresh token, the transfer code and the
// signing key (a new access token verifies against the JWKS, under the same kid).
func verifyAgain(t *testing.T, s *testserver.Server, x *issued) {
	t.Helper()
	r := s.Do(t, "GET", "/api/v2/projects", nil,
		"Authorization", "Bearer "+x.secrets["API key"])
	want(t, "list projects with the created API key", r, http.StatusOK)
	for name, pw := range x.passwords {
		if got := reveal(t, s, x.ProjectID, x.BranchID, name); got != pw {
			t.Errorf("reveal_password of %s: %q, want %q", name, got, pw)
		}
	}
	if got := reveal(t, s, x.ProjectID, x.ChildBranchID, x.OwnerRole); got !=
		x.passwords[x.OwnerRole] {
		t.Errorf("reveal_password on the child branch: %q", got)
	}
	x.rounds++
	for i, b := range []string{x.BranchID, x.ChildBranchID} {
		name := fmt.Sprintf("again_%d_%d", x.rounds, i)
		r := s.Neon(t, "POST", "/projects/"+x.ProjectID+"/branches/"+b+"/databases",
			map[string]any{"database": map[string]any{"name": name,
				"owner_name": x.OwnerRole}})
		want(t, "create database (administrator password)", r, http.StatusCreated)
	}
	second := x.Integration
	second.PublishableKey, second.SecretKey = x.secrets["second publishable client key"],
		x.secrets["second secret server key"]
	for _, in := range []testserver.Integration{x.Integration, second} {
		want(t, "list users with a key pair", s.Stack(t, in, "server", "GET", "/users", nil),
			http.StatusOK)
	}
	r = s.Stack(t, x.Integration, "client", "POST", "/auth/sessions/current/refresh", nil,
		"x-stack-refresh-token", x.secrets["refresh token"])
	want(t, "refresh with the earlier refresh token", r, http.StatusOK)
	checkTransferCode(t, s, x.secrets["transfer code"])
	jwks(t, s, "internal") // the owners' project: its signing key opens too

	r = s.Stack(t, x.Integration, "client", "POST", "/auth/password/sign-in",
		map[string]string{"email": x.Email, "password": x.UserPassword})
	want(t, "sign in", r, http.StatusOK)
	token := str(t, r.JSON(t), "access_token")
	keys := jwks(t, s, x.Integration.AuthProjectID)
	if len(keys) != 1 || keys[0].KID != x.KID {
		t.Fatalf("JWKS kids %v, want only %s (the same signing key)", keys, x.KID)
	}
	pub, err := jwt.ParseJWK(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	v := jwt.Verifier{
		Keys:     func(kid string) (jwt.PublicKey, bool) { return pub, kid == pub.KID },
		Audience: x.Integration.AuthProjectID,
		Issuer:   s.URL + "/api/v1/projects/" + x.Integration.AuthProjectID,
	}
	if _, err := v.Verify(token); err != nil {
		t.Fatalf("a new access token does not verify against the JWKS: %v", err)
	}
}

func checkTransferCode(t *testing.T, s *testserver.Server, code string) {
	t.Helper()
	r := s.Do(t, "POST", "/api/v1/integrations/neon/projects/transfer/confirm/check",
		map[string]string{"code": code}, "x-stack-project-id", "internal",
		"x-stack-access-type", "client", "Content-Type", "application/json")
	want(t, "check transfer code", r, http.StatusOK)
}

func reveal(t *testing.T, s *testserver.Server, project, branch, role string) string {
	t.Helper()
	r := s.Neon(t, "GET", "/projects/"+project+"/branches/"+branch+"/roles/"+role+
		"/reveal_password", nil)
	want(t, "reveal_password", r, http.StatusOK)
	return str(t, r.JSON(t), "password")
}

func jwks(t *testing.T, s *testserver.Server, authProject string) []jwt.JWK {
	t.Helper()
	r := s.Do(t, "GET", "/api/v1/projects/"+authProject+"/.well-known/jwks.json", nil)
	want(t, "JWKS", r, http.StatusOK)
	var set jwt.JWKS
	decode(t, r.Body, &set)
	if len(set.Keys) == 0 {
		t.Fatalf("empty JWKS: %s", r.Body)
	}
	return set.Keys
}

func want(t testing.TB, step string, r testserver.Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", step, r.Status, status, r.Body)
	}
}

func str(t testing.TB, m map[string]any, key string) string {
	t.Helper()
	v, _ := m[key].(string)
	if v == "" {
		t.Fatalf("no %q in %v", key, m)
	}
	return v
}

func decode(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// encodings returns the forms a secret could take in a dump or a log: as is, hex (either
// case) and base64 (standard or URL alphabet, padded or not).
func encodings(secret []byte) map[string]string {
	h := hex.EncodeToString(secret)
	return map[string]string{
		"plain": string(secret), "hex": h, "HEX": strings.ToUpper(h),
		"base64":        base64.StdEncoding.EncodeToString(secret),
		"raw base64":    base64.RawStdEncoding.EncodeToString(secret),
		"base64url":     base64.URLEncoding.EncodeToString(secret),
		"raw base64url": base64.RawURLEncoding.EncodeToString(secret),
	}
}

// absent fails the test for each secret found in text, in any of its encodings. A secret
// must be at least 16 bytes, so that a match cannot be chance.
func absent(t *testing.T, where string, text []byte, secrets map[string][]byte) {
	t.Helper()
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		secret := secrets[name]
		if len(secret) < 16 {
			t.Fatalf("secret %s is too short (%d bytes) to search for", name, len(secret))
		}
		for enc, v := range encodings(secret) {
			if bytes.Contains(text, []byte(v)) {
				t.Errorf("%s contains the %s (%s)", where, name, enc)
			}
		}
	}
}

// asBytes converts the secrets of an issue run for absent.
func (x *issued) asBytes() map[string][]byte {
	out := map[string][]byte{}
	for n, v := range x.secrets {
		out[n] = []byte(v)
	}
	return out
}

// masterKeys reads the master keys of a key file (one a line, hex, # comments).
func masterKeys(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read master key file: %v", err)
	}
	var keys []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	return keys
}

// rawKey decodes a hex master key.
func rawKey(t *testing.T, k string) []byte {
	t.Helper()
	b, err := hex.DecodeString(k)
	if err != nil || len(b) != 32 {
		t.Fatalf("master key %q is not 64 hex characters", k)
	}
	return b
}

// tempRoot returns a temporary directory the PostgreSQL user can traverse, for a data
// directory used by several services in turn.
func tempRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "data")
}
