package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/stockquote/stockquote/shared/logging"
)

// Request size limits. Requests over maxHeaderBytes or maxQueryBytes are
// refused with problem+json (431, 414); serverMaxHeaderBytes is net/http's
// own cap, above which it answers a plain-text 431 before any handler.
const (
	maxHeaderBytes       = 32 << 10
	maxQueryBytes        = 16 << 10
	maxBodyBytes         = 1 << 20
	serverMaxHeaderBytes = 256 << 10
)

// requestIDHeader is the HTTP header a request id comes in and goes out in.
const requestIDHeader = "X-Request-ID"

// requestID takes a well-formed incoming X-Request-ID or makes a new
// one, echoes it in the response and puts it in the request's context,
// where the logger and the RPC client find it.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(requestIDHeader)
		if !logging.ValidRequestID(id) {
			id = rand.Text()
		}
		c.Header(requestIDHeader, id)
		c.Request = c.Request.WithContext(logging.WithRequestID(c.Request.Context(), id))
		c.Next()
	}
}

// requestLogger logs one line per request: the route template and the
// path (never the query or headers, where tokens could be), the status,
// the latency and the user id; the logger adds the request id and trace
// ids from the context.
func requestLogger(logger *slog.Logger, now func() time.Time) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := now()
		c.Next()
		// Sized for user_id too, so the slice need not grow.
		attrs := make([]slog.Attr, 0, 8)
		attrs = append(attrs,
			slog.String("method", clientValue(c.Request.Method)),
			slog.String("route", routeLabel(c)),
			slog.String("path", clientValue(c.Request.URL.Path)),
			slog.Int("status", c.Writer.Status()),
			slog.Float64("duration_ms", float64(now().Sub(start).Microseconds())/1000),
			slog.Int("bytes", c.Writer.Size()),
			slog.String("remote", clientValue(c.ClientIP())),
		)
		if u, ok := c.Get(userKey); ok {
			attrs = append(attrs, slog.Int64("user_id", u.(authUser).ID))
		}
		logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
	}
}

// recoverer turns a panic into a logged 500 problem. http.ErrAbortHandler
// is re-panicked: net/http uses it to abort a response on purpose.
func recoverer(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			logger.Error("panic serving request",
				"method", clientValue(c.Request.Method),
				"path", clientValue(c.Request.URL.Path),
				"panic", fmt.Sprint(v),
				"stack", string(debug.Stack()))
			if c.Writer.Written() {
				c.Abort()
				return
			}
			writeProblem(c, logger, fmt.Errorf("panic: %v", v))
		}()
		c.Next()
	}
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

// limitRequest refuses, before any handler parses them, a transfer-coded
// body, a query string or headers over the limits, and caps the body.
// RFC 9112 section 6.1 makes a message with both Content-Length and
// Transfer-Encoding a possible smuggling attempt, and net/http drops the
// Content-Length before handlers see it; this API's bodies are small JSON
// every client sends with a Content-Length, so every transfer-coded body
// is refused, and the connection closed so that no smuggled request
// behind the body is read.
func limitRequest() gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		headerBytes := 0
		for k, vs := range r.Header {
			for _, v := range vs {
				headerBytes += len(k) + len(v) + 4 // ": " and CRLF
			}
		}
		switch {
		case len(r.TransferEncoding) > 0:
			c.Header("Connection", "close")
			fail(c, withDetail(errInvalidInput, "Transfer-Encoding is not accepted: send the body with a Content-Length"))
		case len(r.URL.RawQuery) > maxQueryBytes:
			fail(c, errURITooLong)
		case headerBytes > maxHeaderBytes:
			fail(c, errHeaderTooLarge)
		default:
			if r.Body != nil {
				r.Body = http.MaxBytesReader(c.Writer, r.Body, maxBodyBytes)
			}
			c.Next()
		}
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
