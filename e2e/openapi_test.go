//go:build integration

package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stockquote/stockquote/apiservice/openapitest"
)

// specPath is the OpenAPI description the programs embed and serve.
const specPath = "../apiservice/openapi.yaml"

// specValidator loads the description once for the whole suite.
var specValidator = sync.OnceValues(func() (*openapitest.Validator, error) {
	spec, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	return openapitest.New(context.Background(), spec)
})

// requestBody returns a copy of req's body without consuming it.
func requestBody(t *testing.T, req *http.Request) []byte {
	t.Helper()
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	if req.GetBody == nil {
		t.Fatalf("%s %s: body cannot be read twice; build the request from a bytes or strings reader", req.Method, req.URL)
	}
	rc, err := req.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSpec fails the test when an exchange departs from the OpenAPI
// description: an undocumented status, a body or header off its schema,
// a request the description rejects that the server accepted, or the
// reverse. It only reports (t.Errorf), so it is safe from any goroutine.
func checkSpec(t *testing.T, req *http.Request, reqBody []byte, r response) {
	t.Helper()
	v, err := specValidator()
	if err != nil {
		t.Errorf("load %s: %v", specPath, err)
		return
	}
	err = v.Check(context.Background(), openapitest.Exchange{
		Request:     req,
		RequestBody: reqBody,
		Status:      r.status,
		Header:      r.header,
		Body:        r.body,
	})
	if err != nil {
		t.Errorf("OpenAPI: %v", err)
	}
}

// TestServedDocs: the API serves the description it embeds and the docs
// page with its files, each exchange checked by send against the spec.
func TestServedDocs(t *testing.T) {
	s := newSystem(t, options{noWorker: true})
	want, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	r := s.do(t, http.MethodGet, "/openapi.yaml", "", nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, want) {
		t.Errorf("GET /openapi.yaml = %d, %d bytes; want 200 and %s (%d bytes)", r.status, len(r.body), specPath, len(want))
	}
	for _, path := range []string{"/docs", "/docs/init.js", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/LICENSE"} {
		r := s.do(t, http.MethodGet, path, "", nil)
		if r.status != http.StatusOK {
			t.Errorf("GET %s = %d", path, r.status)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy = %q", path, csp)
		}
	}
	wantProblem(t, s.do(t, http.MethodGet, "/docs/secret.txt", "", nil), http.StatusNotFound)
}
