// Package testserver starts a real neonauth service for a test: in process, on a free
// loopback port, with its own data directory and its own managed PostgreSQL servers, and
// offers small helpers to call its APIs.
package testserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/neonauth/neonauth/internal/httpapi"
	"github.com/neonauth/neonauth/internal/httpapi/neonv2"
	"github.com/neonauth/neonauth/internal/openapicheck"
	"github.com/neonauth/neonauth/internal/server"
)

// Server is a running service.
type Server struct {
	// spec, when set, validates every /api/v2 exchange against Neon's OpenAPI document.
	spec *openapicheck.Checker
	// ours validates every /api/v2 exchange against neonauth's own document, which must
	// describe all of them.
	ours *openapicheck.Checker

	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL string
	// APIKey is the first account's admin key.
	APIKey string
	Env    *server.Env
	Client *http.Client
}

// Option changes the configuration before the service starts.
type Option func(*server.Config)

// Start starts a service and stops it, with its PostgreSQL servers, when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatalf("chmod temp dir: %v", err)
	}
	cfg := server.Defaults()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	cfg.BcryptCost = 4
	cfg.Fast = true
	cfg.DBMaxConns = 8
	cfg.PGBin = os.Getenv("NEONAUTH_PG_BIN")
	cfg.Limits = httpapi.Limits{} // off: suites send bursts; limit tests set their own
	for _, o := range opts {
		o(&cfg)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cfg.PublicURL = "http://" + ln.Addr().String()
	log := slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	env, err := server.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("open neonauth: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- env.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop within 30 s")
		}
		env.Close()
	})
	s := &Server{URL: cfg.PublicURL, Env: env, Client: &http.Client{Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	s.spec = neonChecker(t, cfg.PublicURL+"/api/v2")
	s.ours = ourChecker(t, cfg.PublicURL+"/api/v2")
	s.waitReady(t)
	key, err := os.ReadFile(cfg.KeyFile())
	if err != nil {
		t.Fatalf("read api key: %v", err)
	}
	s.APIKey = strings.TrimSpace(string(key))
	return s
}

// neonChecker loads Neon's OpenAPI document for the conformance check. Without it (the npm
// package is not installed) the check is skipped, unless NEONAUTH_REQUIRE_SPEC=1 (as in
// `make test`) makes that a failure.
func neonChecker(t testing.TB, base string) *openapicheck.Checker {
	doc, err := openapicheck.LoadNeon()
	if err != nil {
		if os.Getenv("NEONAUTH_REQUIRE_SPEC") == "1" {
			t.Fatalf("OpenAPI conformance: %v", err)
		}
		t.Logf("OpenAPI conformance check off: %v", err)
		return nil
	}
	c, err := openapicheck.New(doc, base)
	if err != nil {
		t.Fatalf("OpenAPI conformance: %v", err)
	}
	return c
}

var (
	oursOnce sync.Once
	oursDoc  *openapi3.T
	oursErr  error
)

// ourChecker builds the check against neonauth's own document (neonv2.OpenAPIDocument),
// which is embedded and so always there.
func ourChecker(t testing.TB, base string) *openapicheck.Checker {
	oursOnce.Do(func() { oursDoc, oursErr = openapicheck.Parse(neonv2.OpenAPIDocument()) })
	if oursErr != nil {
		t.Fatalf("neonauth's OpenAPI document: %v", oursErr)
	}
	c, err := openapicheck.New(oursDoc, base)
	if err != nil {
		t.Fatalf("neonauth's OpenAPI document: %v", err)
	}
	return c
}

// SkipSpec turns the check against Neon's document off for this server, for tests that send
// what Neon's document does not allow on purpose and get a success (our extensions of a
// body, say). The check against neonauth's own document stays: it describes the extensions.
func (s *Server) SkipSpec() { s.spec = nil }

// checkSpecs validates one /api/v2 exchange against Neon's document (when loaded; what it
// does not describe is not checked) and against ours, which must describe every exchange:
// a request it has no operation for must have been answered with the 404 of an unknown
// route.
func (s *Server) checkSpecs(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response,
	body []byte) {
	t.Helper()
	if s.spec != nil {
		err := s.spec.Check(req, reqBody, resp.StatusCode, resp.Header, body)
		if err != nil && !errors.Is(err, openapicheck.ErrNoOperation) {
			t.Errorf("OpenAPI conformance: %v\nresponse body: %.2000s", err, body)
		}
	}
	if s.ours == nil {
		return
	}
	err := s.ours.Check(req, reqBody, resp.StatusCode, resp.Header, body)
	if errors.Is(err, openapicheck.ErrNoOperation) {
		err = unknownRoute(err, resp.StatusCode, body)
	}
	if err != nil {
		t.Errorf("OpenAPI conformance (neonauth's document): %v\nresponse body: %.2000s",
			err, body)
	}
}

// unknownRoute checks the answer to a request that neonauth's document has no operation
// for: it must be a 404 whose body fits the document's Error schema with code NOT_FOUND.
// Anything else means the server serves a route that the document does not describe.
func unknownRoute(noOp error, status int, body []byte) error {
	var v any
	if status != http.StatusNotFound || json.Unmarshal(body, &v) != nil {
		return fmt.Errorf("%w, yet the server answered %d", noOp, status)
	}
	if err := oursDoc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		return fmt.Errorf("%w; the 404 body does not fit Error: %v", noOp, err)
	}
	if m, _ := v.(map[string]any); m["code"] != "NOT_FOUND" {
		return fmt.Errorf("%w; the 404 body's code is %v, not NOT_FOUND", noOp, m["code"])
	}
	return nil
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (s *Server) waitReady(t testing.TB) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("neonauth did not become ready")
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value, failing the test if it is not JSON.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object (status %d): %v: %s", r.Status, err, r.Body)
	}
	return m
}

// Do sends a request. body may be nil, a string or []byte (sent as is), or any other value
// (sent as JSON). headers are name, value pairs.
func (s *Server) Do(t testing.TB, method, path string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(js)
	}
	var reqBody []byte
	if rd != nil {
		reqBody, _ = io.ReadAll(rd)
		rd = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	if strings.HasPrefix(path, "/api/v2/") {
		s.checkSpecs(t, req, reqBody, resp, out)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// Neon sends a management API request with the admin key and a JSON body (when not nil).
func (s *Server) Neon(t testing.TB, method, path string, body any) Response {
	t.Helper()
	h := []string{"Authorization", "Bearer " + s.APIKey}
	if body != nil {
		h = append(h, "Content-Type", "application/json")
	}
	return s.Do(t, method, "/api/v2"+path, body, h...)
}

// Project is a created project with the ids tests need.
type Project struct {
	ID, BranchID, ConnectionURI string
}

// CreateProject creates a project through the API.
func (s *Server) CreateProject(t testing.TB, name string) Project {
	t.Helper()
	r := s.Neon(t, "POST", "/projects", map[string]any{"project": map[string]any{"name": name}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create project: %d %s", r.Status, r.Body)
	}
	var out struct {
		Project struct{ ID string } `json:"project"`
		Branch  struct{ ID string } `json:"branch"`
		URIs    []struct {
			URI string `json:"connection_uri"`
		} `json:"connection_uris"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil || len(out.URIs) == 0 {
		t.Fatalf("create project response: %v %s", err, r.Body)
	}
	return Project{ID: out.Project.ID, BranchID: out.Branch.ID, ConnectionURI: out.URIs[0].URI}
}

// Integration is a created Neon Auth integration.
type Integration struct {
	AuthProjectID, PublishableKey, SecretKey, JWKSURL string
}

// CreateIntegration creates the stack integration of a project.
func (s *Server) CreateIntegration(t testing.TB, p Project) Integration {
	t.Helper()
	r := s.Neon(t, "POST", "/projects/auth/create", map[string]any{"auth_provider": "stack",
		"project_id": p.ID, "branch_id": p.BranchID})
	if r.Status != http.StatusCreated {
		t.Fatalf("create integration: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	return Integration{AuthProjectID: m["auth_provider_project_id"].(string),
		PublishableKey: m["pub_client_key"].(string), SecretKey: m["secret_server_key"].(string),
		JWKSURL: m["jwks_url"].(string)}
}

// Stack sends a provider request with the Stack headers of an access type ("client" or
// "server") for an integration, plus extra header pairs.
func (s *Server) Stack(
	t testing.TB, in Integration, access, method, path string, body any, headers ...string,
) Response {
	t.Helper()
	h := []string{"x-stack-project-id", in.AuthProjectID, "x-stack-access-type", access}
	switch access {
	case "client":
		h = append(h, "x-stack-publishable-client-key", in.PublishableKey)
	case "server":
		h = append(h, "x-stack-secret-server-key", in.SecretKey)
	}
	if body != nil {
		h = append(h, "Content-Type", "application/json")
	}
	return s.Do(t, method, "/api/v1"+path, body, append(h, headers...)...)
}
