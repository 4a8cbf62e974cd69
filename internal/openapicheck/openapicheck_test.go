package openapicheck_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/neonauth/neonauth/internal/openapicheck"
	"github.com/neonauth/neonauth/internal/testserver"
)

func neonDoc(t *testing.T) *openapicheck.Checker {
	t.Helper()
	doc, err := openapicheck.LoadNeon()
	if err != nil {
		if os.Getenv("NEONAUTH_REQUIRE_SPEC") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	c, err := openapicheck.New(doc, "http://127.0.0.1:1/api/v2")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCheckCatchesMissingField shows that the conformance check can fail: a real response
// fits Neon's document, and the same response without one required field does not.
func TestCheckCatchesMissingField(t *testing.T) {
	_ = neonDoc(t)
	s := testserver.Start(t)
	p := s.CreateProject(t, "conformance")
	in := s.CreateIntegration(t, p)
	_ = in
	doc, _ := openapicheck.LoadNeon()
	c, err := openapicheck.New(doc, s.URL+"/api/v2")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path  string
		field []string // path to the required field to remove
	}{
		{"/projects/" + p.ID, []string{"project", "name"}},
		{"/projects/" + p.ID + "/branches", []string{"branches", "0", "default"}},
		{"/projects/" + p.ID + "/auth/integrations", []string{"data", "0", "jwks_url"}},
	}
	for _, tc := range cases {
		r := s.Neon(t, "GET", tc.path, nil)
		req, _ := http.NewRequest("GET", s.URL+"/api/v2"+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+s.APIKey)
		if err := c.Check(req, nil, r.Status, r.Header, r.Body); err != nil {
			t.Fatalf("%s: the real response must fit: %v", tc.path, err)
		}
		var v any
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatal(err)
		}
		remove(t, v, tc.field)
		broken, _ := json.Marshal(v)
		err := c.Check(req, nil, r.Status, r.Header, broken)
		if err == nil || !strings.Contains(err.Error(), tc.field[len(tc.field)-1]) {
			t.Fatalf("%s without %v: want a conformance error naming it, got %v",
				tc.path, tc.field, err)
		}
	}
}

func remove(t *testing.T, v any, path []string) {
	t.Helper()
	for i, key := range path {
		last := i == len(path)-1
		switch node := v.(type) {
		case map[string]any:
			if last {
				delete(node, key)
				return
			}
			v = node[key]
		case []any:
			v = node[0]
		default:
			t.Fatalf("cannot walk %v at %q", path, key)
		}
	}
}

// TestErrorBodyChecked shows error responses are checked against GeneralError too.
func TestErrorBodyChecked(t *testing.T) {
	c := neonDoc(t)
	req, _ := http.NewRequest("GET", "http://127.0.0.1:1/api/v2/projects/nope", nil)
	ok := []byte(`{"code":"NOT_FOUND","message":"project not found","request_id":"x"}`)
	if err := c.Check(req, nil, 404, http.Header{"Content-Type": {"application/json"}}, ok); err != nil {
		t.Fatalf("a GeneralError body must fit: %v", err)
	}
	bad := []byte(`{"error":"project not found"}`)
	if err := c.Check(req, nil, 404, http.Header{"Content-Type": {"application/json"}}, bad); err == nil {
		t.Fatal("an error body without code and message must not fit")
	}
}
