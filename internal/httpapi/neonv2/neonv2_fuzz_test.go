package neonv2_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/testserver"
)

// The fuzz targets send hostile requests to a real service through a project-scoped API
// key, with ids of a project and branch that do not exist. Every body decoder and id parser
// runs, and none of the calls can create anything costly: a project-scoped key cannot create
// projects, and nothing else reaches a project it can see. Whatever comes in, the answer
// must be an answer: never a 5xx (a panic is a 500 too), and every error in Neon's body.

// Ids of the shapes neonauth hands out, of nothing that exists.
const (
	noProject = "cold-poetry-00000000"
	noBranch  = "br-cold-poetry-00000000"
)

// fuzzService starts (or, in a fuzzing worker, finds) the service of a fuzz target and
// returns its URL and a project-scoped API key.
func fuzzService(f *testing.F) (string, string) {
	vals := testserver.ForFuzz(f, func(s *testserver.Server) map[string]string {
		// Through the Go API: the HTTP helpers check every exchange against the OpenAPI
		// documents, which is not what these targets are about.
		ctx := context.Background()
		admin, err := s.Env.Console.Authenticate(ctx, s.APIKey, "127.0.0.1")
		if err != nil {
			f.Fatalf("admin key: %v", err)
		}
		p, err := s.Env.Console.CreateProject(ctx, admin, console.CreateProjectInput{Name: "fuzz"})
		if err != nil {
			f.Fatalf("create project: %v", err)
		}
		_, key, err := s.Env.Console.CreateAPIKey(ctx, admin, "fuzz", p.Project.ID)
		if err != nil {
			f.Fatalf("create a project-scoped key: %v", err)
		}
		return map[string]string{"key": key}
	})
	return vals["url"], vals["key"]
}

var fuzzClient = &http.Client{Timeout: 8 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// sendNeon sends one fuzzed management API request and checks its answer.
func sendNeon(t *testing.T, method, u string, body []byte, hdr ...string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("not a request: %v", err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := fuzzClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, u, err)
	}
	if resp.StatusCode >= 500 {
		t.Fatalf("%s %s → %d: %s", method, u, resp.StatusCode, out)
	}
	if resp.StatusCode < 400 {
		return
	}
	var e struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(out, &e); err != nil || e.Code == "" || e.Message == "" ||
		e.RequestID == "" {
		t.Fatalf("%s %s → %d: not Neon's error body: %s", method, u, resp.StatusCode, out)
	}
}

// validHeader reports whether v can be sent as a header value at all.
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// bodyRoutes are the management API calls that decode a JSON body.
var bodyRoutes = []struct{ method, path string }{
	{"POST", "/api_keys"},
	{"POST", "/projects"},
	{"POST", "/projects/" + noProject + "/branches"},
	{"POST", "/projects/" + noProject + "/branches/" + noBranch + "/databases"},
	{"POST", "/projects/" + noProject + "/branches/" + noBranch + "/roles"},
	{"POST", "/projects/auth/create"},
	{"POST", "/projects/auth/keys"},
	{"POST", "/projects/auth/user"},
	{"POST", "/projects/auth/transfer_ownership"},
	{"DELETE", "/projects/" + noProject + "/auth/integration/stack"},
}

// FuzzManagementBodies sends arbitrary bodies, with arbitrary content types, to every call
// that reads a JSON body.
func FuzzManagementBodies(f *testing.F) {
	base, key := fuzzService(f)
	ref := `{"project_id":"` + noProject + `","auth_provider":"stack"}`
	for i, b := range []string{
		`{"key_name":"k","project_id":"` + noProject + `"}`,
		`{"project":{"name":"p","region_id":"local","pg_version":17,` +
			`"branch":{"name":"main","role_name":"r","database_name":"d"}}}`,
		`{"branch":{"name":"dev","parent_id":"` + noBranch + `"}}`,
		`{"database":{"name":"d","owner_name":"r"}}`,
		`{"role":{"name":"r"}}`,
		`{"project_id":"` + noProject + `","auth_provider":"stack","branch_id":"` + noBranch +
			`","database_name":"neondb","role_name":"r"}`,
		ref,
		`{"project_id":"` + noProject + `","auth_provider":"stack","email":"a@b.co","name":"A"}`,
		ref,
		`{"delete_data":true}`,
	} {
		f.Add(uint8(i), "application/json", []byte(b))
	}
	f.Add(uint8(1), "application/json; charset=utf-8", []byte(`{"project":{"name":"\u0000"}}`))
	f.Add(uint8(5), "application/vnd.api+json", []byte(`{"project_id":1e999}`))
	f.Add(uint8(7), "text/plain", []byte(`{"email":"x"}`))
	f.Add(uint8(0), "", []byte(``))
	f.Fuzz(func(t *testing.T, route uint8, ctype string, body []byte) {
		rt := bodyRoutes[int(route)%len(bodyRoutes)]
		hdr := []string{"Authorization", "Bearer " + key}
		if validHeader(ctype) {
			hdr = append(hdr, "Content-Type", ctype)
		}
		sendNeon(t, rt.method, base+"/api/v2"+rt.path, body, hdr...)
	})
}

// idRoutes are calls that parse ids from the path ({1} and {2}) or the query. They only
// read, or act on ids that cannot be the service's own.
var idRoutes = []string{
	"GET /projects/{1}",
	"GET /projects/{1}/branches",
	"GET /projects/{1}/branches/{2}",
	"GET /projects/{1}/branches/{2}/databases",
	"GET /projects/{1}/branches/{2}/roles",
	"GET /projects/{1}/branches/{2}/roles/{2}/reveal_password",
	"GET /projects/{1}/branches/{2}/endpoints",
	"GET /projects/{1}/operations/{2}",
	"GET /projects/{1}/connection_uri",
	"GET /projects/{1}/endpoints",
	"GET /projects/{1}/auth/integrations",
	"GET /projects/{1}/auth/sync_status",
	"GET /projects",
	"GET /api_keys",
	"GET /users/me",
	// The first project and key ids are the service's; these are never theirs.
	"DELETE /api_keys/9{1}",
	"DELETE /projects/{1}-0/auth/integration/{2}",
	"POST /projects/{1}-0/auth/resync",
}

// FuzzManagementIDs sends arbitrary path ids, query values and Authorization headers: the
// API key check, the project, branch, operation (UUID) and key id parsers.
func FuzzManagementIDs(f *testing.F) {
	base, key := fuzzService(f)
	for i := range idRoutes {
		f.Add(uint8(i), noProject, noBranch, "10", "")
	}
	f.Add(uint8(7), noProject, "8c7cbd3b-5f3a-4a8e-9d5e-0c8a2b1d9e7f", "", "")
	f.Add(uint8(7), noProject, "8C7CBD3B5F3A4A8E9D5E0C8A2B1D9E7F", "", "")
	f.Add(uint8(12), "", "", "0", "")
	f.Add(uint8(12), "", "", "401", "")
	f.Add(uint8(15), "1", "", "", "")
	f.Add(uint8(14), "", "", "", "Bearer napi_"+strings.Repeat("a", 64))
	f.Add(uint8(14), "", "", "", "bearer  "+key+" ")
	f.Add(uint8(14), "", "", "", "Basic "+key)
	f.Add(uint8(0), "..", ".", "", "")
	f.Add(uint8(2), "%00", "\x00", "\x00", "")
	f.Fuzz(func(t *testing.T, route uint8, id1, id2, query, auth string) {
		method, path, _ := strings.Cut(idRoutes[int(route)%len(idRoutes)], " ")
		path = strings.NewReplacer("{1}", url.PathEscape(id1), "{2}", url.PathEscape(id2)).
			Replace(path)
		q := url.Values{"limit": {query}, "cursor": {id2}, "search": {query},
			"branch_id": {id2}, "database_name": {query}, "role_name": {query},
			"pooled": {query}, "auth_provider": {query}}
		hdr := []string{"Authorization", "Bearer " + key}
		if auth != "" {
			if !validHeader(auth) {
				return
			}
			hdr[1] = auth
		}
		sendNeon(t, method, base+"/api/v2"+path+"?"+q.Encode(), nil, hdr...)
	})
}
