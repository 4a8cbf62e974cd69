package neonv2_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

// fakeClock is a clock for the rate limiters that moves only when told to.
type fakeClock struct{ offset atomic.Int64 }

var clockBase = time.Unix(1_700_000_000, 0)

func (c *fakeClock) now() time.Time { return clockBase.Add(time.Duration(c.offset.Load())) }

func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newAccount creates another account and returns its admin API key.
func newAccount(t *testing.T, s *testserver.Server, name string) string {
	t.Helper()
	_, key, err := s.Env.Console.CreateAccount(context.Background(), name)
	if err != nil {
		t.Fatalf("create account %s: %v", name, err)
	}
	return key
}

// wantLimited checks a 429: Neon's error body with TOO_MANY_REQUESTS, a message naming
// words, and Retry-After in whole seconds.
func wantLimited(t *testing.T, r testserver.Response, retryAfter string, words ...string) {
	t.Helper()
	wantErrorNaming(t, r, http.StatusTooManyRequests, words...)
	if code := decode[map[string]any](t, r)["code"]; code != "TOO_MANY_REQUESTS" {
		t.Fatalf("code %v, want TOO_MANY_REQUESTS", code)
	}
	if got := r.Header.Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After %q, want %q", got, retryAfter)
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	s := testserver.Start(t, func(c *server.Config) {
		c.Limits = httpapi.Limits{AccountPerMinute: 6, RouteBurst: 3, AuthFailuresPerMinute: 4,
			Now: clock.now}
	})
	get := func(key, path string) testserver.Response {
		return call(t, s, key, "GET", path, nil)
	}
	ok := func(key, path string) {
		t.Helper()
		wantStatus(t, get(key, path), http.StatusOK)
	}

	t.Run("route burst", func(t *testing.T) {
		a, b := newAccount(t, s, "burst-a"), newAccount(t, s, "burst-b")
		for range 3 {
			ok(a, "/users/me")
		}
		wantLimited(t, get(a, "/users/me"), "1", "a second")
		ok(a, "/auth")     // another route has its own burst
		ok(b, "/users/me") // another account has its own buckets
		clock.advance(time.Second)
		ok(a, "/users/me")
	})

	t.Run("account per minute", func(t *testing.T) {
		c, d := newAccount(t, s, "minute-c"), newAccount(t, s, "minute-d")
		for _, p := range []string{"/users/me", "/auth", "/projects"} {
			ok(c, p)
			ok(c, p)
		}
		// 6 a minute refill one every 10 s.
		wantLimited(t, get(c, "/users/me/organizations"), "10", "a minute")
		ok(d, "/users/me/organizations")
		clock.advance(9 * time.Second)
		wantLimited(t, get(c, "/users/me/organizations"), "1", "a minute")
		clock.advance(2 * time.Second)
		ok(c, "/users/me/organizations")
	})

	// Last: it blocks the one client address that every subtest uses.
	t.Run("failed authentications", func(t *testing.T) {
		good := newAccount(t, s, "auth-good")
		bad := "napi_" + "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqr"
		wantStatus(t, get("", "/users/me"), http.StatusUnauthorized)
		for range 3 {
			wantStatus(t, get(bad, "/users/me"), http.StatusUnauthorized)
		}
		// 4 failures a minute refill one every 15 s; until then even a good key is refused,
		// so a guess that happens to be right is not even looked up.
		wantLimited(t, get(good, "/users/me"), "15", "failed authentications")
		wantLimited(t, get(bad, "/projects"), "15", "failed authentications")
		clock.advance(16 * time.Second)
		ok(good, "/users/me")
		wantStatus(t, get(bad, "/users/me"), http.StatusUnauthorized)
		// The one token that came back is used up again: 14 s until the next.
		wantLimited(t, get(good, "/users/me"), "14", "failed authentications")
	})
}

// TestRateLimitsOff checks that a zero limit is no limit: more requests than Neon's burst go
// through at once.
func TestRateLimitsOff(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, func(c *server.Config) {
		c.Limits = httpapi.Limits{AccountPerMinute: 0, RouteBurst: 0, AuthFailuresPerMinute: 0}
	})
	for i := range 60 {
		if r := call(t, s, s.APIKey, "GET", "/users/me", nil); r.Status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, r.Status, r.Body)
		}
		if r := call(t, s, "napi_wrong", "GET", "/users/me", nil); r.Status != 401 {
			t.Fatalf("bad key %d: %d %s", i+1, r.Status, r.Body)
		}
	}
}
