package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/stockquote/stockquote/shared/env"
)

// Request size limits. Requests over maxHeaderBytes or maxQueryBytes are
// refused by the API with problem+json (431, 414); serverMaxHeaderBytes is
// the HTTP server's own hard cap on request line plus headers, above which
// net/http answers a plain-text 431 before any handler runs.
const (
	maxHeaderBytes       = 32 << 10
	maxQueryBytes        = 16 << 10
	serverMaxHeaderBytes = 256 << 10
)

// securityConfig is the part of config about attackers: which proxies to
// believe and how hard to throttle logins.
type securityConfig struct {
	TrustedProxies    []string       // TRUSTED_PROXIES: comma-separated IPs/CIDRs whose X-Forwarded-For is believed; default none
	Login             throttleConfig // LOGIN_* below
	StockQuota        quotaConfig    // STOCK_QUOTA_* below
	ReadHeaderTimeout time.Duration  // HTTP_READ_HEADER_TIMEOUT, default 5s: slow clients are cut off
}

// loadSecurityConfig reads the security settings through getenv:
//
//	TRUSTED_PROXIES          none    IPs or CIDRs of reverse proxies
//	LOGIN_ACCOUNT_BURST      5       failed logins per account before throttling (all replicas together)
//	LOGIN_ACCOUNT_INTERVAL   1m      then one more attempt per interval
//	LOGIN_CLIENT_BURST       20      failed logins per client address (per replica)
//	LOGIN_CLIENT_INTERVAL    6s      then one more attempt per interval
//	LOGIN_MAX_TRACKED        65536   client addresses (and trusted pairs) tracked at most per replica
//	LOGIN_TRUSTED_WINDOW     720h    a client that logged in as a user is trusted this long (0 = never)
//	HTTP_READ_HEADER_TIMEOUT 5s      time a client has to send its headers
//	STOCK_QUOTA_REQUESTS_PER_MINUTE 120  /stock requests per user (all replicas together; 0 = off)
//	STOCK_QUOTA_MISSES_PER_MINUTE    30  of those, requests that reach stooq (0 = off)
func loadSecurityConfig(r *env.Reader) securityConfig {
	var c securityConfig
	for _, p := range strings.Split(r.String("TRUSTED_PROXIES", ""), ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		_, _, cidrErr := net.ParseCIDR(p)
		if cidrErr != nil && net.ParseIP(p) == nil {
			r.Fail("TRUSTED_PROXIES", fmt.Errorf("%q is neither an IP address nor a CIDR", p))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	c.Login.AccountBurst = r.Int("LOGIN_ACCOUNT_BURST", 5, 1, 1000)
	c.Login.AccountInterval = r.Duration("LOGIN_ACCOUNT_INTERVAL", time.Minute, time.Millisecond, 24*time.Hour)
	c.Login.ClientBurst = r.Int("LOGIN_CLIENT_BURST", 20, 1, 100000)
	c.Login.ClientInterval = r.Duration("LOGIN_CLIENT_INTERVAL", 6*time.Second, time.Millisecond, 24*time.Hour)
	c.Login.MaxKeys = r.Int("LOGIN_MAX_TRACKED", 65536, 16, 10_000_000)
	c.Login.TrustedWindow = r.Duration("LOGIN_TRUSTED_WINDOW", 30*24*time.Hour, 0, 366*24*time.Hour)
	c.ReadHeaderTimeout = r.Duration("HTTP_READ_HEADER_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Minute)
	c.StockQuota.RequestsPerMinute = r.Int("STOCK_QUOTA_REQUESTS_PER_MINUTE", 120, 0, 1_000_000)
	c.StockQuota.MissesPerMinute = r.Int("STOCK_QUOTA_MISSES_PER_MINUTE", 30, 0, 1_000_000)
	return c
}

// LogValue logs the security settings.
func (c securityConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("trusted_proxies", strings.Join(c.TrustedProxies, ",")),
		slog.Int("login_account_burst", c.Login.AccountBurst),
		slog.Duration("login_account_interval", c.Login.AccountInterval),
		slog.Int("login_client_burst", c.Login.ClientBurst),
		slog.Duration("login_client_interval", c.Login.ClientInterval),
		slog.Int("login_max_tracked", c.Login.MaxKeys),
		slog.Duration("login_trusted_window", c.Login.TrustedWindow),
		slog.Duration("read_header_timeout", c.ReadHeaderTimeout),
		slog.Int("stock_quota_requests_per_minute", c.StockQuota.RequestsPerMinute),
		slog.Int("stock_quota_misses_per_minute", c.StockQuota.MissesPerMinute),
	)
}

// defaultSecurityConfig is the configuration with no variable set.
func defaultSecurityConfig() securityConfig {
	return loadSecurityConfig(env.NewReader(func(string) string { return "" }))
}

// serverSettings are newServer's optional settings.
type serverSettings struct {
	trustedProxies []string
	login          *loginThrottle
	quota          *stockQuota
	telemetry      serverTelemetry // see withTelemetry
}

// serverOption sets one of newServer's optional settings.
type serverOption func(*serverSettings)

// withTrustedProxies makes the server believe X-Forwarded-For from these
// proxies (IPs or CIDRs); by default it believes no one and the client
// address is the TCP peer.
func withTrustedProxies(proxies []string) serverOption {
	return func(s *serverSettings) { s.trustedProxies = proxies }
}

// withStockQuota sets the /stock quota; by default newServer makes one
// with the default limits.
func withStockQuota(q *stockQuota) serverOption {
	return func(s *serverSettings) { s.quota = q }
}

// withLoginThrottle sets the login throttle; by default newServer makes
// one with the default limits.
func withLoginThrottle(t *loginThrottle) serverOption {
	return func(s *serverSettings) { s.login = t }
}

// Security headers every answer carries. The policy suits JSON: nothing
// may load, nothing may frame it. A route that serves HTML (the API docs
// page) relaxes it with contentSecurityPolicy.
const (
	defaultCSP     = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	referrerPolicy = "no-referrer"
)

// securityHeaders sets the security headers on every answer, errors
// included. Cache-Control: no-store keeps tokens and per-user data out of
// shared and browser caches.
func securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", referrerPolicy)
		h.Set("Content-Security-Policy", defaultCSP)
		h.Set("Cache-Control", "no-store")
		c.Next()
	}
}

// contentSecurityPolicy replaces the default policy for the routes it is
// put on, e.g. r.GET("/docs", contentSecurityPolicy(docsPolicy), handleDocs()).
// It must run after securityHeaders, which the engine-wide middleware does.
func contentSecurityPolicy(policy string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Writer.Header().Set("Content-Security-Policy", policy)
		c.Next()
	}
}

// limitRequest refuses requests whose headers or query string are too
// large, before any handler parses them.
func limitRequest(headerBytes, queryBytes int) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(c.Request.URL.RawQuery) > queryBytes {
			fail(c, errURITooLong)
			return
		}
		n := 0
		for k, vs := range c.Request.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4 // ": " and CRLF
			}
		}
		if n > headerBytes {
			fail(c, errHeaderTooLarge)
			return
		}
		c.Next()
	}
}

// newHTTPServer returns the HTTP server serving handler, with every
// timeout set so slow or idle clients cannot hold connections forever.
func newHTTPServer(ctx context.Context, handler http.Handler, cfg config, logger *slog.Logger) *http.Server {
	readHeader := cfg.Security.ReadHeaderTimeout
	if readHeader <= 0 {
		readHeader = 5 * time.Second
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeader,
		ReadTimeout:       readHeader + 10*time.Second,
		WriteTimeout:      cfg.RPCTimeout + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    serverMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// maxClientValueBytes bounds every client-supplied string the API writes
// to a log line or an error detail, so no request can grow the logs by
// more than a few hundred bytes, whatever it sends.
const maxClientValueBytes = 64

// clientValue returns s cut to maxClientValueBytes (at a rune boundary
// when s is valid UTF-8), saying how long it was when cut.
func clientValue(s string) string {
	if len(s) <= maxClientValueBytes {
		return s
	}
	cut := maxClientValueBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:cut], len(s))
}

// quoteClient is clientValue quoted as a Go string: control characters
// and invalid UTF-8 are escaped, so the value cannot forge lines either.
func quoteClient(s string) string { return strconv.Quote(clientValue(s)) }

// errTransferEncoding: the request came with a Transfer-Encoding (400,
// connection closed).
var errTransferEncoding = withDetail(errInvalidInput, "Transfer-Encoding is not accepted: send the body with a Content-Length")

// refuseTransferEncoding answers any request that carries a
// Transfer-Encoding with 400 and closes the connection. RFC 9112 section
// 6.1: a message with both Content-Length and Transfer-Encoding may be a
// smuggling attempt and must be handled as an error, the connection
// closed. net/http drops the Content-Length of such a request before any
// handler sees it, so the two cannot be told apart here: every
// transfer-coded body is refused (this API's bodies are small JSON
// objects every client sends with a Content-Length). Closing the
// connection is what stops a smuggled second request behind the body.
func refuseTransferEncoding() gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(c.Request.TransferEncoding) > 0 {
			c.Header("Connection", "close")
			fail(c, errTransferEncoding)
			return
		}
		c.Next()
	}
}
