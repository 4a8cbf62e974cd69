// Package openapicheck validates management API exchanges against an OpenAPI document:
// Neon's own (shipped in the pinned npm package @neondatabase/api-client, which `make test`
// installs under e2e/neon/node_modules) or ours. The test harness runs every /api/v2 request
// and response of the test suite through it.
package openapicheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// NeonSpecPath is where `make test` installs Neon's OpenAPI document, relative to the
// repository root.
const NeonSpecPath = "e2e/neon/node_modules/@neondatabase/api-client/public-v2-for-users.gen.yaml"

// Checker validates exchanges against one document.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
	base   string
}

// RepoRoot finds the repository root from this source file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	neonOnce sync.Once
	neonDoc  *openapi3.T
	neonErr  error
)

// LoadNeon loads Neon's document once per process. Its one pattern that Go's regexp
// cannot compile (a `{0,99}` repeat in the consumption-history parameters) makes
// whole-document validation fail, so pattern checks are turned off while validating the
// document itself; patterns are still checked in requests and responses wherever Go can
// compile them.
func LoadNeon() (*openapi3.T, error) {
	neonOnce.Do(func() {
		path := filepath.Join(RepoRoot(), NeonSpecPath)
		data, err := os.ReadFile(path)
		if err != nil {
			neonErr = fmt.Errorf("read Neon's OpenAPI document (run `make test`, which "+
				"installs it): %w", err)
			return
		}
		neonDoc, neonErr = Parse(data)
	})
	return neonDoc, neonErr
}

// Parse loads and validates an OpenAPI 3 document.
func Parse(data []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load OpenAPI document: %w", err)
	}
	err = doc.Validate(context.Background(), openapi3.DisableSchemaPatternValidation(),
		openapi3.DisableExamplesValidation())
	if err != nil {
		return nil, fmt.Errorf("validate OpenAPI document: %w", err)
	}
	return doc, nil
}

// New builds a checker for a server whose API base URL (with /api/v2) is base.
func New(doc *openapi3.T, base string) (*Checker, error) {
	cp := *doc
	cp.Servers = openapi3.Servers{{URL: strings.TrimRight(base, "/")}}
	r, err := legacy.NewRouter(&cp, openapi3.DisableSchemaPatternValidation(),
		openapi3.DisableExamplesValidation())
	if err != nil {
		return nil, fmt.Errorf("build router: %w", err)
	}
	return &Checker{doc: &cp, router: r, base: base}, nil
}

// ErrNoOperation says the document has no operation for a request (one of our extensions
// when checking against Neon's document).
var ErrNoOperation = errors.New("no such operation in the document")

// Check validates one exchange. The request is validated only when the server accepted it
// (a 2xx): tests send bad requests on purpose, and then only the error body must fit.
func (c *Checker) Check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	if isJSONType(r.Header.Get("Content-Type")) {
		// Any JSON media type (with a charset, or +json) is JSON to us; the documents name
		// only application/json.
		r.Header.Set("Content-Type", "application/json")
	}
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return fmt.Errorf("%w: %s %s", ErrNoOperation, req.Method, req.URL.Path)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		MultiError:         true,
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: opts}
	if status >= 200 && status < 300 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			return fmt.Errorf("%s %s: request does not fit %s: %w", req.Method, req.URL.Path,
				route.Operation.OperationID, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status,
		Header: header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("%s %s → %d: response does not fit %s: %w", req.Method,
			req.URL.Path, status, route.Operation.OperationID, err)
	}
	return nil
}

func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
