package web_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

// TestOwnerSignInLimited: the owners' sign-in page counts attempts per email like the
// provider's sign-in, so a password cannot be guessed there at speed either.
func TestOwnerSignInLimited(t *testing.T) {
	s := testserver.Start(t, func(c *server.Config) {
		c.Limits = httpapi.Limits{SignInEmailPerMinute: 2}
	})
	signUpOwner(t, s, "limited@example.com")
	v := newVisitor(t, s)
	try := func() page {
		return v.post("/sign-in", url.Values{"csrf": {v.get("/sign-in").csrf(t)},
			"email": {"limited@example.com"}, "password": {"wrong-password-1"}})
	}
	try().want(t, "first wrong password", http.StatusBadRequest, "Wrong email or password")
	try().want(t, "second wrong password", http.StatusBadRequest, "Wrong email or password")
	try().want(t, "third attempt", http.StatusBadRequest, "Too many sign-in attempts")
	other := v.post("/sign-in", url.Values{"csrf": {v.get("/sign-in").csrf(t)},
		"email": {"someone-else@example.com"}, "password": {"wrong-password-1"}})
	other.want(t, "another email", http.StatusBadRequest, "Wrong email or password")
}
