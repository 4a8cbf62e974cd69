package stackv1_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/neonauth/neonauth/internal/testserver"
)

// TestB11SoftDeleteSticks: a provider delete soft-deletes the users_sync row (deleted_at
// set, row kept), and neither a later API update, a stale sync event nor a new sign-up with
// the same address brings the user back.
func TestB11SoftDeleteSticks(t *testing.T) {
	e := start(t)
	db := e.projectDB(t)
	u1 := e.signUp(t, "user@example.com", "correct-horse-1")
	live := waitRow(t, db, u1.UserID, func(r *syncRow) bool { return r.DeletedAt == nil })
	old := e.server(t, "GET", "/users/"+u1.UserID, nil)
	if old.Status != http.StatusOK {
		t.Fatalf("GET user: %d %s", old.Status, old.Body)
	}

	r := e.server(t, "DELETE", "/users/"+u1.UserID, nil)
	if r.Status != http.StatusOK || !sameJSON(t, r.JSON(t), map[string]any{"success": true}) {
		t.Fatalf("DELETE user: %d %s", r.Status, r.Body)
	}
	del := waitRow(t, db, u1.UserID, func(r *syncRow) bool { return r.DeletedAt != nil })
	if del.RawJSON["id"] != u1.UserID || deref(del.Email) != `"user@example.com"` {
		t.Errorf("deleted row lost its data: %v", del)
	}
	if del.UpdatedAt == nil || (live.UpdatedAt != nil && !del.UpdatedAt.After(*live.UpdatedAt)) {
		t.Errorf("delete did not advance updated_at: before %v, after %v", live, del)
	}

	known(t, e.server(t, "GET", "/users/"+u1.UserID, nil), 404, "USER_NOT_FOUND")
	known(t, e.server(t, "PATCH", "/users/"+u1.UserID, map[string]any{"display_name": "Back"}),
		404, "USER_NOT_FOUND")
	known(t, e.server(t, "DELETE", "/users/"+u1.UserID, nil), 404, "USER_NOT_FOUND")
	known(t, e.client(t, "POST", "/auth/password/sign-in",
		map[string]any{"email": "user@example.com", "password": "correct-horse-1"}),
		400, "EMAIL_PASSWORD_MISMATCH")
	known(t, e.client(t, "POST", "/auth/sessions/current/refresh", nil,
		"x-stack-refresh-token", u1.RefreshToken), 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")
	if r := e.me(t, u1.AccessToken); r.Status != http.StatusUnauthorized {
		t.Errorf("/users/me of a deleted user: %d %s", r.Status, r.Body)
	}

	// Stale user.updated events for U1, one without and one with a newer change time, must
	// not undo the delete.
	for _, at := range []any{nil, time.Now().Add(time.Hour)} {
		_, err := e.s.Env.Pool.Exec(context.Background(), `INSERT INTO sync_events
			(auth_project_id, user_id, version, raw_json, changed_at) VALUES ($1, $2, 1, $3, $4)`,
			e.in.AuthProjectID, u1.UserID, string(old.Body), at)
		if err != nil {
			t.Fatalf("inject stale event: %v", err)
		}
	}
	e.s.Env.Worker.Kick()
	e.waitSynced(t)
	if r := readRow(t, db, u1.UserID); r == nil || r.DeletedAt == nil ||
		!r.DeletedAt.Equal(*del.DeletedAt) {
		t.Errorf("stale events resurrected the user: %v", r)
	}

	u2 := e.signUp(t, "user@example.com", "correct-horse-2")
	if u2.UserID == u1.UserID {
		t.Fatalf("sign-up after delete reused the id %s", u1.UserID)
	}
	waitRow(t, db, u2.UserID, func(r *syncRow) bool { return r.DeletedAt == nil })
	var total, deleted int
	err := db.QueryRow(context.Background(), `SELECT count(*), count(deleted_at)
		FROM neon_auth.users_sync WHERE email = 'user@example.com'`).Scan(&total, &deleted)
	if err != nil || total != 2 || deleted != 1 {
		t.Errorf("rows for the address: %d, deleted %d (err %v); want 2 and 1", total, deleted, err)
	}
}

// TestB14EmailCaseSignUpSignIn: one mailbox is one account whatever the letter case; the
// address is stored trimmed and lowercased.
func TestB14EmailCaseSignUpSignIn(t *testing.T) {
	e := start(t)
	db := e.projectDB(t)
	r := e.client(t, "POST", "/auth/password/sign-up", map[string]any{
		"email": "Mixed.Case@Example.com", "password": "correct-horse-1",
		"verification_callback_url": "http://localhost/cb"})
	if r.Status != http.StatusOK {
		t.Fatalf("sign-up: %d %s", r.Status, r.Body)
	}
	var up tokens
	decode(t, r.Body, &up)
	for _, email := range []string{"mixed.case@example.com", "  MIXED.CASE@EXAMPLE.COM "} {
		in := e.signIn(t, email, "correct-horse-1")
		_, claims := jwtParts(t, in.AccessToken)
		if in.UserID != up.UserID || claims["sub"] != up.UserID {
			t.Errorf("sign-in as %q: user %s sub %v, want %s", email, in.UserID, claims["sub"],
				up.UserID)
		}
		if claims["email"] != "mixed.case@example.com" {
			t.Errorf("email claim %v", claims["email"])
		}
	}
	d := known(t, e.client(t, "POST", "/auth/password/sign-up",
		map[string]any{"email": "MIXED.CASE@example.com", "password": "another-horse-2"}),
		409, "USER_EMAIL_ALREADY_EXISTS")
	if d["email"] != "mixed.case@example.com" || d["would_work_if_email_was_verified"] != false {
		t.Errorf("details %v", d)
	}
	known(t, e.server(t, "POST", "/users", map[string]any{
		"primary_email": "mixed.CASE@EXAMPLE.com", "primary_email_auth_enabled": true}),
		409, "USER_EMAIL_ALREADY_EXISTS")

	row := waitRow(t, db, up.UserID, func(*syncRow) bool { return true })
	if deref(row.Email) != `"mixed.case@example.com"` ||
		row.RawJSON["primary_email"] != "mixed.case@example.com" {
		t.Errorf("stored address: %v", row)
	}
	e.waitSynced(t)
	var n int
	err := db.QueryRow(context.Background(), `SELECT count(*) FROM neon_auth.users_sync
		WHERE lower(email) = 'mixed.case@example.com'`).Scan(&n)
	if err != nil || n != 1 {
		t.Errorf("rows for the mailbox: %d (%v), want 1", n, err)
	}
}

// TestB17PasswordLengthEdges: 8 to 70 characters counted as JavaScript counts them (UTF-16
// code units); passwords over bcrypt's 72 bytes are neither refused with a 500 nor
// truncated; rejected sign-ups leave no row.
func TestB17PasswordLengthEdges(t *testing.T) {
	e := start(t)
	db := e.projectDB(t)
	bike := "🚲" // two UTF-16 units, four UTF-8 bytes
	cases := []struct {
		name, password, code string
	}{
		{"min", strings.Repeat("a", 8), ""},
		{"min-1", strings.Repeat("a", 7), "PASSWORD_TOO_SHORT"},
		{"max", strings.Repeat("a", 70), ""},
		{"max+1", strings.Repeat("a", 71), "PASSWORD_TOO_LONG"},
		{"8 two-byte", strings.Repeat("é", 8), ""},
		{"70 three-byte", strings.Repeat("李", 70), ""},
		{"71 three-byte", strings.Repeat("李", 71), "PASSWORD_TOO_LONG"},
		{"4 astral is 8 units", strings.Repeat(bike, 4), ""},
		{"7 units", strings.Repeat(bike, 3) + "a", "PASSWORD_TOO_SHORT"},
		{"35 astral is 70 units", strings.Repeat(bike, 35), ""},
		{"71 units", strings.Repeat(bike, 35) + "a", "PASSWORD_TOO_LONG"},
	}
	var ok, refused []string
	emailOf := func(i int) string { return "b17-" + string(rune('a'+i)) + "@example.com" }
	for i, c := range cases {
		email := emailOf(i)
		r := e.client(t, "POST", "/auth/password/sign-up",
			map[string]any{"email": email, "password": c.password})
		if c.code == "" {
			if r.Status != http.StatusOK {
				t.Errorf("%s (%d bytes): %d %s", c.name, len(c.password), r.Status, r.Body)
				continue
			}
			e.signIn(t, email, c.password)
			ok = append(ok, email)
			continue
		}
		d := known(t, r, 400, c.code)
		want := map[string]any{"min_length": float64(8)}
		if c.code == "PASSWORD_TOO_LONG" {
			want = map[string]any{"maxLength": float64(70)}
		}
		if !sameJSON(t, d, want) {
			t.Errorf("%s: details %v, want %v", c.name, d, want)
		}
		refused = append(refused, email)
	}

	// No truncation at 72 bytes: 70 × 李 and 24 × 李 + 46 × x share their first 72 bytes.
	lee := emailOf(5)
	known(t, e.client(t, "POST", "/auth/password/sign-in", map[string]any{"email": lee,
		"password": strings.Repeat("李", 24) + strings.Repeat("x", 46)}),
		400, "EMAIL_PASSWORD_MISMATCH")

	e.waitSynced(t)
	for _, email := range refused {
		var n int
		err := db.QueryRow(context.Background(),
			"SELECT count(*) FROM neon_auth.users_sync WHERE email = $1", email).Scan(&n)
		if err != nil || n != 0 {
			t.Errorf("refused sign-up %s left %d rows (%v)", email, n, err)
		}
	}
	var n int
	if err := db.QueryRow(context.Background(),
		"SELECT count(*) FROM neon_auth.users_sync").Scan(&n); err != nil || n != len(ok) {
		t.Errorf("users_sync has %d rows (%v), want %d", n, err, len(ok))
	}
	t.Run("update", func(t *testing.T) { checkPasswordUpdate(t, e) })
}

// checkPasswordUpdate: a server password change applies the same rules; user creation
// applies only the maximum, as in Stack.
func checkPasswordUpdate(t *testing.T, e *env) {
	u := e.createUser(t, map[string]any{"primary_email": "pwupdate@example.com",
		"password": "short", "primary_email_auth_enabled": true})
	id := u["id"].(string)
	if u["has_password"] != true {
		t.Errorf("created user has_password = %v", u["has_password"])
	}
	known(t, e.server(t, "POST", "/users", map[string]any{
		"primary_email": "pwlong@example.com", "password": strings.Repeat("a", 71)}),
		400, "PASSWORD_TOO_LONG")
	known(t, e.server(t, "PATCH", "/users/"+id, map[string]any{"password": "1234567"}),
		400, "PASSWORD_TOO_SHORT")
	known(t, e.server(t, "PATCH", "/users/"+id,
		map[string]any{"password": strings.Repeat("李", 71)}), 400, "PASSWORD_TOO_LONG")
	if r := e.server(t, "PATCH", "/users/"+id,
		map[string]any{"password": strings.Repeat("李", 70)}); r.Status != http.StatusOK {
		t.Fatalf("PATCH password: %d %s", r.Status, r.Body)
	}
	e.signIn(t, "pwupdate@example.com", strings.Repeat("李", 70))
}

// TestB19SignOutRevokes: sign-out deletes the session named by the access token, so its
// refresh token stops working on both refresh endpoints; other sessions keep working.
func TestB19SignOutRevokes(t *testing.T) {
	e := start(t)
	e.signUp(t, "user@example.com", "correct-horse-1")
	s1 := e.signIn(t, "user@example.com", "correct-horse-1")
	s2 := e.signIn(t, "user@example.com", "correct-horse-1")
	signOut := func() testserver.Response {
		return e.client(t, "DELETE", "/auth/sessions/current", map[string]any{},
			"x-stack-access-token", s1.AccessToken, "x-stack-refresh-token", s1.RefreshToken)
	}
	r := signOut()
	if r.Status != http.StatusOK || !sameJSON(t, r.JSON(t), map[string]any{"success": true}) {
		t.Fatalf("sign-out: %d %s", r.Status, r.Body)
	}
	known(t, e.oauthRefresh(t, s1.RefreshToken), 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")
	known(t, e.client(t, "POST", "/auth/sessions/current/refresh", nil,
		"x-stack-refresh-token", s1.RefreshToken), 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")
	known(t, signOut(), 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")

	if r := e.oauthRefresh(t, s2.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("refresh of the other session: %d %s", r.Status, r.Body)
	}
	if r := e.client(t, "POST", "/auth/sessions/current/refresh", nil,
		"x-stack-refresh-token", s2.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("REST refresh of the other session: %d %s", r.Status, r.Body)
	}
	// Access tokens are stateless, as in Stack: A1 works until it expires.
	if r := e.me(t, s1.AccessToken); r.Status != http.StatusOK {
		t.Errorf("A1 after sign-out: %d %s", r.Status, r.Body)
	}
}

// TestB07DisplayNameLimits (provider side): display_name holds at most 256 characters
// counted as code points, "" becomes null, and text is kept byte for byte in users_sync.
func TestB07DisplayNameLimits(t *testing.T) {
	e := start(t)
	db := e.projectDB(t)
	id := e.createUser(t, map[string]any{"primary_email": "n1@example.com"})["id"].(string)
	bike := "🚲"
	accepted := []string{strings.Repeat("a", 256), strings.Repeat("a", 255),
		strings.Repeat(bike, 255), strings.Repeat(bike, 256), "Zoë 李 🚲 O'Test", ""}
	for _, name := range accepted {
		r := e.server(t, "PATCH", "/users/"+id, map[string]any{"display_name": name})
		if r.Status != http.StatusOK {
			t.Fatalf("PATCH %d characters: %d %s", utf8.RuneCountInString(name), r.Status,
				r.Body)
		}
		got := r.JSON(t)["display_name"]
		if name == "" {
			if got != nil {
				t.Errorf(`"" gave display_name %v, want null`, got)
			}
			waitRow(t, db, id, func(r *syncRow) bool {
				return r.Name == nil && r.RawJSON["display_name"] == nil
			})
			continue
		}
		if got != name {
			t.Errorf("display_name changed: %d characters in, %v out", len(name), got)
		}
		waitRow(t, db, id, func(r *syncRow) bool {
			return r.Name != nil && *r.Name == name && r.RawJSON["display_name"] == name
		})
	}
	for _, name := range []string{strings.Repeat("a", 257), strings.Repeat(bike, 257)} {
		d := known(t, e.server(t, "PATCH", "/users/"+id, map[string]any{"display_name": name}),
			400, "SCHEMA_ERROR")
		if d["message"] == nil {
			t.Errorf("SCHEMA_ERROR without details.message")
		}
		known(t, e.server(t, "POST", "/users", map[string]any{"display_name": name}),
			400, "SCHEMA_ERROR")
	}
	known(t, e.server(t, "PATCH", "/users/"+id, map[string]any{"display_name": "a\x00b"}),
		400, "SCHEMA_ERROR")
	me := e.signUp(t, "n2@example.com", "correct-horse-1")
	name := strings.Repeat(bike, 256)
	r := e.client(t, "PATCH", "/users/me", map[string]any{"display_name": name},
		"x-stack-access-token", me.AccessToken)
	if r.Status != http.StatusOK || r.JSON(t)["display_name"] != name {
		t.Fatalf("PATCH /users/me: %d %s", r.Status, r.Body)
	}
	waitRow(t, db, me.UserID, func(r *syncRow) bool { return r.Name != nil && *r.Name == name })
}

// TestB08NullNameEmail (steps 2 and 3): a missing display name or email is SQL NULL and
// JSON null, never "" or "null", and email-less users coexist.
func TestB08NullNameEmail(t *testing.T) {
	e := start(t)
	db := e.projectDB(t)
	up := e.signUp(t, "nodisplay@example.com", "correct-horse-1")
	waitRow(t, db, up.UserID, func(*syncRow) bool { return true })
	var nameNull, jsonNull, createdNull bool
	err := db.QueryRow(context.Background(), `SELECT name IS NULL,
		raw_json->'display_name' = 'null'::jsonb, created_at IS NULL
		FROM neon_auth.users_sync WHERE id = $1`, up.UserID).Scan(&nameNull, &jsonNull,
		&createdNull)
	if err != nil || !nameNull || !jsonNull || createdNull {
		t.Errorf("sign-up without name: name NULL %v, JSON null %v, created_at NULL %v (%v)",
			nameNull, jsonNull, createdNull, err)
	}

	var ids []string
	for _, name := range []string{"No Mail 1", "No Mail 2"} {
		u := e.createUser(t, map[string]any{"display_name": name})
		if u["primary_email"] != nil || u["display_name"] != name {
			t.Errorf("created %v", u)
		}
		ids = append(ids, u["id"].(string))
	}
	blank := e.createUser(t, map[string]any{"display_name": "", "primary_email": nil})
	ids = append(ids, blank["id"].(string))
	if blank["display_name"] != nil {
		t.Errorf(`display_name "" created as %v`, blank["display_name"])
	}
	for _, id := range ids {
		waitRow(t, db, id, func(r *syncRow) bool {
			return r.Email == nil && r.RawJSON["primary_email"] == nil && r.CreatedAt != nil
		})
	}
	r := e.server(t, "POST", "/users", map[string]any{"primary_email_auth_enabled": true})
	if r.Status != http.StatusBadRequest {
		t.Errorf("email auth without email: %d %s", r.Status, r.Body)
	}
}

// TestB13RawJSONComplete: the synced raw_json is the server user JSON, after create and
// after an update; activity alone (a sign-in) is not synced.
func TestB13RawJSONComplete(t *testing.T) {
	e := start(t)
	db := e.projectDB(t)
	u := e.createUser(t, map[string]any{"primary_email": "full@example.com",
		"password": "correct-horse-1", "primary_email_auth_enabled": true,
		"display_name": "Full User", "client_metadata": map[string]any{"plan": "pro",
			"tags": []any{"a", 1.5, nil}}})
	id := u["id"].(string)
	get := func() map[string]any {
		r := e.server(t, "GET", "/users/"+id, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET user: %d %s", r.Status, r.Body)
		}
		return r.JSON(t)
	}
	first := get()
	if !sameJSON(t, first, u) {
		t.Errorf("GET differs from the create response:\n%v\n%v", first, u)
	}
	row := waitRow(t, db, id, func(r *syncRow) bool { return sameJSON(t, r.RawJSON, first) })
	for _, k := range []string{"id", "primary_email", "primary_email_verified", "display_name",
		"signed_up_at_millis", "has_password", "primary_email_auth_enabled", "otp_auth_enabled",
		"passkey_auth_enabled", "oauth_providers", "client_metadata",
		"client_read_only_metadata", "server_metadata", "last_active_at_millis", "risk_scores",
		"country_code", "is_anonymous", "is_restricted", "restricted_reason",
		"restricted_by_admin", "restricted_by_admin_reason",
		"restricted_by_admin_private_details", "selected_team_id", "selected_team"} {
		if _, ok := row.RawJSON[k]; !ok {
			t.Errorf("raw_json lacks %s", k)
		}
	}
	millis := int64(first["signed_up_at_millis"].(float64))
	if deref(row.Name) != `"Full User"` || deref(row.Email) != `"full@example.com"` ||
		row.CreatedAt == nil || row.CreatedAt.UnixMilli() != millis {
		t.Errorf("generated columns: %v created_at %v", row, row.CreatedAt)
	}

	r := e.server(t, "PATCH", "/users/"+id, map[string]any{"display_name": "Renamed",
		"server_metadata": map[string]any{"tier": 2}})
	if r.Status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", r.Status, r.Body)
	}
	second := get()
	if !sameJSON(t, second, r.JSON(t)) {
		t.Errorf("GET differs from the PATCH response")
	}
	row = waitRow(t, db, id, func(r *syncRow) bool { return sameJSON(t, r.RawJSON, second) })
	if row.UpdatedAt == nil {
		t.Errorf("updated_at not set after PATCH")
	}

	e.signIn(t, "full@example.com", "correct-horse-1")
	third := get()
	if !sameJSON(t, third, second, "last_active_at_millis") ||
		third["last_active_at_millis"].(float64) < second["last_active_at_millis"].(float64) {
		t.Errorf("sign-in changed more than last_active_at_millis:\n%v\n%v", second, third)
	}
	e.waitSynced(t)
	if r := readRow(t, db, id); !sameJSON(t, r.RawJSON, second) {
		t.Errorf("a sign-in alone was synced: %v", r)
	}
}
