//go:build integration

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
)

// get sends a GET with an Authorization header value (if any) to base+path.
func get(t *testing.T, base, path, authorization string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return send(t, req)
}

// loginAt tries a JSON login at base, with an optional X-Forwarded-For.
func loginAt(t *testing.T, base, user, password, xff string) response {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/login", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	return send(t, req)
}

// exec runs one SQL statement on the system's database.
func (s *system) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.DatabaseURL)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestHostile attacks a real API (built binary, PostgreSQL, RabbitMQ, fake
// stooq): forged tokens, removed and demoted users, /stats phrasings,
// oversized and slow requests, hostile symbols, brute force; and checks
// that no password, token or secret reaches the logs.
func TestHostile(t *testing.T) {
	s := newSystem(t, options{})
	api, apiProc := s.StartAPI(t, "HTTP_READ_HEADER_TIMEOUT=1s")
	alice := s.Login(t, "alice", "alice-password-1")
	admin := s.Login(t, "admin", "admin-password-1")
	tokens := []string{alice, admin}

	t.Run("forged and invalid tokens", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		now := time.Now()
		claims := func(f func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
			c := jwt.RegisteredClaims{Subject: "1", Issuer: "stockquote-api", Audience: jwt.ClaimStrings{"stockquote"},
				IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
			f(&c)
			return c
		}
		sign := func(m jwt.SigningMethod, key any, c jwt.RegisteredClaims) string {
			tok, err := jwt.NewWithClaims(m, c).SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		secret := []byte(s.Secret)
		valid := sign(jwt.SigningMethodHS256, secret, claims(func(*jwt.RegisteredClaims) {}))
		if r := get(t, api, "/api/v1/history", "Bearer "+valid); r.Status != http.StatusOK {
			t.Fatalf("control: a correctly signed token got %d %s", r.Status, r.Body)
		}
		enc := base64.RawURLEncoding.EncodeToString
		parts := strings.Split(alice, ".")
		adminPayload := enc([]byte(`{"sub":"1","iss":"stockquote-api","aud":["stockquote"],"iat":1,"exp":99999999999}`))
		cases := map[string]string{
			"no token":                      "",
			"alg none":                      enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
			"RS256":                         sign(jwt.SigningMethodRS256, key, claims(func(*jwt.RegisteredClaims) {})),
			"HS256 keyed with a public key": sign(jwt.SigningMethodHS256, pubPEM, claims(func(*jwt.RegisteredClaims) {})),
			"wrong key":                     sign(jwt.SigningMethodHS256, []byte("not-the-secret-not-the-secret-not-it"), claims(func(*jwt.RegisteredClaims) {})),
			"tampered payload":              parts[0] + "." + adminPayload + "." + parts[2],
			"tampered signature":            parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
			"expired":                       sign(jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) })),
			"not yet valid (nbf)":           sign(jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })),
			"issued in the future (iat)":    sign(jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })),
			"wrong issuer":                  sign(jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Issuer = "evil" })),
			"wrong audience":                sign(jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"admin"} })),
			"unknown user":                  sign(jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Subject = "424242" })),
		}
		for name, tok := range cases {
			for _, path := range []string{"/api/v1/history", "/api/v1/stats", "/api/v1/stock?q=aapl.us"} {
				authorization := "Bearer " + tok
				if name == "no token" {
					authorization = ""
				}
				r := get(t, api, path, authorization)
				if r.Status != http.StatusUnauthorized {
					t.Errorf("%s on %s: status %d, want 401: %s", name, path, r.Status, r.Body)
					continue
				}
				wantProblem(t, r, http.StatusUnauthorized)
				if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Errorf("%s on %s: WWW-Authenticate = %q, want a Bearer challenge", name, path, h)
				}
			}
		}
		for name, h := range map[string]string{
			"basic auth":   "Basic " + enc([]byte("alice:alice-password-1")),
			"garbage":      "Bearer \xff\xfe%%%{}[]",
			"no scheme":    alice,
			"100 KB token": "Bearer " + strings.Repeat("a", 100<<10),
		} {
			r := get(t, api, "/api/v1/history", h)
			if r.Status != http.StatusUnauthorized && r.Status != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s: status %d, want 401 or 431", name, r.Status)
			}
			wantProblem(t, r, r.Status)
		}
		// Over the server's hard cap, net/http itself answers 431.
		if r := get(t, api, "/api/v1/history", "Bearer "+strings.Repeat("a", 1<<20)); r.Status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("1 MB Authorization: status %d, want 431", r.Status)
		}
		if r := get(t, api, "/healthz", ""); r.Status != http.StatusOK {
			t.Errorf("API unhealthy after the oversized headers: %d", r.Status)
		}
	})

	t.Run("demoted and removed users", func(t *testing.T) {
		r := s.Do(t, http.MethodPost, "/api/v1/users", admin, map[string]any{"username": "eve", "password": "eve-password-1", "superuser": true})
		if r.Status != http.StatusCreated {
			t.Fatalf("create eve: %d %s", r.Status, r.Body)
		}
		eve := s.Login(t, "eve", "eve-password-1")
		tokens = append(tokens, eve)
		if r := get(t, api, "/api/v1/stats", "Bearer "+eve); r.Status != http.StatusOK {
			t.Fatalf("superuser eve /stats: %d %s", r.Status, r.Body)
		}
		s.exec(t, "UPDATE users SET superuser = false WHERE username = 'eve'")
		wantProblem(t, get(t, api, "/api/v1/stats", "Bearer "+eve), http.StatusForbidden)
		if r := get(t, api, "/api/v1/history", "Bearer "+eve); r.Status != http.StatusOK {
			t.Errorf("demoted eve /history: %d, want 200", r.Status)
		}
		s.exec(t, "DELETE FROM users WHERE username = 'eve'")
		wantProblem(t, get(t, api, "/api/v1/history", "Bearer "+eve), http.StatusUnauthorized)
		wantProblem(t, get(t, api, "/api/v1/stock?q=aapl.us", "Bearer "+eve), http.StatusUnauthorized)
		wantProblem(t, get(t, api, "/api/v1/stats", "Bearer "+eve), http.StatusUnauthorized)
	})

	t.Run("stats refused to normal users however phrased", func(t *testing.T) {
		variants := []struct {
			method, path string
			header       []string
		}{
			{"GET", "/api/v1/stats", nil}, {"GET", "/api/v1/stats/", nil}, {"GET", "/API/V1/STATS", nil},
			{"GET", "/api/v1/Stats", nil}, {"GET", "//api/v1/stats", nil}, {"GET", "/api//v1/stats", nil},
			{"GET", "/api/v1/./stats", nil}, {"GET", "/api/v1/x/../stats", nil}, {"GET", "/api/v1/%73tats", nil},
			{"GET", "/api%2Fv1%2Fstats", nil}, {"GET", "/api/v1/stats;x=1", nil}, {"GET", "/api/v1/stats?admin=1&superuser=true", nil},
			{"HEAD", "/api/v1/stats", nil}, {"OPTIONS", "/api/v1/stats", nil},
			{"POST", "/api/v1/stats", []string{"X-HTTP-Method-Override", "GET"}},
			{"GET", "/api/v1/history", []string{"X-Original-URL", "/api/v1/stats"}},
			{"GET", "/api/v1/history", []string{"X-Rewrite-URL", "/api/v1/stats"}},
		}
		for _, v := range variants {
			req, err := http.NewRequest(v.method, api+v.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+alice)
			for i := 0; i+1 < len(v.header); i += 2 {
				req.Header.Set(v.header[i], v.header[i+1])
			}
			r := send(t, req)
			if strings.Contains(string(r.Body), "times_requested") || r.Status >= 500 {
				t.Errorf("%s %s %v: normal user got %d %s", v.method, v.path, v.header, r.Status, r.Body)
			}
			if v.path == "/api/v1/history" {
				continue // answered as /history, which alice may read
			}
			if r.Status == http.StatusOK {
				t.Errorf("%s %s: 200 for a normal user", v.method, v.path)
			}
		}
		if r := get(t, api, "/api/v1/stats", "Bearer "+admin); r.Status != http.StatusOK {
			t.Errorf("control: superuser /stats = %d", r.Status)
		}
	})

	t.Run("hostile symbols reach neither stooq nor the database", func(t *testing.T) {
		rows, hits := s.CountRows(t, ""), s.Stooq.TotalHits()
		qs := []string{
			"aapl.us+msft.us", "aapl.us%2Bmsft.us", "aapl.us%26f%3Djson", "%00", "aapl.us%00", "%C4%85", "%F0%9F%98%80",
			"%27%20OR%201%3D1--", "aapl.us%27%3B%20DROP%20TABLE%20history%3B--", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
			"aapl.us%0D%0AX-Injected%3A%201", "%3Cscript%3E", "%25", "%zz", url.QueryEscape(strings.Repeat("a", 10<<10)),
		}
		for _, q := range qs {
			r := get(t, api, "/api/v1/stock?q="+q, "Bearer "+alice)
			wantProblem(t, r, http.StatusBadRequest)
		}
		wantProblem(t, get(t, api, "/api/v1/stock?q="+strings.Repeat("a", 20<<10), "Bearer "+alice), http.StatusRequestURITooLong)
		if n := s.CountRows(t, ""); n != rows {
			t.Errorf("hostile symbols wrote %d history rows", n-rows)
		}
		if n := s.Stooq.TotalHits(); n != hits {
			t.Errorf("hostile symbols reached stooq %d times", n-hits)
		}
	})

	t.Run("request limits", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, api+"/api/v1/login", strings.NewReader(`{"username":"alice","password":"`+strings.Repeat("a", 2<<20)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		wantProblem(t, send(t, req), http.StatusRequestEntityTooLarge)
		req, _ = http.NewRequest(http.MethodGet, api+"/api/v1/history", nil)
		req.Header.Set("Authorization", "Bearer "+alice)
		req.Header.Set("Cookie", strings.Repeat("c", 40<<10))
		wantProblem(t, send(t, req), http.StatusRequestHeaderFieldsTooLarge)
	})

	t.Run("slowloris connection is closed", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(api, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		closed := make(chan struct{})
		go func() { io.Copy(io.Discard, conn); close(closed) }()
		start := time.Now()
		io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-closed:
				t.Logf("slowloris connection closed after %v (HTTP_READ_HEADER_TIMEOUT=1s)", time.Since(start).Round(time.Millisecond))
				if r := get(t, api, "/healthz", ""); r.Status != http.StatusOK {
					t.Errorf("API unhealthy after slowloris: %d", r.Status)
				}
				return
			case <-tick.C:
				io.WriteString(conn, "X")
				if time.Since(start) > 15*time.Second {
					t.Fatal("slowloris connection still open after 15s")
				}
			}
		}
	})

	t.Run("security headers", func(t *testing.T) {
		for _, r := range []response{
			get(t, api, "/healthz", ""), get(t, api, "/api/v1/history", "Bearer "+alice),
			get(t, api, "/api/v1/history", ""), get(t, api, "/nope", ""), loginAt(t, api, "alice", "alice-password-1", ""),
		} {
			for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
				if got := r.Header.Get(k); got != v {
					t.Errorf("status %d: %s = %q, want %q", r.Status, k, got, v)
				}
			}
			if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("status %d: CSP %q", r.Status, csp)
			}
		}
	})

	t.Run("no secret in logs", func(t *testing.T) {
		// Feed the secrets through every path that logs: logins (good,
		// wrong, Basic), token use, a user created with a password.
		loginAt(t, api, "alice", "alice-password-1", "")
		loginAt(t, api, "alice", "wrong-password-for-log", "")
		req, _ := http.NewRequest(http.MethodPost, api+"/api/v1/login", nil)
		req.SetBasicAuth("admin", "admin-password-1")
		send(t, req)
		time.Sleep(200 * time.Millisecond) // let the last log lines arrive
		logs := apiProc.Logs()
		if !strings.Contains(logs, `"path":"/api/v1/login"`) {
			t.Fatalf("logs do not show the requests; captured:\n%.2000s", logs)
		}
		secrets := map[string]string{
			"alice's password": "alice-password-1", "admin's password": "admin-password-1", "eve's password": "eve-password-1",
			"wrong password": "wrong-password-for-log", "JWT secret": s.Secret,
		}
		for i, tok := range tokens {
			secrets["token "+string(rune('0'+i))] = tok[strings.LastIndexByte(tok, '.')+1:]
		}
		for name, secret := range secrets {
			if strings.Contains(logs, secret) {
				t.Errorf("apiservice logs contain %s", name)
			}
		}
	})
}

// TestLoginThrottled: brute force against the real API is throttled per
// account and per client address (a spoofed X-Forwarded-For does not
// help), answers do not reveal which users exist, and the real user gets
// in again once the attacker has to wait.
func TestLoginThrottled(t *testing.T) {
	s := newSystem(t, options{})

	t.Run("per account", func(t *testing.T) {
		api, _ := s.StartAPI(t, "LOGIN_ACCOUNT_BURST=3", "LOGIN_ACCOUNT_INTERVAL=2s", "LOGIN_CLIENT_BURST=1000")
		var alice, mallory []string
		for i := 0; i < 5; i++ {
			a := loginAt(t, api, "alice", "guess-guess", "")
			m := loginAt(t, api, "mallory", "guess-guess", "")
			alice = append(alice, string(a.Body)+a.Header.Get("Retry-After"))
			mallory = append(mallory, string(m.Body)+m.Header.Get("Retry-After"))
			want := http.StatusUnauthorized
			if i >= 3 {
				want = http.StatusTooManyRequests
			}
			wantProblem(t, a, want)
			wantProblem(t, m, want)
			if want == http.StatusTooManyRequests && a.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
		if strings.Join(alice, "|") != strings.Join(mallory, "|") {
			t.Errorf("existing and unknown users answered differently:\n%v\n%v", alice, mallory)
		}
		wantProblem(t, loginAt(t, api, "alice", "alice-password-1", ""), http.StatusTooManyRequests)
		deadline := time.Now().Add(15 * time.Second)
		for {
			time.Sleep(500 * time.Millisecond)
			r := loginAt(t, api, "alice", "alice-password-1", "")
			if r.Status == http.StatusOK {
				break
			}
			if r.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
				t.Fatalf("real user after the attack: %d %s", r.Status, r.Body)
			}
		}
	})

	t.Run("per client address, X-Forwarded-For ignored", func(t *testing.T) {
		api, _ := s.StartAPI(t, "LOGIN_CLIENT_BURST=4", "LOGIN_CLIENT_INTERVAL=1h")
		for i := 0; i < 6; i++ {
			r := loginAt(t, api, "user"+string(rune('a'+i)), "guess-guess", "203.0.113."+string(rune('1'+i)))
			want := http.StatusUnauthorized
			if i >= 4 {
				want = http.StatusTooManyRequests
			}
			wantProblem(t, r, want)
		}
	})
}
