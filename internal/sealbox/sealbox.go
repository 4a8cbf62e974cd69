// Package sealbox encrypts the secrets that neonauth must read back (signing private keys,
// database passwords) with AES-256-GCM under a master key. A sealed value names the key that
// sealed it, so that after a rotation old values still open and can be sealed again.
package sealbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// prefix starts every sealed value: "sb1:<key id>:<base64 of nonce and ciphertext>".
const prefix = "sb1:"

// ErrNotSealed is returned by Open for a value that was not sealed by a Box.
var ErrNotSealed = errors.New("sealbox: value is not sealed")

// Box seals with its current key and opens with any of its keys.
type Box struct {
	current string
	keys    map[string]cipher.AEAD
}

// keyID names a key by a short hash of it, so the key itself is never written anywhere.
func keyID(key []byte) string {
	h := sha256.Sum256(append([]byte("neonauth-sealbox-key-id:"), key...))
	return hex.EncodeToString(h[:4])
}

// New builds a box. The first key seals; every key opens. Keys are 32 bytes.
func New(keys ...[]byte) (*Box, error) {
	if len(keys) == 0 {
		return nil, errors.New("sealbox: no key")
	}
	b := &Box{keys: map[string]cipher.AEAD{}}
	for i, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("sealbox: key %d is %d bytes, want 32", i+1, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("sealbox: %w", err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("sealbox: %w", err)
		}
		id := keyID(k)
		if i == 0 {
			b.current = id
		}
		b.keys[id] = gcm
	}
	return b, nil
}

// Seal encrypts plaintext. context binds the value to where it is stored (a table and
// column, say): opening it with another context fails.
func (b *Box) Seal(plaintext []byte, context string) string {
	gcm := b.keys[b.current]
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("sealbox: crypto/rand failed: " + err.Error())
	}
	out := gcm.Seal(nonce, nonce, plaintext, []byte(context))
	return prefix + b.current + ":" + base64.RawStdEncoding.EncodeToString(out)
}

// Open decrypts a sealed value.
func (b *Box) Open(sealed, context string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return nil, ErrNotSealed
	}
	id, data, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, ErrNotSealed
	}
	gcm, ok := b.keys[id]
	if !ok {
		return nil, fmt.Errorf("sealbox: value sealed with unknown key %s", id)
	}
	raw, err := base64.RawStdEncoding.DecodeString(data)
	if err != nil || len(raw) < gcm.NonceSize() {
		return nil, ErrNotSealed
	}
	pt, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], []byte(context))
	if err != nil {
		return nil, fmt.Errorf("sealbox: cannot open value: %w", err)
	}
	return pt, nil
}

// Current reports whether a sealed value was sealed with the current key.
func (b *Box) Current(sealed string) bool {
	return strings.HasPrefix(sealed, prefix+b.current+":")
}

// ParseKey decodes a master key given as 64 hex characters or as base64 (standard or URL,
// padded or not) of 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding,
		base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("sealbox: a master key is 32 bytes, as 64 hex characters or base64")
}

// LoadKeys returns the master keys: from env (a comma-separated list, current key first), or
// else from the file at path, one key per line, current first; the file is created with a new
// random key (mode 0600) when it does not exist.
func LoadKeys(env, path string) ([][]byte, error) {
	if strings.TrimSpace(env) != "" {
		return parseList(strings.Split(env, ","))
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("sealbox: generate master key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("sealbox: create key directory: %w", err)
		}
		line := hex.EncodeToString(key) + "\n"
		if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
			return nil, fmt.Errorf("sealbox: write master key file: %w", err)
		}
		return [][]byte{key}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sealbox: read master key file: %w", err)
	}
	return parseList(strings.Split(string(b), "\n"))
}

func parseList(items []string) ([][]byte, error) {
	var keys [][]byte
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" || strings.HasPrefix(it, "#") {
			continue
		}
		k, err := ParseKey(it)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("sealbox: no master key given")
	}
	return keys, nil
}
