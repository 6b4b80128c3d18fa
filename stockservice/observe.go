package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/metrics"
	"github.com/stockquote/stockquote/shared/tracing"
)

// observeHandler wraps h in a consumer span continuing the caller's trace,
// the caller's request id (so every line logged names it), metrics and a
// debug "rpc handled" line.
func observeHandler(h amqprpc.Handler, reg prometheus.Registerer, tp trace.TracerProvider, prop propagation.TextMapPropagator, log *slog.Logger) amqprpc.Handler {
	tracer := tp.Tracer("github.com/stockquote/stockquote/stockservice")
	metric := promauto.With(reg)
	duration := metric.NewHistogram(prometheus.HistogramOpts{
		Name:    "stockquote_rpc_server_handler_duration_seconds",
		Help:    "Time the quote handler took per request, stooq call included.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	inFlight := metric.NewGauge(prometheus.GaugeOpts{
		Name: "stockquote_rpc_server_in_flight",
		Help: "Requests being handled right now.",
	})
	redeliveries := metric.NewCounter(prometheus.CounterOpts{
		Name: "stockquote_rpc_server_redeliveries_total",
		Help: "Requests the broker delivered again (a worker died or lost its channel holding them).",
	})
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
			redeliveries.Inc()
		}
		inFlight.Inc()
		start := time.Now()
		body := h(ctx, msg)
		elapsed := time.Since(start)
		inFlight.Dec()
		duration.Observe(elapsed.Seconds())
		log.DebugContext(ctx, "rpc handled", "correlation_id", msg.CorrelationID, "redelivered", msg.Redelivered,
			"duration_ms", float64(elapsed.Microseconds())/1000)
		return body
	}
}

// traceTransport wraps the stooq client's transport in a client span per
// request; the client adds its API key below it, so spans never hold it.
func traceTransport(tp trace.TracerProvider, prop propagation.TextMapPropagator) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return otelhttp.NewTransport(rt,
			otelhttp.WithTracerProvider(tp),
			otelhttp.WithPropagators(prop),
			otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		)
	}
}

// registerRPCServerMetrics exports the RPC server's counters.
func registerRPCServerMetrics(reg prometheus.Registerer, s *amqprpc.ServerStats) {
	c := func(name, help string, value func() uint64) {
		metrics.Counter(reg, "stockquote_rpc_server_"+name, help, value)
	}
	c("deliveries_total", "Requests received from the queue.", s.Deliveries.Load)
	c("handled_total", "Requests answered and acked.", s.Handled.Load)
	c("expired_total", "Requests dropped unhandled because their deadline had passed.", s.Expired.Load)
	c("panics_total", "Handler panics (request acked without a reply).", s.Panics.Load)
	c("no_reply_to_total", "Requests dropped for lack of reply_to.", s.NoReplyTo.Load)
	c("reply_errors_total", "Replies that could not be published (request left for redelivery).", s.ReplyErrors.Load)
}
