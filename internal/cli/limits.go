package cli

import (
	"flag"

	"github.com/neonauth/neonauth/internal/server"
)

// limitFlags are the serve flags of the rate limits and the header timeout.
func limitFlags(fs *flag.FlagSet, cfg *server.Config) {
	l := &cfg.Limits
	fs.IntVar(&l.AccountPerMinute, "rate-account-per-minute",
		envInt("NEONAUTH_RATE_ACCOUNT_PER_MINUTE", l.AccountPerMinute),
		"management API requests an account may send a minute; 0 turns the limit off "+
			"(NEONAUTH_RATE_ACCOUNT_PER_MINUTE)")
	fs.IntVar(&l.RouteBurst, "rate-route-burst",
		envInt("NEONAUTH_RATE_ROUTE_BURST", l.RouteBurst),
		"management API requests an account may send a second to one route; 0 turns the "+
			"limit off (NEONAUTH_RATE_ROUTE_BURST)")
	fs.IntVar(&l.AuthFailuresPerMinute, "rate-auth-failures-per-minute",
		envInt("NEONAUTH_RATE_AUTH_FAILURES_PER_MINUTE", l.AuthFailuresPerMinute),
		"management API requests with a wrong API key a client address may send a minute "+
			"before all its requests are refused; 0 turns the limit off "+
			"(NEONAUTH_RATE_AUTH_FAILURES_PER_MINUTE)")
	fs.IntVar(&l.SignInEmailPerMinute, "rate-sign-in-email-per-minute",
		envInt("NEONAUTH_RATE_SIGN_IN_EMAIL_PER_MINUTE", l.SignInEmailPerMinute),
		"provider password sign-ins a minute for one email address of a project; 0 turns "+
			"the limit off (NEONAUTH_RATE_SIGN_IN_EMAIL_PER_MINUTE)")
	fs.IntVar(&l.SignInAddrPerMinute, "rate-sign-in-addr-per-minute",
		envInt("NEONAUTH_RATE_SIGN_IN_ADDR_PER_MINUTE", l.SignInAddrPerMinute),
		"provider password sign-ins a minute from one client address; 0 turns the limit "+
			"off (NEONAUTH_RATE_SIGN_IN_ADDR_PER_MINUTE)")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout",
		envDuration("NEONAUTH_READ_HEADER_TIMEOUT", cfg.ReadHeaderTimeout),
		"how long a client may take to send a request's headers (NEONAUTH_READ_HEADER_TIMEOUT)")
}
