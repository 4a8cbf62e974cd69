package httpapi

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/neonauth/neonauth/internal/errs"
	"github.com/neonauth/neonauth/internal/ratelimit"
)

// Limits are the abuse limits of the APIs. A number of zero (or less) turns its limit off.
type Limits struct {
	// AccountPerMinute is how many management API requests an account may send a minute,
	// all of which may come at once (Neon: 700).
	AccountPerMinute int
	// RouteBurst is how many management API requests an account may send a second to one
	// route, a route being the pattern it matched (Neon: 40).
	RouteBurst int
	// AuthFailuresPerMinute is how many management API requests with a wrong or missing API
	// key a client address may send a minute. Once it is used up, every request from the
	// address is refused until it refills, so keys cannot be tried at speed.
	AuthFailuresPerMinute int
	// SignInEmailPerMinute is how many password sign-ins a minute the provider accepts for
	// one email address of one project, whatever their outcome.
	SignInEmailPerMinute int
	// SignInAddrPerMinute is how many password sign-ins a minute the provider accepts from
	// one client address, whatever their outcome.
	SignInAddrPerMinute int
	// Now, when set, is the limiters' clock: for tests. It has no flag.
	Now func() time.Time
}

// DefaultLimits returns the limits the service runs with unless told otherwise.
func DefaultLimits() Limits {
	return Limits{AccountPerMinute: 700, RouteBurst: 40, AuthFailuresPerMinute: 20,
		SignInEmailPerMinute: 10, SignInAddrPerMinute: 60}
}

// Limiters are the token buckets of Limits. A nil bucket set, or a nil *Limiters, allows
// everything.
type Limiters struct {
	Limits       Limits
	Account      *ratelimit.Keyed
	Route        *ratelimit.Keyed
	AuthFailures *ratelimit.Keyed
	SignInEmail  *ratelimit.Keyed
	SignInAddr   *ratelimit.Keyed
	// SignUpAddr limits sign-ups per client address (at the sign-in address rate, in a
	// bucket of its own).
	SignUpAddr *ratelimit.Keyed
}

// NewLimiters builds the buckets of l.
func NewLimiters(l Limits) *Limiters {
	lim := &Limiters{Limits: l,
		Account:      perMinute(l.AccountPerMinute),
		Route:        perSecond(l.RouteBurst),
		AuthFailures: perMinute(l.AuthFailuresPerMinute),
		SignInEmail:  perMinute(l.SignInEmailPerMinute),
		SignInAddr:   perMinute(l.SignInAddrPerMinute),
		SignUpAddr:   perMinute(l.SignInAddrPerMinute),
	}
	if l.Now != nil {
		for _, k := range []*ratelimit.Keyed{lim.Account, lim.Route, lim.AuthFailures,
			lim.SignInEmail, lim.SignInAddr} {
			if k != nil {
				k.SetClock(l.Now)
			}
		}
	}
	return lim
}

func perMinute(n int) *ratelimit.Keyed {
	if n <= 0 {
		return nil
	}
	return ratelimit.PerMinute(n)
}

// perSecond is n requests a second, all of which may come at once.
func perSecond(n int) *ratelimit.Keyed {
	if n <= 0 {
		return nil
	}
	return ratelimit.New(float64(n), n)
}

// TooManyRequests sets the Retry-After header of a refused request, in whole seconds
// rounded up, and returns the TooManyRequests error to answer it with. The message is
// followed by when to retry.
func TooManyRequests(w http.ResponseWriter, wait time.Duration, format string,
	args ...any) error {
	secs := ratelimit.RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return errs.E(errs.TooManyRequests, "%s; retry after %d s", fmt.Sprintf(format, args...),
		secs)
}

// AllowSignIn applies the sign-in limits to one attempt: first the client address's, then
// the email address's within the auth project (trimmed and lowercased, as stored). It says
// which limit refused it ("address" or "email") and how long to wait.
func (l *Limiters) AllowSignIn(addr, projectID, email string) (bool, time.Duration, string) {
	if l == nil {
		return true, 0, ""
	}
	if ok, wait := l.SignInAddr.Allow(addr); !ok {
		return false, wait, "address"
	}
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	if ok, wait := l.SignInEmail.Allow(projectID + " " + string(sum[:])); !ok {
		return false, wait, "email"
	}
	return true, 0, ""
}

// AllowSignUp applies the per-address limit to one sign-up: each costs a bcrypt hash, and a
// flood of them would crowd out sign-ins.
func (l *Limiters) AllowSignUp(addr string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	return l.SignUpAddr.Allow(addr)
}
