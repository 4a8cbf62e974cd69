package stackv1_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

// stillClock is a clock for the rate limiters that moves only when told to.
type stillClock struct{ off atomic.Int64 }

func (c *stillClock) now() time.Time {
	return time.Unix(1_700_000_000, 0).Add(time.Duration(c.off.Load()))
}

// wantSignInLimited checks a refused sign-in: 429 (or 200 with the actual status, when the
// override header was sent), Retry-After, a plain-text message naming what was limited, no
// known-error header (so that the SDK waits and retries), and Retry-After exposed to
// browsers.
func wantSignInLimited(t *testing.T, r testserver.Response, retryAfter, what string) {
	t.Helper()
	status := r.Status
	if s := r.Header.Get("x-stack-actual-status"); s != "" && status == http.StatusOK {
		status = http.StatusTooManyRequests
		if s != "429" {
			t.Fatalf("x-stack-actual-status %q, want 429", s)
		}
	}
	if status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", r.Status, r.Body)
	}
	if got := r.Header.Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After %q, want %q", got, retryAfter)
	}
	if k := r.Header.Get("x-stack-known-error"); k != "" {
		t.Fatalf("x-stack-known-error %q: the SDK would not retry", k)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q, want text/plain", ct)
	}
	if !strings.Contains(string(r.Body), what) || !strings.Contains(string(r.Body), "retry") {
		t.Fatalf("body %q does not say %q and when to retry", r.Body, what)
	}
	exposed := strings.ToLower(r.Header.Get("Access-Control-Expose-Headers"))
	if !strings.Contains(exposed, "retry-after") {
		t.Fatalf("Retry-After is not exposed: %q", exposed)
	}
}

func TestSignInLimits(t *testing.T) {
	clock := &stillClock{}
	e := start(t, func(c *server.Config) {
		c.Limits = httpapi.Limits{SignInEmailPerMinute: 3, SignInAddrPerMinute: 6,
			Now: clock.now}
	})
	const pw = "correct-horse"
	e.signUp(t, "a@example.com", pw)
	signIn := func(email, password string, h ...string) testserver.Response {
		return e.client(t, "POST", "/auth/password/sign-in",
			map[string]any{"email": email, "password": password}, h...)
	}
	// 3 a minute per email: one every 20 s; 6 a minute per address: one every 10 s.
	known(t, signIn("a@example.com", "wrong-1"), 400, "EMAIL_PASSWORD_MISMATCH")
	known(t, signIn("a@example.com", "wrong-2"), 400, "EMAIL_PASSWORD_MISMATCH")
	e.signIn(t, "a@example.com", pw)
	wantSignInLimited(t, signIn("a@example.com", pw), "20", "this email address")
	// The address is normalised as it is stored, and the SDK's override header is honoured.
	wantSignInLimited(t, signIn("  A@Example.COM ", pw, "x-stack-override-error-status", "true"),
		"20", "this email address")
	// Another email has its own budget...
	known(t, signIn("b@example.com", "whatever-pw"), 400, "EMAIL_PASSWORD_MISMATCH")
	// ...but the client address has now sent 6.
	wantSignInLimited(t, signIn("b@example.com", "whatever-pw"), "10", "this address")
	// Sign-up is not a sign-in.
	e.signUp(t, "c@example.com", pw)

	clock.off.Add(int64(21 * time.Second))
	e.signIn(t, "a@example.com", pw)
}

// TestBodyTooLarge checks that the provider refuses a body over 1 MiB with 413, and still
// reads one of exactly 1 MiB.
func TestBodyTooLarge(t *testing.T) {
	e := start(t)
	body := func(n int) string {
		prefix := `{"email":"big@example.com","password":"`
		return prefix + strings.Repeat("x", n-len(prefix)-2) + `"}`
	}
	post := func(b string) testserver.Response {
		return e.s.Do(t, "POST", "/api/v1/auth/password/sign-up", b,
			"x-stack-project-id", e.in.AuthProjectID, "x-stack-access-type", "client",
			"x-stack-publishable-client-key", e.in.PublishableKey,
			"Content-Type", "application/json")
	}
	if r := post(body(httpapi.MaxBody + 1)); r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("1 MiB + 1: %d %.200s, want 413", r.Status, r.Body)
	}
	// A body of exactly the limit is read: the password is then refused for its length.
	known(t, post(body(httpapi.MaxBody)), 400, "PASSWORD_TOO_LONG")
}
