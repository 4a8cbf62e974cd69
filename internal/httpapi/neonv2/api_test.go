package neonv2_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/pgtest"
	"github.com/neonauth/neonauth/internal/testserver"
)

// syncDeadline is how long a test waits for the sync worker to write a users_sync row. Neon
// documents "usually less than 1 second"; the page flow holds the service to that, the other
// tests allow for a loaded machine.
const syncDeadline = 10 * time.Second

var (
	projectIDShape = regexp.MustCompile(`^[a-z]+-[a-z]+-[0-9]+$`)
	branchIDShape  = regexp.MustCompile(`^br-[a-z0-9]+-[a-z0-9]+-[a-z0-9]+$`)
	apiKeyShape    = regexp.MustCompile(`^napi_[a-z0-9]{64}$`)
)

// call sends a management API request with an explicit API key ("" sends none) and, when
// body is not nil, a JSON content type. hdr are extra header pairs.
func call(t testing.TB, s *testserver.Server, key, method, path string, body any,
	hdr ...string) testserver.Response {
	t.Helper()
	var h []string
	if key != "" {
		h = append(h, "Authorization", "Bearer "+key)
	}
	if body != nil {
		h = append(h, "Content-Type", "application/json")
	}
	return s.Do(t, method, "/api/v2"+path, body, append(h, hdr...)...)
}

// wantStatus fails the test unless the response has the wanted status.
func wantStatus(t testing.TB, r testserver.Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
}

// wantError checks a Neon error answer: the status, a JSON content type and the body
// {code, message, request_id}, whose request_id is the X-Request-ID header. It returns the
// message.
func wantError(t testing.TB, r testserver.Response, want int) string {
	t.Helper()
	wantStatus(t, r, want)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error content type %q, want application/json: %s", ct, r.Body)
	}
	var e struct {
		Code      *string `json:"code"`
		Message   *string `json:"message"`
		RequestID string  `json:"request_id"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r.Body)
	}
	if e.Code == nil || *e.Code == "" || e.Message == nil || *e.Message == "" {
		t.Fatalf("error body lacks code or message: %s", r.Body)
	}
	if id := r.Header.Get("X-Request-ID"); id == "" || e.RequestID != id {
		t.Fatalf("request_id %q, X-Request-ID header %q", e.RequestID, id)
	}
	return *e.Message
}

// wantErrorNaming checks an error answer whose message contains every one of words.
func wantErrorNaming(t testing.TB, r testserver.Response, want int, words ...string) {
	t.Helper()
	msg := wantError(t, r, want)
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Fatalf("error message %q does not name %q", msg, w)
		}
	}
}

// decode unmarshals a response body into a T.
func decode[T any](t testing.TB, r testserver.Response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %T (status %d): %v: %s", v, r.Status, err, r.Body)
	}
	return v
}

// pgConnect opens a connection that the test closes when it ends.
func pgConnect(t testing.TB, uri string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatalf("connect to %s: %v", redact(uri), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// redact hides the password of a connection URI in test output.
func redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "<unparsable uri>"
	}
	return u.Redacted()
}

// queryOne runs a query that returns one row of one column.
func queryOne[T any](t testing.TB, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v T
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return v
}

// exec runs statements, failing the test on the first error.
func exec(t testing.TB, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("exec %q: %v", q, err)
		}
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSynced waits until users_sync holds a row for the user id.
func waitSynced(t testing.TB, conn *pgx.Conn, id string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "users_sync row for "+id, func() bool {
		return queryOne[int](t, conn,
			"SELECT count(*)::int FROM neon_auth.users_sync WHERE id = $1", id) == 1
	})
}

// createdProject is the part of a create-project answer the tests use.
type createdProject struct {
	Project struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"project"`
	Branch struct {
		ID      string `json:"id"`
		Default bool   `json:"default"`
	} `json:"branch"`
	ConnectionURIs []struct {
		URI    string `json:"connection_uri"`
		Params struct {
			Database string `json:"database"`
			Role     string `json:"role"`
			Password string `json:"password"`
		} `json:"connection_parameters"`
	} `json:"connection_uris"`
	Roles []struct {
		Name string `json:"name"`
	} `json:"roles"`
	Databases []struct {
		Name      string `json:"name"`
		OwnerName string `json:"owner_name"`
	} `json:"databases"`
	Operations []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"operations"`
	Endpoints []struct {
		ID       string `json:"id"`
		BranchID string `json:"branch_id"`
	} `json:"endpoints"`
}

// newProject creates a project with a key and returns the decoded answer.
func newProject(t testing.TB, s *testserver.Server, key string, body any) createdProject {
	t.Helper()
	r := call(t, s, key, "POST", "/projects", body)
	wantStatus(t, r, http.StatusCreated)
	cp := decode[createdProject](t, r)
	if len(cp.ConnectionURIs) == 0 {
		t.Fatalf("create project: no connection_uris: %s", r.Body)
	}
	return cp
}

// authCreated is the create-integration (and keys) answer.
type authCreated struct {
	AuthProvider          string `json:"auth_provider"`
	AuthProviderProjectID string `json:"auth_provider_project_id"`
	PubClientKey          string `json:"pub_client_key"`
	SecretServerKey       string `json:"secret_server_key"`
	JWKSURL               string `json:"jwks_url"`
	SchemaName            string `json:"schema_name"`
	TableName             string `json:"table_name"`
}

func (a authCreated) integration() testserver.Integration {
	return testserver.Integration{AuthProjectID: a.AuthProviderProjectID,
		PublishableKey: a.PubClientKey, SecretKey: a.SecretServerKey, JWKSURL: a.JWKSURL}
}

// wantAuthCreated checks a 201 create or keys answer: all seven required fields, with the
// documented constants and key prefixes and the service's own JWKS URL.
func wantAuthCreated(t testing.TB, s *testserver.Server, r testserver.Response) authCreated {
	t.Helper()
	wantStatus(t, r, http.StatusCreated)
	m := r.JSON(t)
	for _, k := range []string{"auth_provider", "auth_provider_project_id", "pub_client_key",
		"secret_server_key", "jwks_url", "schema_name", "table_name"} {
		if v, ok := m[k].(string); !ok || v == "" {
			t.Fatalf("required field %s missing or empty: %s", k, r.Body)
		}
	}
	a := decode[authCreated](t, r)
	switch {
	case a.AuthProvider != "stack", a.SchemaName != "neon_auth", a.TableName != "users_sync":
		t.Fatalf("provider, schema or table: %s", r.Body)
	case !strings.HasPrefix(a.PubClientKey, "pck_"), !strings.HasPrefix(a.SecretServerKey, "ssk_"):
		t.Fatalf("key prefixes: %s", r.Body)
	}
	want := s.URL + "/api/v1/projects/" + a.AuthProviderProjectID + "/.well-known/jwks.json"
	if a.JWKSURL != want {
		t.Fatalf("jwks_url %q, want %q", a.JWKSURL, want)
	}
	return a
}

// createBody is a full create-integration body for a project's default branch.
func createBody(projectID, branchID string) map[string]any {
	return map[string]any{"auth_provider": "stack", "project_id": projectID,
		"branch_id": branchID, "database_name": "neondb", "role_name": "neondb_owner"}
}

// ref is the body of the keys and transfer calls.
func ref(projectID string) map[string]any {
	return map[string]any{"project_id": projectID, "auth_provider": "stack"}
}

// userBody is a create-user body; a nil name is left out.
func userBody(projectID, email string, name any) map[string]any {
	b := map[string]any{"project_id": projectID, "auth_provider": "stack", "email": email}
	if name != nil {
		b["name"] = name
	}
	return b
}

// createUser creates a user through the management API and returns its id.
func createUser(t testing.TB, s *testserver.Server, projectID, email string, name any) string {
	t.Helper()
	r := s.Neon(t, "POST", "/projects/auth/user", userBody(projectID, email, name))
	wantStatus(t, r, http.StatusCreated)
	id := decode[struct{ ID string }](t, r).ID
	if id == "" {
		t.Fatalf("create user: no id: %s", r.Body)
	}
	return id
}

// localPath turns a URL of the service into the path that s.Do takes.
func localPath(t testing.TB, s *testserver.Server, u string) string {
	t.Helper()
	p, ok := strings.CutPrefix(u, s.URL)
	if !ok {
		t.Fatalf("%q is not a URL of the service at %s", u, s.URL)
	}
	return p
}

// TestManagementAPI drives the management API end to end on one service.
func TestManagementAPI(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	t.Run("NeonAuthPageFlow", func(t *testing.T) { testPageFlow(t, s) })
	t.Run("UsersSyncDDL", func(t *testing.T) { testUsersSyncDDL(t, s) })
	t.Run("Conventions", func(t *testing.T) { testConventions(t, s) })
	t.Run("OtherAccount", func(t *testing.T) { testOtherAccount(t, s) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, s) })
	t.Run("Projects", func(t *testing.T) { testProjects(t, s) })
	t.Run("BranchesDatabasesRoles", func(t *testing.T) { testBranches(t, s) })
	t.Run("Identifiers", func(t *testing.T) { testIdentifiers(t, s) })
	t.Run("Attach", func(t *testing.T) { testAttach(t, s) })
}

// testPageFlow follows Neon's "Manage Neon Auth using the API" page from project to delete.
func testPageFlow(t *testing.T, s *testserver.Server) {
	cp := checkCreateProject(t, s)
	pid, bid := cp.Project.ID, cp.Branch.ID
	checkBranchList(t, s, pid, bid)

	first := wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/create",
		createBody(pid, bid)))
	checkJWKS(t, s, first.JWKSURL)
	checkIntegrationList(t, s, pid, bid, first)

	second := wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/keys", ref(pid)))
	if second.AuthProviderProjectID != first.AuthProviderProjectID {
		t.Fatalf("keys changed the auth project: %s, %s", first.AuthProviderProjectID,
			second.AuthProviderProjectID)
	}
	if second.PubClientKey == first.PubClientKey ||
		second.SecretServerKey == first.SecretServerKey {
		t.Fatalf("keys returned the same pair again")
	}
	for i, a := range []authCreated{first, second} {
		wantStatus(t, s.Stack(t, a.integration(), "server", "GET", "/users", nil), http.StatusOK)
		r := s.Stack(t, a.integration(), "client", "POST", "/auth/password/sign-in",
			map[string]any{"email": "nobody@example.com", "password": "whatever-1"})
		if r.Status == http.StatusUnauthorized {
			t.Fatalf("key pair %d: publishable key refused: %s", i+1, r.Body)
		}
	}

	conn := pgConnect(t, cp.ConnectionURIs[0].URI)
	start := time.Now()
	id := createUser(t, s, pid, "user@example.com", "Example User")
	waitSynced(t, conn, id, time.Second)
	t.Logf("user synced after %v", time.Since(start))
	var email, name string
	err := conn.QueryRow(context.Background(),
		"SELECT email, name FROM neon_auth.users_sync WHERE id = $1", id).Scan(&email, &name)
	if err != nil || email != "user@example.com" || name != "Example User" {
		t.Fatalf("synced row: %q %q %v", email, name, err)
	}

	checkTransferURL(t, s, pid)
	checkDelete(t, s, pid, bid, first, conn, id)
}

// flowName is the page flow's project name; the integration takes it as its name.
const flowName = "Flow 🚲 Zoë"

// checkCreateProject creates a project and checks the CreatedProject answer.
func checkCreateProject(t *testing.T, s *testserver.Server) createdProject {
	r := s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{
		"name": flowName}})
	wantStatus(t, r, http.StatusCreated)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	m := r.JSON(t)
	for _, k := range []string{"project", "connection_uris", "roles", "databases", "branch",
		"endpoints", "operations"} {
		if m[k] == nil {
			t.Fatalf("create project answer lacks %s: %s", k, r.Body)
		}
	}
	cp := decode[createdProject](t, r)
	switch {
	case !projectIDShape.MatchString(cp.Project.ID):
		t.Fatalf("project id %q is not adjective-noun-digits", cp.Project.ID)
	case !branchIDShape.MatchString(cp.Branch.ID):
		t.Fatalf("branch id %q is not br- plus three groups", cp.Branch.ID)
	case !cp.Branch.Default:
		t.Fatalf("the project's branch is not default: %s", r.Body)
	case cp.Project.Name != flowName:
		t.Fatalf("project name %q", cp.Project.Name)
	case len(cp.Roles) != 1 || cp.Roles[0].Name != "neondb_owner":
		t.Fatalf("roles: %+v", cp.Roles)
	case len(cp.Databases) != 1 || cp.Databases[0].Name != "neondb" ||
		cp.Databases[0].OwnerName != "neondb_owner":
		t.Fatalf("databases: %+v", cp.Databases)
	case len(cp.Endpoints) != 1 || cp.Endpoints[0].BranchID != cp.Branch.ID:
		t.Fatalf("endpoints: %+v", cp.Endpoints)
	case len(cp.Operations) == 0:
		t.Fatalf("no operations")
	case len(cp.ConnectionURIs) != 1 || cp.ConnectionURIs[0].Params.Role != "neondb_owner" ||
		cp.ConnectionURIs[0].Params.Database != "neondb":
		t.Fatalf("connection_uris: %+v", cp.ConnectionURIs)
	}
	conn := pgConnect(t, cp.ConnectionURIs[0].URI)
	user := queryOne[string](t, conn, "SELECT current_user || '/' || current_database()")
	if user != "neondb_owner/neondb" {
		t.Fatalf("connection_uri reaches %s", user)
	}
	owner := queryOne[string](t, conn, `SELECT pg_get_userbyid(datdba) FROM pg_database
		WHERE datname = 'neondb'`)
	if owner != "neondb_owner" {
		t.Fatalf("neondb is owned by %s", owner)
	}
	return cp
}

// checkBranchList finds the main branch as the page says: the branch with "default": true.
func checkBranchList(t *testing.T, s *testserver.Server, pid, bid string) {
	r := s.Neon(t, "GET", "/projects/"+pid+"/branches", nil)
	wantStatus(t, r, http.StatusOK)
	list := decode[struct {
		Branches []struct {
			ID      string `json:"id"`
			Default bool   `json:"default"`
		} `json:"branches"`
	}](t, r)
	i := slices.IndexFunc(list.Branches, func(b struct {
		ID      string `json:"id"`
		Default bool   `json:"default"`
	}) bool {
		return b.Default
	})
	if len(list.Branches) != 1 || i != 0 || list.Branches[0].ID != bid {
		t.Fatalf("branch list: %s", r.Body)
	}
}

// checkJWKS fetches a JWKS URL and checks that it serves one public EC key.
func checkJWKS(t *testing.T, s *testserver.Server, jwksURL string) {
	r := s.Do(t, "GET", localPath(t, s, jwksURL), nil)
	wantStatus(t, r, http.StatusOK)
	set := decode[struct {
		Keys []map[string]any `json:"keys"`
	}](t, r)
	if len(set.Keys) != 1 {
		t.Fatalf("jwks has %d keys, want 1: %s", len(set.Keys), r.Body)
	}
	k := set.Keys[0]
	if k["kty"] != "EC" || k["crv"] != "P-256" || k["x"] == nil || k["y"] == nil ||
		k["kid"] == nil {
		t.Fatalf("jwks key: %v", k)
	}
	if _, ok := k["d"]; ok {
		t.Fatalf("jwks key holds the private part")
	}
}

// checkIntegrationList checks the list answer: the required fields, no keys.
func checkIntegrationList(t *testing.T, s *testserver.Server, pid, bid string, a authCreated) {
	r := s.Neon(t, "GET", "/projects/"+pid+"/auth/integrations", nil)
	wantStatus(t, r, http.StatusOK)
	list := decode[struct {
		Data []map[string]any `json:"data"`
	}](t, r)
	if len(list.Data) != 1 {
		t.Fatalf("list: %s", r.Body)
	}
	it := list.Data[0]
	want := map[string]any{"auth_provider": "stack",
		"auth_provider_project_id": a.AuthProviderProjectID, "branch_id": bid,
		"db_name": "neondb", "owned_by": "neon", "jwks_url": a.JWKSURL, "name": flowName,
		"base_url": s.URL}
	for k, v := range want {
		if it[k] != v {
			t.Errorf("list item %s = %v, want %v", k, it[k], v)
		}
	}
	created, _ := it["created_at"].(string)
	if _, err := time.Parse(time.RFC3339, created); err != nil {
		t.Errorf("created_at %q: %v", created, err)
	}
	for _, k := range []string{"pub_client_key", "secret_server_key"} {
		if _, ok := it[k]; ok {
			t.Errorf("list item has %s", k)
		}
	}
	if bytes.Contains(r.Body, []byte(a.PubClientKey)) ||
		bytes.Contains(r.Body, []byte(a.SecretServerKey)) {
		t.Errorf("list answer holds a key: %s", r.Body)
	}
}

var transferURLShape = regexp.MustCompile(`\?code=[a-z0-9]{45}$`)

// checkTransferURL requests a transfer and checks the confirm URL.
func checkTransferURL(t *testing.T, s *testserver.Server, pid string) {
	r := s.Neon(t, "POST", "/projects/auth/transfer_ownership", ref(pid))
	wantStatus(t, r, http.StatusOK)
	u := decode[struct{ URL string }](t, r).URL
	prefix := s.URL + "/integrations/neon/projects/transfer/confirm?code="
	if !strings.HasPrefix(u, prefix) || !transferURLShape.MatchString(u) {
		t.Fatalf("transfer url %q, want %s<45 lowercase characters>", u, prefix)
	}
	r = s.Neon(t, "GET", "/projects/"+pid+"/auth/integrations", nil)
	it := decode[struct {
		Data []map[string]any `json:"data"`
	}](t, r).Data
	if len(it) != 1 || it[0]["transfer_status"] != "initiated" || it[0]["owned_by"] != "neon" {
		t.Fatalf("list after the transfer request: %s", r.Body)
	}
}

// checkDelete deletes the integration (keeping the data), re-creates it, then deletes it
// with delete_data.
func checkDelete(t *testing.T, s *testserver.Server, pid, bid string, a authCreated,
	conn *pgx.Conn, userID string) {
	r := s.Neon(t, "DELETE", "/projects/"+pid+"/auth/integration/stack", nil)
	wantStatus(t, r, http.StatusOK)
	r = s.Neon(t, "GET", "/projects/"+pid+"/auth/integrations", nil)
	wantStatus(t, r, http.StatusOK)
	if got := strings.TrimSpace(string(r.Body)); got != `{"data":[]}` {
		t.Fatalf("list after delete: %s", got)
	}
	wantStatus(t, s.Do(t, "GET", localPath(t, s, a.JWKSURL), nil), http.StatusNotFound)
	wantError(t, s.Neon(t, "POST", "/projects/auth/keys", ref(pid)), http.StatusNotFound)
	n := queryOne[int](t, conn, "SELECT count(*)::int FROM neon_auth.users_sync WHERE id = $1",
		userID)
	if n != 1 {
		t.Fatalf("delete without delete_data removed the users_sync row")
	}

	wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/create", createBody(pid, bid)))
	r = s.Neon(t, "DELETE", "/projects/"+pid+"/auth/integration/stack",
		map[string]any{"delete_data": true})
	wantStatus(t, r, http.StatusOK)
	left := queryOne[int](t, conn,
		"SELECT count(*)::int FROM pg_namespace WHERE nspname = 'neon_auth'")
	if left != 0 {
		t.Fatalf("delete_data left the neon_auth schema")
	}
}

// column is one users_sync column as pg_catalog describes it.
type column struct {
	name, typ string
	notNull   bool
	generated string
	expr      string
}

// spaceless drops all white space, to compare SQL expressions.
func spaceless(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// testUsersSyncDDL checks the users_sync table against Neon's DDL through pg_catalog.
func testUsersSyncDDL(t *testing.T, s *testserver.Server) {
	cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{}})
	wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/create",
		createBody(cp.Project.ID, cp.Branch.ID)))
	conn := pgConnect(t, cp.ConnectionURIs[0].URI)
	created := `to_timestamp((trunc((((raw_json ->> 'signed_up_at_millis'::text))::bigint)
		::double precision) / (1000)::double precision))`
	want := []column{
		{"raw_json", "jsonb", true, "", ""},
		{"id", "text", true, "s", "(raw_json ->> 'id'::text)"},
		{"name", "text", false, "s", "(raw_json ->> 'display_name'::text)"},
		{"email", "text", false, "s", "(raw_json ->> 'primary_email'::text)"},
		{"created_at", "timestamp with time zone", false, "s", created},
		{"updated_at", "timestamp with time zone", false, "", ""},
		{"deleted_at", "timestamp with time zone", false, "", ""},
	}
	got := usersSyncColumns(t, conn)
	if len(got) != len(want) {
		t.Fatalf("columns: %+v", got)
	}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || g.typ != w.typ || g.notNull != w.notNull ||
			g.generated != w.generated || spaceless(g.expr) != spaceless(w.expr) {
			t.Errorf("column %d: got %+v, want %+v", i+1, g, w)
		}
	}
	checkUsersSyncConstraints(t, conn)
}

func usersSyncColumns(t *testing.T, conn *pgx.Conn) []column {
	rows, err := conn.Query(context.Background(), `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			a.attgenerated::text, COALESCE(pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = 'neon_auth.users_sync'::regclass AND a.attnum > 0
			AND NOT a.attisdropped
		ORDER BY a.attnum`)
	if err != nil {
		t.Fatalf("read columns: %v", err)
	}
	var out []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ, &c.notNull, &c.generated, &c.expr); err != nil {
			t.Fatalf("scan column: %v", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read columns: %v", err)
	}
	return out
}

func checkUsersSyncConstraints(t *testing.T, conn *pgx.Conn) {
	cons := queryOne[string](t, conn, `SELECT string_agg(conname || ' ' || contype::text || ' ' ||
			pg_get_constraintdef(oid), '; ' ORDER BY conname)
		FROM pg_constraint WHERE conrelid = 'neon_auth.users_sync'::regclass`)
	if cons != "users_sync_pkey p PRIMARY KEY (id)" {
		t.Errorf("constraints: %s", cons)
	}
	idx := queryOne[string](t, conn, `SELECT string_agg(c.relname || ' ' || am.amname || ' ' ||
			pg_get_indexdef(i.indexrelid), '; ' ORDER BY c.relname)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_am am ON am.oid = c.relam
		WHERE i.indrelid = 'neon_auth.users_sync'::regclass`)
	want := "users_sync_deleted_at_idx btree CREATE INDEX users_sync_deleted_at_idx ON " +
		"neon_auth.users_sync USING btree (deleted_at); users_sync_pkey btree CREATE UNIQUE " +
		"INDEX users_sync_pkey ON neon_auth.users_sync USING btree (id)"
	if idx != want {
		t.Errorf("indexes:\n got %s\nwant %s", idx, want)
	}
	owners := queryOne[string](t, conn, `SELECT pg_get_userbyid(c.relowner) || ' ' ||
			pg_get_userbyid(n.nspowner)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = 'neon_auth.users_sync'::regclass`)
	if owners != "neondb_owner neondb_owner" {
		t.Errorf("table and schema owners: %s", owners)
	}
}

// testConventions checks authentication, request ids, routing and body rules.
func testConventions(t *testing.T, s *testserver.Server) {
	t.Run("Unauthenticated", func(t *testing.T) {
		for _, h := range []string{"", "Bearer", "Bearer ", "Basic " + s.APIKey,
			"Bearer napi_" + strings.Repeat("a", 64), "Bearer not-a-key", s.APIKey} {
			var hdr []string
			if h != "" {
				hdr = []string{"Authorization", h}
			}
			r := s.Do(t, "GET", "/api/v2/projects", nil, hdr...)
			wantError(t, r, http.StatusUnauthorized)
		}
		wantStatus(t, s.Do(t, "GET", "/api/v2/projects", nil,
			"Authorization", "bearer "+s.APIKey), http.StatusOK)
	})
	t.Run("RequestID", func(t *testing.T) {
		r := call(t, s, s.APIKey, "GET", "/projects/no-such-project", nil,
			"X-Request-ID", "test-req-42")
		wantError(t, r, http.StatusNotFound)
		if id := r.Header.Get("X-Request-ID"); id != "test-req-42" {
			t.Fatalf("X-Request-ID %q, want the one sent", id)
		}
		a := s.Neon(t, "GET", "/projects/no-such-project", nil)
		b := s.Neon(t, "GET", "/projects/no-such-project", nil)
		wantError(t, a, http.StatusNotFound)
		wantError(t, b, http.StatusNotFound)
		if a.Header.Get("X-Request-ID") == b.Header.Get("X-Request-ID") {
			t.Fatalf("generated request ids repeat")
		}
		ok := s.Neon(t, "GET", "/projects", nil)
		if ok.Header.Get("X-Request-ID") == "" {
			t.Fatalf("no X-Request-ID on a success")
		}
		for _, bad := range []string{strings.Repeat("x", 129), "two words", "tab\there"} {
			r := call(t, s, s.APIKey, "GET", "/projects/no-such-project", nil,
				"X-Request-ID", bad)
			wantError(t, r, http.StatusNotFound)
			if id := r.Header.Get("X-Request-ID"); id == bad || id == "" {
				t.Fatalf("X-Request-ID %q was not replaced by a generated one", bad)
			}
		}
	})
	t.Run("TrailingSlash", func(t *testing.T) {
		// Paths ServeMux would redirect to a canonical form are 404s too: the bare prefix,
		// empty, "." and ".." segments.
		for _, p := range []string{"/projects/", "/api_keys/", "/no-such-route", "",
			"//projects", "/projects//x", "/./projects", "/projects/../api_keys"} {
			r := s.Neon(t, "GET", p, nil)
			wantError(t, r, http.StatusNotFound)
			if loc := r.Header.Get("Location"); loc != "" {
				t.Fatalf("GET %s redirects to %s", p, loc)
			}
		}
	})
	t.Run("UnsupportedMediaType", func(t *testing.T) {
		r := s.Do(t, "POST", "/api/v2/projects", "project[name]=x",
			"Authorization", "Bearer "+s.APIKey,
			"Content-Type", "application/x-www-form-urlencoded")
		wantError(t, r, http.StatusUnsupportedMediaType)
	})
	t.Run("TooLarge", func(t *testing.T) {
		body := `{"project":{"name":"` + strings.Repeat("x", 1<<20) + `"}}`
		wantError(t, s.Neon(t, "POST", "/projects", body), http.StatusRequestEntityTooLarge)
		// Exactly 1 MiB is still read: the answer is about the name, not the size.
		name := strings.Repeat("x", 1<<20-len(`{"project":{"name":""}}`))
		body = `{"project":{"name":"` + name + `"}}`
		wantErrorNaming(t, s.Neon(t, "POST", "/projects", body), http.StatusBadRequest,
			"project.name")
	})
	t.Run("UnsupportedProvider", func(t *testing.T) { testUnsupportedProvider(t, s) })
}

// testUnsupportedProvider sends another provider to every Neon Auth call.
func testUnsupportedProvider(t *testing.T, s *testserver.Server) {
	r := s.Neon(t, "GET", "/projects", nil)
	wantStatus(t, r, http.StatusOK)
	paths := []string{"/projects/auth/create", "/projects/auth/keys", "/projects/auth/user",
		"/projects/auth/transfer_ownership"}
	for _, provider := range []any{"clerk", "mock", "better_auth", "Stack", "", nil} {
		for _, p := range paths {
			body := map[string]any{"auth_provider": provider, "project_id": "any-project-1",
				"branch_id": "br-any-branch-1", "email": "user@example.com"}
			words := []string{"auth_provider", "stack"}
			if provider == "" || provider == nil {
				words = words[:1]
			}
			wantErrorNaming(t, s.Neon(t, "POST", p, body), http.StatusBadRequest, words...)
		}
	}
	cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{}})
	r = s.Neon(t, "DELETE", "/projects/"+cp.Project.ID+"/auth/integration/clerk", nil)
	wantErrorNaming(t, r, http.StatusBadRequest, "stack")
}

// route is a project-scoped management route.
type route struct {
	method, path string
	body         any
}

// projectRoutes are every project-scoped route of the management API for one project.
func projectRoutes(pid, bid, opID string) []route {
	b := "/projects/" + pid + "/branches/" + bid
	return []route{
		{"GET", "/projects/" + pid, nil},
		{"DELETE", "/projects/" + pid, nil},
		{"GET", "/projects/" + pid + "/connection_uri?database_name=neondb&role_name=neondb_owner",
			nil},
		{"GET", "/projects/" + pid + "/operations/" + opID, nil},
		{"GET", "/projects/" + pid + "/branches", nil},
		{"POST", "/projects/" + pid + "/branches", map[string]any{}},
		{"GET", b, nil},
		{"GET", b + "/databases", nil},
		{"POST", b + "/databases", map[string]any{"database": map[string]any{"name": "x",
			"owner_name": "neondb_owner"}}},
		{"GET", b + "/roles", nil},
		{"POST", b + "/roles", map[string]any{"role": map[string]any{"name": "x"}}},
		{"GET", b + "/roles/neondb_owner/reveal_password", nil},
		{"POST", "/projects/auth/create", createBody(pid, bid)},
		{"GET", "/projects/" + pid + "/auth/integrations", nil},
		{"POST", "/projects/auth/keys", ref(pid)},
		{"POST", "/projects/auth/user", userBody(pid, "other@example.com", nil)},
		{"POST", "/projects/auth/transfer_ownership", ref(pid)},
		{"DELETE", "/projects/" + pid + "/auth/integration/stack", nil},
		{"POST", "/projects/" + pid + "/auth/rotate_signing_key", nil},
		{"POST", "/api_keys", map[string]any{"key_name": "x", "project_id": pid}},
	}
}

// testOtherAccount checks that another account's key finds none of a project's routes.
func testOtherAccount(t *testing.T, s *testserver.Server) {
	cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{}})
	pid, bid := cp.Project.ID, cp.Branch.ID
	a := wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/create", createBody(pid, bid)))
	_, other, err := s.Env.Console.CreateAccount(context.Background(), "other")
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	for _, rt := range projectRoutes(pid, bid, cp.Operations[0].ID) {
		r := call(t, s, other, rt.method, rt.path, rt.body)
		if r.Status != http.StatusNotFound {
			t.Errorf("%s %s with another account's key: %d %s", rt.method, rt.path, r.Status,
				r.Body)
			continue
		}
		wantError(t, r, http.StatusNotFound)
	}
	list := decode[struct {
		Projects []struct{ ID string } `json:"projects"`
	}](t, call(t, s, other, "GET", "/projects", nil))
	if len(list.Projects) != 0 {
		t.Errorf("the other account lists projects: %+v", list.Projects)
	}
	wantStatus(t, s.Neon(t, "GET", "/projects/"+pid, nil), http.StatusOK)
	r := s.Neon(t, "GET", "/projects/"+pid+"/auth/integrations", nil)
	if !bytes.Contains(r.Body, []byte(a.AuthProviderProjectID)) {
		t.Fatalf("the integration changed: %s", r.Body)
	}
	wantStatus(t, s.Stack(t, a.integration(), "server", "GET", "/users", nil), http.StatusOK)

	keys := decode[[]struct{ ID int64 }](t, s.Neon(t, "GET", "/api_keys", nil))
	if len(keys) == 0 {
		t.Fatalf("the admin account lists no keys")
	}
	wantError(t, call(t, s, other, "DELETE", fmt.Sprintf("/api_keys/%d", keys[0].ID), nil),
		http.StatusNotFound)
	wantStatus(t, s.Neon(t, "GET", "/projects", nil), http.StatusOK)
	checkProjectScopedKey(t, s, pid, bid, cp.Operations[0].ID)
}

// checkProjectScopedKey checks that a key scoped to another project finds none of pid's
// routes and cannot create projects.
func checkProjectScopedKey(t *testing.T, s *testserver.Server, pid, bid, opID string) {
	q := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{}})
	r := s.Neon(t, "POST", "/api_keys", map[string]any{"key_name": "scoped",
		"project_id": q.Project.ID})
	wantStatus(t, r, http.StatusOK)
	scoped := decode[struct{ Key string }](t, r).Key
	for _, rt := range projectRoutes(pid, bid, opID) {
		if r := call(t, s, scoped, rt.method, rt.path, rt.body); r.Status != http.StatusNotFound {
			t.Errorf("%s %s with a key of another project: %d %s", rt.method, rt.path,
				r.Status, r.Body)
		}
	}
	wantStatus(t, call(t, s, scoped, "GET", "/projects/"+q.Project.ID, nil), http.StatusOK)
	wantError(t, s.Neon(t, "GET", "/projects/"+q.Project.ID+"/operations/"+opID, nil),
		http.StatusNotFound)
	list := decode[struct {
		Projects []struct{ ID string } `json:"projects"`
	}](t, call(t, s, scoped, "GET", "/projects", nil))
	if len(list.Projects) != 1 || list.Projects[0].ID != q.Project.ID {
		t.Errorf("a scoped key lists %+v", list.Projects)
	}
	r = call(t, s, scoped, "POST", "/projects", map[string]any{"project": map[string]any{}})
	wantError(t, r, http.StatusForbidden)
}

// testAPIKeys creates, lists, uses and revokes an API key.
func testAPIKeys(t *testing.T, s *testserver.Server) {
	r := s.Neon(t, "POST", "/api_keys", map[string]any{"key_name": "ci"})
	wantStatus(t, r, http.StatusOK)
	created := decode[struct {
		ID        int64  `json:"id"`
		Key       string `json:"key"`
		Name      string `json:"name"`
		CreatedAt string `json:"created_at"`
		CreatedBy string `json:"created_by"`
	}](t, r)
	if !apiKeyShape.MatchString(created.Key) || created.Name != "ci" || created.ID == 0 ||
		created.CreatedBy == "" || created.CreatedAt == "" {
		t.Fatalf("created key: %s", r.Body)
	}
	r = s.Neon(t, "GET", "/api_keys", nil)
	wantStatus(t, r, http.StatusOK)
	list := decode[[]map[string]any](t, r)
	i := slices.IndexFunc(list, func(k map[string]any) bool {
		return k["id"] == float64(created.ID)
	})
	if i < 0 || list[i]["name"] != "ci" {
		t.Fatalf("list lacks the key: %s", r.Body)
	}
	if _, ok := list[i]["key"]; ok || bytes.Contains(r.Body, []byte(created.Key)) {
		t.Fatalf("list shows the key")
	}
	by, _ := list[i]["created_by"].(map[string]any)
	if by["id"] == nil || by["name"] == nil {
		t.Fatalf("list created_by: %v", list[i]["created_by"])
	}
	if list[i]["last_used_at"] != nil {
		t.Fatalf("an unused key has last_used_at: %v", list[i])
	}
	wantStatus(t, call(t, s, created.Key, "GET", "/projects", nil), http.StatusOK)
	list = decode[[]map[string]any](t, s.Neon(t, "GET", "/api_keys", nil))
	i = slices.IndexFunc(list, func(k map[string]any) bool {
		return k["id"] == float64(created.ID)
	})
	if i < 0 || list[i]["last_used_at"] == nil || list[i]["last_used_from_addr"] != "127.0.0.1" {
		t.Fatalf("the used key's list item: %v", list)
	}

	r = s.Neon(t, "DELETE", fmt.Sprintf("/api_keys/%d", created.ID), nil)
	wantStatus(t, r, http.StatusOK)
	rev := r.JSON(t)
	if rev["revoked"] != true || rev["id"] != float64(created.ID) {
		t.Fatalf("revoke answer: %s", r.Body)
	}
	wantError(t, call(t, s, created.Key, "GET", "/projects", nil), http.StatusUnauthorized)
	wantError(t, s.Neon(t, "DELETE", fmt.Sprintf("/api_keys/%d", created.ID), nil),
		http.StatusNotFound)
	for _, id := range []string{"abc", "1.5", "99999999999999999999"} {
		wantErrorNaming(t, s.Neon(t, "DELETE", "/api_keys/"+id, nil), http.StatusBadRequest,
			"key_id")
	}
	wantError(t, s.Neon(t, "DELETE", "/api_keys/987654321", nil), http.StatusNotFound)
	for _, name := range []string{"", "  ", strings.Repeat("k", 65)} {
		r := s.Neon(t, "POST", "/api_keys", map[string]any{"key_name": name})
		wantErrorNaming(t, r, http.StatusBadRequest, "key_name")
	}
	wantStatus(t, s.Neon(t, "POST", "/api_keys",
		map[string]any{"key_name": strings.Repeat("🚲", 64)}), http.StatusOK)
}

// testProjects checks list pagination, get and delete, with an account of its own.
func testProjects(t *testing.T, s *testserver.Server) {
	_, key, err := s.Env.Console.CreateAccount(context.Background(), "pages")
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	var ids []string
	var last createdProject
	for i := range 3 {
		last = newProject(t, s, key, map[string]any{"project": map[string]any{
			"name": fmt.Sprintf("page-%d", i)}})
		ids = append(ids, last.Project.ID)
	}
	if i := slices.Index(ids, ""); i >= 0 {
		t.Fatalf("project %d has no id", i)
	}
	custom := newProject(t, s, key, map[string]any{"project": map[string]any{
		"name": "custom", "branch": map[string]any{"name": "prod", "role_name": "app_admin",
			"database_name": "appdata"}}})
	ids = append(ids, custom.Project.ID)
	checkCustomNames(t, s, key, custom)
	if got := listAll(t, s, key, 2); !slices.Equal(got, ids) {
		t.Fatalf("paged list %v, want %v", got, ids)
	}
	for _, q := range []string{"limit=0", "limit=401", "limit=x", "limit=-1", "limit=1.5"} {
		r := call(t, s, key, "GET", "/projects?"+q, nil)
		wantErrorNaming(t, r, http.StatusBadRequest, "limit")
	}
	if got := listAll(t, s, key, 400); !slices.Equal(got, ids) {
		t.Fatalf("list with limit 400: %v, want %v", got, ids)
	}

	r := call(t, s, key, "GET", "/projects/"+last.Project.ID, nil)
	wantStatus(t, r, http.StatusOK)
	prj := decode[struct {
		Project map[string]any `json:"project"`
	}](t, r).Project
	for _, k := range []string{"id", "platform_id", "region_id", "name", "pg_version",
		"proxy_host", "store_passwords", "provisioner", "creation_source", "created_at",
		"updated_at", "owner_id", "history_retention_seconds"} {
		if _, ok := prj[k]; !ok {
			t.Errorf("project lacks %s", k)
		}
	}
	if prj["id"] != last.Project.ID || prj["name"] != "page-2" {
		t.Fatalf("project: %s", r.Body)
	}
	r = call(t, s, key, "POST", "/projects", map[string]any{"project": map[string]any{
		"name": strings.Repeat("n", 257)}})
	wantErrorNaming(t, r, http.StatusBadRequest, "project.name")
	checkProjectDelete(t, s, key, last)
}

// checkCustomNames checks a project made with its own branch, role and database names, and
// that its integration must name them.
func checkCustomNames(t *testing.T, s *testserver.Server, key string, cp createdProject) {
	c := cp.ConnectionURIs[0].Params
	if c.Role != "app_admin" || c.Database != "appdata" || len(cp.Databases) != 1 ||
		cp.Databases[0].OwnerName != "app_admin" {
		t.Fatalf("custom project: %+v", cp)
	}
	r := call(t, s, key, "GET", "/projects/"+cp.Project.ID+"/branches/"+cp.Branch.ID, nil)
	if b := decode[struct{ Branch branchAnswer }](t, r).Branch; b.Name != "prod" || !b.Default {
		t.Fatalf("custom branch: %s", r.Body)
	}
	body := map[string]any{"auth_provider": "stack", "project_id": cp.Project.ID,
		"branch_id": cp.Branch.ID, "database_name": "neondb"}
	wantErrorNaming(t, call(t, s, key, "POST", "/projects/auth/create", body),
		http.StatusNotFound, "neondb")
	body["database_name"], body["role_name"] = "appdata", "nobody"
	wantErrorNaming(t, call(t, s, key, "POST", "/projects/auth/create", body),
		http.StatusNotFound, "nobody")
	// Without names, a project that has no neondb uses its own database and that
	// database's owner.
	delete(body, "database_name")
	delete(body, "role_name")
	wantAuthCreated(t, s, call(t, s, key, "POST", "/projects/auth/create", body))
	list := decode[struct {
		Data []struct {
			DBName string `json:"db_name"`
		} `json:"data"`
	}](t, call(t, s, key, "GET", "/projects/"+cp.Project.ID+"/auth/integrations", nil))
	if len(list.Data) != 1 || list.Data[0].DBName != "appdata" {
		t.Fatalf("integration of the custom project: %+v", list.Data)
	}
	owner := queryOne[string](t, pgConnect(t, cp.ConnectionURIs[0].URI),
		`SELECT pg_get_userbyid(relowner) FROM pg_class
		WHERE oid = 'neon_auth.users_sync'::regclass`)
	if owner != "app_admin" {
		t.Fatalf("users_sync is owned by %q", owner)
	}
}

// listAll pages through the account's projects with a limit and returns their ids.
func listAll(t *testing.T, s *testserver.Server, key string, limit int) []string {
	var ids []string
	cursor := ""
	for page := 0; page < 10; page++ {
		path := fmt.Sprintf("/projects?limit=%d", limit)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		r := call(t, s, key, "GET", path, nil)
		wantStatus(t, r, http.StatusOK)
		out := decode[struct {
			Projects   []struct{ ID string } `json:"projects"`
			Pagination *struct {
				Cursor string `json:"cursor"`
			} `json:"pagination"`
		}](t, r)
		for _, p := range out.Projects {
			ids = append(ids, p.ID)
		}
		if len(out.Projects) > limit {
			t.Fatalf("page of %d projects with limit %d", len(out.Projects), limit)
		}
		if len(out.Projects) < limit {
			return ids
		}
		if out.Pagination == nil || out.Pagination.Cursor == "" {
			t.Fatalf("full page without pagination.cursor: %s", r.Body)
		}
		cursor = out.Pagination.Cursor
	}
	t.Fatalf("pagination does not end")
	return nil
}

// checkProjectDelete deletes a project and checks that its server is gone.
func checkProjectDelete(t *testing.T, s *testserver.Server, key string, cp createdProject) {
	uri := cp.ConnectionURIs[0].URI
	pgConnect(t, uri).Close(context.Background())
	r := call(t, s, key, "DELETE", "/projects/"+cp.Project.ID, nil)
	wantStatus(t, r, http.StatusOK)
	if decode[createdProject](t, r).Project.ID != cp.Project.ID {
		t.Fatalf("delete answer: %s", r.Body)
	}
	wantError(t, call(t, s, key, "GET", "/projects/"+cp.Project.ID, nil), http.StatusNotFound)
	wantError(t, call(t, s, key, "DELETE", "/projects/"+cp.Project.ID, nil), http.StatusNotFound)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, uri); err == nil {
		conn.Close(ctx)
		t.Fatalf("the deleted project's server still accepts connections")
	}
}

// branchAnswer is a branch in a create or get answer.
type branchAnswer struct {
	ID       string `json:"id"`
	ParentID string `json:"parent_id"`
	Name     string `json:"name"`
	Default  bool   `json:"default"`
}

// testBranches checks child branches, databases, roles, passwords, connection URIs and
// operations.
func testBranches(t *testing.T, s *testserver.Server) {
	cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{}})
	pid, main := cp.Project.ID, cp.Branch.ID
	parent := pgConnect(t, cp.ConnectionURIs[0].URI)
	exec(t, parent, "CREATE TABLE copied (v text)", "INSERT INTO copied VALUES ('from parent')")

	r := s.Neon(t, "POST", "/projects/"+pid+"/branches",
		map[string]any{"branch": map[string]any{"name": "dev"}})
	wantStatus(t, r, http.StatusCreated)
	child := decode[struct {
		Branch     branchAnswer     `json:"branch"`
		Operations []map[string]any `json:"operations"`
		Endpoints  []map[string]any `json:"endpoints"`
	}](t, r)
	b := child.Branch
	if !branchIDShape.MatchString(b.ID) || b.ParentID != main || b.Default || b.Name != "dev" ||
		len(child.Operations) == 0 || len(child.Endpoints) != 1 {
		t.Fatalf("create branch: %s", r.Body)
	}
	r = s.Neon(t, "GET", "/projects/"+pid+"/branches/"+b.ID, nil)
	wantStatus(t, r, http.StatusOK)
	if got := decode[struct{ Branch branchAnswer }](t, r).Branch; got != b {
		t.Fatalf("get branch %+v, want %+v", got, b)
	}
	wantError(t, s.Neon(t, "GET", "/projects/"+pid+"/branches/br-no-such-branch", nil),
		http.StatusNotFound)

	childURI := connectionURI(t, s, pid, b.ID, "neondb", "neondb_owner")
	if childURI == cp.ConnectionURIs[0].URI {
		t.Fatalf("the child branch has the parent's URI")
	}
	cc := pgConnect(t, childURI)
	if v := queryOne[string](t, cc, "SELECT v FROM copied"); v != "from parent" {
		t.Fatalf("child data %q", v)
	}
	exec(t, cc, "INSERT INTO copied VALUES ('child only')")
	if n := queryOne[int](t, parent, "SELECT count(*)::int FROM copied"); n != 1 {
		t.Fatalf("a write to the child shows in the parent")
	}

	checkDatabasesAndRoles(t, s, pid, main, parent)
	checkOperation(t, s, pid, cp.Operations[0].ID)
}

// connectionURI asks the API for a connection URI.
func connectionURI(t testing.TB, s *testserver.Server, pid, bid, db, role string) string {
	t.Helper()
	q := url.Values{"database_name": {db}, "role_name": {role}}
	if bid != "" {
		q.Set("branch_id", bid)
	}
	r := s.Neon(t, "GET", "/projects/"+pid+"/connection_uri?"+q.Encode(), nil)
	wantStatus(t, r, http.StatusOK)
	uri := decode[struct{ URI string }](t, r).URI
	if uri == "" {
		t.Fatalf("connection_uri: %s", r.Body)
	}
	return uri
}

// checkDatabasesAndRoles lists and creates databases and roles on a branch.
func checkDatabasesAndRoles(t *testing.T, s *testserver.Server, pid, bid string,
	conn *pgx.Conn) {
	base := "/projects/" + pid + "/branches/" + bid
	r := s.Neon(t, "GET", base+"/databases", nil)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Contains(r.Body, []byte(`"name":"neondb"`)) {
		t.Fatalf("databases: %s", r.Body)
	}
	r = s.Neon(t, "GET", base+"/roles", nil)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Contains(r.Body, []byte(`"name":"neondb_owner"`)) ||
		bytes.Contains(r.Body, []byte(`"password"`)) {
		t.Fatalf("roles: %s", r.Body)
	}

	pw := createRole(t, s, pid, bid, "alice")
	r = s.Neon(t, "GET", base+"/roles/alice/reveal_password", nil)
	wantStatus(t, r, http.StatusOK)
	if got := decode[struct{ Password string }](t, r).Password; got != pw {
		t.Fatalf("revealed %q, created with %q", got, pw)
	}
	wantError(t, s.Neon(t, "GET", base+"/roles/nobody/reveal_password", nil),
		http.StatusNotFound)
	wantError(t, s.Neon(t, "POST", base+"/roles",
		map[string]any{"role": map[string]any{"name": "alice"}}), http.StatusConflict)

	createDatabase(t, s, pid, bid, "app", "alice")
	owner := queryOne[string](t, conn,
		"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'")
	if owner != "alice" {
		t.Fatalf("app is owned by %q", owner)
	}
	wantError(t, s.Neon(t, "POST", base+"/databases", map[string]any{"database": map[string]any{
		"name": "app", "owner_name": "alice"}}), http.StatusConflict)
	wantError(t, s.Neon(t, "POST", base+"/databases", map[string]any{"database": map[string]any{
		"name": "app2", "owner_name": "nobody"}}), http.StatusNotFound)

	ac := pgConnect(t, connectionURI(t, s, pid, "", "app", "alice"))
	if got := queryOne[string](t, ac, "SELECT current_user || '/' || current_database()"); got !=
		"alice/app" {
		t.Fatalf("connection_uri reaches %s", got)
	}
	for _, q := range []string{"database_name=app", "role_name=alice", ""} {
		r := s.Neon(t, "GET", "/projects/"+pid+"/connection_uri?"+q, nil)
		wantError(t, r, http.StatusBadRequest)
	}
	wantError(t, s.Neon(t, "GET", "/projects/"+pid+
		"/connection_uri?database_name=nodb&role_name=alice", nil), http.StatusNotFound)
	wantError(t, s.Neon(t, "GET", "/projects/"+pid+
		"/connection_uri?database_name=app&role_name=nobody", nil), http.StatusNotFound)
}

// createRole creates a role through the API and returns its password.
func createRole(t testing.TB, s *testserver.Server, pid, bid, name string) string {
	t.Helper()
	r := s.Neon(t, "POST", "/projects/"+pid+"/branches/"+bid+"/roles",
		map[string]any{"role": map[string]any{"name": name}})
	wantStatus(t, r, http.StatusCreated)
	out := decode[struct {
		Role struct {
			Name     string `json:"name"`
			Password string `json:"password"`
		} `json:"role"`
		Operations []map[string]any `json:"operations"`
	}](t, r)
	if out.Role.Name != name || out.Role.Password == "" || len(out.Operations) == 0 {
		t.Fatalf("create role: %s", r.Body)
	}
	return out.Role.Password
}

// createDatabase creates a database through the API.
func createDatabase(t testing.TB, s *testserver.Server, pid, bid, name, owner string) {
	t.Helper()
	r := s.Neon(t, "POST", "/projects/"+pid+"/branches/"+bid+"/databases",
		map[string]any{"database": map[string]any{"name": name, "owner_name": owner}})
	wantStatus(t, r, http.StatusCreated)
	out := decode[struct {
		Database struct {
			Name      string `json:"name"`
			OwnerName string `json:"owner_name"`
		} `json:"database"`
		Operations []map[string]any `json:"operations"`
	}](t, r)
	if out.Database.Name != name || out.Database.OwnerName != owner || len(out.Operations) == 0 {
		t.Fatalf("create database: %s", r.Body)
	}
}

// checkOperation reads an operation from a create answer.
func checkOperation(t *testing.T, s *testserver.Server, pid, opID string) {
	r := s.Neon(t, "GET", "/projects/"+pid+"/operations/"+opID, nil)
	wantStatus(t, r, http.StatusOK)
	op := decode[struct {
		Operation map[string]any `json:"operation"`
	}](t, r).Operation
	if op["id"] != opID || op["project_id"] != pid || op["status"] != "finished" ||
		op["action"] == nil || op["failures_count"] == nil {
		t.Fatalf("operation: %s", r.Body)
	}
	for _, id := range []string{"00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
		wantError(t, s.Neon(t, "GET", "/projects/"+pid+"/operations/"+id, nil),
			http.StatusNotFound)
	}
}

// testIdentifiers checks that database and role names are exact identifiers.
func testIdentifiers(t *testing.T, s *testserver.Server) {
	cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{}})
	pid, bid := cp.Project.ID, cp.Branch.ID
	conn := pgConnect(t, cp.ConnectionURIs[0].URI)
	names := []struct{ role, db string }{
		{`o'neil "x"; DROP ROLE neondb_owner; --`, `db "q"; DROP DATABASE neondb; --`},
		{"rôle 李 🚲", "база данных 🚲"},
		{"at@colon:slash/q?hash#pct%", "db?x=1&y#z/%41 b"},
		{"UpperCase", "MixedCase"},
		{strings.Repeat("🚲", 15) + "abc", strings.Repeat("é", 31) + "x"},
	}
	for _, n := range names {
		pw := createRole(t, s, pid, bid, n.role)
		createDatabase(t, s, pid, bid, n.db, n.role)
		got := queryOne[string](t, conn, `SELECT pg_get_userbyid(datdba) FROM pg_database
			WHERE datname = $1`, n.db)
		if got != n.role {
			t.Errorf("database %q is owned by %q, want %q", n.db, got, n.role)
		}
		uri := connectionURI(t, s, pid, "", n.db, n.role)
		c := pgConnect(t, uri)
		var user, db string
		err := c.QueryRow(context.Background(), "SELECT current_user, current_database()").
			Scan(&user, &db)
		if err != nil || user != n.role || db != n.db {
			t.Errorf("connection_uri for %q/%q reaches %q/%q (%v)", n.role, n.db, user, db, err)
		}
		u, err := url.Parse(uri)
		if got, _ := u.User.Password(); err != nil || u.User.Username() != n.role || got != pw {
			t.Errorf("connection_uri for %q does not carry its role and password", n.role)
		}
	}
	if n := queryOne[int](t, conn, "SELECT count(*)::int FROM pg_database WHERE datname = "+
		"'neondb'"); n != 1 {
		t.Fatalf("neondb is gone")
	}
	checkIdentifierLimits(t, s, pid, bid)
}

// checkIdentifierLimits checks the 63-byte limit of database and role names.
func checkIdentifierLimits(t *testing.T, s *testserver.Server, pid, bid string) {
	base := "/projects/" + pid + "/branches/" + bid
	long := []string{strings.Repeat("a", 64), strings.Repeat("🚲", 16), strings.Repeat("é", 32)}
	for _, name := range long {
		r := s.Neon(t, "POST", base+"/roles", map[string]any{"role": map[string]any{"name": name}})
		wantErrorNaming(t, r, http.StatusBadRequest, "63")
		r = s.Neon(t, "POST", base+"/databases", map[string]any{"database": map[string]any{
			"name": name, "owner_name": "neondb_owner"}})
		wantErrorNaming(t, r, http.StatusBadRequest, "63")
		r = s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{
			"branch": map[string]any{"database_name": name}}})
		wantErrorNaming(t, r, http.StatusBadRequest, "63")
		r = s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{
			"branch": map[string]any{"role_name": name}}})
		wantErrorNaming(t, r, http.StatusBadRequest, "63")
	}
	for _, name := range []string{"", "pg_mine", "nul\x00byte"} {
		r := s.Neon(t, "POST", base+"/roles", map[string]any{"role": map[string]any{"name": name}})
		wantError(t, r, http.StatusBadRequest)
	}
	createRole(t, s, pid, bid, strings.Repeat("r", 63))
	createDatabase(t, s, pid, bid, strings.Repeat("d", 63), strings.Repeat("r", 63))
}

// testAttach attaches an existing PostgreSQL database as a project and syncs users into it.
func testAttach(t *testing.T, s *testserver.Server) {
	cl := pgtest.Start(t)
	super := pgConnect(t, cl.URI("postgres"))
	exec(t, super, "CREATE ROLE app_owner LOGIN PASSWORD 'attach-pw-1'",
		"CREATE DATABASE appdb OWNER app_owner")
	uri := fmt.Sprintf("postgresql://app_owner:attach-pw-1@127.0.0.1:%d/appdb?sslmode=disable",
		cl.Port)
	for _, bad := range []string{strings.Replace(uri, "attach-pw-1", "wrong-pw", 1),
		strings.Replace(uri, "/appdb", "/nodb", 1), "mysql://u:p@127.0.0.1/appdb",
		"postgresql://127.0.0.1/appdb", "postgresql://u:p@127.0.0.1:%zz/appdb", "not a uri"} {
		r := s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{
			"connection_uri": bad}})
		wantErrorNaming(t, r, http.StatusBadRequest, "project.connection_uri")
		if bytes.Contains(r.Body, []byte("wrong-pw")) ||
			bytes.Contains(r.Body, []byte("attach-pw")) {
			t.Fatalf("the error shows the password: %s", r.Body)
		}
	}
	r := s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{
		"name": "attached", "connection_uri": uri}})
	wantStatus(t, r, http.StatusCreated)
	cp := decode[createdProject](t, r)
	pid, bid := cp.Project.ID, cp.Branch.ID
	if !slices.ContainsFunc(cp.Databases, func(d struct {
		Name      string `json:"name"`
		OwnerName string `json:"owner_name"`
	}) bool {
		return d.Name == "appdb" && d.OwnerName == "app_owner"
	}) {
		t.Fatalf("attached databases: %+v", cp.Databases)
	}
	roles := s.Neon(t, "GET", "/projects/"+pid+"/branches/"+bid+"/roles", nil)
	if !bytes.Contains(roles.Body, []byte(`"name":"app_owner"`)) {
		t.Fatalf("attached roles: %s", roles.Body)
	}
	c := pgConnect(t, connectionURI(t, s, pid, "", "appdb", "app_owner"))
	if got := queryOne[string](t, c, "SELECT current_user || '/' || current_database()"); got !=
		"app_owner/appdb" {
		t.Fatalf("attached connection_uri reaches %s", got)
	}
	wantError(t, s.Neon(t, "GET", "/projects/"+pid+"/branches/"+bid+"/roles/"+cl.User+
		"/reveal_password", nil), http.StatusPreconditionFailed)
	// app_owner may neither create roles nor databases: the server's refusal is the
	// client's problem, not an internal error.
	base := "/projects/" + pid + "/branches/" + bid
	r = s.Neon(t, "POST", base+"/roles", map[string]any{"role": map[string]any{"name": "r2"}})
	wantErrorNaming(t, r, http.StatusBadRequest, "permission denied")
	r = s.Neon(t, "POST", base+"/databases", map[string]any{"database": map[string]any{
		"name": "db2", "owner_name": "app_owner"}})
	wantErrorNaming(t, r, http.StatusBadRequest, "permission denied")

	// The attached server's user may not hand the schema to a superuser: that is the
	// caller's mistake, a 400, and it leaves nothing behind.
	body := map[string]any{"auth_provider": "stack", "project_id": pid, "branch_id": bid,
		"database_name": "appdb", "role_name": "postgres"}
	wantErrorNaming(t, s.Neon(t, "POST", "/projects/auth/create", body),
		http.StatusBadRequest, "role_name", "postgres")
	if r := s.Neon(t, "GET", "/projects/"+pid+"/auth/integrations", nil); !bytes.Equal(
		bytes.TrimSpace(r.Body), []byte(`{"data":[]}`)) {
		t.Fatalf("a refused create left an integration: %s", r.Body)
	}
	body["role_name"] = "app_owner"
	a := wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/create", body))
	app := pgConnect(t, cl.URI("appdb"))
	owner := queryOne[string](t, app, `SELECT pg_get_userbyid(relowner) FROM pg_class
		WHERE oid = 'neon_auth.users_sync'::regclass`)
	if owner != "app_owner" {
		t.Fatalf("attached users_sync is owned by %q", owner)
	}
	id := createUser(t, s, pid, "attached@example.com", "Attached")
	waitSynced(t, app, id, syncDeadline)

	wantError(t, s.Neon(t, "POST", "/projects/"+pid+"/branches", map[string]any{}),
		http.StatusBadRequest)
	wantStatus(t, s.Neon(t, "DELETE", "/projects/"+pid, nil), http.StatusOK)
	wantStatus(t, s.Do(t, "GET", localPath(t, s, a.JWKSURL), nil), http.StatusNotFound)
	if n := queryOne[int](t, app, "SELECT count(*)::int FROM neon_auth.users_sync"); n != 1 {
		t.Fatalf("deleting the project changed the attached database: %d rows", n)
	}
}
