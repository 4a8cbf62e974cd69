package sealbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpen(t *testing.T) {
	b, err := New(key(1))
	if err != nil {
		t.Fatal(err)
	}
	s := b.Seal([]byte("hunter2-secret"), "roles.password")
	if strings.Contains(s, "hunter2") {
		t.Fatal("plaintext visible in sealed value")
	}
	if s2 := b.Seal([]byte("hunter2-secret"), "roles.password"); s2 == s {
		t.Fatal("two seals of one value must differ (random nonce)")
	}
	got, err := b.Open(s, "roles.password")
	if err != nil || string(got) != "hunter2-secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := b.Open(s, "signing_keys.private"); err == nil {
		t.Fatal("opening with another context must fail")
	}
	tampered := s[:len(s)-2] + "AA"
	if _, err := b.Open(tampered, "roles.password"); err == nil {
		t.Fatal("a tampered value must not open")
	}
	if _, err := b.Open("plain", "x"); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("plain value: %v", err)
	}
}

func TestRotation(t *testing.T) {
	old, _ := New(key(1))
	sealed := old.Seal([]byte("v"), "c")
	rotated, err := New(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Current(sealed) {
		t.Fatal("a value of the old key is not current")
	}
	if got, err := rotated.Open(sealed, "c"); err != nil || string(got) != "v" {
		t.Fatalf("old value after rotation: %q %v", got, err)
	}
	if !rotated.Current(rotated.Seal([]byte("v"), "c")) {
		t.Fatal("new seals use the new key")
	}
	onlyNew, _ := New(key(2))
	if _, err := onlyNew.Open(sealed, "c"); err == nil {
		t.Fatal("a value of a dropped key must not open")
	}
}

func TestKeys(t *testing.T) {
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("short key accepted")
	}
	for _, s := range []string{strings.Repeat("ab", 32),
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"} {
		if _, err := ParseKey(s); err != nil {
			t.Errorf("ParseKey(%q): %v", s, err)
		}
	}
	if _, err := ParseKey("short"); err == nil {
		t.Fatal("bad key accepted")
	}
	path := filepath.Join(t.TempDir(), "master-key")
	k1, err := LoadKeys("", path)
	if err != nil || len(k1) != 1 {
		t.Fatalf("generate: %v", err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode())
	}
	k2, err := LoadKeys("", path)
	if err != nil || !bytes.Equal(k1[0], k2[0]) {
		t.Fatalf("reload: %v", err)
	}
	env := strings.Repeat("cd", 32) + "," + strings.Repeat("ab", 32)
	k3, err := LoadKeys(env, path)
	if err != nil || len(k3) != 2 || k3[0][0] != 0xcd {
		t.Fatalf("env keys: %v %v", k3, err)
	}
}
