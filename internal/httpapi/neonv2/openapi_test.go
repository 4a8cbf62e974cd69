package neonv2_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/neonauth/neonauth/internal/httpapi/neonv2"
	"github.com/neonauth/neonauth/internal/openapicheck"
	"github.com/neonauth/neonauth/internal/testserver"
)

// ourDoc loads and validates the embedded document.
func ourDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapicheck.Parse(neonv2.OpenAPIDocument())
	if err != nil {
		t.Fatalf("neonauth's OpenAPI document: %v", err)
	}
	return doc
}

// docRoutes lists the document's operations as "METHOD /path" (relative to /api/v2).
func docRoutes(doc *openapi3.T) map[string]*openapi3.Operation {
	out := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out[method+" "+path] = op
		}
	}
	return out
}

func isExtension(op *openapi3.Operation) bool {
	v, ok := op.Extensions["x-neonauth-extension"].(bool)
	return ok && v
}

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// TestOpenAPIDocument checks the document on its own and against Neon's: every operation
// has a unique operation id and the error response as default; an operation Neon has keeps
// Neon's path, operation id and success status; every other operation is marked as ours.
func TestOpenAPIDocument(t *testing.T) {
	doc := ourDoc(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "http://127.0.0.1:8080/api/v2" {
		t.Errorf("servers %v, want the one default http://127.0.0.1:8080/api/v2", doc.Servers)
	}
	if len(doc.Security) != 1 || doc.Security[0]["BearerAuth"] == nil {
		t.Errorf("security %v, want BearerAuth", doc.Security)
	}
	ids := map[string]string{}
	for route, op := range docRoutes(doc) {
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", route)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s: operationId %s is also %s's", route, op.OperationID, other)
		}
		ids[op.OperationID] = route
		if op.Responses.Default() == nil || op.Responses.Default().Ref !=
			"#/components/responses/Error" {
			t.Errorf("%s: the default response is not the Error response", route)
		}
	}

	neon, err := openapicheck.LoadNeon()
	if err != nil {
		if os.Getenv("NEONAUTH_REQUIRE_SPEC") == "1" {
			t.Fatal(err)
		}
		t.Skipf("comparison with Neon's document skipped: %v", err)
	}
	// Neon's operations by method and path, with parameter names left out.
	neonOps := map[string]*openapi3.Operation{}
	for route, op := range docRoutes(neon) {
		neonOps[pathParam.ReplaceAllString(route, "{}")] = op
	}
	for route, op := range docRoutes(doc) {
		theirs := neonOps[pathParam.ReplaceAllString(route, "{}")]
		switch {
		case isExtension(op) && theirs != nil:
			t.Errorf("%s is marked as an extension, but Neon has it as %s", route,
				theirs.OperationID)
		case !isExtension(op) && theirs == nil:
			t.Errorf("%s is not in Neon's document: mark it x-neonauth-extension", route)
		case theirs != nil && theirs.OperationID != op.OperationID:
			t.Errorf("%s: operationId %s, Neon's is %s", route, op.OperationID,
				theirs.OperationID)
		case theirs != nil && !slices.Equal(successes(op), successes(theirs)):
			t.Errorf("%s: success statuses %v, Neon's are %v", route, successes(op),
				successes(theirs))
		case theirs != nil:
			compareFields(t, route, op, theirs)
		}
	}
}

// compareFields checks, for an operation Neon has, that the fields of its request body and
// success responses are Neon's fields, except the ones marked as extensions, which Neon's
// must not have.
func compareFields(t *testing.T, route string, ours, theirs *openapi3.Operation) {
	t.Helper()
	if ours.RequestBody != nil {
		if theirs.RequestBody == nil {
			t.Errorf("%s: a request body, which Neon's operation does not have", route)
		} else {
			compareSchemas(t, route+" request", jsonSchema(ours.RequestBody.Value.Content),
				jsonSchema(theirs.RequestBody.Value.Content))
		}
	}
	for _, status := range successes(ours) {
		compareSchemas(t, route+" "+status, jsonSchema(ours.Responses.Value(status).Value.Content),
			jsonSchema(theirs.Responses.Value(status).Value.Content))
	}
}

func jsonSchema(c openapi3.Content) *openapi3.Schema {
	if mt := c.Get("application/json"); mt != nil && mt.Schema != nil {
		return mt.Schema.Value
	}
	return nil
}

// properties merges a schema's properties with those of its allOf parts, as Neon's
// document composes its responses.
func properties(s *openapi3.Schema) openapi3.Schemas {
	out := openapi3.Schemas{}
	for _, part := range s.AllOf {
		for name, p := range properties(part.Value) {
			out[name] = p
		}
	}
	for name, p := range s.Properties {
		out[name] = p
	}
	return out
}

// compareSchemas walks our schema and Neon's side by side (Neon's may be nil: a response
// without a body).
func compareSchemas(t *testing.T, at string, ours, theirs *openapi3.Schema) {
	t.Helper()
	if ours == nil || theirs == nil {
		if ours != nil && len(ours.Properties) > 0 {
			t.Errorf("%s: fields, where Neon's operation has no body schema", at)
		}
		return
	}
	if ours.Items != nil && theirs.Items != nil {
		compareSchemas(t, at+"[]", ours.Items.Value, theirs.Items.Value)
	}
	neon := properties(theirs)
	for name, p := range ours.Properties {
		v, _ := p.Value.Extensions["x-neonauth-extension"].(bool)
		switch n := neon[name]; {
		case v && n != nil:
			t.Errorf("%s.%s is marked as an extension, but Neon's schema has it", at, name)
		case !v && n == nil:
			t.Errorf("%s.%s is not in Neon's schema: mark it x-neonauth-extension", at, name)
		case n != nil:
			compareSchemas(t, at+"."+name, p.Value, n.Value)
		}
	}
}

// successes lists an operation's 2xx statuses.
func successes(op *openapi3.Operation) []string {
	var out []string
	for status := range op.Responses.Map() {
		if strings.HasPrefix(status, "2") {
			out = append(out, status)
		}
	}
	slices.Sort(out)
	return out
}

// registeredRoutes reads the package's source and returns the "METHOD /path" pattern
// (relative to /api/v2) of every route it registers: the patterns given to API.handle and
// the ones given to ServeMux.Handle directly. A pattern that is not a constant expression
// fails the test, so that no registration goes unseen.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	names, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	consts := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok &&
							lit.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	var eval func(ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			s, err := strconv.Unquote(e.Value)
			return s, err == nil && e.Kind == token.STRING
		case *ast.Ident:
			s, ok := consts[e.Name]
			return s, ok
		case *ast.BinaryExpr:
			l, lok := eval(e.X)
			r, rok := eval(e.Y)
			return l + r, lok && rok && e.Op == token.ADD
		}
		return "", false
	}
	var out []string
	for _, f := range files {
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "handle" {
				continue // the helper that registers the patterns given to it
			}
			ast.Inspect(d, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				arg, relative := 0, false
				switch sel.Sel.Name {
				case "handle":
					arg, relative = 1, true
				case "Handle", "HandleFunc":
				default:
					return true
				}
				pos := fset.Position(call.Pos())
				if len(call.Args) <= arg {
					t.Fatalf("%s: %s call without a pattern", pos, sel.Sel.Name)
				}
				pattern, ok := eval(call.Args[arg])
				if !ok {
					t.Fatalf("%s: the pattern is not a constant string", pos)
				}
				method, path, hasMethod := strings.Cut(pattern, " ")
				if !hasMethod {
					// The catch-alls that answer unknown routes with a 404.
					if pattern != neonv2.Prefix && pattern != neonv2.Prefix+"/" {
						t.Fatalf("%s: pattern %q has no method", pos, pattern)
					}
					return true
				}
				if !relative {
					rest, ok := strings.CutPrefix(path, neonv2.Prefix+"/")
					if !ok {
						t.Fatalf("%s: pattern %q is not under %s", pos, pattern, neonv2.Prefix)
					}
					path = "/" + rest
				}
				out = append(out, method+" "+path)
				return true
			})
		}
	}
	return out
}

// TestOpenAPIRoutes checks that the document describes exactly the routes the package
// registers.
func TestOpenAPIRoutes(t *testing.T) {
	routes := registeredRoutes(t)
	if len(routes) < 30 {
		t.Fatalf("found only %d registrations; the source scan is broken: %v", len(routes),
			routes)
	}
	documented := docRoutes(ourDoc(t))
	registered := map[string]bool{}
	for _, r := range routes {
		if registered[r] {
			t.Errorf("%s is registered twice", r)
		}
		registered[r] = true
		if documented[r] == nil {
			t.Errorf("%s is registered but not in openapi.json", r)
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("%s is in openapi.json but not registered", r)
		}
	}
}

// samplePath fills a documented path's parameters with well-formed values.
func samplePath(path string) string {
	return strings.NewReplacer("{project_id}", "no-such-project", "{branch_id}", "br-no-such-b",
		"{key_id}", "1", "{operation_id}", "00000000-0000-4000-8000-000000000000",
		"{role_name}", "neondb_owner", "{auth_provider}", "stack").Replace(path)
}

// TestOpenAPIServed checks the document a running server serves, that every documented
// operation reaches a handler of the running server, and the answers of the routes the
// rest of the suite does not call. testserver validates every exchange here against both
// documents.
func TestOpenAPIServed(t *testing.T) {
	s := testserver.Start(t)

	r := s.Do(t, "GET", "/api/v2"+neonv2.OpenAPIPath, nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET openapi.json without a key: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	served, err := openapicheck.Parse(r.Body)
	if err != nil {
		t.Fatalf("served document: %v", err)
	}
	if len(served.Servers) != 1 || served.Servers[0].URL != s.URL+"/api/v2" {
		t.Errorf("served servers %v, want %s/api/v2", served.Servers, s.URL)
	}
	var got, want map[string]any
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(neonv2.OpenAPIDocument(), &want); err != nil {
		t.Fatal(err)
	}
	delete(got, "servers")
	delete(want, "servers")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the served document differs from the embedded one beyond servers")
	}

	// Without a key, a documented route is a 401 (or served, when it needs no key); an
	// unknown route would be the 404 of the catch-all.
	for route, op := range docRoutes(served) {
		method, path, _ := strings.Cut(route, " ")
		r := s.Do(t, method, "/api/v2"+samplePath(path), nil)
		public := op.Security != nil && len(*op.Security) == 0
		switch {
		case public && r.Status != http.StatusOK:
			t.Errorf("%s without a key: %d, want 200: %s", route, r.Status, r.Body)
		case !public && r.Status != http.StatusUnauthorized:
			t.Errorf("%s without a key: %d, want 401: %s", route, r.Status, r.Body)
		}
	}

	p := s.CreateProject(t, "openapi")
	r = s.Neon(t, "GET", "/projects/shared", nil)
	if r.Status != http.StatusOK || string(r.Body) != "{\"projects\":[]}\n" {
		t.Errorf("shared projects: %d %s", r.Status, r.Body)
	}
	type endpoints struct {
		Endpoints []struct {
			ID       string `json:"id"`
			Host     string `json:"host"`
			Port     int    `json:"port"`
			BranchID string `json:"branch_id"`
		} `json:"endpoints"`
	}
	var all, one endpoints
	for path, v := range map[string]*endpoints{
		"/projects/" + p.ID + "/endpoints":                             &all,
		"/projects/" + p.ID + "/branches/" + p.BranchID + "/endpoints": &one,
	} {
		r := s.Neon(t, "GET", path, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		if err := json.Unmarshal(r.Body, v); err != nil || len(v.Endpoints) != 1 {
			t.Fatalf("GET %s: %v %s", path, err, r.Body)
		}
	}
	if !reflect.DeepEqual(all, one) {
		t.Errorf("the project's endpoints %+v differ from its one branch's %+v", all, one)
	}
	u, err := url.Parse(p.ConnectionURI)
	if err != nil {
		t.Fatal(err)
	}
	e := one.Endpoints[0]
	if e.BranchID != p.BranchID || e.Host != u.Host || strconv.Itoa(e.Port) != u.Port() {
		t.Errorf("endpoint %+v does not match the default branch %s and its connection URI "+
			"(host %s)", e, p.BranchID, u.Host)
	}
}
