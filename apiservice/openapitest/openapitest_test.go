package openapitest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testSpec = `
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /items:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 10}}
      responses:
        "200":
          description: ok
          headers:
            Link: {required: false, schema: {type: string, pattern: "^<"}}
          content:
            application/json:
              schema: {type: array, items: {type: integer}}
        "400":
          description: bad
          content:
            application/problem+json:
              schema: {$ref: "#/components/schemas/Problem"}
components:
  schemas:
    Problem:
      type: object
      required: [title, status]
      properties:
        title: {type: string}
        status: {type: integer}
`

const problemJSON = `{"title":"Bad Request","status":400}`

func TestCheck(t *testing.T) {
	v, err := New(context.Background(), []byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	problemCT := http.Header{"Content-Type": {"application/problem+json"}}
	tests := []struct {
		name    string
		method  string
		target  string
		status  int
		header  http.Header
		body    string
		wantErr string // "" for none
	}{
		{"valid", "GET", "/items?limit=3", 200, jsonCT, `[1,2]`, ""},
		{"invalid request refused", "GET", "/items?limit=99", 400, problemCT, problemJSON, ""},
		{"invalid request answered", "GET", "/items?limit=99", 200, jsonCT, `[1]`, "rejects the request"},
		{"repeated single parameter answered", "GET", "/items?limit=1&limit=2", 200, jsonCT, `[1]`, "given 2 times"},
		{"valid request refused", "GET", "/items?limit=3", 400, problemCT, problemJSON, "more lenient"},
		{"undocumented status", "GET", "/items", 503, problemCT, problemJSON, "status is not supported"},
		{"body off schema", "GET", "/items", 200, jsonCT, `["x"]`, "doesn't match"},
		{"wrong content type", "GET", "/items", 200, http.Header{"Content-Type": {"text/plain"}}, `[1]`, "Content-Type"},
		{"header off schema", "GET", "/items", 200, http.Header{"Content-Type": {"application/json"}, "Link": {"nope"}}, `[1]`, "Link"},
		{"unknown path 404", "GET", "/nope", 404, problemCT, `{"title":"Not Found","status":404}`, ""},
		{"unknown path 200", "GET", "/nope", 200, jsonCT, `[]`, "want 404"},
		{"unknown path not a problem", "GET", "/nope", 404, problemCT, `{"title":1}`, "not a Problem"},
		{"wrong method 405", "DELETE", "/items", 405, http.Header{"Content-Type": {"application/problem+json"}, "Allow": {"GET"}}, `{"title":"x","status":405}`, ""},
		{"wrong method without Allow", "DELETE", "/items", 405, problemCT, `{"title":"x","status":405}`, "Allow"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Check(context.Background(), Exchange{
				Request: httptest.NewRequest(tc.method, tc.target, nil),
				Status:  tc.status,
				Header:  tc.header,
				Body:    []byte(tc.body),
			})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("Check = nil, want an error about %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("Check = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewRejectsInvalidDocuments(t *testing.T) {
	for name, spec := range map[string]string{
		"not yaml":   "{",
		"no paths":   "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n",
		"no problem": "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n",
		"bad ref":    "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get:\n      responses:\n        '200': {$ref: '#/components/responses/Nope'}\n",
	} {
		if _, err := New(context.Background(), []byte(spec)); err == nil {
			t.Errorf("%s: New = nil error", name)
		}
	}
}

func TestCheckRoutesOnTheDecodedPath(t *testing.T) {
	v, err := New(context.Background(), []byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	// The server sees /items: the exchange is checked as GET /items.
	err = v.Check(context.Background(), Exchange{
		Request: httptest.NewRequest("GET", "/%69tems", nil),
		Status:  200,
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    []byte(`["not an integer"]`),
	})
	if err == nil || !strings.Contains(err.Error(), "doesn't match") {
		t.Errorf("Check = %v, want a body mismatch of GET /items", err)
	}
}
