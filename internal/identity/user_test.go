package identity

import (
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/neonauth/neonauth/internal/errs"
)

// TestB17PasswordUnits: the password rule counts UTF-16 code units, as JavaScript does.
func TestB17PasswordUnits(t *testing.T) {
	bike := "🚲"
	for _, c := range []struct {
		pw   string
		code string
	}{
		{strings.Repeat("a", 8), ""}, {strings.Repeat("a", 7), "PASSWORD_TOO_SHORT"},
		{strings.Repeat("a", 70), ""}, {strings.Repeat("a", 71), "PASSWORD_TOO_LONG"},
		{strings.Repeat(bike, 4), ""}, {strings.Repeat(bike, 3) + "a", "PASSWORD_TOO_SHORT"},
		{strings.Repeat(bike, 35), ""}, {strings.Repeat(bike, 35) + "a", "PASSWORD_TOO_LONG"},
		{strings.Repeat("李", 70), ""}, {"", "PASSWORD_TOO_SHORT"},
	} {
		got := ""
		if err := checkPassword(c.pw); err != nil {
			got = errs.As(err).Known
		}
		if got != c.code {
			t.Errorf("%d bytes: %q, want %q", len(c.pw), got, c.code)
		}
	}
}

// TestB17LongPasswordsNotTruncated: passwords over bcrypt's 72 bytes hash without error,
// and two that share their first 72 bytes do not match each other.
func TestB17LongPasswordsNotTruncated(t *testing.T) {
	s := &Service{BcryptCost: bcrypt.MinCost}
	long := strings.Repeat("李", 70)
	other := strings.Repeat("李", 24) + strings.Repeat("x", 46)
	h, err := s.HashPassword(long)
	if err != nil {
		t.Fatalf("hash %d bytes: %v", len(long), err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), passwordBytes(long)) != nil {
		t.Errorf("the password does not match its own hash")
	}
	if bcrypt.CompareHashAndPassword([]byte(h), passwordBytes(other)) == nil {
		t.Errorf("a password sharing the first 72 bytes matches")
	}
	short := strings.Repeat("a", 72)
	if string(passwordBytes(short)) != short {
		t.Errorf("a 72-byte password is not hashed as is (Stack bcrypt compatibility)")
	}
}

// TestB07DisplayNameCodePoints: display names are counted in code points, kept as given.
func TestB07DisplayNameCodePoints(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{strings.Repeat("🚲", 256), true}, {strings.Repeat("🚲", 257), false},
		{strings.Repeat("a", 256), true}, {strings.Repeat("a", 257), false},
		{"", false}, {"a\x00b", false}, {"\xff", false}, {" Zoë 李 ", true},
	} {
		err := CheckDisplayName("display_name", c.name, MaxDisplayName)
		if (err == nil) != c.ok {
			t.Errorf("%d bytes: err %v, want ok %v", len(c.name), err, c.ok)
		}
	}
}

// TestB14NormaliseEmail: addresses are trimmed and lowercased; Stack's shape rule holds.
func TestB14NormaliseEmail(t *testing.T) {
	e, err := NormaliseEmail("email", "  Mixed.Case@Example.COM ")
	if err != nil || e != "mixed.case@example.com" {
		t.Errorf("got %q, %v", e, err)
	}
	for _, bad := range []string{"a@localhost", "a@gmail", "a.@x.com", "a..b@x.com", "a@x.c",
		"", "a b@x.com", "a@b@x.com", strings.Repeat("a", 251) + "@x.com"} {
		if _, err := NormaliseEmail("email", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestMetadataText: metadata that jsonb cannot store is refused before the database.
func TestMetadataText(t *testing.T) {
	ok := json.RawMessage(`{"a":["\\u0000 is text here", 1, null, {"b": true}]}`)
	if err := checkJSON("client_metadata", ok); err != nil {
		t.Errorf("escaped backslash refused: %v", err)
	}
	for _, bad := range []string{`{"a":"x\u0000"}`, `{"a\u0000":1}`, `["\u0000"]`, `{`} {
		if err := checkJSON("client_metadata", json.RawMessage(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
