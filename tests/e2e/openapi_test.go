//go:build integration

package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stockquote/stockquote/apiservice/openapitest"
	"github.com/stockquote/stockquote/tests/e2e/systemtest"
)

// specPath is the OpenAPI description the programs embed and serve.
const specPath = "../../apiservice/openapi.yaml"

// specValidator loads the description once for the whole suite.
var specValidator = sync.OnceValues(func() (*openapitest.Validator, error) {
	spec, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	return openapitest.New(context.Background(), spec)
})

// checkSpec fails the test when an exchange departs from the OpenAPI
// description: an undocumented status, a body or header off its schema,
// a request the description rejects that the server accepted, or the
// reverse. It only reports (t.Errorf), so it is safe from any goroutine.
func checkSpec(t *testing.T, x systemtest.Exchange) {
	t.Helper()
	v, err := specValidator()
	if err != nil {
		t.Errorf("load %s: %v", specPath, err)
		return
	}
	err = v.Check(context.Background(), openapitest.Exchange{
		Request:     x.Request,
		RequestBody: x.RequestBody,
		Status:      x.Response.Status,
		Header:      x.Response.Header,
		Body:        x.Response.Body,
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
	r := s.Do(t, http.MethodGet, "/openapi.yaml", "", nil)
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
		t.Errorf("GET /openapi.yaml = %d, %d bytes; want 200 and %s (%d bytes)", r.Status, len(r.Body), specPath, len(want))
	}
	for _, path := range []string{"/docs", "/docs/init.js", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/LICENSE"} {
		r := s.Do(t, http.MethodGet, path, "", nil)
		if r.Status != http.StatusOK {
			t.Errorf("GET %s = %d", path, r.Status)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy = %q", path, csp)
		}
	}
	wantProblem(t, s.Do(t, http.MethodGet, "/docs/secret.txt", "", nil), http.StatusNotFound)
}
