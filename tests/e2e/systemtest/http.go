package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Response is an HTTP answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Exchange is one request and the answer to it.
type Exchange struct {
	Request     *http.Request
	RequestBody []byte // a copy; the request's own body is consumed
	Response    Response
}

// Check inspects an exchange made through Send, reporting with t.Errorf
// (so it may be called from any goroutine).
type Check func(t *testing.T, x Exchange)

// httpClient bounds every request, so a hang fails the test instead of
// stalling it.
var httpClient = &http.Client{Timeout: 60 * time.Second}

// NewRequest builds a request to url with an optional bearer token and
// JSON body.
func NewRequest(method, url, token string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// Fetch sends req and reads the whole answer. It needs no test, so it is
// safe from any goroutine; it returns the transport error instead.
func Fetch(req *http.Request) (Response, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Send fetches req, failing the test on a transport error, and gives the
// exchange to check (if not nil). A request with a body must be able to
// give it twice (built from a bytes or strings reader) when check is set.
func Send(t *testing.T, req *http.Request, check Check) Response {
	t.Helper()
	var reqBody []byte
	if check != nil {
		reqBody = requestBody(t, req)
	}
	r, err := Fetch(req)
	if err != nil {
		t.Fatal(err)
	}
	if check != nil {
		check(t, Exchange{Request: req, RequestBody: reqBody, Response: r})
	}
	return r
}

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

// Send is Send with the system's check.
func (s *System) Send(t *testing.T, req *http.Request) Response {
	t.Helper()
	return Send(t, req, s.check)
}

// Do sends a request to the API with an optional bearer token and JSON
// body, failing the test on a transport error.
func (s *System) Do(t *testing.T, method, path, token string, body any) Response {
	t.Helper()
	req, err := NewRequest(method, s.API+path, token, body)
	if err != nil {
		t.Fatal(err)
	}
	return s.Send(t, req)
}

// Try is Do without a test (and without the system's check): safe from
// any goroutine, it returns the transport error instead of failing.
func (s *System) Try(method, path, token string, body any) (Response, error) {
	req, err := NewRequest(method, s.API+path, token, body)
	if err != nil {
		return Response{}, err
	}
	return Fetch(req)
}

// Login returns a token for the user, failing the test otherwise.
func (s *System) Login(t *testing.T, user, password string) string {
	t.Helper()
	r := s.Do(t, http.MethodPost, "/api/v1/login", "", map[string]string{"username": user, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("login %s: status %d: %s", user, r.Status, r.Body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	Decode(t, r, &tok)
	if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		t.Fatalf("login %s: bad token answer %s", user, r.Body)
	}
	return tok.AccessToken
}

// Decode unmarshals r's JSON body into v, failing the test otherwise.
func Decode(t *testing.T, r Response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// CheckProblem reports what is wrong with r as a problem+json answer of
// one of the given statuses, or "" when nothing is. It needs no test, so
// it is safe from any goroutine.
func CheckProblem(r Response, statuses ...int) string {
	if !slices.Contains(statuses, r.Status) {
		return fmt.Sprintf("status = %d, want one of %v; body %s", r.Status, statuses, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		return fmt.Sprintf("Content-Type = %q, want application/problem+json", ct)
	}
	var p Problem
	if err := json.Unmarshal(r.Body, &p); err != nil || p.Status != r.Status || p.Title == "" {
		return fmt.Sprintf("problem body %s (%v): want status %d and a title", r.Body, err, r.Status)
	}
	return ""
}

// WantProblem fails the test unless r is a problem+json answer with one
// of the given statuses, and returns the problem.
func WantProblem(t *testing.T, r Response, statuses ...int) Problem {
	t.Helper()
	if msg := CheckProblem(r, statuses...); msg != "" {
		t.Fatal(msg)
	}
	var p Problem
	Decode(t, r, &p)
	return p
}
