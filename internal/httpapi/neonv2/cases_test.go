package neonv2_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonauth/neonauth/internal/pgtest"
	"github.com/neonauth/neonauth/internal/testserver"
)

// caseProject is a project with its integration, as most cases start.
type caseProject struct {
	cp   createdProject
	auth authCreated
	conn *pgx.Conn
}

func (c caseProject) id() string { return c.cp.Project.ID }

// startCase starts a service with one project that has a Stack integration.
func startCase(t *testing.T) (*testserver.Server, caseProject) {
	t.Helper()
	s := testserver.Start(t)
	cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{"name": "alpha"}})
	a := wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/create",
		createBody(cp.Project.ID, cp.Branch.ID)))
	return s, caseProject{cp: cp, auth: a, conn: pgConnect(t, cp.ConnectionURIs[0].URI)}
}

// metaCount counts rows in the metadata database.
func metaCount(t testing.TB, s *testserver.Server, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Env.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("metadata query %q: %v", sql, err)
	}
	return n
}

// listData returns the items of an integrations list.
func listData(t testing.TB, s *testserver.Server, pid string) []map[string]any {
	t.Helper()
	r := s.Neon(t, "GET", "/projects/"+pid+"/auth/integrations", nil)
	wantStatus(t, r, http.StatusOK)
	out := decode[struct {
		Data []map[string]any `json:"data"`
	}](t, r)
	if out.Data == nil {
		t.Fatalf("list has no data array: %s", r.Body)
	}
	return out.Data
}

// rawDo sends a management request with the admin key and a JSON body (when not nil)
// without a testing.TB, for use from goroutines.
func rawDo(s *testserver.Server, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("encode: %w", err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, s.URL+"/api/v2"+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// twice sends the same request twice at the same moment and returns both statuses and
// bodies, in the order the requests were started.
func twice(t *testing.T, s *testserver.Server, method, path string, body any) ([]int,
	[][]byte) {
	t.Helper()
	statuses := make([]int, 2)
	bodies := make([][]byte, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			<-start
			statuses[i], bodies[i], errs[i] = rawDo(s, method, path, body)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent request %d: %v", i, err)
		}
	}
	return statuses, bodies
}

// wantOneOf fails unless the statuses of a concurrent pair are exactly win and lose.
func wantOneOf(t *testing.T, what string, statuses []int, bodies [][]byte, win, lose int) {
	t.Helper()
	sorted := slices.Clone(statuses)
	slices.Sort(sorted)
	want := []int{min(win, lose), max(win, lose)}
	if !slices.Equal(sorted, want) {
		t.Fatalf("%s: statuses %v, want one %d and one %d: %s | %s", what, statuses, win,
			lose, bodies[0], bodies[1])
	}
}

// TestB01DuplicateCreate: a second create is a 409, a concurrent pair one 201 and one 409.
func TestB01DuplicateCreate(t *testing.T) {
	t.Parallel()
	s, alpha := startCase(t)
	pid := alpha.id()
	projects := metaCount(t, s, "SELECT count(*)::int FROM auth_projects")
	keys := metaCount(t, s, "SELECT count(*)::int FROM auth_keys")

	r := s.Neon(t, "POST", "/projects/auth/create", createBody(pid, alpha.cp.Branch.ID))
	wantError(t, r, http.StatusConflict)
	if got := listData(t, s, pid); len(got) != 1 ||
		got[0]["auth_provider_project_id"] != alpha.auth.AuthProviderProjectID {
		t.Fatalf("list after the repeat: %v", got)
	}
	if p, k := metaCount(t, s, "SELECT count(*)::int FROM auth_projects"),
		metaCount(t, s, "SELECT count(*)::int FROM auth_keys"); p != projects || k != keys {
		t.Fatalf("the repeat made auth projects %d→%d, keys %d→%d", projects, p, keys, k)
	}
	wantStatus(t, s.Stack(t, alpha.auth.integration(), "server", "GET", "/users", nil),
		http.StatusOK)

	for round := range 3 {
		concurrentCreate(t, s, round)
	}
	concurrentOthers(t, s, alpha)
}

// concurrentOthers races the other creates that have a uniqueness rule: users (one email),
// roles and databases (one name per branch), and API keys (none: both succeed).
func concurrentOthers(t *testing.T, s *testserver.Server, alpha caseProject) {
	pid, bid := alpha.id(), alpha.cp.Branch.ID
	base := "/projects/" + pid + "/branches/" + bid
	for i := range 3 {
		st, b := twice(t, s, "POST", "/projects/auth/user",
			userBody(pid, fmt.Sprintf("race%d@example.com", i), "Race"))
		wantOneOf(t, "user", st, b, http.StatusCreated, http.StatusConflict)
		role := fmt.Sprintf("race_role_%d", i)
		st, b = twice(t, s, "POST", base+"/roles", map[string]any{"role": map[string]any{
			"name": role}})
		wantOneOf(t, "role", st, b, http.StatusCreated, http.StatusConflict)
		st, b = twice(t, s, "POST", base+"/databases", map[string]any{"database": map[string]any{
			"name": fmt.Sprintf("race_db_%d", i), "owner_name": role}})
		wantOneOf(t, "database", st, b, http.StatusCreated, http.StatusConflict)
	}
	r := s.Neon(t, "GET", base+"/roles", nil)
	if n := bytes.Count(r.Body, []byte(`"name":"race_role_0"`)); n != 1 {
		t.Fatalf("race_role_0 is listed %d times: %s", n, r.Body)
	}
	r = s.Neon(t, "GET", base+"/databases", nil)
	if n := bytes.Count(r.Body, []byte(`"name":"race_db_0"`)); n != 1 {
		t.Fatalf("race_db_0 is listed %d times: %s", n, r.Body)
	}
}

// concurrentCreate sends the same create twice at once on a fresh project.
func concurrentCreate(t *testing.T, s *testserver.Server, round int) {
	beta := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{
		"name": fmt.Sprintf("beta-%d", round)}})
	before := metaCount(t, s, "SELECT count(*)::int FROM auth_projects")
	statuses, bodies := twice(t, s, "POST", "/projects/auth/create",
		createBody(beta.Project.ID, beta.Branch.ID))
	wantOneOf(t, fmt.Sprintf("create round %d", round), statuses, bodies, http.StatusCreated,
		http.StatusConflict)
	won := bodies[slices.Index(statuses, http.StatusCreated)]
	var a authCreated
	if err := json.Unmarshal(won, &a); err != nil {
		t.Fatalf("round %d: winner body: %v", round, err)
	}
	got := listData(t, s, beta.Project.ID)
	if len(got) != 1 || got[0]["auth_provider_project_id"] != a.AuthProviderProjectID {
		t.Fatalf("round %d: list %v, winner %s", round, got, a.AuthProviderProjectID)
	}
	if after := metaCount(t, s, "SELECT count(*)::int FROM auth_projects"); after != before+1 {
		t.Fatalf("round %d: %d auth projects made, want 1", round, after-before)
	}
	wantStatus(t, s.Stack(t, a.integration(), "server", "GET", "/users", nil), http.StatusOK)
}

// TestB02DeleteThenRecreate: delete is final, a repeat is a 404, create works again, and the
// old keys are refused.
func TestB02DeleteThenRecreate(t *testing.T) {
	t.Parallel()
	s, alpha := startCase(t)
	pid, old := alpha.id(), alpha.auth
	uid := createUser(t, s, pid, "kept@example.com", "Kept")
	waitSynced(t, alpha.conn, uid, syncDeadline)

	del := "/projects/" + pid + "/auth/integration/stack"
	wantStatus(t, s.Do(t, "DELETE", "/api/v2"+del, nil, "Authorization", "Bearer "+s.APIKey,
		"Content-Type", "application/json"), http.StatusOK)
	wantError(t, s.Neon(t, "DELETE", del, nil), http.StatusNotFound)
	wantError(t, s.Neon(t, "DELETE", del, map[string]any{"delete_data": false}),
		http.StatusNotFound)
	if got := listData(t, s, pid); len(got) != 0 {
		t.Fatalf("list after delete: %v", got)
	}
	wantError(t, s.Neon(t, "POST", "/projects/auth/keys", ref(pid)), http.StatusNotFound)
	wantError(t, s.Neon(t, "POST", "/projects/auth/user",
		userBody(pid, "late@example.com", nil)), http.StatusNotFound)
	wantError(t, s.Neon(t, "POST", "/projects/auth/transfer_ownership", ref(pid)),
		http.StatusNotFound)

	fresh := wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/create",
		createBody(pid, alpha.cp.Branch.ID)))
	if fresh.AuthProviderProjectID == old.AuthProviderProjectID {
		t.Fatalf("the re-create reused the auth project id")
	}
	checkOldKeysRefused(t, s, old)
	r := s.Stack(t, fresh.integration(), "server", "GET", "/users", nil)
	wantStatus(t, r, http.StatusOK)
	if n := len(decode[struct{ Items []any }](t, r).Items); n != 0 {
		t.Fatalf("the new auth project has %d users", n)
	}
	// The rule: a delete without delete_data keeps users_sync rows, and a re-create keeps them.
	if n := queryOne[int](t, alpha.conn, "SELECT count(*)::int FROM neon_auth.users_sync "+
		"WHERE id = $1", uid); n != 1 {
		t.Fatalf("the kept row is gone after the re-create")
	}
	second := createUser(t, s, pid, "kept@example.com", "Kept Again")
	waitSynced(t, alpha.conn, second, syncDeadline)

	wantStatus(t, s.Neon(t, "DELETE", del, map[string]any{"delete_data": true}), http.StatusOK)
	wantError(t, s.Neon(t, "DELETE", del, map[string]any{"delete_data": true}),
		http.StatusNotFound)
	wantAuthCreated(t, s, s.Neon(t, "POST", "/projects/auth/create",
		createBody(pid, alpha.cp.Branch.ID)))
	if n := queryOne[int](t, alpha.conn, "SELECT count(*)::int FROM neon_auth.users_sync"); n != 0 {
		t.Fatalf("delete_data kept %d rows", n)
	}

	st, b := twice(t, s, "DELETE", del, nil)
	wantOneOf(t, "integration delete", st, b, http.StatusOK, http.StatusNotFound)
	st, b = twice(t, s, "DELETE", "/projects/"+pid, nil)
	wantOneOf(t, "project delete", st, b, http.StatusOK, http.StatusNotFound)
	wantError(t, s.Neon(t, "GET", "/projects/"+pid, nil), http.StatusNotFound)

	plain := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{}})
	st, b = twice(t, s, "DELETE", "/projects/"+plain.Project.ID, nil)
	wantOneOf(t, "delete of a project without integration", st, b, http.StatusOK,
		http.StatusNotFound)
}

// checkOldKeysRefused checks that the keys of a deleted integration no longer work. The auth
// project is gone, so the provider answers as Stack does for an unknown project.
func checkOldKeysRefused(t *testing.T, s *testserver.Server, old authCreated) {
	for _, access := range []string{"client", "server"} {
		path := "/users"
		if access == "client" {
			path = "/users/me"
		}
		r := s.Stack(t, old.integration(), access, "GET", path, nil)
		if r.Status != http.StatusBadRequest ||
			r.Header.Get("x-stack-known-error") != "CURRENT_PROJECT_NOT_FOUND" {
			t.Fatalf("old %s key: %d %s %s", access, r.Status,
				r.Header.Get("x-stack-known-error"), r.Body)
		}
	}
	wantStatus(t, s.Do(t, "GET", localPath(t, s, old.JWKSURL), nil), http.StatusNotFound)
}

// TestB03UnknownProject404: unknown projects are 404 everywhere, a project without an
// integration lists nothing, and an unsupported provider is a 400.
func TestB03UnknownProject404(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{"name": "alpha"}})
	pid, bid := cp.Project.ID, cp.Branch.ID

	for _, missing := range []string{"does-not-exist", "old-fire-32990194"} {
		for _, rt := range projectRoutes(missing, bid, cp.Operations[0].ID) {
			r := s.Neon(t, rt.method, rt.path, rt.body)
			if r.Status != http.StatusNotFound {
				t.Errorf("%s %s: %d %s", rt.method, rt.path, r.Status, r.Body)
				continue
			}
			wantError(t, r, http.StatusNotFound)
		}
	}
	wantError(t, s.Neon(t, "POST", "/projects/auth/create", createBody(pid, "br-no-such-1")),
		http.StatusNotFound)
	wantError(t, s.Neon(t, "GET", "/projects/"+pid+"/branches/br-no-such-1/databases", nil),
		http.StatusNotFound)

	if got := listData(t, s, pid); len(got) != 0 {
		t.Fatalf("list of a project without integration: %v", got)
	}
	for _, c := range []struct {
		path string
		body any
	}{
		{"/projects/auth/keys", ref(pid)},
		{"/projects/auth/user", userBody(pid, "user@example.com", nil)},
		{"/projects/auth/transfer_ownership", ref(pid)},
	} {
		wantError(t, s.Neon(t, "POST", c.path, c.body), http.StatusNotFound)
	}
	wantError(t, s.Neon(t, "DELETE", "/projects/"+pid+"/auth/integration/stack", nil),
		http.StatusNotFound)

	clerk := func(b map[string]any) map[string]any { b["auth_provider"] = "clerk"; return b }
	for _, c := range []struct {
		path string
		body any
	}{
		{"/projects/auth/create", clerk(createBody(pid, bid))},
		{"/projects/auth/keys", clerk(ref(pid))},
		{"/projects/auth/user", clerk(userBody(pid, "user@example.com", nil))},
		{"/projects/auth/transfer_ownership", clerk(ref(pid))},
	} {
		wantErrorNaming(t, s.Neon(t, "POST", c.path, c.body), http.StatusBadRequest, "stack")
	}
	wantErrorNaming(t, s.Neon(t, "DELETE", "/projects/"+pid+"/auth/integration/clerk", nil),
		http.StatusBadRequest, "stack")
	if got := listData(t, s, pid); len(got) != 0 {
		t.Fatalf("a clerk call made an integration: %v", got)
	}
}

// malformed are bodies that no JSON endpoint may take, with a word the message must hold.
var malformed = []struct{ body, word string }{
	{"", "body"},
	{"{", "JSON"},
	{"null", "object"},
	{"[]", "object"},
	{`"text"`, "object"},
	{"42", "object"},
	{`{"a":1} {"b":2}`, "one JSON object"},
	{`{"project_id":"x",}`, "JSON"},
}

// TestB04MalformedJSON400: empty, malformed and mistyped bodies are 400s that name the
// problem, on every JSON endpoint.
func TestB04MalformedJSON400(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{"name": "alpha"}})
	pid, bid := cp.Project.ID, cp.Branch.ID
	base := "/projects/" + pid + "/branches/" + bid
	required := []string{"/projects/auth/create", "/projects/auth/keys", "/projects/auth/user",
		"/projects/auth/transfer_ownership", "/projects", base + "/databases", base + "/roles",
		"/api_keys"}
	for _, path := range required {
		for _, m := range malformed {
			r := s.Do(t, "POST", "/api/v2"+path, m.body, "Authorization", "Bearer "+s.APIKey,
				"Content-Type", "application/json")
			wantErrorNaming(t, r, http.StatusBadRequest, m.word)
		}
	}
	optional := []struct{ method, path string }{
		{"POST", "/projects/" + pid + "/branches"},
		{"DELETE", "/projects/" + pid + "/auth/integration/stack"},
	}
	for _, o := range optional {
		for _, m := range malformed[1:] {
			r := s.Do(t, o.method, "/api/v2"+o.path, m.body, "Authorization",
				"Bearer "+s.APIKey, "Content-Type", "application/json")
			wantErrorNaming(t, r, http.StatusBadRequest, m.word)
		}
	}
	checkMistyped(t, s, pid, bid)

	if got := listData(t, s, pid); len(got) != 0 {
		t.Fatalf("a malformed create made an integration: %v", got)
	}
	if n := queryOne[int](t, pgConnect(t, cp.ConnectionURIs[0].URI),
		"SELECT count(*)::int FROM pg_namespace WHERE nspname = 'neon_auth'"); n != 0 {
		t.Fatalf("a malformed create made the neon_auth schema")
	}
	r := s.Do(t, "GET", "/api/v2/projects/"+pid+"/auth/integrations", nil,
		"Authorization", "Bearer "+s.APIKey, "Content-Type", "application/json")
	wantStatus(t, r, http.StatusOK)
}

// wantErrorField checks a 400 whose message starts with the field's JSON path, as in
// "project.name: must be a JSON string".
func wantErrorField(t testing.TB, r testserver.Response, field string) {
	t.Helper()
	msg := wantError(t, r, http.StatusBadRequest)
	if !strings.HasPrefix(msg, field+":") {
		t.Fatalf("error message %q does not start with the field %q", msg, field)
	}
}

// checkMistyped sends bodies with missing or wrongly typed fields; each 400 names the field.
func checkMistyped(t *testing.T, s *testserver.Server, pid, bid string) {
	base := "/projects/" + pid + "/branches/" + bid
	p := `"project_id":"` + pid + `","auth_provider":"stack"`
	cases := []struct{ path, body, field string }{
		{"/projects/auth/create", `{}`, "project_id"},
		{"/projects/auth/create", `{"project_id":123,"auth_provider":"stack"}`, "project_id"},
		{"/projects/auth/create", `{` + p + `}`, "branch_id"},
		{"/projects/auth/create", `{` + p + `,"branch_id":5}`, "branch_id"},
		{"/projects/auth/create", `{"project_id":"` + pid + `"}`, "auth_provider"},
		{"/projects/auth/create", `{"project_id":"` + pid + `","auth_provider":7}`,
			"auth_provider"},
		{"/projects/auth/create", `{` + p + `,"branch_id":"` + bid + `","database_name":false}`,
			"database_name"},
		{"/projects/auth/create", `{` + p + `,"branch_id":"` + bid + `","role_name":[]}`,
			"role_name"},
		{"/projects/auth/keys", `{"project_id":null,"auth_provider":"stack"}`, "project_id"},
		{"/projects/auth/keys", `{"project_id":["x"],"auth_provider":"stack"}`, "project_id"},
		{"/projects/auth/keys", `{"project_id":"` + pid + `","auth_provider":{}}`,
			"auth_provider"},
		{"/projects/auth/user", `{` + p + `}`, "email"},
		{"/projects/auth/user", `{` + p + `,"email":{"a":1}}`, "email"},
		{"/projects/auth/user", `{` + p + `,"email":"u@example.com","name":5}`, "name"},
		{"/projects/auth/user", `{"project_id":1,"auth_provider":"stack","email":"u@x.io"}`,
			"project_id"},
		{"/projects/auth/transfer_ownership", `{"auth_provider":"stack"}`, "project_id"},
		{"/projects/auth/transfer_ownership", `{"project_id":true,"auth_provider":"stack"}`,
			"project_id"},
		{"/projects", `{}`, "project"},
		{"/projects", `{"project":"x"}`, "project"},
		{"/projects", `{"project":{"name":1}}`, "project.name"},
		{"/projects", `{"project":{"pg_version":"15"}}`, "project.pg_version"},
		{"/projects", `{"project":{"branch":[]}}`, "project.branch"},
		{"/projects", `{"project":{"branch":{"role_name":1}}}`, "project.branch.role_name"},
		{"/projects", `{"project":{"connection_uri":1}}`, "project.connection_uri"},
		{base + "/databases", `{}`, "database"},
		{base + "/databases", `{"database":{"owner_name":"neondb_owner"}}`, "database.name"},
		{base + "/databases", `{"database":{"name":"d"}}`, "database.owner_name"},
		{base + "/databases", `{"database":{"name":1,"owner_name":"x"}}`, "database.name"},
		{base + "/roles", `{}`, "role"},
		{base + "/roles", `{"role":{}}`, "role.name"},
		{base + "/roles", `{"role":{"name":true}}`, "role.name"},
		{"/api_keys", `{}`, "key_name"},
		{"/api_keys", `{"key_name":1}`, "key_name"},
		{"/projects/" + pid + "/branches", `{"branch":{"name":1}}`, "branch.name"},
		{"/projects/" + pid + "/branches", `{"branch":"x"}`, "branch"},
	}
	for _, c := range cases {
		r := s.Do(t, "POST", "/api/v2"+c.path, c.body, "Authorization", "Bearer "+s.APIKey,
			"Content-Type", "application/json")
		wantErrorField(t, r, c.field)
	}
	r := s.Neon(t, "DELETE", "/projects/"+pid+"/auth/integration/stack",
		`{"delete_data":"yes"}`)
	wantErrorField(t, r, "delete_data")
}

// TestB05WrongContentType: a form body is a 415 and creates nothing; JSON with a charset
// counts as JSON.
func TestB05WrongContentType(t *testing.T) {
	t.Parallel()
	s, alpha := startCase(t)
	pid := alpha.id()
	form := "project_id=" + pid + "&auth_provider=stack&email=user@example.com"
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain",
		"multipart/form-data; boundary=x", "application/xml", ""} {
		hdr := []string{"Authorization", "Bearer " + s.APIKey}
		if ct != "" {
			hdr = append(hdr, "Content-Type", ct)
		}
		r := s.Do(t, "POST", "/api/v2/projects/auth/user", form, hdr...)
		wantErrorNaming(t, r, http.StatusUnsupportedMediaType, "JSON")
	}
	for _, path := range []string{"/projects/auth/create", "/projects/auth/keys",
		"/projects/auth/transfer_ownership", "/projects", "/api_keys",
		"/projects/" + pid + "/branches"} {
		r := s.Do(t, "POST", "/api/v2"+path, `{"project_id":"`+pid+`"}`,
			"Authorization", "Bearer "+s.APIKey,
			"Content-Type", "application/x-www-form-urlencoded")
		wantError(t, r, http.StatusUnsupportedMediaType)
	}
	r := s.Stack(t, alpha.auth.integration(), "server", "GET", "/users", nil)
	if n := len(decode[struct{ Items []any }](t, r).Items); n != 0 {
		t.Fatalf("a form body created %d users", n)
	}

	body, _ := json.Marshal(userBody(pid, "user@example.com", nil))
	for i, ct := range []string{"application/json; charset=utf-8", "Application/JSON",
		"application/merge-patch+json"} {
		b := strings.Replace(string(body), "user@", fmt.Sprintf("user%d@", i), 1)
		r := s.Do(t, "POST", "/api/v2/projects/auth/user", b,
			"Authorization", "Bearer "+s.APIKey, "Content-Type", ct)
		wantStatus(t, r, http.StatusCreated)
		waitSynced(t, alpha.conn, decode[struct{ ID string }](t, r).ID, syncDeadline)
	}
	if n := queryOne[int](t, alpha.conn, "SELECT count(*)::int FROM neon_auth.users_sync "+
		"WHERE email = 'user@example.com'"); n != 0 {
		t.Fatalf("the form body's user was synced")
	}
}

// TestB07NameLengthUnicode: the name limit is 1–255 characters, and names are kept exactly.
func TestB07NameLengthUnicode(t *testing.T) {
	t.Parallel()
	s, alpha := startCase(t)
	pid := alpha.id()
	refused := []any{strings.Repeat("a", 256), "", strings.Repeat("🚲", 256), "nul\x00name",
		strings.Repeat("é", 256)}
	for i, name := range refused {
		email := fmt.Sprintf("refused%d@example.com", i)
		r := s.Neon(t, "POST", "/projects/auth/user", userBody(pid, email, name))
		wantErrorNaming(t, r, http.StatusBadRequest, "name")
	}
	accepted := []string{strings.Repeat("a", 255), strings.Repeat("🚲", 255),
		"Zoë 李 🚲 O'Test", "a", strings.Repeat("é", 255), "  spaced  ",
		"👩\u200d👩\u200d👧\u200d👦 family"}
	ids := make([]string, len(accepted))
	for i, name := range accepted {
		ids[i] = createUser(t, s, pid, fmt.Sprintf("n%d@example.com", i), name)
	}
	for i, name := range accepted {
		waitSynced(t, alpha.conn, ids[i], syncDeadline)
		var col, raw string
		var octets int
		err := alpha.conn.QueryRow(context.Background(), `SELECT name,
				raw_json->>'display_name', octet_length(name)
			FROM neon_auth.users_sync WHERE id = $1`, ids[i]).Scan(&col, &raw, &octets)
		if err != nil {
			t.Fatalf("read row %d: %v", i, err)
		}
		if col != name || raw != name || octets != len(name) {
			t.Errorf("name %d: column %q (%d bytes), raw_json %q, want %q (%d bytes)", i, col,
				octets, raw, name, len(name))
		}
	}
	n := queryOne[int](t, alpha.conn, "SELECT count(*)::int FROM neon_auth.users_sync "+
		"WHERE email LIKE 'refused%'")
	r := s.Stack(t, alpha.auth.integration(), "server", "GET", "/users", nil)
	if users := len(decode[struct{ Items []any }](t, r).Items); n != 0 || users != len(accepted) {
		t.Fatalf("refused names wrote %d rows; the auth project has %d users", n, users)
	}
}

// TestB08NullNameEmail: step 1, a user created without a name syncs a real NULL.
func TestB08NullNameEmail(t *testing.T) {
	t.Parallel()
	s, alpha := startCase(t)
	pid := alpha.id()
	absent := createUser(t, s, pid, "noname@example.com", nil)
	for _, id := range []string{absent} {
		waitSynced(t, alpha.conn, id, syncDeadline)
		var nameNull, rawNull, created bool
		err := alpha.conn.QueryRow(context.Background(), `SELECT name IS NULL,
				raw_json->'display_name' = 'null'::jsonb, created_at IS NOT NULL
			FROM neon_auth.users_sync WHERE id = $1`, id).Scan(&nameNull, &rawNull, &created)
		if err != nil || !nameNull || !rawNull || !created {
			t.Fatalf("user %s: name IS NULL %v, display_name null %v, created_at set %v (%v)",
				id, nameNull, rawNull, created, err)
		}
	}
}

// TestB13RawJSONComplete: the synced raw_json of a management-created user is the server
// user JSON of the provider.
func TestB13RawJSONComplete(t *testing.T) {
	t.Parallel()
	s, alpha := startCase(t)
	for i, name := range []any{"Raw Json", nil} {
		id := createUser(t, s, alpha.id(), fmt.Sprintf("raw%d@example.com", i), name)
		waitSynced(t, alpha.conn, id, syncDeadline)
		r := s.Stack(t, alpha.auth.integration(), "server", "GET", "/users/"+id, nil)
		wantStatus(t, r, http.StatusOK)
		var api, synced map[string]any
		if err := json.Unmarshal(r.Body, &api); err != nil {
			t.Fatalf("server user: %v", err)
		}
		var raw []byte
		var rowID, email string
		var rowName *string
		var created time.Time
		err := alpha.conn.QueryRow(context.Background(), `SELECT raw_json::text, id, email,
				name, created_at FROM neon_auth.users_sync WHERE id = $1`, id).
			Scan(&raw, &rowID, &email, &rowName, &created)
		if err != nil {
			t.Fatalf("read row: %v", err)
		}
		if err := json.Unmarshal(raw, &synced); err != nil {
			t.Fatalf("raw_json: %v", err)
		}
		if !reflect.DeepEqual(api, synced) {
			t.Fatalf("raw_json differs from GET /users/{id}:\n api %s\nsync %s", r.Body, raw)
		}
		checkGenerated(t, api, rowID, email, rowName, created)
	}
}

// checkGenerated checks that the generated columns follow from the server user JSON.
func checkGenerated(t *testing.T, u map[string]any, id, email string, name *string,
	created time.Time) {
	millis, _ := u["signed_up_at_millis"].(float64)
	diff := created.UnixMicro() - int64(millis)*1000
	switch {
	case id != u["id"] || email != u["primary_email"]:
		t.Fatalf("id %q email %q, user %v", id, email, u)
	case (name == nil) != (u["display_name"] == nil),
		name != nil && *name != u["display_name"]:
		t.Fatalf("name %v, display_name %v", name, u["display_name"])
	case millis == 0 || diff < -1000 || diff > 1000:
		t.Fatalf("created_at %v, signed_up_at_millis %v", created, millis)
	}
}

// TestB15CreateUserDuplicates: the management create-user applies sign-up's duplicate rules.
func TestB15CreateUserDuplicates(t *testing.T) {
	t.Parallel()
	s, alpha := startCase(t)
	pid := alpha.id()
	one := createUser(t, s, pid, "Dup@Example.com", "One")
	for _, email := range []string{"dup@example.com", "DUP@EXAMPLE.COM", " dup@example.com "} {
		r := s.Neon(t, "POST", "/projects/auth/user", userBody(pid, email, "Two"))
		wantError(t, r, http.StatusConflict)
	}
	signUp := func(email string) testserver.Response {
		return s.Stack(t, alpha.auth.integration(), "client", "POST", "/auth/password/sign-up",
			map[string]any{"email": email, "password": "correct-horse-1"})
	}
	r := signUp("DUP@example.com")
	if r.Status != http.StatusConflict ||
		r.Header.Get("x-stack-known-error") != "USER_EMAIL_ALREADY_EXISTS" ||
		!bytes.Contains(r.Body, []byte(`"USER_EMAIL_ALREADY_EXISTS"`)) {
		t.Fatalf("sign-up of a taken address: %d %s", r.Status, r.Body)
	}
	for _, email := range []string{"not-an-email", "a@b", "two@@example.com", "",
		strings.Repeat("x", 245) + "@example.com"} {
		r := s.Neon(t, "POST", "/projects/auth/user", userBody(pid, email, nil))
		wantErrorNaming(t, r, http.StatusBadRequest, "email")
	}

	wantStatus(t, signUp("Signed@Example.com"), http.StatusOK)
	wantError(t, s.Neon(t, "POST", "/projects/auth/user",
		userBody(pid, "signed@example.com", nil)), http.StatusConflict)

	waitSynced(t, alpha.conn, one, syncDeadline)
	eventually(t, syncDeadline, "signed-up user synced", func() bool {
		return queryOne[int](t, alpha.conn, "SELECT count(*)::int FROM neon_auth.users_sync "+
			"WHERE lower(email) = 'signed@example.com'") == 1
	})
	var n int
	var name string
	err := alpha.conn.QueryRow(context.Background(), `SELECT count(*)::int, min(name)
		FROM neon_auth.users_sync WHERE lower(email) = 'dup@example.com'`).Scan(&n, &name)
	if err != nil || n != 1 || name != "One" {
		t.Fatalf("rows for the mailbox: %d, name %q (%v)", n, name, err)
	}
	if all := queryOne[int](t, alpha.conn,
		"SELECT count(*)::int FROM neon_auth.users_sync"); all != 2 {
		t.Fatalf("users_sync has %d rows, want 2", all)
	}
}

// TestB01ConcurrentCreateSharedDatabase: two projects attached to one database create their
// integrations at the same moment. They are different integrations, so both get 201; the
// schema DDL of one must not make the other fail on the catalog's unique index (a 500).
func TestB01ConcurrentCreateSharedDatabase(t *testing.T) {
	t.Parallel()
	cl := pgtest.Start(t)
	s := testserver.Start(t)
	admin := pgConnect(t, cl.URI("postgres"))
	for round := range 3 {
		db := fmt.Sprintf("shared%d", round)
		exec(t, admin, "CREATE DATABASE "+db)
		var bodies []map[string]any
		for range 2 {
			cp := newProject(t, s, s.APIKey, map[string]any{"project": map[string]any{
				"connection_uri": cl.URI(db)}})
			bodies = append(bodies, createBody(cp.Project.ID, cp.Branch.ID))
			bodies[len(bodies)-1]["database_name"] = db
			bodies[len(bodies)-1]["role_name"] = "postgres"
		}
		statuses := make([]int, 2)
		out := make([][]byte, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				<-start
				statuses[i], out[i], _ = rawDo(s, "POST", "/projects/auth/create", bodies[i])
			})
		}
		close(start)
		wg.Wait()
		if statuses[0] != http.StatusCreated || statuses[1] != http.StatusCreated {
			t.Fatalf("round %d: statuses %v: %s | %s", round, statuses, out[0], out[1])
		}
	}
}
