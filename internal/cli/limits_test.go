package cli

import (
	"flag"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/server"
)

func TestLimitFlags(t *testing.T) {
	t.Setenv("NEONAUTH_RATE_ROUTE_BURST", "0")
	t.Setenv("NEONAUTH_RATE_SIGN_IN_ADDR_PER_MINUTE", "120")
	t.Setenv("NEONAUTH_READ_HEADER_TIMEOUT", "3s")
	cfg := server.Defaults()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	serveFlags(fs, &cfg)
	if err := fs.Parse([]string{"--rate-account-per-minute", "5",
		"--rate-sign-in-addr-per-minute", "7"}); err != nil {
		t.Fatal(err)
	}
	want := httpapi.DefaultLimits()
	want.AccountPerMinute, want.RouteBurst, want.SignInAddrPerMinute = 5, 0, 7
	if got := cfg.Limits; got.Now != nil || !sameNumbers(got, want) {
		t.Errorf("limits %+v, want %+v (flags over variables over defaults)", cfg.Limits, want)
	}
	if cfg.ReadHeaderTimeout != 3*time.Second {
		t.Errorf("read header timeout %v, want 3s", cfg.ReadHeaderTimeout)
	}
}

func sameNumbers(a, b httpapi.Limits) bool {
	return a.AccountPerMinute == b.AccountPerMinute && a.RouteBurst == b.RouteBurst &&
		a.AuthFailuresPerMinute == b.AuthFailuresPerMinute &&
		a.SignInEmailPerMinute == b.SignInEmailPerMinute &&
		a.SignInAddrPerMinute == b.SignInAddrPerMinute
}
