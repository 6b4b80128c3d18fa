package main

import (
	"github.com/gin-gonic/gin"

	"github.com/stockquote/stockquote/shared/health"
)

// addRoutes lists every route of the API in one place.
func addRoutes(r *gin.Engine, d serverDeps) {
	r.NoRoute(func(c *gin.Context) { fail(c, errRouteNotFound) })
	r.NoMethod(func(c *gin.Context) { fail(c, errMethodNotAllowed) })

	// Probes: no auth.
	r.GET("/healthz", gin.WrapF(health.Live))
	r.GET("/readyz", gin.WrapF(health.Ready(d.logger, d.checks...)))
	// Prometheus scrapes, no auth: counts and latencies only, no user data.
	if d.metricsHandler != nil {
		r.GET("/metrics", gin.WrapH(d.metricsHandler))
	}

	// The API's description and its interactive docs: no auth.
	files := newStaticFiles()
	r.GET("/openapi.yaml", files.handle("openapi.yaml"))
	r.GET("/docs", files.handle("docs/index.html"))
	r.GET("/docs/:asset", files.handle(""))

	v1 := r.Group("/api/v1")
	v1.POST("/login", handleLogin(d.store, d.pw, d.auth, d.login))

	// Any authenticated user; /stock without loading the user.
	v1.GET("/stock", requireToken(d.auth), handleStock(d.quotes, d.store, d.now, d.quota))
	user := v1.Group("", requireUser(d.auth, d.store))
	user.GET("/history", handleHistory(d.store))

	// Superusers only.
	admin := user.Group("", requireSuperuser())
	admin.GET("/stats", handleStats(d.store))
	admin.POST("/users", handleCreateUser(d.store, d.pw))
}
