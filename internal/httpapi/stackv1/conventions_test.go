package stackv1_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/neonauth/neonauth/internal/testserver"
)

// TestKnownErrors: every error the SDK is expected to handle is a known error whose code is
// the same in the header (both spellings) and the body, with Stack's status and details.
func TestKnownErrors(t *testing.T) {
	e := start(t)
	tk := e.signUp(t, "known@example.com", "correct-horse-1")
	pid, pck, ssk := e.in.AuthProjectID, e.in.PublishableKey, e.in.SecretKey
	raw := func(method, path string, body any, h ...string) func() testserver.Response {
		return func() testserver.Response { return e.s.Do(t, method, "/api/v1"+path, body, h...) }
	}
	client := func(method, path string, body any, h ...string) func() testserver.Response {
		return func() testserver.Response { return e.client(t, method, path, body, h...) }
	}
	server := func(method, path string, body any, h ...string) func() testserver.Response {
		return func() testserver.Response { return e.server(t, method, path, body, h...) }
	}
	missing := uuid.NewString()
	cases := []struct {
		name    string
		do      func() testserver.Response
		status  int
		code    string
		details []string
	}{
		{"no access type", raw("GET", "/users/me", nil), 400, "ACCESS_TYPE_REQUIRED", nil},
		{"bad access type", raw("GET", "/users/me", nil, "x-stack-project-id", pid,
			"x-stack-access-type", "root"), 400, "INVALID_ACCESS_TYPE", []string{"accessType"}},
		{"access type without project", raw("GET", "/users/me", nil,
			"x-stack-access-type", "client"), 400, "ACCESS_TYPE_WITHOUT_PROJECT_ID",
			[]string{"request_type"}},
		{"key without access type", raw("GET", "/users/me", nil, "x-stack-project-id", pid,
			"x-stack-publishable-client-key", pck), 400, "PROJECT_KEY_WITHOUT_ACCESS_TYPE", nil},
		{"unknown project", raw("GET", "/users/me", nil, "x-stack-project-id", missing,
			"x-stack-access-type", "client", "x-stack-publishable-client-key", pck), 400,
			"CURRENT_PROJECT_NOT_FOUND", []string{"project_id"}},
		{"unknown branch", client("GET", "/users/me", nil, "x-stack-branch-id", "dev"), 400,
			"BRANCH_DOES_NOT_EXIST", []string{"branch_id"}},
		{"client without key", raw("GET", "/users/me", nil, "x-stack-project-id", pid,
			"x-stack-access-type", "client"), 401,
			"PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT", []string{"project_id"}},
		{"bad client key", raw("GET", "/users/me", nil, "x-stack-project-id", pid,
			"x-stack-access-type", "client", "x-stack-publishable-client-key", "pck_bad"), 401,
			"INVALID_PUBLISHABLE_CLIENT_KEY", []string{"project_id"}},
		{"server without key", raw("GET", "/users", nil, "x-stack-project-id", pid,
			"x-stack-access-type", "server"), 401, "SERVER_AUTHENTICATION_REQUIRED", nil},
		{"client key as server key", raw("GET", "/users", nil, "x-stack-project-id", pid,
			"x-stack-access-type", "server", "x-stack-secret-server-key", pck), 401,
			"INVALID_SECRET_SERVER_KEY", []string{"project_id"}},
		{"admin", raw("GET", "/users", nil, "x-stack-project-id", pid, "x-stack-access-type",
			"admin", "x-stack-super-secret-admin-key", ssk), 401,
			"INVALID_SUPER_SECRET_ADMIN_KEY", []string{"project_id"}},
		{"client on /users", client("GET", "/users", nil), 401, "INSUFFICIENT_ACCESS_TYPE",
			[]string{"actual_access_type", "allowed_access_types"}},
		{"me without user", client("GET", "/users/me", nil), 400,
			"CANNOT_GET_OWN_USER_WITHOUT_USER", nil},
		{"sign-out without user", client("DELETE", "/auth/sessions/current", map[string]any{}),
			401, "USER_AUTHENTICATION_REQUIRED", nil},
		{"garbage token", client("GET", "/users/me", nil, "x-stack-access-token", "x.y.z"), 401,
			"UNPARSABLE_ACCESS_TOKEN", nil},
		{"unknown user", server("GET", "/users/"+missing, nil), 404, "USER_NOT_FOUND", nil},
		{"session for unknown user", server("POST", "/auth/sessions",
			map[string]any{"user_id": missing}), 400, "USER_ID_DOES_NOT_EXIST",
			[]string{"user_id"}},
		{"duplicate sign-up", client("POST", "/auth/password/sign-up",
			map[string]any{"email": "known@example.com", "password": "correct-horse-1"}), 409,
			"USER_EMAIL_ALREADY_EXISTS", []string{"email", "would_work_if_email_was_verified"}},
		{"wrong password", client("POST", "/auth/password/sign-in",
			map[string]any{"email": "known@example.com", "password": "wrong-horse-1"}), 400,
			"EMAIL_PASSWORD_MISMATCH", nil},
		{"short password", client("POST", "/auth/password/sign-up",
			map[string]any{"email": "short@example.com", "password": "1234567"}), 400,
			"PASSWORD_TOO_SHORT", []string{"min_length"}},
		{"long password", client("POST", "/auth/password/sign-up", map[string]any{
			"email": "long@example.com", "password": strings.Repeat("x", 71)}), 400,
			"PASSWORD_TOO_LONG", []string{"maxLength"}},
		{"unknown body key", client("POST", "/auth/password/sign-in", map[string]any{
			"email": "known@example.com", "password": "correct-horse-1", "remember": true}),
			400, "SCHEMA_ERROR", []string{"message"}},
		{"bad email", client("POST", "/auth/password/sign-up",
			map[string]any{"email": "a@localhost", "password": "correct-horse-1"}), 400,
			"SCHEMA_ERROR", []string{"message"}},
		{"bad callback", client("POST", "/auth/password/sign-up", map[string]any{
			"email": "cb@example.com", "password": "correct-horse-1",
			"verification_callback_url": "not a url"}), 400, "SCHEMA_ERROR", []string{"message"}},
		{"NUL in metadata", server("POST", "/users",
			map[string]any{"client_metadata": map[string]any{"k": "a\x00b"}}), 400,
			"SCHEMA_ERROR", []string{"message"}},
		{"bad password hash", server("POST", "/users", map[string]any{"password_hash": "$2a$10$" +
			strings.Repeat("\x00", 53)}), 400, "SCHEMA_ERROR", []string{"message"}},
		{"bad limit", server("GET", "/users?limit=0", nil), 400, "SCHEMA_ERROR",
			[]string{"message"}},
		{"malformed JSON", client("POST", "/auth/password/sign-in", `{"email":`), 400,
			"BODY_PARSING_ERROR", []string{"message"}},
		{"unsupported content type", client("POST", "/auth/password/sign-in", "<x/>",
			"Content-Type", "application/xml"), 400, "BODY_PARSING_ERROR", []string{"message"}},
		{"unknown refresh token", client("POST", "/auth/sessions/current/refresh", nil,
			"x-stack-refresh-token", "nope"), 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED", nil},
		{"bad oauth client", raw("POST", "/auth/oauth/token", "grant_type=refresh_token&"+
			"refresh_token="+tk.RefreshToken+"&client_id="+missing+"&client_secret="+pck,
			"Content-Type", "application/x-www-form-urlencoded"), 400,
			"INVALID_OAUTH_CLIENT_ID_OR_SECRET", []string{"client_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := known(t, c.do(), c.status, c.code)
			var got []string
			for k := range d {
				got = append(got, k)
			}
			if !equal(sorted(got...), sorted(c.details...)) {
				t.Errorf("details %v, want keys %v", d, c.details)
			}
		})
	}
}

// TestOverrideErrorStatus: with x-stack-override-error-status (or its x-hexclave spelling)
// a 4xx becomes 200 carrying the real status in x-*-actual-status; successes are untouched.
func TestOverrideErrorStatus(t *testing.T) {
	e := start(t)
	for _, h := range []string{"x-stack-override-error-status",
		"x-hexclave-override-error-status"} {
		r := e.client(t, "GET", "/users", nil, h, "true")
		if r.Status != http.StatusOK {
			t.Errorf("%s: status %d, want 200", h, r.Status)
		}
		for _, a := range []string{"x-stack-actual-status", "x-hexclave-actual-status"} {
			if got := r.Header.Get(a); got != "401" {
				t.Errorf("%s: %s = %q, want 401", h, a, got)
			}
		}
		if r.Header.Get("x-stack-known-error") != "INSUFFICIENT_ACCESS_TYPE" {
			t.Errorf("%s: known error header lost: %v", h, r.Header)
		}
		ok := e.server(t, "GET", "/users", nil, h, "true")
		if ok.Status != http.StatusOK || ok.Header.Get("x-stack-actual-status") != "" {
			t.Errorf("%s on a success: %d %v", h, ok.Status, ok.Header)
		}
	}
	if r := e.client(t, "GET", "/users", nil); r.Status != http.StatusUnauthorized ||
		r.Header.Get("x-stack-actual-status") != "" {
		t.Errorf("without the header: %d %v", r.Status, r.Header)
	}
}

// TestHexclaveHeaders: the x-hexclave-* spelling of every request header works alone, as
// SDK 2.8.108 sends it, and responses carry both spellings of the request id.
func TestHexclaveHeaders(t *testing.T) {
	e := start(t)
	client := []string{"x-hexclave-project-id", e.in.AuthProjectID, "x-hexclave-access-type",
		"client", "x-hexclave-publishable-client-key", e.in.PublishableKey,
		"Content-Type", "application/json"}
	r := e.s.Do(t, "POST", "/api/v1/auth/password/sign-up",
		map[string]any{"email": "hex@example.com", "password": "correct-horse-1"}, client...)
	if r.Status != http.StatusOK {
		t.Fatalf("sign-up: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("x-stack-request-id") == "" ||
		r.Header.Get("x-hexclave-request-id") != r.Header.Get("x-stack-request-id") {
		t.Errorf("request id headers %v", r.Header)
	}
	var tk tokens
	decode(t, r.Body, &tk)
	r = e.s.Do(t, "GET", "/api/v1/users/me", nil,
		append(client, "x-hexclave-access-token", tk.AccessToken)...)
	if r.Status != http.StatusOK || r.JSON(t)["id"] != tk.UserID {
		t.Errorf("/users/me: %d %s", r.Status, r.Body)
	}
	r = e.s.Do(t, "POST", "/api/v1/auth/sessions/current/refresh", nil,
		append(client, "x-hexclave-refresh-token", tk.RefreshToken)...)
	if r.Status != http.StatusOK {
		t.Errorf("refresh: %d %s", r.Status, r.Body)
	}
	r = e.s.Do(t, "GET", "/api/v1/users", nil, "x-hexclave-project-id", e.in.AuthProjectID,
		"x-hexclave-access-type", "server", "x-hexclave-secret-server-key", e.in.SecretKey)
	if r.Status != http.StatusOK {
		t.Errorf("server list: %d %s", r.Status, r.Body)
	}
	r = e.s.Do(t, "GET", "/api/v1/users", nil, "x-hexclave-project-id", e.in.AuthProjectID,
		"x-hexclave-access-type", "server", "x-hexclave-secret-server-key", "ssk_bad")
	known(t, r, 401, "INVALID_SECRET_SERVER_KEY")
}

// TestServerUsersAPI: create answers 201, list pages with limit, cursor and next_cursor in
// sign-up order, delete answers {"success": true}, and client access is refused.
func TestServerUsersAPI(t *testing.T) {
	e := start(t)
	var ids []string
	for i := range 5 {
		u := e.createUser(t, map[string]any{"primary_email": string(rune('a'+i)) +
			"-list@example.com", "display_name": "List " + string(rune('A'+i))})
		for _, k := range []string{"risk_scores", "last_active_at_millis", "country_code",
			"restricted_by_admin", "server_metadata", "primary_email_auth_enabled"} {
			if _, ok := u[k]; !ok {
				t.Errorf("server user lacks %s", k)
			}
		}
		ids = append(ids, u["id"].(string))
	}
	pages := e.pages(t, "limit=2")
	if len(pages) != 3 || len(pages[0]) != 2 || len(pages[2]) != 1 {
		t.Fatalf("pages %v", pages)
	}
	if got := strings.Join(flatten(pages), ","); got != strings.Join(ids, ",") {
		t.Errorf("paged ids %s, want %s", got, strings.Join(ids, ","))
	}
	desc := flatten(e.pages(t, "limit=3&desc=true"))
	for i := range ids {
		if desc[i] != ids[len(ids)-1-i] {
			t.Fatalf("desc order %v", desc)
		}
	}
	if q := flatten(e.pages(t, "query=C-LIST@")); len(q) != 1 || q[0] != ids[2] {
		t.Errorf("query result %v, want [%s]", q, ids[2])
	}
	r := e.server(t, "DELETE", "/users/"+ids[1], nil)
	if r.Status != http.StatusOK || string(bytes.TrimSpace(r.Body)) != `{"success":true}` {
		t.Errorf("DELETE: %d %s", r.Status, r.Body)
	}
	if all := flatten(e.pages(t, "")); len(all) != 4 {
		t.Errorf("after delete, %d users listed", len(all))
	}
	for _, c := range []struct{ method, path string }{{"GET", "/users"}, {"POST", "/users"},
		{"GET", "/users/" + ids[0]}, {"PATCH", "/users/" + ids[0]},
		{"DELETE", "/users/" + ids[0]}} {
		d := known(t, e.client(t, c.method, c.path, map[string]any{}), 401,
			"INSUFFICIENT_ACCESS_TYPE")
		if d["actual_access_type"] != "client" ||
			!sameJSON(t, map[string]any{"a": d["allowed_access_types"]},
				map[string]any{"a": []any{"server", "admin"}}) {
			t.Errorf("%s %s: details %v", c.method, c.path, d)
		}
	}
}

// pages follows next_cursor from the first page of a list query.
func (e *env) pages(t *testing.T, query string) [][]string {
	t.Helper()
	var out [][]string
	cursor := ""
	for range 20 {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := e.server(t, "GET", "/users?"+q, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list %s: %d %s", q, r.Status, r.Body)
		}
		var page struct {
			Items       []struct{ ID string }
			IsPaginated bool `json:"is_paginated"`
			Pagination  struct {
				NextCursor *string `json:"next_cursor"`
			}
		}
		decode(t, r.Body, &page)
		if !page.IsPaginated {
			t.Errorf("is_paginated is not true: %s", r.Body)
		}
		var ids []string
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		out = append(out, ids)
		if page.Pagination.NextCursor == nil {
			return out
		}
		cursor = *page.Pagination.NextCursor
	}
	t.Fatalf("more than 20 pages")
	return nil
}

func flatten(pages [][]string) []string {
	var out []string
	for _, p := range pages {
		out = append(out, p...)
	}
	return out
}

// TestSignInMismatch: a wrong password, an unknown address and an account without a
// password give the same EMAIL_PASSWORD_MISMATCH.
func TestSignInMismatch(t *testing.T) {
	e := start(t)
	e.signUp(t, "known@example.com", "correct-horse-1")
	e.createUser(t, map[string]any{"primary_email": "nopw@example.com",
		"primary_email_auth_enabled": true})
	var bodies []string
	for _, c := range []struct{ email, password string }{
		{"known@example.com", "wrong-horse-1"}, {"unknown@example.com", "correct-horse-1"},
		{"nopw@example.com", "correct-horse-1"},
	} {
		r := e.client(t, "POST", "/auth/password/sign-in",
			map[string]any{"email": c.email, "password": c.password})
		if d := known(t, r, 400, "EMAIL_PASSWORD_MISMATCH"); d != nil {
			t.Errorf("%s: details %v", c.email, d)
		}
		bodies = append(bodies, string(r.Body))
	}
	if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Errorf("the bodies differ: %v", bodies)
	}
}

// TestBodyEncodings: the body encodings the SDK and REST clients use all work.
func TestBodyEncodings(t *testing.T) {
	e := start(t)
	e.signUp(t, "enc@example.com", "correct-horse-1")
	head := []string{"x-stack-project-id", e.in.AuthProjectID, "x-stack-access-type", "client",
		"x-stack-publishable-client-key", e.in.PublishableKey}
	js := `{"email":"enc@example.com","password":"correct-horse-1"}`
	for _, c := range []struct{ ctype, body string }{
		{"application/x-www-form-urlencoded", "email=enc%40example.com&password=correct-horse-1"},
		{"text/plain", js}, {"application/json; charset=utf-8", js}, {"", js},
	} {
		r := e.s.Do(t, "POST", "/api/v1/auth/password/sign-in", c.body,
			append(head, "Content-Type", c.ctype)...)
		if r.Status != http.StatusOK {
			t.Errorf("%s: %d %s", c.ctype, r.Status, r.Body)
		}
	}
}
