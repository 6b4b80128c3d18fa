package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stockquote/stockquote/shared/health"
)

// addRoutes lists every route of the API in one place.
func addRoutes(
	r *gin.Engine,
	logger *slog.Logger,
	auth *tokenAuth,
	pw *passwords,
	st store,
	quotes quoteRequester,
	checks []health.Check,
	now func() time.Time,
	login *loginThrottle,
	quota *stockQuota,
	metrics http.Handler,
) {
	r.NoRoute(notFound())
	r.NoMethod(methodNotAllowed())

	// Probes: no auth.
	r.GET("/healthz", gin.WrapF(health.Live))
	r.GET("/readyz", gin.WrapF(health.Ready(logger, checks...)))
	// Prometheus scrapes, no auth: counts and latencies only, no user data.
	// nil when METRICS_ADDR serves them on a separate listener.
	if metrics != nil {
		r.GET("/metrics", gin.WrapH(metrics))
	}

	// The API's description and its interactive docs: no auth.
	files := newStaticFiles()
	r.GET("/openapi.yaml", handleOpenAPI(files))
	docs := handleDocs(files)
	r.GET("/docs", contentSecurityPolicy(docsCSP), docs)
	r.GET("/docs/:asset", contentSecurityPolicy(docsCSP), docs)

	v1 := r.Group("/api/v1")
	v1.POST("/login", handleLogin(st, pw, auth, login))

	// Any authenticated user.
	user := v1.Group("", requireUser(auth, st))
	user.GET("/stock", handleStock(quotes, st, now, quota))
	user.GET("/history", handleHistory(st))

	// Superusers only.
	admin := user.Group("", requireSuperuser())
	admin.GET("/stats", handleStats(st))
	admin.POST("/users", handleCreateUser(st, pw))
}
