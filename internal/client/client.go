// Package client is a small Go client of the management API under /api/v2: projects,
// branches and the legacy Neon Auth calls, plus neonauth's rotate_signing_key extension.
//
// Every call decodes the response into a typed value whose Raw field keeps the server's
// JSON unchanged, so a caller can print exactly what the server said. A response with an
// error status becomes an *APIError.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultProvider is the auth_provider the Neon Auth calls send unless told otherwise.
const DefaultProvider = "stack"

// maxResponse caps the size of a response body the client reads.
const maxResponse = 16 << 20

// Client calls one management API with one API key.
type Client struct {
	// AuthProvider is the auth_provider sent by the Neon Auth calls that take one in their
	// body (create, keys, user, transfer). New sets it to DefaultProvider.
	AuthProvider string

	baseURL string
	apiKey  string
	hc      *http.Client
}

// New returns a client of the API at baseURL (e.g. http://127.0.0.1:8080/api/v2) that
// authenticates with apiKey. A nil hc means an http.Client with a one-minute timeout.
func New(baseURL, apiKey string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	return &Client{AuthProvider: DefaultProvider, baseURL: strings.TrimRight(baseURL, "/"),
		apiKey: apiKey, hc: hc}
}

// APIError is an error response of the API: its HTTP status and Neon's error body.
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

// Error returns the message and the HTTP status.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if msg == "" {
		msg = "request failed"
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// Project is a project as the API describes it (the fields a client needs).
type Project struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	RegionID        string `json:"region_id"`
	PGVersion       int    `json:"pg_version"`
	OwnerID         string `json:"owner_id"`
	DefaultBranchID string `json:"default_branch_id"`
	CreatedAt       string `json:"created_at"`
	UpdatedAt       string `json:"updated_at"`
}

// Pagination is the cursor of the next page of a list.
type Pagination struct {
	Cursor string `json:"cursor"`
}

// ProjectList is the answer of GET /projects.
type ProjectList struct {
	Projects   []Project       `json:"projects"`
	Pagination *Pagination     `json:"pagination,omitempty"`
	Raw        json.RawMessage `json:"-"`
}

// Branch is a branch of a project.
type Branch struct {
	ID           string  `json:"id"`
	ProjectID    string  `json:"project_id"`
	ParentID     *string `json:"parent_id,omitempty"`
	Name         string  `json:"name"`
	CurrentState string  `json:"current_state"`
	Default      bool    `json:"default"`
	Primary      bool    `json:"primary"`
	Protected    bool    `json:"protected"`
	CreatedAt    string  `json:"created_at"`
	UpdatedAt    string  `json:"updated_at"`
}

// BranchList is the answer of GET /projects/{id}/branches.
type BranchList struct {
	Branches []Branch        `json:"branches"`
	Raw      json.RawMessage `json:"-"`
}

// Default returns the project's default branch, if the list has one.
func (l *BranchList) Default() (Branch, bool) {
	for _, b := range l.Branches {
		if b.Default {
			return b, true
		}
	}
	return Branch{}, false
}

// ConnectionParameters are the parts of a connection URI.
type ConnectionParameters struct {
	Database string `json:"database"`
	Password string `json:"password"`
	Role     string `json:"role"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
}

// ConnectionURI is a connection string of a created project.
type ConnectionURI struct {
	ConnectionURI        string               `json:"connection_uri"`
	ConnectionParameters ConnectionParameters `json:"connection_parameters"`
}

// CreatedProject is the answer of POST /projects.
type CreatedProject struct {
	Project        Project         `json:"project"`
	Branch         Branch          `json:"branch"`
	ConnectionURIs []ConnectionURI `json:"connection_uris"`
	Raw            json.RawMessage `json:"-"`
}

// ProjectResponse is an answer holding one project, such as DELETE /projects/{id}.
type ProjectResponse struct {
	Project Project         `json:"project"`
	Raw     json.RawMessage `json:"-"`
}

// AuthKeys is the answer of the create and keys calls of Neon Auth.
type AuthKeys struct {
	AuthProvider          string          `json:"auth_provider"`
	AuthProviderProjectID string          `json:"auth_provider_project_id"`
	PubClientKey          string          `json:"pub_client_key"`
	SecretServerKey       string          `json:"secret_server_key"`
	JWKSURL               string          `json:"jwks_url"`
	SchemaName            string          `json:"schema_name"`
	TableName             string          `json:"table_name"`
	BaseURL               string          `json:"base_url,omitempty"`
	Raw                   json.RawMessage `json:"-"`
}

// Integration is a Neon Auth integration of a project.
type Integration struct {
	AuthProvider          string  `json:"auth_provider"`
	AuthProviderProjectID string  `json:"auth_provider_project_id"`
	BranchID              string  `json:"branch_id"`
	DBName                string  `json:"db_name"`
	CreatedAt             string  `json:"created_at"`
	OwnedBy               string  `json:"owned_by"`
	TransferStatus        *string `json:"transfer_status,omitempty"`
	JWKSURL               string  `json:"jwks_url"`
	BaseURL               string  `json:"base_url,omitempty"`
	Name                  string  `json:"name,omitempty"`
}

// IntegrationList is the answer of GET /projects/{id}/auth/integrations.
type IntegrationList struct {
	Data []Integration   `json:"data"`
	Raw  json.RawMessage `json:"-"`
}

// AuthUser is the answer of POST /projects/auth/user.
type AuthUser struct {
	ID  string          `json:"id"`
	Raw json.RawMessage `json:"-"`
}

// TransferLink is the answer of POST /projects/auth/transfer_ownership.
type TransferLink struct {
	URL string          `json:"url"`
	Raw json.RawMessage `json:"-"`
}

// SigningKey is the answer of POST /projects/{id}/auth/rotate_signing_key.
type SigningKey struct {
	KID                   string          `json:"kid"`
	AuthProviderProjectID string          `json:"auth_provider_project_id"`
	Raw                   json.RawMessage `json:"-"`
}

// ListProjects lists projects; limit 0 and an empty cursor leave the server's defaults.
func (c *Client) ListProjects(ctx context.Context, limit int, cursor string) (*ProjectList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	path := "/projects"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out ProjectList
	raw, err := c.do(ctx, http.MethodGet, path, nil, &out)
	out.Raw = raw
	return orErr(&out, err)
}

// CreateProject creates a project; an empty name lets the server name it.
func (c *Client) CreateProject(ctx context.Context, name string) (*CreatedProject, error) {
	body := map[string]any{"project": map[string]any{}}
	if name != "" {
		body["project"] = map[string]any{"name": name}
	}
	var out CreatedProject
	raw, err := c.do(ctx, http.MethodPost, "/projects", body, &out)
	out.Raw = raw
	return orErr(&out, err)
}

// DeleteProject deletes a project and answers with it.
func (c *Client) DeleteProject(ctx context.Context, projectID string) (*ProjectResponse, error) {
	var out ProjectResponse
	raw, err := c.do(ctx, http.MethodDelete, "/projects/"+url.PathEscape(projectID), nil, &out)
	out.Raw = raw
	return orErr(&out, err)
}

// ListBranches lists the branches of a project.
func (c *Client) ListBranches(ctx context.Context, projectID string) (*BranchList, error) {
	var out BranchList
	raw, err := c.do(ctx, http.MethodGet, "/projects/"+url.PathEscape(projectID)+"/branches",
		nil, &out)
	out.Raw = raw
	return orErr(&out, err)
}

// CreateIntegration enables Neon Auth on a branch of a project; an empty database or role
// leaves the server's default (neondb, neondb_owner).
func (c *Client) CreateIntegration(ctx context.Context, projectID, branchID, database,
	role string) (*AuthKeys, error) {
	body := c.ref(projectID)
	body["branch_id"] = branchID
	if database != "" {
		body["database_name"] = database
	}
	if role != "" {
		body["role_name"] = role
	}
	return c.authKeys(ctx, "/projects/auth/create", body)
}

// CreateKeys issues a new pair of keys for the project's integration.
func (c *Client) CreateKeys(ctx context.Context, projectID string) (*AuthKeys, error) {
	return c.authKeys(ctx, "/projects/auth/keys", c.ref(projectID))
}

func (c *Client) authKeys(ctx context.Context, path string, body any) (*AuthKeys, error) {
	var out AuthKeys
	raw, err := c.do(ctx, http.MethodPost, path, body, &out)
	out.Raw = raw
	return orErr(&out, err)
}

// ListIntegrations lists the Neon Auth integrations of a project.
func (c *Client) ListIntegrations(ctx context.Context, projectID string) (*IntegrationList,
	error) {
	var out IntegrationList
	raw, err := c.do(ctx, http.MethodGet,
		"/projects/"+url.PathEscape(projectID)+"/auth/integrations", nil, &out)
	out.Raw = raw
	return orErr(&out, err)
}

// CreateUser creates a user in the project's auth project; an empty name is not sent.
func (c *Client) CreateUser(ctx context.Context, projectID, email, name string) (*AuthUser,
	error) {
	body := c.ref(projectID)
	body["email"] = email
	if name != "" {
		body["name"] = name
	}
	var out AuthUser
	raw, err := c.do(ctx, http.MethodPost, "/projects/auth/user", body, &out)
	out.Raw = raw
	return orErr(&out, err)
}

// Transfer starts the transfer of the auth project to its user and returns the link.
func (c *Client) Transfer(ctx context.Context, projectID string) (*TransferLink, error) {
	var out TransferLink
	raw, err := c.do(ctx, http.MethodPost, "/projects/auth/transfer_ownership", c.ref(projectID),
		&out)
	out.Raw = raw
	return orErr(&out, err)
}

// DeleteIntegration deletes a project's integration with provider and, with deleteData,
// the data of its auth project. It returns the server's (empty) JSON answer.
func (c *Client) DeleteIntegration(ctx context.Context, projectID, provider string,
	deleteData bool) (json.RawMessage, error) {
	path := "/projects/" + url.PathEscape(projectID) + "/auth/integration/" +
		url.PathEscape(provider)
	return c.do(ctx, http.MethodDelete, path, map[string]bool{"delete_data": deleteData}, nil)
}

// RotateSigningKey rotates the signing key of the project's auth project (a neonauth
// extension of the API).
func (c *Client) RotateSigningKey(ctx context.Context, projectID string) (*SigningKey, error) {
	var out SigningKey
	raw, err := c.do(ctx, http.MethodPost,
		"/projects/"+url.PathEscape(projectID)+"/auth/rotate_signing_key", nil, &out)
	out.Raw = raw
	return orErr(&out, err)
}

// ref is the body naming a project and the client's provider.
func (c *Client) ref(projectID string) map[string]any {
	return map[string]any{"project_id": projectID, "auth_provider": c.AuthProvider}
}

// do sends a request with body as JSON (when not nil) and decodes a successful answer into
// out (when not nil). It returns the answer's raw JSON.
func (c *Client) do(ctx context.Context, method, path string, body, out any) (json.RawMessage,
	error) {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("call the management API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, apiError(resp, raw)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return json.RawMessage(raw), nil
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Request,
	error) {
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// apiError builds the error of a failed response. A body that is not Neon's error JSON (a
// proxy's page, say) gives its first line as the message.
func apiError(resp *http.Response, raw []byte) *APIError {
	e := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-ID")}
	var body struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(raw, &body) == nil {
		e.Code, e.Message = body.Code, body.Message
		if body.RequestID != "" {
			e.RequestID = body.RequestID
		}
		return e
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(raw)), "\n")
	if len(line) > 200 {
		line = strings.ToValidUTF8(line[:200], "")
	}
	e.Message = strings.TrimSpace(line)
	return e
}

// orErr returns v, or the error when there is one.
func orErr[T any](v *T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
