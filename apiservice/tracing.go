package main

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockquote/stockquote/shared/tracing"
)

// traceRequests wraps the engine in a server span. Without an exporter
// the incoming trace context is still passed on to the logs and the RPC.
func traceRequests(h http.Handler, tp trace.TracerProvider) http.Handler {
	return otelhttp.NewHandler(h, "http.server",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(tracing.Propagator()),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
}

// traceRoute names the server span after the route gin matched.
func traceRoute() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		span := trace.SpanFromContext(c.Request.Context())
		if !span.IsRecording() {
			return
		}
		route := routeLabel(c)
		span.SetName(methodLabel(c.Request.Method) + " " + route)
		span.SetAttributes(attribute.String("http.route", route))
	}
}
