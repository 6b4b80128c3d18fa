package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stockquote/stockquote/shared/health"
)

// maxBodyBytes bounds every request body.
const maxBodyBytes = 1 << 20

// store is everything the HTTP layer needs from the database; each handler
// takes only its own small part of it.
type store interface {
	rateLimiter
	userByNamer
	userFinder
	userCreator
	historyAdder
	historyLister
	topStocker
}

// newServer builds the HTTP handler: a gin engine in release mode, with
// request logging, panic recovery, security headers, header, query and
// body limits, login throttling and problem+json errors for every
// failure, unknown routes and wrong methods included.
func newServer(
	logger *slog.Logger,
	auth *tokenAuth,
	pw *passwords,
	st store,
	quotes quoteRequester,
	checks []health.Check,
	now func() time.Time,
	opts ...serverOption,
) http.Handler {
	var set serverSettings
	for _, o := range opts {
		o(&set)
	}
	if set.login == nil {
		set.login = newLoginThrottle(defaultSecurityConfig().Login, now, st)
	}
	if set.quota == nil {
		set.quota = newStockQuota(st, defaultSecurityConfig().StockQuota, logger)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// Redirects would answer HTML, not JSON: unknown paths are plain 404s.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = false
	// The client address (login throttling, logs) is the TCP peer unless
	// the peer is a configured proxy; gin would otherwise believe any
	// X-Forwarded-For. An invalid list (config validates it) trusts no one.
	if err := r.SetTrustedProxies(set.trustedProxies); err != nil {
		logger.Error("trusted proxies ignored", "error", err)
		_ = r.SetTrustedProxies(nil)
	}

	r.Use(requestID(), requestLogger(logger, now), traceRoute())
	if set.telemetry.metrics != nil {
		r.Use(set.telemetry.metrics.middleware(now))
	}
	r.Use(
		recoverer(logger),
		securityHeaders(),
		errorMiddleware(logger),
		refuseTransferEncoding(),
		limitRequest(maxHeaderBytes, maxQueryBytes),
		limitBody(maxBodyBytes),
	)
	addRoutes(r, logger, auth, pw, st, quotes, checks, now, set.login, set.quota, set.telemetry.metricsHandler)
	return r
}

// requestLogger logs one line per request: the route template and the
// path (never the query or headers, where tokens could be; the path and
// method cut to maxClientValueBytes), the status,
// the latency in milliseconds and the user id; the logger adds the
// request id and trace ids from the context.
func requestLogger(logger *slog.Logger, now func() time.Time) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := now()
		c.Next()
		// Room for user_id: grown by append, the slice went to the heap
		// (7% of this program's allocated bytes under /stock load).
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

// limitBody caps the request body at n bytes.
func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		}
		c.Next()
	}
}

// notFound answers unknown routes.
func notFound() gin.HandlerFunc {
	return func(c *gin.Context) { fail(c, errRouteNotFound) }
}

// methodNotAllowed answers known routes asked with another method; gin
// has already set the Allow header.
func methodNotAllowed() gin.HandlerFunc {
	return func(c *gin.Context) { fail(c, errMethodNotAllowed) }
}
