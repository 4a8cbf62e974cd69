package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/neonauth/neonauth/internal/server"
	"github.com/neonauth/neonauth/internal/testserver"
)

// window is how long each load phase runs.
const window = 4 * time.Second

// rate runs fn from workers goroutines for d and returns completed calls per second. fn
// returns false on a failed call, which fails the benchmark.
func rate(b *testing.B, workers int, d time.Duration, fn func() bool) float64 {
	b.Helper()
	var n, failed atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if fn() {
					n.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d calls failed", failed.Load())
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

type client struct {
	hc      *http.Client
	base    string
	project string
	pck     string
	ssk     string
}

func (c *client) do(method, path string, body []byte, ctype string, h ...string) (int, []byte) {
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (c *client) clientHeaders(extra ...string) []string {
	return append([]string{"x-stack-project-id", c.project, "x-stack-access-type", "client",
		"x-stack-publishable-client-key", c.pck}, extra...)
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (c *client) signIn(email, password string) (tokens, bool) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	st, out := c.do("POST", "/api/v1/auth/password/sign-in", body, "application/json",
		c.clientHeaders()...)
	var t tokens
	return t, st == http.StatusOK && json.Unmarshal(out, &t) == nil
}

// bcryptBound measures bcrypt cost-10 verifications per second on every core: the most
// sign-ins per second this machine can do.
func bcryptBound(b *testing.B) float64 {
	h, err := bcrypt.GenerateFromPassword([]byte("correct-horse-battery"), 10)
	if err != nil {
		b.Fatal(err)
	}
	return rate(b, runtime.NumCPU(), window, func() bool {
		return bcrypt.CompareHashAndPassword(h, []byte("correct-horse-battery")) == nil
	})
}

// BenchmarkProvider measures, in one run: sign-in requests per second against the bcrypt
// bound, refresh (token issue) per second, GET /users/me per second and JWKS per second.
// It runs its phases once, whatever b.N is.
func BenchmarkProvider(b *testing.B) {
	s := testserver.Start(b, func(c *server.Config) {
		c.BcryptCost = 10
		c.Fast = false
		c.DBMaxConns = 16
	})
	p := s.CreateProject(b, "bench")
	in := s.CreateIntegration(b, p)
	c := &client{hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		base: s.URL, project: in.AuthProjectID, pck: in.PublishableKey, ssk: in.SecretKey}

	const email, password = "bench@example.com", "correct-horse-battery"
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	if st, out := c.do("POST", "/api/v1/auth/password/sign-up", body, "application/json",
		c.clientHeaders()...); st != http.StatusOK {
		b.Fatalf("sign-up: %d %s", st, out)
	}
	tok, ok := c.signIn(email, password)
	if !ok {
		b.Fatal("sign-in failed")
	}
	b.ResetTimer()

	bound := bcryptBound(b)
	signIn := rate(b, 2*runtime.NumCPU(), window, func() bool {
		_, ok := c.signIn(email, password)
		return ok
	})
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
		"client_id": {c.project}, "client_secret": {c.pck}}.Encode()
	refresh := rate(b, 8, window, func() bool {
		st, _ := c.do("POST", "/api/v1/auth/oauth/token", []byte(form),
			"application/x-www-form-urlencoded")
		return st == http.StatusOK
	})
	me := rate(b, 8, window, func() bool {
		st, _ := c.do("GET", "/api/v1/users/me", nil, "",
			c.clientHeaders("x-stack-access-token", tok.AccessToken)...)
		return st == http.StatusOK
	})
	jwks := rate(b, 8, window, func() bool {
		st, _ := c.do("GET", strings.TrimPrefix(in.JWKSURL, s.URL), nil, "")
		return st == http.StatusOK
	})
	b.StopTimer()

	b.ReportMetric(bound, "bcrypt10-verify/s")
	b.ReportMetric(signIn, "sign-in/s")
	b.ReportMetric(signIn/bound, "sign-in/bcrypt-bound")
	b.ReportMetric(refresh, "refresh/s")
	b.ReportMetric(me, "users-me/s")
	b.ReportMetric(jwks, "jwks/s")
	fmt.Printf("\nbcrypt cost-10 verify bound: %.1f/s on %d cores\n", bound, runtime.NumCPU())
	fmt.Printf("sign-in: %.1f/s = %.3f of the bound\n", signIn, signIn/bound)
	fmt.Printf("refresh (token issue): %.0f/s\nGET /users/me: %.0f/s\nJWKS: %.0f/s\n",
		refresh, me, jwks)
}
