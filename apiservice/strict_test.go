package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// rawExchange writes raw to a fresh connection to addr, half-closes it,
// and returns every response the server wrote before closing.
func rawExchange(t *testing.T, addr, raw string) []*http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []*http.Response
	for {
		if _, err := br.Peek(1); err != nil {
			return out // closed by the server
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response %d: %v", len(out)+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		out = append(out, resp)
	}
}

// TestRequestSmugglingClosed: a request with both Content-Length and
// Transfer-Encoding is answered 400 and its connection closed, so the
// request smuggled behind its chunked body is never answered (RFC 9112
// section 6.1). A raw socket, because no HTTP client sends such a request.
func TestRequestSmugglingClosed(t *testing.T) {
	env := newTestEnv(t)
	now := testNow
	cfg := config{RPCTimeout: time.Second}
	srv := newHTTPServer(context.Background(), env.handler(t, &now), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// Connection: close, so that a server that answers it closes at once.
	smuggled := "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	cases := map[string]string{
		"CL.TE": "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
			"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE.CL": "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" +
			"Content-Length: 40\r\n\r\n0\r\n\r\n" + smuggled,
		"GET with both": "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			resps := rawExchange(t, ln.Addr().String(), raw)
			if len(resps) != 1 {
				t.Fatalf("got %d responses, want exactly 1 (the smuggled request must not be answered)", len(resps))
			}
			r := resps[0]
			if r.StatusCode != http.StatusBadRequest || r.Header.Get("Content-Type") != problemContentType {
				t.Errorf("status %d %q, want 400 problem+json", r.StatusCode, r.Header.Get("Content-Type"))
			}
			if !r.Close {
				t.Error("response does not announce Connection: close")
			}
		})
	}

	// Control: two pipelined plain requests on one connection are both answered.
	resps := rawExchange(t, ln.Addr().String(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"+"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if len(resps) != 2 {
		t.Fatalf("control: %d responses to two pipelined requests, want 2", len(resps))
	}
}

// TestStrictJSONBodies: keys match exactly (no case folding), a key given
// twice is refused, whatever its spelling: a proxy reading "username"
// must see the user the API logs in.
func TestStrictJSONBodies(t *testing.T) {
	env := newTestEnv(t)
	loginCalls := 0
	env.store.userByName = func(_ context.Context, name string) (postgres.User, error) {
		loginCalls++
		return alice, nil
	}
	admin := env.token(t, admin.ID)
	env.store.createUser = func(_ context.Context, u postgres.User) (postgres.User, error) {
		t.Errorf("user created from a refused body: %+v", u)
		return u, nil
	}
	cases := []struct {
		name, path, body, token string
	}{
		{"login: other case, last wins", "/api/v1/login", `{"username":"nobody","USERNAME":"alice","password":"password1"}`, ""},
		{"login: only other case", "/api/v1/login", `{"Username":"alice","password":"password1"}`, ""},
		{"login: duplicate key", "/api/v1/login", `{"username":"nobody","username":"alice","password":"password1"}`, ""},
		{"create: superuser twice", "/api/v1/users", `{"username":"mallory","password":"password-1","superuser":false,"Superuser":true}`, admin},
		{"create: duplicate", "/api/v1/users", `{"username":"mallory","password":"password-1","superuser":false,"superuser":true}`, admin},
		{"not an object", "/api/v1/login", `["username","alice"]`, ""},
		{"trailing data", "/api/v1/login", `{"username":"alice","password":"password1"} {}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := env.serve(t, newRequest("POST", c.path, strings.NewReader(c.body), c.token))
			checkProblem(t, w, http.StatusBadRequest)
		})
	}
	if loginCalls != 0 {
		t.Errorf("%d logins reached the store from refused bodies", loginCalls)
	}
	// Control: the exact spelling works.
	w := env.serve(t, newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"alice","password":"password1"}`), ""))
	if w.Code != http.StatusOK {
		t.Fatalf("control login: %d %s", w.Code, w.Body)
	}
}

func TestErrorTextBounded(t *testing.T) {
	got := errorText(errors.New(strings.Repeat("x", 1<<20)))
	if len(got) > maxLoggedErrorBytes+16 {
		t.Errorf("logged error of %d bytes, want at most about %d", len(got), maxLoggedErrorBytes)
	}
}
