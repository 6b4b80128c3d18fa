package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/tracing"
)

// observeHandler wraps h: it continues the caller's trace from the
// message headers in a consumer span, puts the caller's request id in the
// context (so every line logged with it names the request), records the
// handler metrics and logs one "rpc handled" line per request at debug
// level (the API logs every request at info with the same request id).
func observeHandler(h amqprpc.Handler, m *handlerMetrics, tp trace.TracerProvider, prop propagation.TextMapPropagator, log *slog.Logger) amqprpc.Handler {
	tracer := tp.Tracer("github.com/stockquote/stockquote/stockservice")
	return func(ctx context.Context, msg amqprpc.Message) []byte {
		ctx = prop.Extract(ctx, tracing.HeaderCarrier(msg.Headers))
		if id := tracing.HeaderCarrier(msg.Headers).Get(amqprpc.RequestIDHeader); logging.ValidRequestID(id) {
			ctx = logging.WithRequestID(ctx, id)
		}
		ctx, span := tracer.Start(ctx, "stockrpc process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "rabbitmq"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.message.conversation_id", msg.CorrelationID),
				attribute.Bool("messaging.rabbitmq.redelivered", msg.Redelivered),
			))
		defer span.End()
		if msg.Redelivered {
			m.redeliveries.Inc()
		}
		m.inFlight.Inc()
		start := time.Now()
		body := h(ctx, msg)
		elapsed := time.Since(start)
		m.inFlight.Dec()
		m.duration.Observe(elapsed.Seconds())
		log.DebugContext(ctx, "rpc handled", "correlation_id", msg.CorrelationID, "redelivered", msg.Redelivered,
			"duration_ms", float64(elapsed.Microseconds())/1000)
		return body
	}
}

// traceTransport wraps the stooq client's transport in a client span per
// request. The stooq client adds its API key below this wrapper, so the
// span's URL never holds the key.
func traceTransport(tp trace.TracerProvider, prop propagation.TextMapPropagator) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return otelhttp.NewTransport(rt,
			otelhttp.WithTracerProvider(tp),
			otelhttp.WithPropagators(prop),
			otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		)
	}
}
