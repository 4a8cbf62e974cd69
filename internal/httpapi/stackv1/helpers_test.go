package stackv1_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/testserver"
)

// env is a running service with one project and its Neon Auth integration.
type env struct {
	s  *testserver.Server
	p  testserver.Project
	in testserver.Integration
}

// start starts a service with a project and an integration. Tests run in parallel, each
// with its own service.
func start(t *testing.T, opts ...testserver.Option) *env {
	t.Helper()
	t.Parallel()
	s := testserver.Start(t, opts...)
	p := s.CreateProject(t, "stackv1-"+strings.ToLower(t.Name()))
	return &env{s: s, p: p, in: s.CreateIntegration(t, p)}
}

// client and server send provider requests with client or server access.
func (e *env) client(t *testing.T, method, path string, body any, h ...string) testserver.Response {
	t.Helper()
	return e.s.Stack(t, e.in, "client", method, path, body, h...)
}

func (e *env) server(t *testing.T, method, path string, body any, h ...string) testserver.Response {
	t.Helper()
	return e.s.Stack(t, e.in, "server", method, path, body, h...)
}

// tokens are a sign-up or sign-in response.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	UserID       string `json:"user_id"`
}

// auth posts to a password endpoint and requires 200.
func (e *env) auth(t *testing.T, endpoint, email, password string) tokens {
	t.Helper()
	r := e.client(t, "POST", "/auth/password/"+endpoint,
		map[string]any{"email": email, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", endpoint, email, r.Status, r.Body)
	}
	var tk tokens
	decode(t, r.Body, &tk)
	if tk.AccessToken == "" || tk.RefreshToken == "" || tk.UserID == "" {
		t.Fatalf("%s: incomplete tokens: %s", endpoint, r.Body)
	}
	return tk
}

func (e *env) signUp(t *testing.T, email, password string) tokens {
	t.Helper()
	return e.auth(t, "sign-up", email, password)
}

func (e *env) signIn(t *testing.T, email, password string) tokens {
	t.Helper()
	return e.auth(t, "sign-in", email, password)
}

// createUser creates a user through the server API and returns its server JSON.
func (e *env) createUser(t *testing.T, body map[string]any) map[string]any {
	t.Helper()
	r := e.server(t, "POST", "/users", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /users: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)
}

// oauthRefresh refreshes as the SDK does: the OAuth2 refresh_token grant, form-encoded.
func (e *env) oauthRefresh(t *testing.T, rt string) testserver.Response {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {e.in.AuthProjectID}, "client_secret": {e.in.PublishableKey}}
	return e.s.Do(t, "POST", "/api/v1/auth/oauth/token", form.Encode(),
		"Content-Type", "application/x-www-form-urlencoded")
}

// me reads /users/me with an access token.
func (e *env) me(t *testing.T, access string) testserver.Response {
	t.Helper()
	return e.client(t, "GET", "/users/me", nil, "x-stack-access-token", access)
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// known checks that r is the known error code with the status, consistently in the status,
// both header spellings and the body, and returns the body's details (nil when absent).
func known(t *testing.T, r testserver.Response, status int, code string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("want %d %s, got %d %s", status, code, r.Status, r.Body)
	}
	for _, h := range []string{"x-stack-known-error", "x-hexclave-known-error"} {
		if got := r.Header.Get(h); got != code {
			t.Errorf("%s = %q, want %q (body %s)", h, got, code, r.Body)
		}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content-type %q, want application/json", ct)
	}
	var b struct {
		Code    string          `json:"code"`
		Error   string          `json:"error"`
		Details json.RawMessage `json:"details"`
	}
	decode(t, r.Body, &b)
	if b.Code != code || b.Error == "" {
		t.Errorf("body %s, want code %s and a message", r.Body, code)
	}
	if b.Details == nil {
		return nil
	}
	var d map[string]any
	decode(t, b.Details, &d)
	if d == nil {
		t.Errorf("details %s is not an object", b.Details)
	}
	return d
}

// jwtParts decodes a token's header and claims without verifying it.
func jwtParts(t *testing.T, tok string) (hdr, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", tok, len(parts))
	}
	for i, out := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("token part %d: %v", i, err)
		}
		decode(t, b, out)
	}
	return hdr, claims
}

// clock is a fake clock for the identity service: real time plus an offset.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// fakeClock replaces the identity service's clock; call it before the first request.
func (e *env) fakeClock() *clock {
	c := &clock{}
	e.s.Env.Identity.Now = c.now
	return c
}

// projectDB connects to the project's database, where neon_auth.users_sync lives.
func (e *env) projectDB(t *testing.T) *pgx.Conn { return connect(t, e.p.ConnectionURI) }

// connect opens a connection to a database, closed when the test ends.
func connect(t *testing.T, uri string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// syncRow is a row of neon_auth.users_sync.
type syncRow struct {
	RawJSON   map[string]any
	Raw       []byte
	Name      *string
	Email     *string
	CreatedAt *time.Time
	UpdatedAt *time.Time
	DeletedAt *time.Time
}

// String shows a row in failure messages.
func (r *syncRow) String() string {
	return fmt.Sprintf("name=%v email=%v updated_at=%v deleted_at=%v raw=%s",
		deref(r.Name), deref(r.Email), r.UpdatedAt, r.DeletedAt, r.Raw)
}

func deref(s *string) string {
	if s == nil {
		return "<NULL>"
	}
	return fmt.Sprintf("%q", *s)
}

// readRow reads a user's users_sync row; nil when there is none.
func readRow(t *testing.T, db *pgx.Conn, id string) *syncRow {
	t.Helper()
	var r syncRow
	err := db.QueryRow(context.Background(), `SELECT raw_json::text, name, email, created_at,
		updated_at, deleted_at FROM neon_auth.users_sync WHERE id = $1`, id).
		Scan(&r.Raw, &r.Name, &r.Email, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt)
	if err == pgx.ErrNoRows {
		return nil
	}
	if err != nil {
		t.Fatalf("read users_sync %s: %v", id, err)
	}
	decode(t, r.Raw, &r.RawJSON)
	return &r
}

// waitRow polls a user's users_sync row until ok accepts it, failing after 15 s.
func waitRow(t *testing.T, db *pgx.Conn, id string, ok func(*syncRow) bool) *syncRow {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := readRow(t, db, id)
		if r != nil && ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("users_sync row %s did not reach the expected state; last: %v", id, r)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitSynced waits until the outbox of the metadata database is drained, so that every
// committed change has reached users_sync.
func (e *env) waitSynced(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		err := e.s.Env.Pool.QueryRow(context.Background(),
			"SELECT count(*) FROM sync_events WHERE auth_project_id = $1",
			e.in.AuthProjectID).Scan(&n)
		if err != nil {
			t.Fatalf("count sync events: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sync events still pending", n)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// sameJSON reports whether two JSON documents are equal, ignoring key order and the keys
// in ignore.
func sameJSON(t *testing.T, a, b any, ignore ...string) bool {
	t.Helper()
	norm := func(v any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		var m map[string]any
		decode(t, raw, &m)
		for _, k := range ignore {
			delete(m, k)
		}
		out, _ := json.Marshal(m)
		return string(out)
	}
	return norm(a) == norm(b)
}
