// Package jwt implements the ES256 JSON Web Tokens that neonauth issues as a Stack Auth
// compatible auth provider: per-project signing keys, their publication as a JWKS, the
// access-token claim set, and signing and verification of compact JWS tokens.
//
// The JWS compact serialisation is written by hand on top of crypto/ecdsa. Only ES256 is
// produced or accepted; the verification key is always chosen by the caller from the kid
// header, never from key material or URLs carried by the token.
package jwt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Algorithm is the only JWS algorithm this package signs with or accepts.
const Algorithm = "ES256"

const (
	coordSize = 32       // bytes of one P-256 coordinate, and of R and S
	kidBytes  = 9        // random bytes of a key id; 12 characters of base64url
	maxToken  = 16 << 10 // longest token Verify and Unverified will look at
)

// b64 is unpadded base64url that rejects non-zero trailing bits, so that every byte string
// has exactly one accepted encoding.
var b64 = base64.RawURLEncoding.Strict()

// Errors returned by Verify, and ErrMalformed also by Unverified. They are wrapped; test
// them with errors.Is.
var (
	// ErrMalformed reports a token that is not three base64url parts of JSON, or whose
	// claims are unusable (such as an iat in the future).
	ErrMalformed = errors.New("token is malformed")
	// ErrAlgorithm reports a header alg other than ES256.
	ErrAlgorithm = errors.New("token algorithm is not ES256")
	// ErrUnknownKey reports a kid that is missing or not among the project's keys.
	ErrUnknownKey = errors.New("token key id is unknown")
	// ErrSignature reports a signature that does not verify with the key named by kid.
	ErrSignature = errors.New("token signature is invalid")
	// ErrAudience reports an aud claim other than the verifier's audience.
	ErrAudience = errors.New("token audience does not match")
	// ErrIssuer reports an iss claim other than the verifier's issuer.
	ErrIssuer = errors.New("token issuer does not match")
	// ErrExpired reports a token whose exp, plus the allowed skew, has passed.
	ErrExpired = errors.New("token has expired")
)

// SigningKey is one ES256 key of an auth project.
type SigningKey struct {
	// KID is the key id: 12 random characters of base64url.
	KID string
	// Private is the P-256 private key.
	Private *ecdsa.PrivateKey
}

// NewSigningKey generates a P-256 key with a random key id.
func NewSigningKey() (*SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	id := make([]byte, kidBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("generate key id: %w", err)
	}
	return &SigningKey{KID: b64.EncodeToString(id), Private: priv}, nil
}

// MarshalPrivate encodes the private key as PKCS#8 DER, for storage. The key id is not part
// of the encoding.
func (k *SigningKey) MarshalPrivate() ([]byte, error) {
	if k == nil || k.Private == nil {
		return nil, errors.New("marshal signing key: no private key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("marshal signing key %q: %w", k.KID, err)
	}
	return der, nil
}

// ParseSigningKey rebuilds a signing key from its key id and the PKCS#8 DER written by
// MarshalPrivate. It rejects an empty kid and any key that is not ECDSA on P-256.
func ParseSigningKey(kid string, der []byte) (*SigningKey, error) {
	if kid == "" {
		return nil, errors.New("parse signing key: empty key id")
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse signing key %q: %w", kid, err)
	}
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse signing key %q: %T is not an ECDSA key", kid, key)
	}
	if priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("parse signing key %q: curve %s is not P-256", kid,
			priv.Curve.Params().Name)
	}
	return &SigningKey{KID: kid, Private: priv}, nil
}

// Public returns the verification key matching k.
func (k *SigningKey) Public() PublicKey {
	return PublicKey{KID: k.KID, Key: &k.Private.PublicKey}
}

// PublicKey is a verification key.
type PublicKey struct {
	// KID is the key id, matched against the kid header of tokens.
	KID string
	// Key is the P-256 public key.
	Key *ecdsa.PublicKey
}

// JWK returns the key as published in a JWKS. It panics if p.Key is not a valid P-256
// key, which cannot happen for keys obtained from this package.
func (p PublicKey) JWK() JWK {
	if p.Key == nil || p.Key.Curve != elliptic.P256() {
		panic("jwt: PublicKey.JWK on a key that is not P-256")
	}
	point, err := p.Key.Bytes() // 0x04 || X || Y, each coordinate left-padded to 32 bytes
	if err != nil {
		panic(fmt.Sprintf("jwt: PublicKey.JWK: %v", err))
	}
	return JWK{
		Kty: "EC",
		Crv: "P-256",
		Alg: Algorithm,
		Use: "sig",
		KID: p.KID,
		X:   b64.EncodeToString(point[1 : 1+coordSize]),
		Y:   b64.EncodeToString(point[1+coordSize:]),
	}
}

// JWK is one public key as published: kty "EC", crv "P-256", alg "ES256", use "sig", the
// kid, and the coordinates x and y, each 32 bytes in unpadded base64url. It has no field
// for a private member, so it can never leak one.
type JWK struct {
	// Kty is the key type, "EC".
	Kty string `json:"kty"`
	// Crv is the curve, "P-256".
	Crv string `json:"crv"`
	// Alg is the algorithm, "ES256".
	Alg string `json:"alg"`
	// Use is the intended use, "sig".
	Use string `json:"use"`
	// KID is the key id.
	KID string `json:"kid"`
	// X is the x coordinate, 32 bytes big-endian in unpadded base64url.
	X string `json:"x"`
	// Y is the y coordinate, 32 bytes big-endian in unpadded base64url.
	Y string `json:"y"`
}

// JWKS is a JSON Web Key Set, the document listing a project's verification keys.
type JWKS struct {
	// Keys are the published keys.
	Keys []JWK `json:"keys"`
}

// ParseJWK converts a published key back into a verification key. It requires kty "EC",
// crv "P-256", alg "ES256", use "sig" or absent, a non-empty kid, and x and y that are
// 32-byte coordinates of a point on the curve.
func ParseJWK(j JWK) (PublicKey, error) {
	switch {
	case j.Kty != "EC":
		return PublicKey{}, fmt.Errorf("parse JWK %q: kty %q is not EC", j.KID, j.Kty)
	case j.Crv != "P-256":
		return PublicKey{}, fmt.Errorf("parse JWK %q: crv %q is not P-256", j.KID, j.Crv)
	case j.Alg != Algorithm:
		return PublicKey{}, fmt.Errorf("parse JWK %q: alg %q is not ES256", j.KID, j.Alg)
	case j.Use != "" && j.Use != "sig":
		return PublicKey{}, fmt.Errorf("parse JWK %q: use %q is not sig", j.KID, j.Use)
	case j.KID == "":
		return PublicKey{}, errors.New("parse JWK: empty kid")
	}
	point := make([]byte, 1, 1+2*coordSize)
	point[0] = 4 // uncompressed point
	for _, c := range []struct{ name, value string }{{"x", j.X}, {"y", j.Y}} {
		raw, err := b64.DecodeString(c.value)
		if err != nil {
			return PublicKey{}, fmt.Errorf("parse JWK %q: %s: %w", j.KID, c.name, err)
		}
		if len(raw) != coordSize {
			return PublicKey{}, fmt.Errorf("parse JWK %q: %s has %d bytes, want %d",
				j.KID, c.name, len(raw), coordSize)
		}
		point = append(point, raw...)
	}
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return PublicKey{}, fmt.Errorf("parse JWK %q: %w", j.KID, err)
	}
	return PublicKey{KID: j.KID, Key: key}, nil
}

// Claims is the Stack Auth access-token claim set. The nullable claims are pointers (or an
// interface) and are serialised as JSON null when empty, never omitted.
type Claims struct {
	// Issuer is iss, the project's issuer URL.
	Issuer string `json:"iss"`
	// Subject is sub, the user id.
	Subject string `json:"sub"`
	// Audience is aud, a single string.
	Audience string `json:"aud"`
	// IssuedAt is iat, in unix seconds.
	IssuedAt int64 `json:"iat"`
	// Expiry is exp, in unix seconds.
	Expiry int64 `json:"exp"`
	// ProjectID is the Stack Auth project id.
	ProjectID string `json:"project_id"`
	// BranchID is the Stack Auth branch, "main".
	BranchID string `json:"branch_id"`
	// RefreshTokenID identifies the refresh token the access token was minted from.
	RefreshTokenID string `json:"refresh_token_id"`
	// Role is the database role, "authenticated".
	Role string `json:"role"`
	// Name is the user's display name, or nil.
	Name *string `json:"name"`
	// Email is the user's primary email, or nil.
	Email *string `json:"email"`
	// EmailVerified reports whether Email is verified.
	EmailVerified bool `json:"email_verified"`
	// SelectedTeamID is the user's selected team, or nil.
	SelectedTeamID *string `json:"selected_team_id"`
	// SignedUpAt is when the user signed up, in unix seconds.
	SignedUpAt int64 `json:"signed_up_at"`
	// IsAnonymous reports an anonymous user.
	IsAnonymous bool `json:"is_anonymous"`
	// IsRestricted reports a restricted user.
	IsRestricted bool `json:"is_restricted"`
	// RestrictedReason is nil or an object such as {"type": "..."}.
	RestrictedReason any `json:"restricted_reason"`
	// RequiresTOTPMFA reports that the user must still pass TOTP MFA.
	RequiresTOTPMFA bool `json:"requires_totp_mfa"`
}

// header is the JOSE header. Only alg and kid are interpreted; members such as jwk, jku,
// x5u and x5c are ignored, because the key always comes from the verifier.
type header struct {
	Alg  string          `json:"alg"`
	KID  string          `json:"kid"`
	Typ  string          `json:"typ,omitempty"`
	Crit json.RawMessage `json:"crit,omitempty"`
}

// Sign returns c as a compact JWS signed with k, with the header
// {"alg":"ES256","kid":<kid>,"typ":"JWT"}.
func Sign(k *SigningKey, c Claims) (string, error) {
	if k == nil || k.Private == nil || k.Private.Curve != elliptic.P256() {
		return "", errors.New("sign token: signing key is not a P-256 key")
	}
	if k.KID == "" {
		return "", errors.New("sign token: signing key has an empty key id")
	}
	h, err := json.Marshal(header{Alg: Algorithm, KID: k.KID, Typ: "JWT"})
	if err != nil {
		return "", fmt.Errorf("sign token: encode header: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("sign token: encode claims: %w", err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.Private, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign token with key %q: %w", k.KID, err)
	}
	sig := make([]byte, 2*coordSize)
	r.FillBytes(sig[:coordSize])
	s.FillBytes(sig[coordSize:])
	return input + "." + b64.EncodeToString(sig), nil
}

// Verifier checks tokens of one auth project.
type Verifier struct {
	// Keys looks a kid up among the project's published keys.
	Keys func(kid string) (PublicKey, bool)
	// Audience is the required aud. An empty Audience matches no token.
	Audience string
	// Issuer is the required iss. An empty Issuer matches no token.
	Issuer string
	// Skew is the allowed clock skew, such as 30 seconds. Negative means zero.
	Skew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Verify checks a token and returns its claims. In order, it requires three base64url parts
// of JSON (else ErrMalformed), a header alg of exactly ES256 (ErrAlgorithm), a kid that Keys
// knows (ErrUnknownKey) and a valid signature by that key (ErrSignature). Only then does it
// look at the claims: aud must equal Audience (ErrAudience), iss must equal Issuer
// (ErrIssuer), exp plus Skew must be after now (ErrExpired), and iat must not be more than
// Skew in the future (ErrMalformed).
//
// On ErrExpired, Verify also returns the claims, whose signature is valid, so that a caller
// can report the expiry time. On every other error the claims are nil.
func (v Verifier) Verify(token string) (*Claims, error) {
	jws, err := parse(token)
	if err != nil {
		return nil, err
	}
	var h header
	if err := decodeJSON(jws.header, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if h.Alg != Algorithm {
		return nil, fmt.Errorf("%w: alg %q", ErrAlgorithm, h.Alg)
	}
	if h.Crit != nil {
		return nil, fmt.Errorf("%w: unsupported crit header", ErrMalformed)
	}
	if h.KID == "" || v.Keys == nil {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, h.KID)
	}
	pub, ok := v.Keys(h.KID)
	if !ok || pub.Key == nil || pub.Key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, h.KID)
	}
	if len(jws.sig) != 2*coordSize {
		return nil, fmt.Errorf("%w: signature has %d bytes, want %d", ErrSignature,
			len(jws.sig), 2*coordSize)
	}
	digest := sha256.Sum256([]byte(jws.input))
	r := new(big.Int).SetBytes(jws.sig[:coordSize])
	s := new(big.Int).SetBytes(jws.sig[coordSize:])
	if !ecdsa.Verify(pub.Key, digest[:], r, s) {
		return nil, fmt.Errorf("%w: kid %q", ErrSignature, h.KID)
	}

	var c Claims
	if err := decodeJSON(jws.payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	if v.Audience == "" || c.Audience != v.Audience {
		return nil, fmt.Errorf("%w: aud %q", ErrAudience, c.Audience)
	}
	if v.Issuer == "" || c.Issuer != v.Issuer {
		return nil, fmt.Errorf("%w: iss %q", ErrIssuer, c.Issuer)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	at, skew := now(), max(v.Skew, 0)
	// exp and iat are whole seconds, so "exp > at-skew" is "exp > floor(at-skew)", and
	// comparing integers avoids overflow on absurd claim values.
	if c.Expiry <= at.Add(-skew).Unix() {
		return &c, fmt.Errorf("%w: at %s", ErrExpired, time.Unix(c.Expiry, 0).UTC())
	}
	if c.IssuedAt > at.Add(skew).Unix() {
		return nil, fmt.Errorf("%w: iat %d is in the future", ErrMalformed, c.IssuedAt)
	}
	return &c, nil
}

// Unverified decodes the claims of token without checking its header, signature or any
// claim. It serves only to read project_id or aud for a precise error message; nothing it
// returns may be trusted. It fails with ErrMalformed.
func Unverified(token string) (*Claims, error) {
	jws, err := parse(token)
	if err != nil {
		return nil, err
	}
	var c Claims
	if err := decodeJSON(jws.payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	return &c, nil
}

// compact is a compact JWS split into its decoded parts.
type compact struct {
	input   string // the signing input: the first two parts and the dot between them
	header  []byte // decoded, not yet parsed
	payload []byte // decoded, not yet parsed
	sig     []byte
}

// parse splits token into three dot-separated parts and decodes each from base64url.
func parse(token string) (compact, error) {
	if len(token) > maxToken {
		return compact{}, fmt.Errorf("%w: %d bytes is too long", ErrMalformed, len(token))
	}
	for i := range len(token) {
		switch c := token[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.':
		default:
			// Also rejects the \r and \n that base64 decoding would skip.
			return compact{}, fmt.Errorf("%w: character %q at %d", ErrMalformed, c, i)
		}
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return compact{}, fmt.Errorf("%w: %d parts, want 3", ErrMalformed, len(parts))
	}
	var dec [3][]byte
	for i, name := range []string{"header", "payload", "signature"} {
		b, err := b64.DecodeString(parts[i])
		if err != nil {
			return compact{}, fmt.Errorf("%w: %s: %w", ErrMalformed, name, err)
		}
		dec[i] = b
	}
	return compact{
		input:   token[:len(parts[0])+1+len(parts[1])],
		header:  dec[0],
		payload: dec[1],
		sig:     dec[2],
	}, nil
}

// decodeJSON decodes raw, which must hold a single JSON object, into v.
func decodeJSON(raw []byte, v any) error {
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	return nil
}
