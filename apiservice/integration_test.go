//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/amqprpc/amqptest"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logged returns the string attribute key of the first JSON log line with msg.
func logged(logs, msg, key string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			s, _ := line[key].(string)
			return s
		}
	}
	return ""
}

// fakeWorker answers quote requests on queue with canned replies:
// aapl.us and msft.us are quotes, slow.us never answers in time,
// limit.us is rate limited, anything else is not found.
func fakeWorker(t *testing.T, queue string) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := amqprpc.Dial(amqprpc.Config{URL: amqptest.URL(), Name: "fake-worker", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	srv := amqprpc.NewServer(conn, queue, func(ctx context.Context, m amqprpc.Message) []byte {
		reply := stockrpc.Reply{Version: stockrpc.Version}
		req, err := stockrpc.DecodeRequest(m.Body)
		switch {
		case err != nil:
			reply.Error = &stockrpc.Error{Code: stockrpc.CodeInvalid, Message: err.Error()}
		case req.Symbol == "aapl.us" || req.Symbol == "msft.us":
			reply.Quote = &stockrpc.Quote{Symbol: strings.ToUpper(req.Symbol), Name: strings.ToUpper(req.Symbol[:4]),
				Open: 1, High: 2, Low: 0.5, Close: 1.25, Volume: 100, QuotedAt: time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)}
		case req.Symbol == "slow.us":
			// Answer only after the caller's deadline: the API sees no reply.
			<-ctx.Done()
			time.Sleep(300 * time.Millisecond)
			reply.Error = &stockrpc.Error{Code: stockrpc.CodeUpstreamTimeout}
		case req.Symbol == "limit.us":
			reply.Error = &stockrpc.Error{Code: stockrpc.CodeRateLimited}
		default:
			reply.Error = &stockrpc.Error{Code: stockrpc.CodeNotFound}
		}
		b, _ := json.Marshal(reply)
		return b
	}, amqprpc.ServerOptions{Workers: 4})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "fake worker", func() bool { return srv.Ready() == nil })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type apiClient struct {
	t    *testing.T
	base string
}

func (c apiClient) do(method, path, token, body string) (int, http.Header, string) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (c apiClient) login(name, password string) string {
	c.t.Helper()
	code, _, body := c.do("POST", "/api/v1/login", "", `{"username":"`+name+`","password":"`+password+`"}`)
	if code != 200 {
		c.t.Fatalf("login %s: %d %s", name, code, body)
	}
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		c.t.Fatal(err)
	}
	return r.AccessToken
}

// TestIntegrationRun runs the real commands against PostgreSQL and
// RabbitMQ (with a fake worker on a private queue): migrate, user add,
// then serve, and walks the API.
func TestIntegrationRun(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	queue := amqptest.NewQueue(t, "apiservice-test")
	fakeWorker(t, queue)
	env := map[string]string{
		"DATABASE_URL":     dbURL,
		"AMQP_URL":         amqptest.URL(),
		"RPC_QUEUE":        queue,
		"JWT_SECRET":       strings.Repeat("k", 40),
		"HTTP_ADDR":        "127.0.0.1:0",
		"RPC_TIMEOUT":      "1s",
		"BCRYPT_COST":      "4",
		"SHUTDOWN_TIMEOUT": "5s",
	}
	ctx := context.Background()
	cmd := func(stdin string, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(ctx, append([]string{"apiservice"}, args...), envFunc(env), strings.NewReader(stdin), &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	cmd("", "migrate")
	cmd("", "migrate") // idempotent
	cmd("admin-password\n", "user", "add", "-name", "admin", "-superuser")
	cmd("alice-password\n", "user", "add", "-name", "alice", "-email", "alice@example.com")
	if err := run(ctx, []string{"apiservice", "user", "add", "-name", "alice"}, envFunc(env), strings.NewReader("another-one\n"), io.Discard, io.Discard); err == nil {
		t.Error("user add accepted a duplicate name")
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"apiservice"}, envFunc(env), nil, io.Discard, logs) }()
	var addr string
	waitFor(t, "http listening", func() bool {
		addr = logged(logs.String(), "http listening", "addr")
		return addr != ""
	})
	c := apiClient{t: t, base: "http://" + addr}
	waitFor(t, "/readyz 200", func() bool { code, _, _ := c.do("GET", "/readyz", "", ""); return code == 200 })
	if strings.Contains(logs.String(), strings.Repeat("k", 40)) {
		t.Error("log shows the JWT secret")
	}

	adminTok, aliceTok := c.login("admin", "admin-password"), c.login("alice", "alice-password")
	if code, _, _ := c.do("POST", "/api/v1/login", "", `{"username":"alice","password":"wrong-password"}`); code != 401 {
		t.Errorf("bad login: %d, want 401", code)
	}

	for _, q := range []string{"aapl.us", "MSFT.US", "aapl.us"} {
		code, _, body := c.do("GET", "/api/v1/stock?q="+q, aliceTok, "")
		if code != 200 {
			t.Fatalf("stock %s: %d %s", q, code, body)
		}
	}
	for q, want := range map[string]int{"nope.us": 404, "limit.us": 503, "slow.us": 503, "a%2Bb": 400, "": 400} {
		if code, _, body := c.do("GET", "/api/v1/stock?q="+q, aliceTok, ""); code != want {
			t.Errorf("stock %q: %d %s, want %d", q, code, body, want)
		}
	}

	code, hdr, body := c.do("GET", "/api/v1/history?limit=2", aliceTok, "")
	if code != 200 || !strings.HasPrefix(body, `[{"date":`) || !strings.Contains(body, `"symbol":"AAPL.US"`) {
		t.Errorf("history: %d %s", code, body)
	}
	link := hdr.Get("Link")
	next := strings.TrimPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
	if next == link || next == "" {
		t.Fatalf("history Link = %q", link)
	}
	code, hdr, body = c.do("GET", next, aliceTok, "")
	var page2 []historyEntryJSON
	if code != 200 || json.Unmarshal([]byte(body), &page2) != nil || len(page2) != 1 || page2[0].Symbol != "AAPL.US" || hdr.Get("Link") != "" {
		t.Errorf("history page 2: %d %s Link=%q", code, body, hdr.Get("Link"))
	}
	if code, _, body := c.do("GET", "/api/v1/history", adminTok, ""); code != 200 || body != "[]" {
		t.Errorf("admin history: %d %s, want 200 []", code, body)
	}

	if code, _, body := c.do("GET", "/api/v1/stats", adminTok, ""); code != 200 || body != `[{"stock":"aapl.us","times_requested":2},{"stock":"msft.us","times_requested":1}]` {
		t.Errorf("stats: %d %s", code, body)
	}
	if code, _, _ := c.do("GET", "/api/v1/stats", aliceTok, ""); code != 403 {
		t.Errorf("stats as alice: %d, want 403", code)
	}
	if code, hdr, body := c.do("POST", "/api/v1/users", adminTok, `{"username":"bob","password":"bob-password"}`); code != 201 || hdr.Get("Location") != "" {
		t.Errorf("create bob: %d %s", code, body)
	}
	if code, _, _ := c.do("POST", "/api/v1/users", adminTok, `{"username":"bob","password":"bob-password"}`); code != 409 {
		t.Errorf("create bob again: %d, want 409", code)
	}
	c.login("bob", "bob-password")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
}
