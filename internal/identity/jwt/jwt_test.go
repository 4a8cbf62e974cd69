package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	testAud = "proj-123"
	testIss = "https://auth.example.test/api/v1/projects/proj-123"
)

// testNow has a fractional second so that the rounding of exp and iat is exercised.
var testNow = time.Unix(1_750_000_000, 500_000_000)

var sentinels = []error{ErrMalformed, ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrAudience,
	ErrIssuer, ErrExpired}

func newKey(tb testing.TB) *SigningKey {
	tb.Helper()
	k, err := NewSigningKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func strp(s string) *string { return &s }

func testClaims() Claims {
	return Claims{
		Issuer:         testIss,
		Subject:        "6f1b9a9e-1d7c-4c57-9a43-0f2a1c3d4e5f",
		Audience:       testAud,
		IssuedAt:       testNow.Unix(),
		Expiry:         testNow.Add(10 * time.Minute).Unix(),
		ProjectID:      testAud,
		BranchID:       "main",
		RefreshTokenID: "rt-1",
		Role:           "authenticated",
		SignedUpAt:     testNow.Add(-24 * time.Hour).Unix(),
	}
}

func verifierFor(keys ...PublicKey) Verifier {
	return Verifier{
		Keys: func(kid string) (PublicKey, bool) {
			for _, k := range keys {
				if k.KID == kid {
					return k, true
				}
			}
			return PublicKey{}, false
		},
		Audience: testAud,
		Issuer:   testIss,
		Skew:     30 * time.Second,
		Now:      func() time.Time { return testNow },
	}
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// signRaw builds an ES256 token over an arbitrary header and payload, independently of Sign.
func signRaw(tb testing.TB, k *ecdsa.PrivateKey, header string, payload []byte) string {
	tb.Helper()
	input := enc([]byte(header)) + "." + enc(payload)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc(sig)
}

func signClaims(tb testing.TB, k *SigningKey, c Claims) string {
	tb.Helper()
	tok, err := Sign(k, c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func decodePart(tb testing.TB, tok string, i int) []byte {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestSignVerifyRoundtrip(t *testing.T) {
	k := newKey(t)
	full := testClaims()
	full.Name = strp("Ada Lovelace")
	full.Email = strp("ada@example.test")
	full.EmailVerified = true
	full.SelectedTeamID = strp("team-1")
	full.IsRestricted = true
	full.RestrictedReason = map[string]any{"type": "email_not_verified"}
	full.RequiresTOTPMFA = true
	anon := testClaims()
	anon.IsAnonymous = true

	for name, c := range map[string]Claims{"nulls": testClaims(), "full": full, "anon": anon} {
		t.Run(name, func(t *testing.T) {
			tok := signClaims(t, k, c)
			got, err := verifierFor(k.Public()).Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !reflect.DeepEqual(*got, c) {
				t.Errorf("claims differ:\n got %+v\nwant %+v", *got, c)
			}
			wantHeader := `{"alg":"ES256","kid":"` + k.KID + `","typ":"JWT"}`
			if h := string(decodePart(t, tok, 0)); h != wantHeader {
				t.Errorf("header %s, want %s", h, wantHeader)
			}
			if n := len(decodePart(t, tok, 2)); n != 64 {
				t.Errorf("signature has %d bytes, want 64", n)
			}
		})
	}
}

func TestPayloadJSON(t *testing.T) {
	k := newKey(t)
	var m map[string]any
	if err := json.Unmarshal(decodePart(t, signClaims(t, k, testClaims()), 1), &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"iss", "sub", "aud", "iat", "exp", "project_id", "branch_id",
		"refresh_token_id", "role", "name", "email", "email_verified", "selected_team_id",
		"signed_up_at", "is_anonymous", "is_restricted", "restricted_reason",
		"requires_totp_mfa"}
	for _, key := range want {
		if _, ok := m[key]; !ok {
			t.Errorf("claim %q is missing", key)
		}
	}
	if len(m) != len(want) {
		t.Errorf("payload has %d claims, want %d: %v", len(m), len(want), m)
	}
	for _, key := range []string{"name", "email", "selected_team_id", "restricted_reason"} {
		if v, ok := m[key]; !ok || v != nil {
			t.Errorf("claim %q = %v (present %v), want null", key, v, ok)
		}
	}
	if aud, ok := m["aud"].(string); !ok || aud != testAud {
		t.Errorf("aud = %#v, want the string %q", m["aud"], testAud)
	}
	if exp, ok := m["exp"].(float64); !ok || int64(exp) != testClaims().Expiry {
		t.Errorf("exp = %#v", m["exp"])
	}
}

func TestVerifyRefusals(t *testing.T) {
	k := newKey(t)
	pub := k.Public()
	other := newKey(t)
	payload := mustJSON(t, testClaims())
	good := signClaims(t, k, testClaims())
	parts := strings.Split(good, ".")
	es256 := `{"alg":"ES256","kid":"` + k.KID + `","typ":"JWT"}`
	jwkJSON := mustJSON(t, pub.JWK())
	point, err := pub.Key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	hs256 := func(secret []byte) string {
		input := enc([]byte(`{"alg":"HS256","kid":"`+k.KID+`","typ":"JWT"}`)) + "." +
			enc(payload)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		return input + "." + enc(mac.Sum(nil))
	}
	withAlg := func(alg string, sig []byte) string {
		h := `{"alg":` + alg + `,"kid":"` + k.KID + `","typ":"JWT"}`
		return enc([]byte(h)) + "." + enc(payload) + "." + enc(sig)
	}
	claimsWith := func(edit func(*Claims)) []byte {
		c := testClaims()
		edit(&c)
		return mustJSON(t, c)
	}
	tampered := func() string {
		c := testClaims()
		c.Subject = "someone-else"
		return parts[0] + "." + enc(mustJSON(t, c)) + "." + parts[2]
	}
	attacker := other.Public().JWK()
	embedded := func(kid string) string {
		j := attacker
		j.KID = kid
		h := mustJSON(t, map[string]any{"alg": "ES256", "kid": kid, "jwk": j,
			"jku": "https://evil.test/jwks.json"})
		return signRaw(t, other.Private, string(h), payload)
	}
	sig := decodePart(t, good, 2)
	zeroSig := make([]byte, 64)
	rsaSig := make([]byte, 256)
	// s replaced by n - s is the same signature for ECDSA, so instead flip a bit.
	flipped := slices.Clone(sig)
	flipped[40] ^= 1
	badLength := parts[1] // one character more than a multiple of four cannot be decoded
	for len(badLength)%4 != 1 {
		badLength += "A"
	}

	tests := []struct {
		name  string
		token string
		v     func(*Verifier)
		want  error
	}{
		{"alg none empty signature", withAlg(`"none"`, nil), nil, ErrAlgorithm},
		{"alg none without kid", enc([]byte(`{"alg":"none"}`)) + "." + enc(payload) + ".",
			nil, ErrAlgorithm},
		{"alg None", withAlg(`"None"`, nil), nil, ErrAlgorithm},
		{"HS256 keyed with JWK JSON", hs256(jwkJSON), nil, ErrAlgorithm},
		{"HS256 keyed with uncompressed point", hs256(point), nil, ErrAlgorithm},
		{"HS256 keyed with x||y", hs256(point[1:]), nil, ErrAlgorithm},
		{"RS256", withAlg(`"RS256"`, rsaSig), nil, ErrAlgorithm},
		{"PS256", withAlg(`"PS256"`, rsaSig), nil, ErrAlgorithm},
		{"ES384", withAlg(`"ES384"`, sig), nil, ErrAlgorithm},
		{"lowercase es256", withAlg(`"es256"`, sig), nil, ErrAlgorithm},
		{"ES256 with space", withAlg(`"ES256 "`, sig), nil, ErrAlgorithm},
		{"empty alg", withAlg(`""`, sig), nil, ErrAlgorithm},
		{"missing alg", signRaw(t, k.Private, `{"kid":"`+k.KID+`"}`, payload), nil,
			ErrAlgorithm},
		{"alg not a string", withAlg(`256`, sig), nil, ErrMalformed},
		{"unknown kid", signRaw(t, k.Private, `{"alg":"ES256","kid":"nope"}`, payload), nil,
			ErrUnknownKey},
		{"missing kid", signRaw(t, k.Private, `{"alg":"ES256"}`, payload), nil, ErrUnknownKey},
		{"nil Keys", good, func(v *Verifier) { v.Keys = nil }, ErrUnknownKey},
		{"embedded jwk and jku, own kid", embedded(other.KID), nil, ErrUnknownKey},
		{"embedded jwk and jku, victim kid", embedded(k.KID), nil, ErrSignature},
		{"other key under our kid", signRaw(t, other.Private, es256, payload), nil,
			ErrSignature},
		{"tampered payload", tampered(), nil, ErrSignature},
		{"tampered header", enc([]byte(es256+" ")) + "." + parts[1] + "." + parts[2], nil,
			ErrSignature},
		{"flipped signature bit", parts[0] + "." + parts[1] + "." + enc(flipped), nil,
			ErrSignature},
		{"zero signature", parts[0] + "." + parts[1] + "." + enc(zeroSig), nil, ErrSignature},
		{"short signature", parts[0] + "." + parts[1] + "." + enc(sig[:63]), nil,
			ErrSignature},
		{"DER signature", func() string {
			digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
			der, err := ecdsa.SignASN1(rand.Reader, k.Private, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			return parts[0] + "." + parts[1] + "." + enc(der)
		}(), nil, ErrSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", nil, ErrSignature},
		{"wrong aud", signClaims(t, k, func() Claims {
			c := testClaims()
			c.Audience = "proj-other"
			return c
		}()), nil, ErrAudience},
		{"empty verifier audience", good, func(v *Verifier) { v.Audience = "" }, ErrAudience},
		{"empty audience on both sides", signRaw(t, k.Private, es256,
			claimsWith(func(c *Claims) { c.Audience = "" })),
			func(v *Verifier) { v.Audience = "" }, ErrAudience},
		{"aud array", signRaw(t, k.Private, es256, []byte(strings.Replace(string(payload),
			`"aud":"proj-123"`, `"aud":["proj-123"]`, 1))), nil, ErrMalformed},
		{"wrong iss", signClaims(t, k, func() Claims {
			c := testClaims()
			c.Issuer = "https://evil.test"
			return c
		}()), nil, ErrIssuer},
		{"empty verifier issuer", good, func(v *Verifier) { v.Issuer = "" }, ErrIssuer},
		{"empty issuer on both sides", signRaw(t, k.Private, es256,
			claimsWith(func(c *Claims) { c.Issuer = "" })),
			func(v *Verifier) { v.Issuer = "" }, ErrIssuer},
		{"expired beyond skew", signRaw(t, k.Private, es256, claimsWith(func(c *Claims) {
			c.Expiry = testNow.Add(-time.Minute).Unix()
		})), nil, ErrExpired},
		{"no exp", signRaw(t, k.Private, es256, []byte(`{"aud":"`+testAud+`","iss":"`+
			testIss+`"}`)), nil, ErrExpired},
		{"iat in the future", signRaw(t, k.Private, es256, claimsWith(func(c *Claims) {
			c.IssuedAt = testNow.Add(time.Hour).Unix()
			c.Expiry = testNow.Add(2 * time.Hour).Unix()
		})), nil, ErrMalformed},
		{"signed non-JSON payload", signRaw(t, k.Private, es256, []byte("hello")), nil,
			ErrMalformed},
		{"signed null payload", signRaw(t, k.Private, es256, []byte("null")), nil,
			ErrMalformed},
		{"signed trailing data", signRaw(t, k.Private, es256, append(payload, '{', '}')),
			nil, ErrMalformed},
		{"crit header", signRaw(t, k.Private, `{"alg":"ES256","kid":"`+k.KID+
			`","crit":["exp"],"exp":1}`, payload), nil, ErrMalformed},
		{"header not JSON", enc([]byte("alg=ES256")) + "." + parts[1] + "." + parts[2], nil,
			ErrMalformed},
		{"empty", "", nil, ErrMalformed},
		{"garbage", "not a token", nil, ErrMalformed},
		{"dots", "..", nil, ErrMalformed},
		{"one part", parts[0], nil, ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], nil, ErrMalformed},
		{"four parts", good + "." + parts[2], nil, ErrMalformed},
		{"trailing dot", good + ".", nil, ErrMalformed},
		{"bad base64 character", parts[0] + ".!!!." + parts[2], nil, ErrMalformed},
		{"bad base64 length", parts[0] + "." + badLength + "." + parts[2], nil, ErrMalformed},
		{"padded base64", good + "=", nil, ErrMalformed},
		{"standard base64 alphabet", parts[0] + "+/." + parts[1] + "." + parts[2], nil,
			ErrMalformed},
		{"newline inside", parts[0] + ".\n" + parts[1] + "." + parts[2], nil, ErrMalformed},
		{"non-zero trailing bits", parts[0] + "." + parts[1] + "." + parts[2][:85] + "B",
			nil, ErrMalformed},
		{"too long", signClaims(t, k, func() Claims {
			c := testClaims()
			c.Name = strp(strings.Repeat("n", 20000))
			return c
		}()), nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := verifierFor(pub)
			if tt.v != nil {
				tt.v(&v)
			}
			c, err := v.Verify(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error %v, want %v", err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("error %v also matches %v", err, s)
				}
			}
			if tt.want == ErrExpired {
				if c == nil {
					t.Error("ErrExpired without the claims")
				}
			} else if c != nil {
				t.Errorf("claims %+v returned with %v", c, err)
			}
		})
	}
}

// TestSignatureEncoding checks the last character of a 64-byte signature: it carries two
// meaningful bits, so the strict decoder must reject the four spellings with other bits set.
func TestSignatureEncoding(t *testing.T) {
	k := newKey(t)
	tok := signClaims(t, k, testClaims())
	if n := len(strings.Split(tok, ".")[2]); n != 86 {
		t.Fatalf("signature part has %d characters, want 86", n)
	}
	last := tok[len(tok)-1]
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		if c == last {
			continue
		}
		_, err := verifierFor(k.Public()).Verify(tok[:len(tok)-1] + string(c))
		if err == nil {
			t.Errorf("last character %q accepted", c)
		}
	}
}

func TestExpiryAndSkew(t *testing.T) {
	k := newKey(t)
	base := testNow.Unix() // testNow is base + 0.5 s
	tests := []struct {
		name    string
		exp     int64
		iat     int64
		skew    time.Duration
		want    error
		claimed bool // whether claims come back
	}{
		{"valid", base + 600, base, 30 * time.Second, nil, true},
		{"expired within skew", base - 10, base - 600, 30 * time.Second, nil, true},
		{"expired at edge of skew", base - 29, base - 600, 30 * time.Second, nil, true},
		{"exp plus skew before now", base - 30, base - 600, 30 * time.Second, ErrExpired, true},
		{"expired beyond skew", base - 3600, base - 7200, 30 * time.Second, ErrExpired, true},
		{"no skew, exp just passed", base, base - 600, 0, ErrExpired, true},
		{"no skew, exp in a second", base + 1, base - 600, 0, nil, true},
		{"negative skew is zero", base + 1, base - 600, -time.Hour, nil, true},
		{"iat within skew", base + 600, base + 30, 30 * time.Second, nil, true},
		{"iat beyond skew", base + 600, base + 31, 30 * time.Second, ErrMalformed, false},
		{"absurd exp", 1<<63 - 1, base, 30 * time.Second, nil, true},
		{"absurd negative exp", -1 << 63, base, 30 * time.Second, ErrExpired, true},
		{"absurd iat", base + 600, 1<<63 - 1, 30 * time.Second, ErrMalformed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClaims()
			c.Expiry, c.IssuedAt = tt.exp, tt.iat
			v := verifierFor(k.Public())
			v.Skew = tt.skew
			got, err := v.Verify(signClaims(t, k, c))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify error %v, want %v", err, tt.want)
			}
			if (got != nil) != tt.claimed {
				t.Fatalf("claims %+v, want returned: %v", got, tt.claimed)
			}
			if got != nil && got.Expiry != tt.exp {
				t.Errorf("exp %d, want %d", got.Expiry, tt.exp)
			}
		})
	}
}

func TestVerifyDefaultClock(t *testing.T) {
	k := newKey(t)
	v := verifierFor(k.Public())
	v.Now = nil
	c := testClaims()
	c.IssuedAt = time.Now().Unix()
	c.Expiry = time.Now().Add(time.Minute).Unix()
	if _, err := v.Verify(signClaims(t, k, c)); err != nil {
		t.Errorf("fresh token: %v", err)
	}
	// testClaims expires at testNow + 10 minutes, long gone by the real clock.
	if _, err := v.Verify(signClaims(t, k, testClaims())); !errors.Is(err, ErrExpired) {
		t.Errorf("old token: %v, want ErrExpired", err)
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := newKey(t), newKey(t)
	v := verifierFor(oldKey.Public(), newKey.Public())
	for _, k := range []*SigningKey{oldKey, newKey} {
		if _, err := v.Verify(signClaims(t, k, testClaims())); err != nil {
			t.Errorf("key %s: %v", k.KID, err)
		}
	}
}

func TestUnverified(t *testing.T) {
	k := newKey(t)
	c := testClaims()
	c.Expiry = 1
	c.Audience = "proj-other"
	tok := signClaims(t, k, c)
	got, err := Unverified(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, c) {
		t.Errorf("claims %+v, want %+v", *got, c)
	}
	noneTok := enc([]byte(`{"alg":"none"}`)) + "." + strings.Split(tok, ".")[1] + "."
	if got, err := Unverified(noneTok); err != nil || got.ProjectID != c.ProjectID {
		t.Errorf("unsigned token: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", "x.!!.y", "e30.bnVsbA.", "e30.aGk."} {
		if got, err := Unverified(bad); !errors.Is(err, ErrMalformed) || got != nil {
			t.Errorf("Unverified(%q) = %+v, %v; want ErrMalformed", bad, got, err)
		}
	}
}

func TestSignRejectsBadKeys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := newKey(t)
	for name, k := range map[string]*SigningKey{
		"nil":         nil,
		"nil private": {KID: "abc"},
		"empty kid":   {Private: good.Private},
		"P-384":       {KID: "abc", Private: p384},
	} {
		if tok, err := Sign(k, testClaims()); err == nil {
			t.Errorf("%s: Sign returned %q", name, tok)
		}
	}
}

func TestNewSigningKey(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		k := newKey(t)
		if len(k.KID) != 12 {
			t.Errorf("kid %q has %d characters, want 12", k.KID, len(k.KID))
		}
		if _, err := base64.RawURLEncoding.DecodeString(k.KID); err != nil {
			t.Errorf("kid %q is not base64url: %v", k.KID, err)
		}
		if seen[k.KID] {
			t.Errorf("duplicate kid %q", k.KID)
		}
		seen[k.KID] = true
		if k.Private.Curve != elliptic.P256() {
			t.Errorf("curve %s", k.Private.Curve.Params().Name)
		}
	}
}

func TestPrivateKeyRoundtrip(t *testing.T) {
	k := newKey(t)
	der, err := k.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		t.Fatalf("not PKCS#8: %v", err)
	}
	back, err := ParseSigningKey(k.KID, der)
	if err != nil {
		t.Fatal(err)
	}
	if back.KID != k.KID || !back.Private.Equal(k.Private) {
		t.Fatal("parsed key differs")
	}
	if _, err := verifierFor(k.Public()).Verify(signClaims(t, back, testClaims())); err != nil {
		t.Errorf("token of parsed key: %v", err)
	}
	if _, err := (&SigningKey{KID: "x"}).MarshalPrivate(); err == nil {
		t.Error("MarshalPrivate without a key succeeded")
	}
}

func TestParseSigningKeyRejects(t *testing.T) {
	der, err := newKey(t).MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384DER, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(newKey(t).Private)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		kid  string
		der  []byte
	}{
		{"empty kid", "", der},
		{"garbage", "k", []byte("not DER")},
		{"truncated", "k", der[:len(der)-1]},
		{"SEC 1 instead of PKCS#8", "k", sec1},
		{"P-384", "k", p384DER},
		{"Ed25519", "k", edDER},
	}
	for _, tt := range tests {
		if k, err := ParseSigningKey(tt.kid, tt.der); err == nil {
			t.Errorf("%s: parsed %+v", tt.name, k)
		}
	}
}

func TestJWK(t *testing.T) {
	k := newKey(t)
	j := k.Public().JWK()
	if j.Kty != "EC" || j.Crv != "P-256" || j.Alg != "ES256" || j.Use != "sig" ||
		j.KID != k.KID {
		t.Errorf("JWK members %+v", j)
	}
	if len(j.X) != 43 || len(j.Y) != 43 {
		t.Errorf("x has %d and y %d characters, want 43", len(j.X), len(j.Y))
	}
	back, err := ParseJWK(j)
	if err != nil {
		t.Fatal(err)
	}
	if back.KID != k.KID || !back.Key.Equal(&k.Private.PublicKey) {
		t.Error("ParseJWK(JWK()) differs from the key")
	}

	for name, v := range map[string]any{"JWK": j, "JWKS": JWKS{Keys: []JWK{j, j}}} {
		out := mustJSON(t, v)
		var generic any
		if err := json.Unmarshal(out, &generic); err != nil {
			t.Fatal(err)
		}
		keys := []any{generic}
		if m, ok := generic.(map[string]any)["keys"]; ok {
			keys = m.([]any)
		}
		for _, key := range keys {
			m := key.(map[string]any)
			got := slices.Sorted(func(yield func(string) bool) {
				for name := range m {
					if !yield(name) {
						return
					}
				}
			})
			want := []string{"alg", "crv", "kid", "kty", "use", "x", "y"}
			if !slices.Equal(got, want) {
				t.Errorf("%s: members %v, want %v", name, got, want)
			}
		}
		if strings.Contains(string(out), `"d"`) {
			t.Errorf("%s JSON carries d: %s", name, out)
		}
	}
}

// TestJWKPadding finds keys whose coordinates begin with a zero byte and checks that they
// are still published as 32 bytes.
func TestJWKPadding(t *testing.T) {
	var foundX, foundY bool
	for i := 0; i < 20000 && !(foundX && foundY); i++ {
		k := newKey(t)
		point, err := k.Private.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		zeroX, zeroY := point[1] == 0, point[33] == 0
		if !zeroX && !zeroY {
			continue
		}
		foundX, foundY = foundX || zeroX, foundY || zeroY
		j := k.Public().JWK()
		for _, c := range []string{j.X, j.Y} {
			raw, err := base64.RawURLEncoding.DecodeString(c)
			if err != nil || len(raw) != 32 {
				t.Fatalf("coordinate %q decodes to %d bytes (%v)", c, len(raw), err)
			}
		}
		if zeroX && j.X[0] != 'A' {
			t.Errorf("x %q of a leading zero byte does not start with A", j.X)
		}
		back, err := ParseJWK(j)
		if err != nil || !back.Key.Equal(&k.Private.PublicKey) {
			t.Errorf("padded key does not round-trip: %v", err)
		}
	}
	if !foundX || !foundY {
		t.Skip("no key with a leading zero coordinate byte found")
	}
}

func TestParseJWKRejects(t *testing.T) {
	good := newKey(t).Public().JWK()
	y, _ := base64.RawURLEncoding.DecodeString(good.Y)
	offCurve := slices.Clone(y)
	offCurve[31] ^= 1
	// The field prime p of P-256: a coordinate equal to it is out of range.
	p := elliptic.P256().Params().P.FillBytes(make([]byte, 32))
	tests := []struct {
		name string
		edit func(*JWK)
	}{
		{"kty RSA", func(j *JWK) { j.Kty = "RSA" }},
		{"kty oct", func(j *JWK) { j.Kty = "oct" }},
		{"kty lowercase", func(j *JWK) { j.Kty = "ec" }},
		{"crv P-384", func(j *JWK) { j.Crv = "P-384" }},
		{"crv secp256k1", func(j *JWK) { j.Crv = "secp256k1" }},
		{"alg RS256", func(j *JWK) { j.Alg = "RS256" }},
		{"alg HS256", func(j *JWK) { j.Alg = "HS256" }},
		{"alg none", func(j *JWK) { j.Alg = "none" }},
		{"alg missing", func(j *JWK) { j.Alg = "" }},
		{"use enc", func(j *JWK) { j.Use = "enc" }},
		{"kid missing", func(j *JWK) { j.KID = "" }},
		{"y off the curve", func(j *JWK) { j.Y = enc(offCurve) }},
		{"x and y swapped", func(j *JWK) { j.X, j.Y = j.Y, j.X }},
		{"x out of range", func(j *JWK) { j.X = enc(p) }},
		{"point at zero", func(j *JWK) { j.X, j.Y = enc(make([]byte, 32)), enc(make([]byte, 32)) }},
		{"x short", func(j *JWK) { j.X = enc(make([]byte, 31)) }},
		{"x long", func(j *JWK) { j.X = enc(append([]byte{0}, y...)) }},
		{"x padded", func(j *JWK) { j.X += "=" }},
		{"x standard base64", func(j *JWK) { j.X = base64.StdEncoding.EncodeToString(p) }},
		{"x empty", func(j *JWK) { j.X = "" }},
		{"y empty", func(j *JWK) { j.Y = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := good
			tt.edit(&j)
			if k, err := ParseJWK(j); err == nil {
				t.Errorf("ParseJWK(%+v) = %+v", j, k)
			}
		})
	}
	j := good
	j.Use = ""
	if _, err := ParseJWK(j); err != nil {
		t.Errorf("JWK without use: %v", err)
	}
}

func TestJWKPanicsWithoutKey(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]PublicKey{"nil": {KID: "k"},
		"P-384": {KID: "k", Key: &p384.PublicKey}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: JWK did not panic", name)
				}
			}()
			p.JWK()
		}()
	}
}

// TestInteropGoJOSE checks the wire format against an independent JOSE implementation.
func TestInteropGoJOSE(t *testing.T) {
	k := newKey(t)

	// go-jose reads our JWK and verifies our token.
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(mustJSON(t, k.Public().JWK()), &jwk); err != nil {
		t.Fatalf("go-jose rejects our JWK: %v", err)
	}
	if !jwk.Valid() || !jwk.IsPublic() || jwk.KeyID != k.KID || jwk.Algorithm != "ES256" {
		t.Fatalf("go-jose reads our JWK as %+v", jwk)
	}
	sig, err := jose.ParseSigned(signClaims(t, k, testClaims()),
		[]jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if h := sig.Signatures[0].Header; h.KeyID != k.KID || h.Algorithm != "ES256" {
		t.Errorf("go-jose reads header %+v", h)
	}
	payload, err := sig.Verify(jwk)
	if err != nil {
		t.Fatalf("go-jose rejects our signature: %v", err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil || !reflect.DeepEqual(c, testClaims()) {
		t.Errorf("go-jose payload %s (%v)", payload, err)
	}

	// We verify a token signed by go-jose.
	signingKey := jose.SigningKey{Algorithm: jose.ES256,
		Key: jose.JSONWebKey{Key: k.Private, KeyID: k.KID}}
	signer, err := jose.NewSigner(signingKey, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(mustJSON(t, testClaims()))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifierFor(k.Public()).Verify(tok); err != nil {
		t.Errorf("go-jose token refused: %v", err)
	}

	// A go-jose JWK of ours marshals to the same coordinates.
	out, err := json.Marshal(jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.KID,
		Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	var theirs JWK
	if err := json.Unmarshal(out, &theirs); err != nil || theirs != k.Public().JWK() {
		t.Errorf("go-jose JWK %s, ours %+v", out, k.Public().JWK())
	}
}

// TestHighS documents that the (r, n-s) twin of a signature is also accepted, as in every
// ECDSA JWS implementation; tokens are bearer values, so malleability is harmless here.
func TestHighS(t *testing.T) {
	k := newKey(t)
	tok := signClaims(t, k, testClaims())
	parts := strings.Split(tok, ".")
	sig := decodePart(t, tok, 2)
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	s.FillBytes(sig[32:])
	if _, err := verifierFor(k.Public()).Verify(parts[0] + "." + parts[1] + "." +
		enc(sig)); err != nil {
		t.Errorf("twin signature: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	k := newKey(f)
	v := verifierFor(k.Public())
	good := signClaims(f, k, testClaims())
	expired := testClaims()
	expired.Expiry = 1
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(signClaims(f, k, expired))
	f.Add(enc([]byte(`{"alg":"none","kid":"`+k.KID+`"}`)) + "." + parts[1] + ".")
	f.Add(enc([]byte(`{"alg":"HS256","kid":"`+k.KID+`"}`)) + "." + parts[1] + "." + parts[2])
	f.Add(parts[0] + "." + parts[1])
	f.Add(good + "." + parts[2])
	f.Add("e30.e30.")
	f.Add("..")
	f.Add("")
	f.Add("not a token")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token)
		if err == nil {
			if c == nil {
				t.Fatal("nil error with nil claims")
			}
			return
		}
		known := false
		for _, s := range sentinels {
			known = known || errors.Is(err, s)
		}
		if !known {
			t.Fatalf("error %v matches no sentinel", err)
		}
		if (c != nil) != errors.Is(err, ErrExpired) {
			t.Fatalf("claims %+v with error %v", c, err)
		}
		if c, err := Unverified(token); (c == nil) == (err == nil) {
			t.Fatalf("Unverified = %+v, %v", c, err)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	k := newKey(b)
	c := testClaims()
	for b.Loop() {
		if _, err := Sign(k, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k := newKey(b)
	v := verifierFor(k.Public())
	tok := signClaims(b, k, testClaims())
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
