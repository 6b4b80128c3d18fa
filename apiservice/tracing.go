package main

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceRequests wraps the engine in a server span when spans are
// exported (traceRoute names it after the route). Otherwise it only reads
// the incoming trace context, for the logs and the AMQP headers: a span
// nobody exports is not worth its cost.
func traceRequests(h http.Handler, exporting bool, tp trace.TracerProvider, prop propagation.TextMapPropagator) http.Handler {
	if !exporting {
		return extractTraceContext(h, prop)
	}
	return otelhttp.NewHandler(h, "http.server",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
}

// extractTraceContext continues an incoming W3C trace context (if any)
// in the request's context without starting a span: what the server
// needs when no tracer exports, so that log lines and the AMQP headers
// still carry the caller's trace id.
func extractTraceContext(next http.Handler, prop propagation.TextMapPropagator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") != "" {
			r = r.WithContext(prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		}
		next.ServeHTTP(w, r)
	})
}

// traceRoute names the HTTP server span (started by otelhttp around the
// engine) after the route template once gin has matched it.
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
