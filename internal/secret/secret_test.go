package secret

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestGenerators(t *testing.T) {
	tests := []struct {
		name     string
		gen      func() string
		prefix   string
		length   int // without the prefix
		alphabet string
	}{
		{"APIKey", APIKey, "napi_", 64, LowerAlnum},
		{"PublishableKey", PublishableKey, "pck_", 45, Base32Lower},
		{"SecretServerKey", SecretServerKey, "ssk_", 45, Base32Lower},
		{"RefreshToken", RefreshToken, "", 45, Base32Lower},
		{"Code", Code, "", 45, Base32Lower},
		{"Password", Password, "", 24, mixedAlnum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(map[string]bool, 1000)
			for range 1000 {
				s := tt.gen()
				body, ok := strings.CutPrefix(s, tt.prefix)
				if !ok {
					t.Fatalf("%q does not start with %q", s, tt.prefix)
				}
				if len(body) != tt.length {
					t.Fatalf("%q: body has %d characters, want %d", s, len(body), tt.length)
				}
				for _, r := range body {
					if !strings.ContainsRune(tt.alphabet, r) {
						t.Fatalf("%q: character %q is not in the alphabet", s, r)
					}
				}
				if seen[s] {
					t.Fatalf("duplicate value %q", s)
				}
				seen[s] = true
			}
		})
	}
}

func TestAlphabets(t *testing.T) {
	tests := []struct {
		name     string
		alphabet string
		size     int
		absent   string
	}{
		{"LowerAlnum", LowerAlnum, 36, "ABZ-_"},
		{"Base32Lower", Base32Lower, 32, "ilouILOU"},
		{"mixedAlnum", mixedAlnum, 62, "-_+/="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.alphabet) != tt.size {
				t.Errorf("size %d, want %d", len(tt.alphabet), tt.size)
			}
			for i := range len(tt.alphabet) {
				if strings.IndexByte(tt.alphabet, tt.alphabet[i]) != i {
					t.Errorf("character %q repeats", tt.alphabet[i])
				}
			}
			if strings.ContainsAny(tt.alphabet, tt.absent) {
				t.Errorf("alphabet contains one of %q", tt.absent)
			}
		})
	}
}

func TestPasswordMixesClasses(t *testing.T) {
	var all string
	for range 100 {
		all += Password()
	}
	for _, class := range []string{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz",
		"0123456789"} {
		if !strings.ContainsAny(all, class) {
			t.Errorf("100 passwords hold no character of %q", class)
		}
	}
}

func TestTokenLength(t *testing.T) {
	for _, n := range []int{-5, 0, 1, 7, 100, 4096} {
		want := max(n, 0)
		if got := len(Token("ab", n)); got != want {
			t.Errorf("Token(ab, %d) has length %d, want %d", n, got, want)
		}
	}
	if got := Token("x", 5); got != "xxxxx" {
		t.Errorf("Token(x, 5) = %q", got)
	}
}

func TestTokenPanicsOnBadAlphabet(t *testing.T) {
	for _, alphabet := range []string{"", strings.Repeat("a", 257)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Token with a %d-byte alphabet did not panic", len(alphabet))
				}
			}()
			Token(alphabet, 1)
		}()
	}
}

// TestTokenUniform uses a 200-symbol alphabet, for which reducing bytes modulo 200 would
// make the first 56 symbols twice as likely as the others.
func TestTokenUniform(t *testing.T) {
	const size, perSymbol = 200, 1000
	alphabet := make([]byte, size)
	for i := range alphabet {
		alphabet[i] = byte(i)
	}
	counts := make([]int, size)
	for _, b := range []byte(Token(string(alphabet), size*perSymbol)) {
		counts[b]++
	}
	// The standard deviation of each count is about 31.6; 200 is more than six of them.
	for i, c := range counts {
		if c < perSymbol-200 || c > perSymbol+200 {
			t.Errorf("symbol %d drawn %d times, want about %d", i, c, perSymbol)
		}
	}
}

func TestHash(t *testing.T) {
	h := Hash("abc")
	if len(h) != 32 {
		t.Fatalf("Hash has %d bytes, want 32", len(h))
	}
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := hex.EncodeToString(h); got != want {
		t.Errorf("Hash(abc) = %s, want %s", got, want)
	}
	if Equal(Hash("abc"), Hash("abd")) {
		t.Error("different inputs hash equal")
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b []byte
		want bool
	}{
		{Hash("x"), Hash("x"), true},
		{Hash("x"), Hash("y"), false},
		{Hash("x"), Hash("x")[:31], false},
		{nil, nil, true},
		{nil, []byte{0}, false},
		{[]byte{1, 2}, []byte{1, 3}, false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%x, %x) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
