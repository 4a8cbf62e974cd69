package stackv1_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

var b64 = base64.RawURLEncoding

// jwk is a published key with every member it could carry.
type jwk map[string]any

// jwks fetches a project's key set and checks the response conventions.
func (e *env) jwks(t *testing.T) []jwk {
	t.Helper()
	r := e.s.Do(t, "GET", "/api/v1/projects/"+e.in.AuthProjectID+"/.well-known/jwks.json", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("JWKS: %d %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("JWKS content-type %q", ct)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "public") ||
		!strings.Contains(cc, "max-age=") {
		t.Errorf("JWKS cache-control %q", cc)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	decode(t, r.Body, &set)
	return set.Keys
}

func kids(keys []jwk) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k["kid"].(string))
	}
	sort.Strings(out)
	return out
}

func sorted(s ...string) []string { sort.Strings(s); return s }

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, _ := jwtParts(t, tok)
	kid, _ := h["kid"].(string)
	return kid
}

// TestB21KeyRotationOverlap: after a rotation the JWKS lists the old and the new key for
// the overlap window (at least twice the access-token lifetime, whatever is configured), old
// tokens verify until they expire, and the old key is gone afterwards.
func TestB21KeyRotationOverlap(t *testing.T) {
	e := start(t, func(c *server.Config) {
		c.AccessTTL = 10 * time.Minute
		c.RotationOverlap = time.Minute // raised to 2 × AccessTTL = 20 minutes
	})
	clk := e.fakeClock()
	t1 := e.signUp(t, "user@example.com", "correct-horse-1")
	k1 := kidOf(t, t1.AccessToken)
	if got := kids(e.jwks(t)); !equal(got, []string{k1}) {
		t.Fatalf("JWKS before rotation %v, want [%s]", got, k1)
	}
	r := e.s.Neon(t, "POST", "/projects/"+e.p.ID+"/auth/rotate_signing_key", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	k2 := r.JSON(t)["kid"].(string)
	t2 := e.signIn(t, "user@example.com", "correct-horse-1")
	if kidOf(t, t2.AccessToken) != k2 || k2 == k1 {
		t.Fatalf("new token kid %s, rotation kid %s, old kid %s", kidOf(t, t2.AccessToken), k2,
			k1)
	}
	both := sorted(k1, k2)
	if got := kids(e.jwks(t)); !equal(got, both) {
		t.Errorf("JWKS during overlap %v, want %v", got, both)
	}
	for _, tok := range []string{t1.AccessToken, t2.AccessToken} {
		if r := e.me(t, tok); r.Status != http.StatusOK {
			t.Errorf("token of kid %s during overlap: %d %s", kidOf(t, tok), r.Status, r.Body)
		}
	}

	clk.advance(19 * time.Minute)
	if got := kids(e.jwks(t)); !equal(got, both) {
		t.Errorf("JWKS at 19 min %v, want %v", got, both)
	}
	known(t, e.me(t, t1.AccessToken), 401, "ACCESS_TOKEN_EXPIRED")

	clk.advance(2 * time.Minute)
	if got := kids(e.jwks(t)); !equal(got, []string{k2}) {
		t.Errorf("JWKS after overlap %v, want [%s]", got, k2)
	}
	known(t, e.me(t, t1.AccessToken), 401, "UNPARSABLE_ACCESS_TOKEN")
	r = e.oauthRefresh(t, t1.RefreshToken)
	if r.Status != http.StatusOK {
		t.Fatalf("refresh after overlap: %d %s", r.Status, r.Body)
	}
	t3 := r.JSON(t)["access_token"].(string)
	if kidOf(t, t3) != k2 {
		t.Errorf("refreshed token kid %s, want %s", kidOf(t, t3), k2)
	}
	if r := e.me(t, t3); r.Status != http.StatusOK {
		t.Errorf("refreshed token: %d %s", r.Status, r.Body)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// TestB23JWKSKeyMembers: every published key has kty, crv, alg, use, kid, x and y and
// nothing else, verifies the project's tokens, and an unknown project has no key set.
func TestB23JWKSKeyMembers(t *testing.T) {
	e := start(t)
	tk := e.signUp(t, "user@example.com", "correct-horse-1")
	keys := e.jwks(t)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys", len(keys))
	}
	k := keys[0]
	var members []string
	for m := range k {
		members = append(members, m)
	}
	if want := sorted("alg", "crv", "kid", "kty", "use", "x", "y"); !equal(sorted(members...),
		want) {
		t.Errorf("JWK members %v, want %v", sorted(members...), want)
	}
	if k["kty"] != "EC" || k["crv"] != "P-256" || k["alg"] != "ES256" || k["use"] != "sig" {
		t.Errorf("JWK %v", k)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{12}$`).MatchString(k["kid"].(string)) {
		t.Errorf("kid %v is not 12 base64url characters", k["kid"])
	}
	h, _ := jwtParts(t, tk.AccessToken)
	if h["alg"] != k["alg"] || h["kid"] != k["kid"] || h["typ"] != "JWT" {
		t.Errorf("token header %v does not match the JWK %v", h, k)
	}
	if !verifyES256(t, k, tk.AccessToken) {
		t.Errorf("the published key does not verify the token")
	}

	r := e.s.Do(t, "GET", "/api/v1/projects/2b1c6a8e-4c1f-4d7b-9a55-0d3c2f1e9b7a"+
		"/.well-known/jwks.json", nil)
	if r.Status != http.StatusNotFound || strings.Contains(string(r.Body), "keys") {
		t.Errorf("unknown project JWKS: %d %s", r.Status, r.Body)
	}
}

// verifyES256 checks a token's signature with a JWK, independently of the service's code.
func verifyES256(t *testing.T, k jwk, tok string) bool {
	t.Helper()
	coord := func(name string) *big.Int {
		b, err := b64.DecodeString(k[name].(string))
		if err != nil || len(b) != 32 {
			t.Fatalf("JWK %s: %d bytes, %v", name, len(b), err)
		}
		return new(big.Int).SetBytes(b)
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: coord("x"), Y: coord("y")}
	i := strings.LastIndex(tok, ".")
	sig, err := b64.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v", len(sig), err)
	}
	digest := sha256.Sum256([]byte(tok[:i]))
	return ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]),
		new(big.Int).SetBytes(sig[32:]))
}

// TestB26IssMatchesJWKSURL: iss is <public url>/api/v1/projects/<id>, iss plus
// /.well-known/jwks.json is the jwks_url of every management response, and that URL serves
// the token's key.
func TestB26IssMatchesJWKSURL(t *testing.T) {
	e := start(t)
	tk := e.signUp(t, "user@example.com", "correct-horse-1")
	_, claims := jwtParts(t, tk.AccessToken)
	iss := claims["iss"].(string)
	if want := e.s.URL + "/api/v1/projects/" + e.in.AuthProjectID; iss != want {
		t.Errorf("iss %q, want %q", iss, want)
	}
	want := iss + "/.well-known/jwks.json"
	if e.in.JWKSURL != want {
		t.Errorf("create jwks_url %q, want %q", e.in.JWKSURL, want)
	}
	r := e.s.Neon(t, "POST", "/projects/auth/keys",
		map[string]any{"project_id": e.p.ID, "auth_provider": "stack"})
	if r.Status != http.StatusCreated || r.JSON(t)["jwks_url"] != want {
		t.Errorf("keys: %d %s", r.Status, r.Body)
	}
	r = e.s.Neon(t, "GET", "/projects/"+e.p.ID+"/auth/integrations", nil)
	var list struct {
		Data []map[string]any `json:"data"`
	}
	decode(t, r.Body, &list)
	if r.Status != http.StatusOK || len(list.Data) != 1 || list.Data[0]["jwks_url"] != want {
		t.Errorf("integrations: %d %s", r.Status, r.Body)
	}
	resp, err := http.Get(want)
	if err != nil {
		t.Fatalf("GET jwks_url: %v", err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks_url body: %v", err)
	}
	if kids(set.Keys)[0] != kidOf(t, tk.AccessToken) {
		t.Errorf("jwks_url serves %v, token kid %s", kids(set.Keys), kidOf(t, tk.AccessToken))
	}
}

// TestB28NoPrivateKeys: no private key member in the JWKS, no SDK key in the integration
// list, no password hash in any user JSON, and no secret echoed in an error body.
func TestB28NoPrivateKeys(t *testing.T) {
	e := start(t)
	tk := e.signUp(t, "user@example.com", "correct-horse-1")
	for _, k := range e.jwks(t) {
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[m]; ok {
				t.Errorf("JWK %v has private member %s", k["kid"], m)
			}
		}
	}
	r := e.s.Neon(t, "GET", "/projects/"+e.p.ID+"/auth/integrations", nil)
	for _, s := range []string{"secret_server_key", "pub_client_key", e.in.SecretKey,
		e.in.PublishableKey, "ssk_", "pck_"} {
		if strings.Contains(string(r.Body), s) {
			t.Errorf("integration list contains %q: %s", s, r.Body)
		}
	}
	created := e.server(t, "POST", "/users", map[string]any{"primary_email": "b28@example.com",
		"password": "correct-horse-1"})
	id := tk.UserID
	for name, r := range map[string]testserver.Response{
		"create": created, "get": e.server(t, "GET", "/users/"+id, nil),
		"list": e.server(t, "GET", "/users", nil), "me": e.me(t, tk.AccessToken),
		"server me": e.server(t, "GET", "/users/me", nil, "x-stack-access-token",
			tk.AccessToken),
	} {
		if r.Status/100 != 2 {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
		for _, s := range []string{"password_hash", "$2a$", "$2b$", "private"} {
			if strings.Contains(string(r.Body), s) && !(s == "private" &&
				strings.Contains(string(r.Body), "restricted_by_admin_private_details")) {
				t.Errorf("%s response contains %q: %s", name, s, r.Body)
			}
		}
	}
	bad := "ssk_" + strings.Repeat("x", 45)
	r = e.s.Do(t, "GET", "/api/v1/users", nil, "x-stack-project-id", e.in.AuthProjectID,
		"x-stack-access-type", "server", "x-stack-secret-server-key", bad)
	known(t, r, 401, "INVALID_SECRET_SERVER_KEY")
	if strings.Contains(string(r.Body), bad) {
		t.Errorf("error body echoes the secret: %s", r.Body)
	}
}

// TestAccessTokenRefusals: forged, altered, foreign and expired tokens are refused with the
// right known error.
func TestAccessTokenRefusals(t *testing.T) {
	e := start(t)
	clk := e.fakeClock()
	tk := e.signUp(t, "user@example.com", "correct-horse-1")
	parts := strings.Split(tk.AccessToken, ".")
	_, claims := jwtParts(t, tk.AccessToken)
	kid := kidOf(t, tk.AccessToken)
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b64.EncodeToString(b)
	}
	tampered := map[string]any{}
	for k, v := range claims {
		tampered[k] = v
	}
	tampered["email"] = "admin@example.com"
	hs := enc(map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + parts[1]
	mac := hmac.New(sha256.New, publicPEM(t, e.jwks(t)[0]))
	mac.Write([]byte(hs))

	other := e.s.CreateIntegration(t, e.s.CreateProject(t, "other"))
	otherEnv := &env{s: e.s, in: other}
	foreign := otherEnv.signUp(t, "user@example.com", "correct-horse-1").AccessToken
	fp := strings.Split(foreign, ".")
	forgedAud := map[string]any{}
	for k, v := range claims {
		forgedAud[k] = v
	}
	forgedAud["aud"] = other.AuthProjectID

	refusals := []struct{ name, token, code string }{
		{"garbage", "not-a-token", "UNPARSABLE_ACCESS_TOKEN"},
		{"alg none", enc(map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".",
			"UNPARSABLE_ACCESS_TOKEN"},
		{"HS256 with the public key", hs + "." + b64.EncodeToString(mac.Sum(nil)),
			"UNPARSABLE_ACCESS_TOKEN"},
		{"unknown kid", enc(map[string]any{"alg": "ES256", "kid": "AAAAAAAAAAAA",
			"typ": "JWT"}) + "." + parts[1] + "." + parts[2], "UNPARSABLE_ACCESS_TOKEN"},
		{"tampered payload", parts[0] + "." + enc(tampered) + "." + parts[2],
			"UNPARSABLE_ACCESS_TOKEN"},
		{"forged audience", parts[0] + "." + enc(forgedAud) + "." + parts[2],
			"UNPARSABLE_ACCESS_TOKEN"},
		{"foreign header on our payload", fp[0] + "." + parts[1] + "." + fp[2],
			"UNPARSABLE_ACCESS_TOKEN"},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) { known(t, e.me(t, c.token), 401, c.code) })
	}
	t.Run("another project", func(t *testing.T) {
		d := known(t, e.me(t, foreign), 401, "INVALID_PROJECT_FOR_ACCESS_TOKEN")
		want := map[string]any{"expected_project_id": e.in.AuthProjectID,
			"actual_project_id": other.AuthProjectID}
		if !sameJSON(t, d, want) {
			t.Errorf("details %v, want %v", d, want)
		}
	})
	if r := e.me(t, tk.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("the genuine token: %d %s", r.Status, r.Body)
	}
	t.Run("expired", func(t *testing.T) {
		clk.advance(10*time.Minute + 31*time.Second)
		d := known(t, e.me(t, tk.AccessToken), 401, "ACCESS_TOKEN_EXPIRED")
		want := map[string]any{"expired_at_millis": claims["exp"].(float64) * 1000,
			"project_id": e.in.AuthProjectID, "user_id": tk.UserID,
			"refresh_token_id": claims["refresh_token_id"]}
		if !sameJSON(t, d, want) {
			t.Errorf("details %v, want %v", d, want)
		}
		r := e.oauthRefresh(t, tk.RefreshToken)
		if r.Status != http.StatusOK {
			t.Fatalf("refresh: %d %s", r.Status, r.Body)
		}
		if r := e.me(t, r.JSON(t)["access_token"].(string)); r.Status != http.StatusOK {
			t.Errorf("refreshed token: %d %s", r.Status, r.Body)
		}
	})
}

// publicPEM is the PEM of a JWK's public key, the secret of the classic HS256 confusion.
func publicPEM(t *testing.T, k jwk) []byte {
	t.Helper()
	x, _ := b64.DecodeString(k["x"].(string))
	y, _ := b64.DecodeString(k["y"].(string))
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x),
		Y: new(big.Int).SetBytes(y)}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestAccessTokenClaims: the full Stack claim set, nullable claims present as null, aud a
// string, a lifetime of AccessTTL, and no other claim.
func TestAccessTokenClaims(t *testing.T) {
	e := start(t, func(c *server.Config) { c.AccessTTL = 90 * time.Second })
	tk := e.signUp(t, "claims@example.com", "correct-horse-1")
	h, c := jwtParts(t, tk.AccessToken)
	if h["alg"] != "ES256" || h["typ"] != "JWT" || len(h) != 3 {
		t.Errorf("header %v", h)
	}
	var names []string
	for k := range c {
		names = append(names, k)
	}
	want := sorted("iss", "sub", "aud", "iat", "exp", "project_id", "branch_id",
		"refresh_token_id", "role", "name", "email", "email_verified", "selected_team_id",
		"signed_up_at", "is_anonymous", "is_restricted", "restricted_reason",
		"requires_totp_mfa")
	if !equal(sorted(names...), want) {
		t.Errorf("claims %v, want %v", sorted(names...), want)
	}
	user := e.server(t, "GET", "/users/"+tk.UserID, nil).JSON(t)
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	checks := map[string]bool{
		"aud is the project id string": c["aud"] == e.in.AuthProjectID,
		"sub":                          c["sub"] == tk.UserID,
		"project_id":                   c["project_id"] == e.in.AuthProjectID,
		"branch_id":                    c["branch_id"] == "main",
		"role":                         c["role"] == "authenticated",
		"name null":                    c["name"] == nil,
		"email":                        c["email"] == "claims@example.com",
		"email_verified":               c["email_verified"] == false,
		"selected_team_id null":        c["selected_team_id"] == nil,
		"restricted_reason null":       c["restricted_reason"] == nil,
		"is_anonymous":                 c["is_anonymous"] == false,
		"is_restricted":                c["is_restricted"] == false,
		"requires_totp_mfa":            c["requires_totp_mfa"] == false,
		"lifetime":                     c["exp"].(float64)-c["iat"].(float64) == 90,
		"signed_up_at in seconds": int64(c["signed_up_at"].(float64)) ==
			int64(user["signed_up_at_millis"].(float64))/1000,
		"refresh_token_id is a uuid": uuidRE.MatchString(c["refresh_token_id"].(string)),
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("claim check %q failed: %v", name, c)
		}
	}
	r := e.client(t, "PATCH", "/users/me", map[string]any{"display_name": "Named"},
		"x-stack-access-token", tk.AccessToken)
	if r.Status != http.StatusOK {
		t.Fatalf("PATCH me: %d %s", r.Status, r.Body)
	}
	_, c2 := jwtParts(t, e.oauthRefresh(t, tk.RefreshToken).JSON(t)["access_token"].(string))
	if c2["name"] != "Named" || c2["refresh_token_id"] != c["refresh_token_id"] {
		t.Errorf("refreshed claims %v", c2)
	}
}

// refreshTokenRE is Stack's refresh-token shape: 45 lowercase Crockford base32 characters.
var refreshTokenRE = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{45}$`)

// TestRefreshTokens: the shape of refresh tokens, and the OAuth token endpoint the SDK uses
// (form body or Basic credentials, Bearer, no rotation, no caching).
func TestRefreshTokens(t *testing.T) {
	e := start(t)
	up := e.signUp(t, "rt@example.com", "correct-horse-1")
	in := e.signIn(t, "rt@example.com", "correct-horse-1")
	r := e.server(t, "POST", "/auth/sessions", map[string]any{"user_id": up.UserID})
	if r.Status != http.StatusOK {
		t.Fatalf("POST /auth/sessions: %d %s", r.Status, r.Body)
	}
	var sess tokens
	decode(t, r.Body, &sess)
	seen := map[string]bool{}
	for _, rt := range []string{up.RefreshToken, in.RefreshToken, sess.RefreshToken} {
		if !refreshTokenRE.MatchString(rt) || seen[rt] {
			t.Errorf("refresh token %q: not 45 lowercase base32 characters, or repeated", rt)
		}
		seen[rt] = true
	}

	r = e.oauthRefresh(t, in.RefreshToken)
	if r.Status != http.StatusOK {
		t.Fatalf("oauth refresh: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	if !strings.EqualFold(m["token_type"].(string), "bearer") || m["expires_in"] == nil ||
		m["refresh_token"] != in.RefreshToken || m["access_token"] == "" {
		t.Errorf("token response %v", m)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") ||
		!strings.Contains(r.Header.Get("Cache-Control"), "no-store") ||
		r.Header.Get("Pragma") != "no-cache" {
		t.Errorf("token response headers %v", r.Header)
	}
	r = e.s.Do(t, "POST", "/api/v1/auth/oauth/token",
		"grant_type=refresh_token&refresh_token="+in.RefreshToken,
		"Content-Type", "application/x-www-form-urlencoded",
		"Authorization", "Basic "+base64.StdEncoding.EncodeToString(
			[]byte(e.in.AuthProjectID+":"+e.in.PublishableKey)))
	if r.Status != http.StatusOK {
		t.Errorf("refresh with Basic credentials: %d %s", r.Status, r.Body)
	}
	r = e.s.Do(t, "POST", "/api/v1/auth/oauth/token", "grant_type=refresh_token&refresh_token="+
		in.RefreshToken+"&client_id="+e.in.AuthProjectID+"&client_secret=pck_wrong",
		"Content-Type", "application/x-www-form-urlencoded")
	known(t, r, 400, "INVALID_OAUTH_CLIENT_ID_OR_SECRET")
	known(t, e.oauthRefresh(t, strings.Repeat("a", 45)), 401,
		"REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")
	r = e.client(t, "POST", "/auth/sessions/current/refresh", nil,
		"x-stack-refresh-token", sess.RefreshToken)
	if r.Status != http.StatusOK || kidOf(t, r.JSON(t)["access_token"].(string)) == "" {
		t.Errorf("REST refresh: %d %s", r.Status, r.Body)
	}
}
