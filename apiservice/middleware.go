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

// Request size limits. Above serverMaxHeaderBytes net/http itself answers
// a plain-text 431; below it, limitRequest answers problem+json.
const (
	maxHeaderBytes       = 32 << 10
	maxQueryBytes        = 16 << 10
	maxBodyBytes         = 1 << 20
	serverMaxHeaderBytes = 256 << 10
)

// requestID takes a well-formed incoming X-Request-ID or makes one, echoes
// it and puts it in the request's context for the logger and RPC client.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-ID")
		if !logging.ValidRequestID(id) {
			id = rand.Text()
		}
		c.Header("X-Request-ID", id)
		c.Request = c.Request.WithContext(logging.WithRequestID(c.Request.Context(), id))
		c.Next()
	}
}

// requestLogger logs one line per request, never its query or headers,
// where tokens could be; the logger adds the request and trace ids.
func requestLogger(logger *slog.Logger, now func() time.Time) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := now()
		c.Next()
		attrs := []slog.Attr{
			slog.String("method", clientValue(c.Request.Method)),
			slog.String("route", routeLabel(c)),
			slog.String("path", clientValue(c.Request.URL.Path)),
			slog.Int("status", c.Writer.Status()),
			slog.Float64("duration_ms", float64(now().Sub(start).Microseconds())/1000),
			slog.Int("bytes", c.Writer.Size()),
			slog.String("remote", clientValue(c.ClientIP())),
		}
		if u, ok := c.Get(userKey); ok {
			attrs = append(attrs, slog.Int64("user_id", u.(authUser).ID))
		}
		logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
	}
}

// recoverer turns a panic into a logged 500 problem, except
// http.ErrAbortHandler, which aborts a response on purpose.
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

// defaultCSP suits JSON: nothing may load, nothing may frame it.
const defaultCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// securityHeaders sets the security headers on every answer; no-store
// keeps tokens and per-user data out of caches.
func securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", defaultCSP)
		h.Set("Cache-Control", "no-store")
		c.Next()
	}
}

// limitRequest refuses a query string or headers over the limits and caps
// the body. It refuses every transfer-coded body, closing the connection:
// with a Content-Length too it may be request smuggling (RFC 9112 6.1), and
// net/http hides which; this API's small JSON bodies always have a length.
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

// maxClientValueBytes bounds every client-supplied string in a log line or
// error detail, so no request can grow the logs much.
const maxClientValueBytes = 64

// clientValue returns s cut to maxClientValueBytes at a rune boundary,
// saying how long it was.
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

// quoteClient is clientValue quoted, so it cannot forge log lines either.
func quoteClient(s string) string { return strconv.Quote(clientValue(s)) }
