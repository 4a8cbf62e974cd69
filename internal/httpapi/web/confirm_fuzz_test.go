package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/neonauth"
	"github.com/neonauth/neonauth/internal/testserver"
)

// fuzzCSRF is the CSRF token of the fuzzed forms: the cookie holds it, and the seeds post it.
const fuzzCSRF = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz0123"

// FuzzConfirmForm posts arbitrary forms to the transfer confirm page, with the CSRF cookie
// or without, from our origin or another. No transfer code exists, so no form can succeed:
// every answer must be a 4xx page, never a 5xx, a redirect or a success.
func FuzzConfirmForm(f *testing.F) {
	c := testserver.ForFuzz(f, nil)
	for _, form := range []string{
		"csrf=" + fuzzCSRF + "&code=abc&action=confirm",
		"csrf=" + fuzzCSRF + "&code=ABC+&action=sign-in&email=a%40b.co&password=correct-horse",
		"csrf=" + fuzzCSRF + "&code=x&action=sign-up&email=a%40b.co&password=correct-horse",
		"csrf=" + fuzzCSRF + "&code=x&action=switch-account",
		"csrf=" + fuzzCSRF + "&code=%00&action=confirm",
		"csrf=" + fuzzCSRF + "&code=%FF%FE&action=%00",
		"csrf=" + fuzzCSRF + "&code=" + strings.Repeat("a", 45) + "&action=nope",
		"csrf=" + fuzzCSRF + "&csrf=other&code=x&action=confirm",
		"csrf=" + fuzzCSRF + "&code=x;action=confirm",
		"csrf=wrong&code=x&action=confirm",
		"code=x&action=confirm",
		"%zz=1&csrf=" + fuzzCSRF,
		"",
	} {
		f.Add(form, "application/x-www-form-urlencoded", true, true)
	}
	f.Add("csrf="+fuzzCSRF+"&code=x&action=confirm", "multipart/form-data; boundary=x", true, true)
	f.Add("csrf="+fuzzCSRF+"&code=x&action=confirm", "application/x-www-form-urlencoded",
		false, true)
	f.Add("csrf="+fuzzCSRF+"&code=x&action=confirm", "application/x-www-form-urlencoded",
		true, false)
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client := &http.Client{Timeout: 8 * time.Second, CheckRedirect: noRedirect}
	f.Fuzz(func(t *testing.T, form, ctype string, cookie, sameOrigin bool) {
		req, err := http.NewRequest("POST", c["url"]+neonauth.TransferPath+"?code=x",
			strings.NewReader(form))
		if err != nil {
			t.Fatalf("not a request: %v", err)
		}
		if validHeader(ctype) {
			req.Header.Set("Content-Type", ctype)
		}
		if cookie {
			req.Header.Set("Cookie", "neonauth_csrf="+fuzzCSRF)
		}
		origin := c["url"]
		if !sameOrigin {
			origin = "http://evil.example"
		}
		req.Header.Set("Origin", origin)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("form %q → %d: %.500s", form, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("form %q → %d with content type %q", form, resp.StatusCode, ct)
		}
	})
}

// validHeader reports whether v can be sent as a header value at all.
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
