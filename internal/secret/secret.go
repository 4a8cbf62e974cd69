// Package secret generates and compares the random secrets neonauth hands out: API keys,
// Stack Auth publishable and secret server keys, refresh tokens, one-time codes and database
// role passwords.
//
// Every generator draws from crypto/rand and maps random bytes onto its alphabet by rejection
// sampling, so each character of the alphabet is equally likely. Secrets are stored only as
// their SHA-256 Hash and compared with Equal, which runs in constant time.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
)

// LowerAlnum is the alphabet of lowercase ASCII letters and digits, used by APIKey.
const LowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789"

// Base32Lower is the Crockford base32 alphabet in lowercase (no i, l, o or u), used by the
// Stack Auth compatible keys, refresh tokens and codes.
const Base32Lower = "0123456789abcdefghjkmnpqrstvwxyz"

// mixedAlnum is the alphabet of database role passwords.
const mixedAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Token returns n characters drawn uniformly at random from alphabet using crypto/rand.
// The alphabet is taken byte by byte, so it should be ASCII, and it must hold between 1 and
// 256 bytes; Token panics otherwise, as that is a programming error. Token returns "" when n
// is zero or negative.
func Token(alphabet string, n int) string {
	m := len(alphabet)
	if m == 0 || m > 256 {
		panic("secret: alphabet must hold between 1 and 256 bytes")
	}
	if n <= 0 {
		return ""
	}
	// Bytes at or above limit would make the low residues more likely; they are discarded.
	// limit is the largest multiple of m that fits in 256.
	limit := 256 - 256%m
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		// crypto/rand.Read never returns an error; it crashes the program if the
		// system's random source fails.
		_, _ = rand.Read(buf)
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, alphabet[int(b)%m])
			if len(out) == n {
				break
			}
		}
	}
	return string(out)
}

// APIKey returns a new neonauth API key: "napi_" followed by 64 characters of LowerAlnum.
func APIKey() string { return "napi_" + Token(LowerAlnum, 64) }

// PublishableKey returns a new Stack Auth publishable client key: "pck_" followed by 45
// characters of Base32Lower.
func PublishableKey() string { return "pck_" + Token(Base32Lower, 45) }

// SecretServerKey returns a new Stack Auth secret server key: "ssk_" followed by 45
// characters of Base32Lower.
func SecretServerKey() string { return "ssk_" + Token(Base32Lower, 45) }

// RefreshToken returns a new refresh token of 45 characters of Base32Lower.
func RefreshToken() string { return Token(Base32Lower, 45) }

// Code returns a new transfer or verification code of 45 characters of Base32Lower.
func Code() string { return Token(Base32Lower, 45) }

// Password returns a new database role password of 24 characters drawn from the ASCII
// uppercase letters, lowercase letters and digits.
func Password() string { return Token(mixedAlnum, 24) }

// Hash returns the SHA-256 digest of s, the form in which secrets are stored.
func Hash(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// Equal reports whether a and b are equal, in time that depends only on their lengths.
// It is meant for comparing Hash values.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
