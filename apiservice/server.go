package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stockquote/stockquote/shared/health"
)

// store is everything the HTTP layer needs from the database; each handler
// takes only its part.
type store interface {
	rateLimiter
	userStore
	historyStore
	stockCounter
}

// serverDeps are the HTTP server's dependencies.
type serverDeps struct {
	logger *slog.Logger
	auth   *tokenAuth
	pw     *passwords
	store  store
	quotes quoteRequester
	login  *loginThrottle
	quota  *stockQuota
	checks []health.Check
	now    func() time.Time
	// trustedProxies are the IPs or CIDRs whose X-Forwarded-For is believed.
	trustedProxies []string
	metrics        *httpMetrics // nil records no HTTP metrics
	metricsHandler http.Handler // nil: /metrics has its own listener
}

// newServer builds the gin engine: problem+json for every failure, unknown
// routes and wrong methods included.
func newServer(d serverDeps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// Redirects would answer HTML, not JSON: unknown paths are plain 404s.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// Gin would otherwise believe any X-Forwarded-For.
	if err := r.SetTrustedProxies(d.trustedProxies); err != nil {
		d.logger.Error("trusted proxies ignored", "error", err)
		_ = r.SetTrustedProxies(nil)
	}
	r.Use(requestID(), requestLogger(d.logger, d.now), traceRoute())
	if d.metrics != nil {
		r.Use(d.metrics.middleware(d.now))
	}
	r.Use(
		recoverer(d.logger),
		securityHeaders(),
		errorMiddleware(d.logger),
		limitRequest(),
	)
	addRoutes(r, d)
	return r
}

// newHTTPServer returns the HTTP server serving handler, with every timeout
// set so slow or idle clients cannot hold connections forever.
func newHTTPServer(ctx context.Context, handler http.Handler, cfg config, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadHeaderTimeout + 10*time.Second,
		WriteTimeout:      cfg.RPCTimeout + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    serverMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}
