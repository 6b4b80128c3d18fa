package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// handler builds one server from env's fakes that keeps its state (the
// login throttle) across requests, with a clock the test moves.
func (env *testEnv) handler(t testing.TB, now *time.Time, opts ...serverOption) http.Handler {
	t.Helper()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return *now }
	env.store.rates.mu.Lock()
	env.store.rates.now = clock
	env.store.rates.mu.Unlock()
	logger := slog.New(slog.NewTextHandler(&lockedWriter{b: env.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return newServer(env.deps(logger, clock, opts...))
}

// lockedWriter serializes writes to a strings.Builder.
type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func loginRequest(user, password, remote string) *http.Request {
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	r := newRequest("POST", "/api/v1/login", strings.NewReader(string(b)), "")
	r.RemoteAddr = remote + ":40000"
	return r
}

func serveWith(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestLoginBruteForce: behind a trusted proxy the client address limit
// applies to the address X-Forwarded-For names (e2e's TestLoginThrottled
// pins the limits themselves).
func TestLoginBruteForce(t *testing.T) {
	cfg := throttleConfig{AccountBurst: 3, AccountInterval: time.Minute, ClientBurst: 10, ClientInterval: time.Minute, MaxKeys: 1000}

	t.Run("trusted proxy: X-Forwarded-For names the client", func(t *testing.T) {
		env := newTestEnv(t)
		now := testNow
		h := env.handler(t, &now, withTrustedProxies([]string{"10.0.0.0/8"}),
			withLoginThrottle(newLoginThrottle(cfg, func() time.Time { return now }, env.store)))
		for i := 0; i < 10; i++ {
			r := loginRequest("user"+string(rune('a'+i)), "guess-guess", "10.0.0.1")
			r.Header.Set("X-Forwarded-For", "203.0.113.9")
			checkProblem(t, serveWith(h, r), 401)
		}
		r := loginRequest("other", "guess-guess", "10.0.0.1")
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		checkProblem(t, serveWith(h, r), 429)
		r = loginRequest("other", "guess-guess", "10.0.0.1")
		r.Header.Set("X-Forwarded-For", "203.0.113.10")
		checkProblem(t, serveWith(h, r), 401)
	})
}

func TestSecurityHeaders(t *testing.T) {
	env := newTestEnv(t)
	env.store.history = func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		return nil, nil
	}
	now := testNow
	h := env.handler(t, &now)
	tok := env.token(t, alice.ID)
	reqs := map[string]*http.Request{
		"probe":           newRequest("GET", "/healthz", nil, ""),
		"login ok":        loginRequest("alice", "password1", "192.0.2.1"),
		"login failed":    loginRequest("alice", "nope-nope", "192.0.2.1"),
		"history":         newRequest("GET", "/api/v1/history", nil, tok),
		"unauthenticated": newRequest("GET", "/api/v1/history", nil, ""),
		"forbidden":       newRequest("GET", "/api/v1/stats", nil, tok),
		"not found":       newRequest("GET", "/nope", nil, ""),
		"wrong method":    newRequest("DELETE", "/api/v1/login", nil, ""),
		"bad input":       newRequest("GET", "/api/v1/stock?q=a%2Bb", nil, tok),
		"body too large":  newRequest("POST", "/api/v1/login", strings.NewReader(strings.Repeat("a", 2<<20)), ""),
	}
	want := map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": defaultCSP,
		"Cache-Control":           "no-store",
	}
	for name, r := range reqs {
		t.Run(name, func(t *testing.T) {
			w := serveWith(h, r)
			for k, v := range want {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q (status %d)", k, got, v, w.Code)
				}
			}
		})
	}
	if !strings.Contains(defaultCSP, "default-src 'none'") || !strings.Contains(defaultCSP, "frame-ancestors 'none'") {
		t.Errorf("CSP %q is not restrictive", defaultCSP)
	}
}

func TestContentSecurityPolicyPerRoute(t *testing.T) {
	// The docs page relaxes the policy for its own routes only.
	env := newTestEnv(t)
	now := testNow
	engine := env.handler(t, &now).(*gin.Engine)
	for _, path := range []string{"/docs", "/docs/init.js"} {
		if got := serveWith(engine, newRequest("GET", path, nil, "")).Header().Get("Content-Security-Policy"); got != docsCSP {
			t.Errorf("%s CSP = %q, want %q", path, got, docsCSP)
		}
	}
	if got := serveWith(engine, newRequest("GET", "/healthz", nil, "")).Header().Get("Content-Security-Policy"); got != defaultCSP {
		t.Errorf("/healthz CSP = %q, want the default %q", got, defaultCSP)
	}
}

// rsaKey returns a fresh RSA key and its public key as PEM.
func rsaKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestHostileTokens(t *testing.T) {
	key, pubPEM := rsaKey(t)
	enc := base64.RawURLEncoding.EncodeToString
	with := func(f func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := goodClaims()
		f(&c)
		return c
	}
	good := signed(t, jwt.SigningMethodHS256, testSecret, goodClaims())
	parts := strings.Split(good, ".")
	adminPayload := enc([]byte(`{"sub":"2","iss":"stockquote-api","aud":["stockquote"],"iat":1795000000,"exp":1795999999}`))
	flipped := []byte(parts[2])
	flipped[3] ^= 1
	if flipped[3] == '-' || flipped[3] == '_' {
		flipped[3] = 'A'
	}

	tests := []struct {
		name   string
		header string
	}{
		{"alg none, empty signature", "Bearer " + enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."},
		{"alg none, original signature", "Bearer " + enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]},
		{"alg NONE", "Bearer " + enc([]byte(`{"alg":"NONE"}`)) + "." + parts[1] + "."},
		{"RS256 with a real key", "Bearer " + signed(t, jwt.SigningMethodRS256, key, goodClaims())},
		{"HS256 keyed with the public key", "Bearer " + signed(t, jwt.SigningMethodHS256, pubPEM, goodClaims())},
		{"wrong HMAC key", "Bearer " + signed(t, jwt.SigningMethodHS256, []byte("wrong-secret-wrong-secret-wrong-secret"), goodClaims())},
		{"tampered payload (sub to admin)", "Bearer " + parts[0] + "." + adminPayload + "." + parts[2]},
		{"tampered signature", "Bearer " + parts[0] + "." + parts[1] + "." + string(flipped)},
		{"signature stripped", "Bearer " + parts[0] + "." + parts[1] + "."},
		{"header with kid and jku", "Bearer " + enc([]byte(`{"alg":"HS256","kid":"../../dev/null","jku":"http://evil"}`)) + "." + parts[1] + "." + parts[2]},
		{"expired", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-time.Hour))
		}))},
		{"not yet valid (nbf)", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) {
			c.NotBefore = jwt.NewNumericDate(testNow.Add(time.Hour))
		}))},
		{"issued in the future (iat)", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) {
			c.IssuedAt = jwt.NewNumericDate(testNow.Add(time.Hour))
		}))},
		{"wrong issuer", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.Issuer = "stockquote-api-evil" }))},
		{"wrong audience", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"stockquote-admin"} }))},
		{"negative sub", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.Subject = "-1" }))},
		{"huge sub", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.Subject = "99999999999999999999999" }))},
		{"removed user", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.Subject = "77" }))},
		{"two tokens", "Bearer " + good + " " + good},
		{"token in Basic", "Basic " + enc([]byte("alice:"+good))},
		{"basic credentials", "Basic " + enc([]byte("alice:password1"))},
		{"garbage", "Bearer \x01\x02\xff"},
		{"only dots", "Bearer ....."},
		{"enormous token (30 KB)", "Bearer " + strings.Repeat("A", 30<<10) + "." + parts[1] + "." + parts[2]},
		{"enormous segments count", "Bearer " + strings.Repeat("a.", 10000)},
		{"missing", ""},
		{"empty bearer", "Bearer "},
		{"wrong alg HS512", "Bearer " + signed(t, jwt.SigningMethodHS512, testSecret, goodClaims())},
		{"no exp", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }))},
		{"no iat", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.IssuedAt = nil }))},
		{"no issuer", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.Issuer = "" }))},
		{"non-numeric sub", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.Subject = "alice" }))},
		{"zero sub", "Bearer " + signed(t, jwt.SigningMethodHS256, testSecret, with(func(c *jwt.RegisteredClaims) { c.Subject = "0" }))},
	}
	env := newTestEnv(t)
	env.store.history = func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		t.Error("a hostile token reached the handler")
		return nil, nil
	}
	env.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) {
		t.Error("a hostile token reached /stats")
		return nil, nil
	}
	// /stock does not load the user (requireToken): a removed user's valid
	// token gets its quote looked up, then 401 when the history row finds
	// no user. Every other token is refused before that.
	removed := false
	env.quotes = func(context.Context, string) (stockrpc.Quote, error) {
		if !removed {
			t.Error("a hostile token reached /stock")
		}
		return appleQuote, nil
	}
	env.store.addHistory = func(_ context.Context, userID int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		if userID != 77 {
			t.Errorf("a hostile token saved history as user %d", userID)
		}
		return e, fmt.Errorf("add history: %w", postgres.ErrNotFound)
	}
	now := testNow
	h := env.handler(t, &now)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			removed = tt.name == "removed user"
			for _, path := range []string{"/api/v1/history", "/api/v1/stats", "/api/v1/stock?q=aapl.us"} {
				r := newRequest("GET", path, nil, "")
				r.Header.Set("Authorization", tt.header)
				w := serveWith(h, r)
				checkProblem(t, w, 401)
				if got, want := w.Header().Get("WWW-Authenticate"), `Bearer realm="stockquote", error="invalid_token"`; got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
			}
		})
	}
}

func TestDemotedAndRemovedUsers(t *testing.T) {
	env := newTestEnv(t)
	users := map[int64]postgres.User{admin.ID: admin}
	var mu sync.Mutex
	env.store.userByID = func(_ context.Context, id int64) (postgres.User, error) {
		mu.Lock()
		defer mu.Unlock()
		if u, ok := users[id]; ok {
			return u, nil
		}
		return postgres.User{}, postgres.ErrNotFound
	}
	env.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) { return nil, nil }
	now := testNow
	h := env.handler(t, &now)
	tok := env.token(t, admin.ID)
	if w := serveWith(h, newRequest("GET", "/api/v1/stats", nil, tok)); w.Code != 200 {
		t.Fatalf("superuser /stats = %d", w.Code)
	}
	mu.Lock()
	demoted := admin
	demoted.Superuser = false
	users[admin.ID] = demoted
	mu.Unlock()
	checkProblem(t, serveWith(h, newRequest("GET", "/api/v1/stats", nil, tok)), 403)
	mu.Lock()
	delete(users, admin.ID)
	mu.Unlock()
	checkProblem(t, serveWith(h, newRequest("GET", "/api/v1/stats", nil, tok)), 401)
}

// statsVariants are ways to phrase a request for /stats.
var statsVariants = []struct {
	name, method, target string
	header               map[string]string
}{
	{"canonical", "GET", "/api/v1/stats", nil},
	{"trailing slash", "GET", "/api/v1/stats/", nil},
	{"upper case", "GET", "/API/V1/STATS", nil},
	{"mixed case", "GET", "/api/v1/Stats", nil},
	{"double slash", "GET", "//api/v1/stats", nil},
	{"inner double slash", "GET", "/api//v1/stats", nil},
	{"dot segment", "GET", "/api/v1/./stats", nil},
	{"dot-dot segment", "GET", "/api/v1/x/../stats", nil},
	{"encoded letter", "GET", "/api/v1/%73tats", nil},
	{"encoded slash", "GET", "/api%2Fv1%2Fstats", nil},
	{"encoded dot-dot", "GET", "/api/v1/history/%2e%2e/stats", nil},
	{"semicolon", "GET", "/api/v1/stats;admin=true", nil},
	{"query tricks", "GET", "/api/v1/stats?admin=true&superuser=1&role=admin", nil},
	{"fragment", "GET", "/api/v1/stats#admin", nil},
	{"HEAD", "HEAD", "/api/v1/stats", nil},
	{"OPTIONS", "OPTIONS", "/api/v1/stats", nil},
	{"POST with override", "POST", "/api/v1/stats", map[string]string{"X-HTTP-Method-Override": "GET"}},
	{"X-Original-URL", "GET", "/api/v1/history", map[string]string{"X-Original-URL": "/api/v1/stats"}},
	{"X-Rewrite-URL", "GET", "/api/v1/history", map[string]string{"X-Rewrite-URL": "/api/v1/stats"}},
	{"X-Forwarded-Prefix", "GET", "/api/v1/stats", map[string]string{"X-Forwarded-Prefix": "/admin", "X-Forwarded-For": "127.0.0.1"}},
}

func TestStatsRefusedToNormalUsers(t *testing.T) {
	env := newTestEnv(t)
	var statsCalls atomic.Int64
	env.store.topStocks = func(context.Context, int) ([]postgres.StockCount, error) {
		statsCalls.Add(1)
		return []postgres.StockCount{{Stock: "SECRET.US", TimesRequested: 42}}, nil
	}
	env.store.history = func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		return nil, nil
	}
	now := testNow
	h := env.handler(t, &now)
	aliceTok := env.token(t, alice.ID)
	for _, v := range statsVariants {
		t.Run(v.name, func(t *testing.T) {
			r := httptest.NewRequest(v.method, "http://api"+v.target, nil)
			r.Header.Set("Authorization", "Bearer "+aliceTok)
			for k, val := range v.header {
				r.Header.Set(k, val)
			}
			before := statsCalls.Load()
			w := serveWith(h, r)
			if statsCalls.Load() != before || strings.Contains(w.Body.String(), "secret.us") {
				t.Fatalf("%s %s reached the stats for a normal user: %d %s", v.method, v.target, w.Code, w.Body)
			}
			if w.Code >= 500 {
				t.Errorf("status %d", w.Code)
			}
			t.Logf("%s %s: %d", v.method, v.target, w.Code)
		})
	}
	// The check itself works: the superuser gets the stats.
	if w := serveWith(h, newRequest("GET", "/api/v1/stats", nil, env.token(t, admin.ID))); w.Code != 200 || statsCalls.Load() != 1 {
		t.Errorf("superuser /stats = %d %s", w.Code, w.Body)
	}
}

func TestRequestLimits(t *testing.T) {
	env := newTestEnv(t)
	now := testNow
	h := env.handler(t, &now)
	tok := env.token(t, alice.ID)
	huge := func(header string, n int) *http.Request {
		r := newRequest("GET", "/api/v1/history", nil, tok)
		r.Header.Set(header, strings.Repeat("x", n))
		return r
	}
	tests := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"100 KB Authorization", func() *http.Request {
			r := newRequest("GET", "/api/v1/history", nil, "")
			r.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 100<<10))
			return r
		}(), 431},
		{"40 KB cookie", huge("Cookie", 40<<10), 431},
		{"many headers", func() *http.Request {
			r := newRequest("GET", "/api/v1/history", nil, tok)
			for i := 0; i < 2000; i++ {
				r.Header.Add("X-Pad", strings.Repeat("p", 20))
			}
			return r
		}(), 431},
		{"20 KB query", newRequest("GET", "/api/v1/stock?q="+strings.Repeat("a", 20<<10), nil, tok), 414},
		{"20 KB query, no token", newRequest("GET", "/api/v1/stock?x="+strings.Repeat("a", 20<<10), nil, ""), 414},
		{"2 MB login body", newRequest("POST", "/api/v1/login", strings.NewReader(strings.Repeat(" ", 2<<20)), ""), 413},
		{"2 MB user body", newRequest("POST", "/api/v1/users", strings.NewReader(`{"username":"`+strings.Repeat("a", 2<<20)+`"}`), env.token(t, admin.ID)), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblem(t, serveWith(h, tt.req), tt.status)
		})
	}
}

// hostileSymbols are q values that must be refused before any quote is
// asked or anything saved.
var hostileSymbols = []string{
	"", " ", "aapl.us+msft.us", "aapl.us&f=x", "aapl.us&e=json", "aapl.us%00", "\x00", "aapl\x00.us",
	"ąęść", "ＡＡＰＬ", "аапл.us", "😀", "aapl.us\u200b", "aapl.us\r\nX-Injected: 1",
	"' OR 1=1 --", "aapl.us'; DROP TABLE history; --", `"; DELETE FROM users; --`, "aapl.us%27",
	"../../etc/passwd", "..%2F..%2Fetc", "/etc/passwd", "aapl.us/../x", `..\..\win.ini`,
	"<script>alert(1)</script>", "${jndi:ldap://x}", "{{7*7}}", "aapl us", "aapl.us#frag", "aapl.us?x=1",
	strings.Repeat("a", 10<<10), strings.Repeat("ą", 5<<10), strings.Repeat("%", 100),
}

func TestHostileSymbols(t *testing.T) {
	env := newTestEnv(t)
	env.quotes = func(_ context.Context, s string) (stockrpc.Quote, error) {
		t.Errorf("symbol %q reached the stock service", s)
		return stockrpc.Quote{}, nil
	}
	env.store.addHistory = func(context.Context, int64, postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		t.Error("a hostile symbol reached the database")
		return postgres.HistoryEntry{}, nil
	}
	now := testNow
	h := env.handler(t, &now)
	tok := env.token(t, alice.ID)
	for _, q := range hostileSymbols {
		w := serveWith(h, newRequest("GET", "/api/v1/stock?q="+url.QueryEscape(q), nil, tok))
		if w.Code != 400 && w.Code != 414 {
			t.Errorf("q=%.40q: status %d, want 400 (or 414 when the query is over the limit)", q, w.Code)
			continue
		}
		checkProblem(t, w, w.Code)
	}
	// Raw query strings, as an attacker would type them.
	for _, target := range []string{
		"/api/v1/stock?q=aapl.us+msft.us", "/api/v1/stock?q=aapl.us%2Bmsft.us", "/api/v1/stock?q=aapl.us%26f%3Dx",
		"/api/v1/stock?q=aapl.us%00", "/api/v1/stock?q=%00aapl.us", "/api/v1/stock?q=aapl.us%0d%0aX:1",
		"/api/v1/stock?q=aapl.us&q=msft.us", "/api/v1/stock?q[]=aapl.us", "/api/v1/stock?Q=aapl.us",
		"/api/v1/stock?q=%zz", "/api/v1/stock?q=%", "/api/v1/stock?q=..%2f..%2f", "/api/v1/stock?q=%C0%AE%C0%AE",
	} {
		if w := serveWith(h, newRequest("GET", target, nil, tok)); w.Code != 400 {
			t.Errorf("%s: status %d, want 400", target, w.Code)
		}
	}
}
