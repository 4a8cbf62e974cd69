package neonv2

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// openAPIDocument is the OpenAPI 3.0 document of everything this package serves: Neon's
// operations that neonauth implements, under Neon's operation ids, and neonauth's
// extensions, marked "x-neonauth-extension": true. Its tests check it against the routes
// registered here and every exchange of the test suite against it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIPath is where the document is served, below Prefix. It needs no API key.
const OpenAPIPath = "/openapi.json"

// OpenAPIDocument returns a copy of the embedded OpenAPI document, whose servers entry is
// the default listen address (http://127.0.0.1:8080/api/v2).
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDocument) }

// openAPIHandler serves the document with its servers entry set to this service's public
// URL (the one JWKS URLs and issuers start with), or the embedded default without one.
// The public URL is configuration, not the request's Host header, so a client cannot make
// the document name another server.
func (a *API) openAPIHandler() http.Handler {
	doc := openAPIDocument
	if a.Identity != nil && a.Identity.PublicURL != "" {
		base := strings.TrimRight(a.Identity.PublicURL, "/") + Prefix
		if d, err := withServer(openAPIDocument, base); err == nil {
			doc = d
		} else if a.Log != nil {
			a.Log.Error("openapi document: set servers", "err", err.Error())
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(doc)
	})
}

// withServer returns doc with its top-level "servers" value replaced by one server at url.
// Everything else is kept byte for byte, in its order and layout.
func withServer(doc []byte, url string) ([]byte, error) {
	servers, err := json.MarshalIndent([]map[string]string{{"url": url,
		"description": "This server."}}, "  ", "  ")
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("the document is not a JSON object")
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		if key != "servers" {
			continue
		}
		end := int(dec.InputOffset())
		start := end - len(value)
		if start < 0 || !bytes.Equal(doc[start:end], value) {
			return nil, errors.New("cannot locate the servers entry")
		}
		out := make([]byte, 0, len(doc)+len(servers))
		out = append(out, doc[:start]...)
		out = append(out, servers...)
		return append(out, doc[end:]...), nil
	}
	return nil, fmt.Errorf("the document has no servers entry")
}
