package neonauth

import (
	"bytes"
	"strings"
	"testing"

	"github.com/neonauth/neonauth/internal/secret"
)

// FuzzTransferCode checks the transfer code normaliser: any text hashes without panicking
// to a digest of the fixed size, and a code is the same code whatever its surrounding space
// and its ASCII letter case, as people copy and retype them.
func FuzzTransferCode(f *testing.F) {
	for _, s := range []string{secret.Code(), strings.ToUpper(secret.Code()), " \t", "",
		"\x00", "\xff\xfe", "İı", "ǅ", "ß", "\u00a0abc\u00a0", strings.Repeat("z", 4096)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		h := hashCode(code)
		if len(h) != 32 {
			t.Fatalf("digest of %d bytes", len(h))
		}
		for _, variant := range []string{" " + code + "\n", "\t" + code} {
			if !bytes.Equal(hashCode(variant), h) {
				t.Fatalf("%q and %q are different codes", code, variant)
			}
		}
		if isASCII(code) && !bytes.Equal(hashCode(strings.ToUpper(code)), h) {
			t.Fatalf("%q in upper case is another code", code)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
