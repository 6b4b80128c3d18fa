// Package openapitest checks HTTP exchanges against the API's OpenAPI
// description, so tests that walk the API also prove the description
// matches the server. Only tests import it.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Validator checks requests and responses against one OpenAPI document.
// It is safe for concurrent use.
type Validator struct {
	router  routers.Router
	problem *openapi3.Schema
}

// Load parses and validates an OpenAPI document.
func Load(ctx context.Context, spec []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("parse OpenAPI document: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("invalid OpenAPI document: %w", err)
	}
	return doc, nil
}

// registerText makes the validator read the docs page and its files as
// plain text (openapi3filter knows only text/plain).
var registerText = sync.OnceFunc(func() {
	for _, ct := range []string{"text/html", "text/css", "text/javascript"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
})

// New returns a Validator for spec, which must define a Problem schema
// (the body of every error, including those of unknown routes).
func New(ctx context.Context, spec []byte) (*Validator, error) {
	registerText()
	doc, err := Load(ctx, spec)
	if err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route OpenAPI document: %w", err)
	}
	if doc.Components == nil || doc.Components.Schemas["Problem"] == nil || doc.Components.Schemas["Problem"].Value == nil {
		return nil, errors.New("OpenAPI document has no components.schemas.Problem")
	}
	return &Validator{router: router, problem: doc.Components.Schemas["Problem"].Value}, nil
}

// Exchange is one request and the response the server gave it.
type Exchange struct {
	Request     *http.Request // its Body is ignored: see RequestBody
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Check reports how the exchange departs from the document: an unlisted
// path or method must get a 404 or 405 (with Allow) problem; a request the
// document rejects must get a listed 4xx, one it accepts must not get a
// 400; the response's status (no default), headers and body must match.
func (v *Validator) Check(ctx context.Context, x Exchange) error {
	// Route on the decoded path, as gin does: /api%2Fv1/%73tats is /api/v1/stats.
	routed := x.Request.Clone(ctx)
	routed.URL.RawPath = ""
	route, params, err := v.router.FindRoute(routed)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return v.checkUnrouted(x, http.StatusNotFound)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if x.Header.Get("Allow") == "" {
			return fmt.Errorf("%s %s: 405 without an Allow header", x.Request.Method, x.Request.URL)
		}
		return v.checkUnrouted(x, http.StatusMethodNotAllowed)
	case err != nil:
		return fmt.Errorf("%s %s: find route: %w", x.Request.Method, x.Request.URL, err)
	}

	routed.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	in := &openapi3filter.RequestValidationInput{
		Request:    routed,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc: authenticate,
			// Defaults filled into the request would not change the answer.
			SkipSettingDefaults:               true,
			RejectWhenRequestBodyNotSpecified: true,
		},
	}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr == nil {
		reqErr = singleValued(route.Operation, routed)
	}
	where := fmt.Sprintf("%s %s (operation %s) answered %d", x.Request.Method, x.Request.URL, route.Operation.OperationID, x.Status)
	switch {
	case reqErr != nil && (x.Status < 400 || x.Status > 499):
		return fmt.Errorf("%s, but the document rejects the request: %w", where, reqErr)
	case reqErr == nil && x.Status == http.StatusBadRequest:
		return fmt.Errorf("%s to a request the document accepts: the document is more lenient than the server; body %s", where, x.Body)
	}

	in.Options = &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: authenticate}
	resp := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 x.Status,
		Header:                 x.Header,
		Body:                   io.NopCloser(bytes.NewReader(x.Body)),
		Options:                in.Options,
	}
	if err := openapi3filter.ValidateResponse(ctx, resp); err != nil {
		return fmt.Errorf("%s: response does not match the document: %.3000s; body %.500s", where, err, x.Body)
	}
	return nil
}

// checkUnrouted checks the answer to a request no operation lists.
func (v *Validator) checkUnrouted(x Exchange, want int) error {
	where := fmt.Sprintf("%s %s (no operation)", x.Request.Method, x.Request.URL)
	if x.Status != want {
		return fmt.Errorf("%s answered %d, want %d", where, x.Status, want)
	}
	if x.Request.Method == http.MethodHead {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(x.Header.Get("Content-Type")); mt != "application/problem+json" {
		return fmt.Errorf("%s: Content-Type %q, want application/problem+json", where, x.Header.Get("Content-Type"))
	}
	var body any
	if err := json.Unmarshal(x.Body, &body); err != nil {
		return fmt.Errorf("%s: body is not JSON: %w", where, err)
	}
	if err := v.problem.VisitJSON(body); err != nil {
		return fmt.Errorf("%s: body is not a Problem: %w", where, err)
	}
	return nil
}

// singleValued rejects a repeated single-valued query parameter, of
// which the validator would check only the first.
func singleValued(op *openapi3.Operation, req *http.Request) error {
	q := req.URL.Query()
	for _, ref := range op.Parameters {
		p := ref.Value
		if p == nil || p.In != openapi3.ParameterInQuery || p.Schema == nil || p.Schema.Value == nil {
			continue
		}
		if p.Schema.Value.Type.Is(openapi3.TypeArray) {
			continue
		}
		if n := len(q[p.Name]); n > 1 {
			return fmt.Errorf("query parameter %q given %d times, the document allows one", p.Name, n)
		}
	}
	return nil
}

// authenticate checks that the scheme's credentials are present; their
// validity is the server's business (a 401 the document lists).
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	switch in.SecuritySchemeName {
	case "bearerAuth":
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return errors.New("no bearer token")
		}
	case "basicAuth":
		if _, _, ok := r.BasicAuth(); !ok {
			return errors.New("no basic credentials")
		}
	default:
		return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
	}
	return nil
}
