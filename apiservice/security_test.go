package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/health"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

func TestSecretsNeverLogged(t *testing.T) {
	const (
		password    = "Pa55-known-to-the-test"
		newPassword = "new-user-Pa55-known"
		wrongPass   = "wrong-Pa55-known-to-test"
		dbPassword  = "db-Pa55-in-a-driver-error"
	)
	env := newTestEnv(t)
	hash, err := env.pw.hash(password)
	if err != nil {
		t.Fatal(err)
	}
	carol := postgres.User{ID: 3, Username: "carol", PasswordHash: hash, Superuser: true}
	dbDown := false
	env.store.userByName = func(_ context.Context, name string) (postgres.User, error) {
		if dbDown {
			return postgres.User{}, errors.New("failed to connect to postgres://app:" + dbPassword + "@db/x: refused")
		}
		if name == "carol" {
			return carol, nil
		}
		return postgres.User{}, postgres.ErrNotFound
	}
	env.store.userByID = func(_ context.Context, id int64) (postgres.User, error) {
		if id == carol.ID {
			return carol, nil
		}
		return postgres.User{}, postgres.ErrNotFound
	}
	env.store.createUser = func(_ context.Context, u postgres.User) (postgres.User, error) {
		u.ID = 4
		return u, nil
	}
	env.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) {
		return nil, errors.New("query failed: host=db user=app password=" + dbPassword + " dbname=x")
	}
	now := testNow
	h := env.handler(t, &now)

	var bodies strings.Builder
	do := func(r *http.Request) *http.Response {
		w := serveWith(h, r)
		bodies.WriteString(w.Body.String())
		for k, vs := range w.Header() {
			bodies.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		return w.Result()
	}
	resp := do(loginRequest("carol", password, "192.0.2.1"))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login failed: %v", err)
	}
	bodies.Reset() // the token itself is in the login answer, on purpose
	do(loginRequest("carol", wrongPass, "192.0.2.1"))
	basic := newRequest("POST", "/api/v1/login", nil, "")
	basic.SetBasicAuth("carol", wrongPass)
	do(basic)
	do(newRequest("POST", "/api/v1/users", strings.NewReader(`{"username":"dave","password":"`+newPassword+`"}`), tok.AccessToken))
	do(newRequest("POST", "/api/v1/users", strings.NewReader(`{"username":"dave","password":"`+newPassword+`","extra":1}`), tok.AccessToken))
	do(newRequest("GET", "/api/v1/stats", nil, tok.AccessToken))                                   // 500 with the secret in the error
	do(newRequest("GET", "/api/v1/history", nil, tok.AccessToken+"x"))                             // tampered token
	do(newRequest("GET", "/api/v1/stock?q="+url.QueryEscape(wrongPass+"&"), nil, tok.AccessToken)) // 400 echoing nothing secret
	dbDown = true
	do(loginRequest("carol", password, "192.0.2.2"))

	logs := env.logs.String()
	if !strings.Contains(logs, "request failed") {
		t.Fatalf("the failing requests were not logged at all:\n%s", logs)
	}
	for name, secret := range map[string]string{
		"password": password, "new user's password": newPassword, "wrong password": wrongPass,
		"token": tok.AccessToken, "token signature": tok.AccessToken[strings.LastIndexByte(tok.AccessToken, '.')+1:],
		"JWT secret": string(testSecret), "password hash": hash, "database password": dbPassword,
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain the %s:\n%s", name, logs)
		}
		if strings.Contains(bodies.String(), secret) {
			t.Errorf("answers contain the %s:\n%s", name, bodies.String())
		}
	}
}

func TestSecurityConfig(t *testing.T) {
	cfg := defaultConfig()
	if len(cfg.TrustedProxies) != 0 || cfg.Login.AccountBurst != 5 || cfg.Login.AccountInterval != time.Minute ||
		cfg.Login.ClientBurst != 20 || cfg.Login.ClientInterval != 6*time.Second || cfg.Login.MaxKeys != 65536 ||
		cfg.ReadHeaderTimeout != 5*time.Second {
		t.Errorf("defaults = %+v", cfg)
	}
	vars := validEnv()
	vars["TRUSTED_PROXIES"] = " 10.0.0.0/8, 192.0.2.1 ,nope,::1"
	vars["LOGIN_ACCOUNT_BURST"] = "0"
	vars["LOGIN_CLIENT_INTERVAL"] = "2s"
	vars["HTTP_READ_HEADER_TIMEOUT"] = "1s"
	cfg, err := loadConfig(envFunc(vars), needAll)
	if got := strings.Join(cfg.TrustedProxies, ","); got != "10.0.0.0/8,192.0.2.1,::1" {
		t.Errorf("TrustedProxies = %q", got)
	}
	if cfg.Login.ClientInterval != 2*time.Second || cfg.ReadHeaderTimeout != time.Second {
		t.Errorf("cfg = %+v", cfg)
	}
	if err == nil || strings.Count(err.Error(), "\n") != 1 || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "LOGIN_ACCOUNT_BURST") {
		t.Errorf("errors = %v, want the bad proxy and the zero burst", err)
	}
}

// TestSlowlorisClosed: a client that trickles its headers is cut off at
// ReadHeaderTimeout while the server keeps answering everyone else.
func TestSlowlorisClosed(t *testing.T) {
	env := newTestEnv(t)
	now := testNow
	cfg := config{RPCTimeout: time.Second, ReadHeaderTimeout: 300 * time.Millisecond}
	srv := newHTTPServer(context.Background(), env.handler(t, &now), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if srv.ReadHeaderTimeout != 300*time.Millisecond || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 || srv.MaxHeaderBytes != serverMaxHeaderBytes {
		t.Fatalf("server limits not all set: %+v", srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn) // returns when the server closes
		closed <- err
	}()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	sent := 0
	for {
		select {
		case <-closed:
			t.Logf("slowloris connection closed after %v, %d header bytes trickled", time.Since(start).Round(time.Millisecond), sent)
			if sent == 0 {
				t.Error("closed before any trickling")
			}
			return
		case <-deadline:
			t.Fatal("slowloris connection still open after 10s")
		case <-tick.C:
			if _, err := io.WriteString(conn, "X"); err == nil {
				sent++
			}
			if sent == 3 {
				// Meanwhile a normal client is served.
				resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
				if err != nil {
					t.Fatalf("normal client during slowloris: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("normal client during slowloris: %d", resp.StatusCode)
				}
			}
		}
	}
}

// TestServerHeaderCap: above the server's hard cap net/http itself
// answers 431, and the connection is not left hanging.
func TestServerHeaderCap(t *testing.T) {
	env := newTestEnv(t)
	now := testNow
	srv := newHTTPServer(context.Background(), env.handler(t, &now), config{RPCTimeout: time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(conn, "GET /api/v1/history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+strings.Repeat("a", 1<<20)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("1 MB header: status %d, want 431", resp.StatusCode)
	}
}

// FuzzServer drives the whole HTTP handler with random methods, paths,
// queries, headers and bodies: no panic, no 500, every error problem+json
// and every answer with the security headers.
func FuzzServer(f *testing.F) {
	env := newTestEnv(f)
	env.store.history = func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		return nil, nil
	}
	env.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) { return nil, nil }
	env.store.addHistory = func(_ context.Context, _ int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		return e, nil
	}
	env.store.createUser = func(_ context.Context, u postgres.User) (postgres.User, error) { return u, nil }
	env.quotes = func(_ context.Context, s string) (stockrpc.Quote, error) {
		return stockrpc.Quote{Symbol: strings.ToUpper(s), Name: "X", Close: 1}, nil
	}
	env.checks = []health.Check{{Name: "fake", Ready: func(context.Context) error { return nil }}}
	now := testNow
	h := env.handler(f, &now)
	tok, err := env.auth.issue(admin.ID)
	if err != nil {
		f.Fatal(err)
	}
	seeds := []struct{ method, path, query, hname, hval, body string }{
		{"GET", "/api/v1/stock", "q=aapl.us", "Authorization", "Bearer " + tok, ""},
		{"GET", "/api/v1/stock", "q=%00&q=a+b", "Authorization", "Bearer " + tok, ""},
		{"GET", "/api/v1/history", "limit=-1&cursor=%ff", "Authorization", "Bearer " + tok, ""},
		{"GET", "/api/v1/stats/", "", "X-Original-URL", "/api/v1/stats", ""},
		{"POST", "/api/v1/login", "", "Content-Type", "application/json", `{"username":"alice","password":"password1"}`},
		{"POST", "/api/v1/login", "", "Authorization", "Basic Og==", `{`},
		{"POST", "/api/v1/users", "", "Authorization", "Bearer " + tok, `{"username":"x","password":"12345678","superuser":true}`},
		{"PUT", "/healthz", "", "X-HTTP-Method-Override", "GET", ""},
		{"GET", "//readyz", "", "Host", "evil", ""},
		{"BREW", "/api/v1/../v1/stock", "q=" + strings.Repeat("a", 100), "Cookie", strings.Repeat("c", 100), ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.hname, s.hval, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path, query, hname, hval string, body []byte) {
		if method == "" {
			method = "GET"
		}
		r := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: "/" + strings.TrimPrefix(path, "/"), RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     http.Header{},
			Body:       io.NopCloser(strings.NewReader(string(body))),
			Host:       "api",
			RemoteAddr: "192.0.2.1:1234",
		}
		r.RequestURI = r.URL.RequestURI()
		r = r.WithContext(context.Background())
		if hname != "" {
			r.Header[http.CanonicalHeaderKey(hname)] = []string{hval}
		}
		w := serveWith(h, r)
		if w.Code >= 500 || w.Code < 200 {
			t.Fatalf("%s %s?%s [%s: %.60q]: status %d %s", method, path, query, hname, hval, w.Code, w.Body)
		}
		if w.Code >= 400 && w.Header().Get("Content-Type") != problemContentType {
			t.Fatalf("%d answer with Content-Type %q", w.Code, w.Header().Get("Content-Type"))
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Content-Security-Policy") == "" {
			t.Fatalf("answer %d without security headers", w.Code)
		}
	})
}
