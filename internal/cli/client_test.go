package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neonauth/neonauth/internal/client"
	"github.com/neonauth/neonauth/internal/testserver"
)

// clearClientEnv keeps the caller's environment out of a test.
func clearClientEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{"NEON_API_HOST", "NEON_API_KEY", "NEONAUTH_DATA_DIR",
		"NEONAUTH_OUTPUT"} {
		t.Setenv(name, "")
	}
}

// runCLI runs the command line and returns its stdout and stderr.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// cliTest is a running server and the flags that reach it.
type cliTest struct {
	t *testing.T
	s *testserver.Server
}

// ok runs a command against the server and fails the test if it fails.
func (c cliTest) ok(args ...string) string {
	c.t.Helper()
	args = append(args, "--api-host", c.s.URL+"/api/v2", "--api-key", c.s.APIKey)
	out, errOut, err := runCLI(c.t, args...)
	if err != nil {
		c.t.Fatalf("%v: %v\nstderr: %s", args, err, errOut)
	}
	return out
}

// json runs a command with --output json and decodes its output.
func (c cliTest) json(args ...string) map[string]any {
	c.t.Helper()
	out := c.ok(append(args, "--output", "json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("%v: output is not a JSON object: %v\n%s", args, err, out)
	}
	return m
}

// table runs a command with table output and returns its lines split into fields.
func (c cliTest) table(args ...string) [][]string {
	c.t.Helper()
	out := c.ok(args...)
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

func wantHeader(t *testing.T, rows [][]string, want ...string) {
	t.Helper()
	if len(rows) == 0 || strings.Join(rows[0], " ") != strings.Join(want, " ") {
		t.Fatalf("header = %v, want %v", rows, want)
	}
}

// findRow returns the row whose first field is key.
func findRow(t *testing.T, rows [][]string, key string) []string {
	t.Helper()
	for _, r := range rows {
		if len(r) > 0 && r[0] == key {
			return r
		}
	}
	t.Fatalf("no row %q in %v", key, rows)
	return nil
}

func str(t *testing.T, m map[string]any, path ...string) string {
	t.Helper()
	var v any = m
	for _, p := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: %q is not in an object: %v", path, p, m)
		}
		v = obj[p]
	}
	s, ok := v.(string)
	if !ok || s == "" {
		t.Fatalf("%v = %v, want a non-empty string in %v", path, v, m)
	}
	return s
}

func TestClientCommands(t *testing.T) {
	clearClientEnv(t)
	c := cliTest{t: t, s: testserver.Start(t)}

	created := c.json("projects", "create", "--name", "x")
	projectID := str(t, created, "project", "id")
	if got := str(t, created, "project", "name"); got != "x" {
		t.Errorf("project.name = %q, want x", got)
	}
	if uris, _ := created["connection_uris"].([]any); len(uris) == 0 {
		t.Errorf("create answered without connection_uris: %v", created)
	}

	t.Run("projects", func(t *testing.T) { testProjects(cliTest{t, c.s}, projectID) })
	t.Run("branches", func(t *testing.T) { testBranches(cliTest{t, c.s}, projectID) })
	t.Run("auth", func(t *testing.T) { testAuth(cliTest{t, c.s}, projectID) })
	t.Run("env", func(t *testing.T) { testEnvFallback(cliTest{t, c.s}, projectID) })
	t.Run("errors", func(t *testing.T) { testAPIErrors(cliTest{t, c.s}) })
	t.Run("delete", func(t *testing.T) { testDeleteProject(cliTest{t, c.s}) })
}

func testProjects(c cliTest, projectID string) {
	t := c.t
	rows := c.table("projects", "create", "--name", "tabled")
	wantHeader(t, rows, "ID", "NAME", "REGION", "CREATED")
	if len(rows) < 2 || len(rows[1]) != 4 || rows[1][1] != "tabled" {
		t.Fatalf("project row = %v", rows)
	}
	if findRow(t, rows, "BRANCH")[3] != "CONNECTION_URI" {
		t.Errorf("no connection table in %v", rows)
	}

	rows = c.table("projects", "list")
	wantHeader(t, rows, "ID", "NAME", "REGION", "CREATED")
	if r := findRow(t, rows, projectID); r[1] != "x" {
		t.Errorf("list row = %v, want name x", r)
	}

	list := c.json("projects", "list")
	ps, _ := list["projects"].([]any)
	if len(ps) != 2 {
		t.Fatalf("projects = %v, want 2", list)
	}
	if _, ok := list["applications"]; !ok {
		t.Errorf("json output is not the server's answer: %v", list)
	}
	testPages(c, projectID)
}

// testPages lists the two projects one per page.
func testPages(c cliTest, first string) {
	t := c.t
	api := []string{"--api-host", c.s.URL + "/api/v2", "--api-key", c.s.APIKey}
	out, errOut, err := runCLI(t, append([]string{"projects", "list", "--limit", "1"}, api...)...)
	if err != nil || !strings.Contains(out, first) {
		t.Fatalf("first page: %v %s %s", err, out, errOut)
	}
	const note = "more projects may follow: --cursor "
	cursor, ok := strings.CutPrefix(strings.TrimSpace(errOut), note)
	if !ok {
		t.Fatalf("stderr = %q, want the next cursor", errOut)
	}
	rows := c.table("projects", "list", "--limit", "1", "--cursor", cursor)
	if len(rows) != 2 || rows[1][1] != "tabled" {
		t.Errorf("second page = %v", rows)
	}
	_, errOut, err = runCLI(t, append([]string{"projects", "list"}, api...)...)
	if err != nil || errOut != "" {
		t.Errorf("a short page: %v, stderr %q, want no note", err, errOut)
	}
}

func testBranches(c cliTest, projectID string) {
	t := c.t
	rows := c.table("branches", "list", "--project-id", projectID)
	wantHeader(t, rows, "ID", "NAME", "DEFAULT", "STATE", "CREATED")
	if len(rows) != 2 || rows[1][1] != "main" || rows[1][2] != "true" {
		t.Fatalf("branches = %v", rows)
	}
	m := c.json("branches", "list", "--project-id", projectID)
	bs, _ := m["branches"].([]any)
	if len(bs) != 1 {
		t.Fatalf("branches = %v", m)
	}
	b := bs[0].(map[string]any)
	if b["id"] != rows[1][0] || b["default"] != true {
		t.Errorf("json branch = %v, table row = %v", b, rows[1])
	}
}

func testAuth(c cliTest, projectID string) {
	t := c.t
	p := []string{"--project-id", projectID}
	branchID := defaultBranch(c, projectID)

	keys := c.json(append([]string{"auth", "create"}, p...)...)
	for _, f := range []string{"auth_provider", "auth_provider_project_id", "pub_client_key",
		"secret_server_key", "jwks_url", "schema_name", "table_name"} {
		str(t, keys, f)
	}
	if keys["auth_provider"] != "stack" || keys["table_name"] != "users_sync" {
		t.Errorf("create = %v", keys)
	}
	authProject := keys["auth_provider_project_id"].(string)

	list := c.json(append([]string{"auth", "list"}, p...)...)
	data, _ := list["data"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["branch_id"] != branchID {
		t.Fatalf("integration not on the default branch %s: %v", branchID, list)
	}

	rows := c.table(append([]string{"auth", "keys"}, p...)...)
	wantHeader(t, rows, "KEY", "VALUE")
	if r := findRow(t, rows, "auth_provider_project_id"); r[1] != authProject {
		t.Errorf("keys row = %v, want %s", r, authProject)
	}
	newKey := findRow(t, rows, "pub_client_key")[1]
	if newKey == keys["pub_client_key"] {
		t.Errorf("auth keys returned the old key %s", newKey)
	}
	for _, f := range []string{"secret_server_key", "jwks_url", "schema_name", "table_name"} {
		if r := findRow(t, rows, f); len(r) != 2 || r[1] == "-" {
			t.Errorf("keys row %v", r)
		}
	}

	testAuthUser(c, p)

	link := c.json(append([]string{"auth", "transfer"}, p...)...)
	if u := str(t, link, "url"); !strings.HasPrefix(u, c.s.URL) {
		t.Errorf("transfer url = %q, want one on %s", u, c.s.URL)
	}
	rows = c.table(append([]string{"auth", "list"}, p...)...)
	wantHeader(t, rows, "PROVIDER", "AUTH_PROJECT", "BRANCH", "DATABASE", "OWNED_BY",
		"TRANSFER", "CREATED")
	if r := findRow(t, rows, "stack"); r[1] != authProject || r[2] != branchID ||
		r[3] != "neondb" || r[5] != "initiated" {
		t.Errorf("list row = %v", r)
	}

	testRotate(c, p, authProject)

	rows = c.table(append([]string{"auth", "delete", "--delete-data"}, p...)...)
	wantHeader(t, rows, "PROJECT", "PROVIDER", "DATA")
	if r := findRow(t, rows, projectID); r[1] != "stack" || r[2] != "deleted" {
		t.Errorf("delete row = %v", r)
	}
	list = c.json(append([]string{"auth", "list"}, p...)...)
	if data, _ := list["data"].([]any); len(data) != 0 {
		t.Errorf("integrations after delete = %v", list)
	}
}

// defaultBranch adds a second branch to the project, so that auth create has to pick, and
// returns the id of the default one.
func defaultBranch(c cliTest, projectID string) string {
	t := c.t
	r := c.s.Neon(t, "POST", "/projects/"+projectID+"/branches",
		map[string]any{"branch": map[string]any{"name": "dev"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create branch: %d %s", r.Status, r.Body)
	}
	var list struct {
		Branches []struct {
			ID      string `json:"id"`
			Default bool   `json:"default"`
		} `json:"branches"`
	}
	out := c.ok("branches", "list", "--project-id", projectID, "--output", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Branches) != 2 {
		t.Fatalf("branches: %v %s", err, out)
	}
	for _, b := range list.Branches {
		if b.Default {
			return b.ID
		}
	}
	t.Fatalf("no default branch in %s", out)
	return ""
}

func testAuthUser(c cliTest, p []string) {
	t := c.t
	u := c.json(append([]string{"auth", "user", "--email", "ann@example.com", "--name", "Ann"},
		p...)...)
	first := str(t, u, "id")
	rows := c.table(append([]string{"auth", "user", "--email", "bob@example.com"}, p...)...)
	wantHeader(t, rows, "ID")
	if len(rows) != 2 || len(rows[1]) != 1 || rows[1][0] == first {
		t.Errorf("user table = %v", rows)
	}
}

func testRotate(c cliTest, p []string, authProject string) {
	t := c.t
	k := c.json(append([]string{"auth", "rotate-key"}, p...)...)
	kid := str(t, k, "kid")
	if k["auth_provider_project_id"] != authProject {
		t.Errorf("rotate = %v, want auth project %s", k, authProject)
	}
	rows := c.table(append([]string{"auth", "rotate-key"}, p...)...)
	wantHeader(t, rows, "KID", "AUTH_PROJECT")
	if len(rows) != 2 || rows[1][0] == kid || rows[1][1] != authProject {
		t.Errorf("second rotation = %v, first kid %s", rows, kid)
	}
}

func testEnvFallback(c cliTest, projectID string) {
	t := c.t
	// Flags first, then the environment, then the key file.
	t.Setenv("NEON_API_HOST", c.s.URL+"/api/v2")
	t.Setenv("NEON_API_KEY", c.s.APIKey)
	out, errOut, err := runCLI(t, "projects", "list", "--output", "json")
	if err != nil || !strings.Contains(out, projectID) {
		t.Fatalf("with NEON_API_HOST and NEON_API_KEY: %v %s %s", err, out, errOut)
	}

	t.Setenv("NEON_API_KEY", "")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api-key"), []byte(c.s.APIKey+"\n"),
		0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runCLI(t, "branches", "list", "--project-id", projectID,
		"--data-dir", dir)
	if err != nil || !strings.Contains(out, "main") {
		t.Fatalf("with the key file: %v %s %s", err, out, errOut)
	}
	t.Setenv("NEONAUTH_DATA_DIR", dir)
	if _, errOut, err = runCLI(t, "projects", "list"); err != nil {
		t.Fatalf("with NEONAUTH_DATA_DIR: %v %s", err, errOut)
	}

	t.Setenv("NEONAUTH_DATA_DIR", t.TempDir())
	_, _, err = runCLI(t, "projects", "list")
	if err == nil || !strings.Contains(err.Error(), "NEON_API_KEY") {
		t.Errorf("without any key: %v, want advice on NEON_API_KEY", err)
	}
}

func testAPIErrors(c cliTest) {
	t := c.t
	cases := []struct {
		name   string
		args   []string
		status int
	}{
		{"unknown project", []string{"branches", "list", "--project-id", "no-such-project",
			"--api-key", c.s.APIKey}, http.StatusNotFound},
		{"bad key", []string{"projects", "list", "--api-key", "not-a-key"},
			http.StatusUnauthorized},
		{"no integration", []string{"auth", "keys", "--project-id", "no-such-project",
			"--api-key", c.s.APIKey}, http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--api-host", c.s.URL+"/api/v2")
			out, _, err := runCLI(t, args...)
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tc.status {
				t.Fatalf("err = %v, want an API error with status %d", err, tc.status)
			}
			if apiErr.Message == "" || apiErr.RequestID == "" || apiErr.Code == "" {
				t.Errorf("API error lacks the body's fields: %+v", apiErr)
			}
			if want := fmt.Sprintf("%s (HTTP %d)", apiErr.Message, tc.status); err.Error() != want {
				t.Errorf("error text = %q, want %q", err, want)
			}
			if out != "" {
				t.Errorf("stdout on error: %q", out)
			}
		})
	}
}

func testDeleteProject(c cliTest) {
	t := c.t
	p := c.json("projects", "create", "--name", "doomed")
	id := str(t, p, "project", "id")
	// The id as the positional argument, before the other flags.
	rows := c.table("projects", "delete", id)
	wantHeader(t, rows, "ID", "NAME", "REGION", "CREATED")
	if r := findRow(t, rows, id); r[1] != "doomed" {
		t.Errorf("delete row = %v", r)
	}
	_, _, err := runCLI(t, "branches", "list", "--project-id", id,
		"--api-host", c.s.URL+"/api/v2", "--api-key", c.s.APIKey)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("branches of a deleted project: %v, want HTTP 404", err)
	}
}

func TestClientUsage(t *testing.T) {
	clearClientEnv(t)
	// None of these reach a server: a mistake is reported before any request.
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no project id", []string{"branches", "list"}, "--project-id is required"},
		{"auth no project id", []string{"auth", "create"}, "--project-id is required"},
		{"delete no project id", []string{"projects", "delete"}, "--project-id is required"},
		{"user no email", []string{"auth", "user", "--project-id", "p"}, "--email is required"},
		{"unknown subcommand", []string{"projects", "frobnicate"}, "unknown command"},
		{"no subcommand", []string{"auth"}, "neonauth auth rotate-key"},
		{"bad output", []string{"projects", "list", "--output", "yaml"}, "table or json"},
		{"extra argument", []string{"branches", "list", "--project-id", "p", "q"},
			"unexpected argument"},
		{"two project ids", []string{"projects", "delete", "a", "--project-id", "b"}, "differ"},
		{"unknown flag", []string{"projects", "list", "--nope"}, "not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runCLI(t, append(tc.args, "--api-host",
				"http://127.0.0.1:1/api/v2", "--api-key", "k")...)
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("err = %v, want ErrUsage", err)
			}
			if !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "usage") {
				t.Errorf("stderr = %q, want %q and a usage line", errOut, tc.want)
			}
			if out != "" {
				t.Errorf("stdout = %q", out)
			}
		})
	}
}

func TestClientHelp(t *testing.T) {
	clearClientEnv(t)
	t.Setenv("NEON_API_KEY", "secret-key-value")
	out, errOut, err := runCLI(t, "auth", "create", "-h")
	if err != nil || out != "" {
		t.Fatalf("help: %v %q", err, out)
	}
	for _, want := range []string{"usage: neonauth auth create", "-branch-id", "-auth-provider",
		`default "stack"`, "NEON_API_HOST"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("help lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "secret-key-value") {
		t.Errorf("help shows the API key from the environment:\n%s", errOut)
	}
	out, _, err = runCLI(t, "branches", "--help")
	if err != nil || !strings.Contains(out, "neonauth branches list --project-id P") {
		t.Errorf("group help: %v %q", err, out)
	}
}
