package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// recorder is a loopback server that answers every request with one status and body and
// keeps the last request.
type recorder struct {
	status int
	body   string
	header map[string]string

	method, path, auth string
	got                map[string]any
}

func (rec *recorder) start(t *testing.T) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.method, rec.path = r.Method, r.URL.RequestURI()
		rec.auth = r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		rec.got = nil
		if len(b) > 0 {
			if err := json.Unmarshal(b, &rec.got); err != nil {
				t.Errorf("request body is not JSON: %s", b)
			}
		}
		for k, v := range rec.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rec.status)
		_, _ = io.WriteString(w, rec.body)
	}))
	t.Cleanup(srv.Close)
	return New(srv.URL+"/api/v2/", "key-1", srv.Client())
}

func TestAPIError(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		header map[string]string
		want   APIError
		text   string
	}{
		{"neon body", 404,
			`{"code":"NOT_FOUND","message":"project not found","request_id":"r1"}`, nil,
			APIError{404, "NOT_FOUND", "project not found", "r1"},
			"project not found (HTTP 404)"},
		{"id from header", 409, `{"code":"CONFLICT","message":"exists"}`,
			map[string]string{"X-Request-ID": "h1"},
			APIError{409, "CONFLICT", "exists", "h1"}, "exists (HTTP 409)"},
		{"proxy page", 502, "<html>Bad gateway</html>\nmore", nil,
			APIError{Status: 502, Message: "<html>Bad gateway</html>"},
			"<html>Bad gateway</html> (HTTP 502)"},
		{"empty body", 503, "", nil, APIError{Status: 503},
			"Service Unavailable (HTTP 503)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{status: tc.status, body: tc.body, header: tc.header}
			c := rec.start(t)
			_, err := c.ListProjects(context.Background(), 0, "")
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if *apiErr != tc.want {
				t.Errorf("error = %+v, want %+v", *apiErr, tc.want)
			}
			if err.Error() != tc.text {
				t.Errorf("text = %q, want %q", err.Error(), tc.text)
			}
		})
	}
}

func TestRequests(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		call   func(c *Client) error
		method string
		path   string
		body   map[string]any
	}{
		{"list page", func(c *Client) error {
			_, err := c.ListProjects(ctx, 5, "a b")
			return err
		}, "GET", "/api/v2/projects?cursor=a+b&limit=5", nil},
		{"create without name", func(c *Client) error {
			_, err := c.CreateProject(ctx, "")
			return err
		}, "POST", "/api/v2/projects", map[string]any{"project": map[string]any{}}},
		{"integration defaults", func(c *Client) error {
			_, err := c.CreateIntegration(ctx, "p1", "br-1", "", "")
			return err
		}, "POST", "/api/v2/projects/auth/create",
			map[string]any{"project_id": "p1", "auth_provider": "stack", "branch_id": "br-1"}},
		{"user without name", func(c *Client) error {
			c.AuthProvider = "mock"
			_, err := c.CreateUser(ctx, "p1", "a@example.com", "")
			return err
		}, "POST", "/api/v2/projects/auth/user",
			map[string]any{"project_id": "p1", "auth_provider": "mock", "email": "a@example.com"}},
		{"delete keeps data", func(c *Client) error {
			_, err := c.DeleteIntegration(ctx, "p1", "stack", false)
			return err
		}, "DELETE", "/api/v2/projects/p1/auth/integration/stack",
			map[string]any{"delete_data": false}},
		{"escaped id", func(c *Client) error {
			_, err := c.RotateSigningKey(ctx, "a/b")
			return err
		}, "POST", "/api/v2/projects/a%2Fb/auth/rotate_signing_key", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{status: 200, body: "{}"}
			if err := tc.call(rec.start(t)); err != nil {
				t.Fatal(err)
			}
			if rec.method != tc.method || rec.path != tc.path || rec.auth != "Bearer key-1" {
				t.Errorf("request = %s %s (%s), want %s %s", rec.method, rec.path, rec.auth,
					tc.method, tc.path)
			}
			want, _ := json.Marshal(tc.body)
			got, _ := json.Marshal(rec.got)
			if string(got) != string(want) {
				t.Errorf("body = %s, want %s", got, want)
			}
		})
	}
}

func TestRawKept(t *testing.T) {
	body := `{"id":"u1","extra":{"b":1}}`
	rec := &recorder{status: 201, body: body + "\n"}
	u, err := rec.start(t).CreateUser(context.Background(), "p", "e@example.com", "E")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "u1" || string(u.Raw) != body {
		t.Errorf("user = %q, raw %s", u.ID, u.Raw)
	}
}
