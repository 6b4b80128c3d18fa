package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/amqprpc/rpcmetrics"
	"github.com/stockquote/stockquote/shared/buildinfo"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
)

// newRegistry returns the worker's own metrics registry holding the Go
// runtime, process and build info collectors.
func newRegistry(info buildinfo.Info) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info.Collector(),
	)
	return reg
}

// serverStatser is the part of *amqprpc.Server the collector reads.
type serverStatser interface {
	Stats() amqprpc.ServerStats
}

// newRPCServerCollector returns a collector reading server.Stats() at
// each scrape.
func newRPCServerCollector(server serverStatser) *rpcmetrics.Collector[amqprpc.ServerStats] {
	type counter = rpcmetrics.Counter[amqprpc.ServerStats]
	d := func(name, help string, v func(amqprpc.ServerStats) uint64) counter {
		return counter{Name: "stockquote_rpc_server_" + name, Help: help, Value: v}
	}
	return rpcmetrics.NewCollector(server.Stats,
		d("deliveries_total", "Requests received from the queue.", func(s amqprpc.ServerStats) uint64 { return s.Deliveries }),
		d("handled_total", "Requests answered and acked.", func(s amqprpc.ServerStats) uint64 { return s.Handled }),
		d("expired_total", "Requests dropped unhandled because their deadline had passed.", func(s amqprpc.ServerStats) uint64 { return s.Expired }),
		d("panics_total", "Handler panics (request acked without a reply).", func(s amqprpc.ServerStats) uint64 { return s.Panics }),
		d("no_reply_to_total", "Requests dropped for lack of reply_to.", func(s amqprpc.ServerStats) uint64 { return s.NoReplyTo }),
		d("reply_errors_total", "Replies that could not be published (request left for redelivery).", func(s amqprpc.ServerStats) uint64 { return s.ReplyErrors }),
	)
}

// handlerMetrics time the RPC handler and count redeliveries and the
// requests in flight.
type handlerMetrics struct {
	duration     prometheus.Histogram
	inFlight     prometheus.Gauge
	redeliveries prometheus.Counter
}

// newHandlerMetrics registers the handler metrics with reg.
func newHandlerMetrics(reg prometheus.Registerer) *handlerMetrics {
	m := &handlerMetrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stockquote_rpc_server_handler_duration_seconds",
			Help:    "Time the quote handler took per request, stooq call included.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stockquote_rpc_server_in_flight",
			Help: "Requests being handled right now.",
		}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stockquote_rpc_server_redeliveries_total",
			Help: "Requests the broker delivered again (a worker died or lost its channel holding them).",
		}),
	}
	reg.MustRegister(m.duration, m.inFlight, m.redeliveries)
	return m
}

// observeHandler wraps h: it continues the caller's trace from the
// message headers in a consumer span, puts the caller's request id in the
// context (so every line logged with it names the request), records the
// handler metrics and logs one "rpc handled" line per request at debug
// level. The API already logs every request at info with the same
// request id, and failures log here at info or above, so at info a
// success costs no log write (it was 8% of this program's CPU under load).
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

// stooqMetrics count and time the calls to stooq by outcome.
type stooqMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newStooqMetrics registers the stooq metrics with reg.
func newStooqMetrics(reg prometheus.Registerer) *stooqMetrics {
	m := &stooqMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockquote_stooq_requests_total",
			Help: "Quote requests sent to stooq, by outcome (ok or the stockrpc error code).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stockquote_stooq_request_duration_seconds",
			Help:    "Time stooq took to answer, by outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.calls, m.duration)
	return m
}

// measuredQuoter counts and times each call of the quoter it wraps.
type measuredQuoter struct {
	next quoter
	m    *stooqMetrics
}

// Quote implements quoter.
func (q measuredQuoter) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	start := time.Now()
	quote, err := q.next.Quote(ctx, symbol)
	outcome := "ok"
	if err != nil {
		outcome = string(replyError(err).Code)
		trace.SpanFromContext(ctx).SetStatus(codes.Error, outcome)
	}
	q.m.calls.WithLabelValues(outcome).Inc()
	q.m.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return quote, err
}

// registerCacheMetrics exposes the quote cache's own counters, read from
// stats at each scrape, so the cache keeps one set of counters (also served
// at /debug/quotecache) and the hot path pays nothing for metrics.
func registerCacheMetrics(reg prometheus.Registerer, stats func() cacheStats) {
	counter := func(name, help string, v func(cacheStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(stats())) })
	}
	reg.MustRegister(
		counter("stockquote_quote_cache_hits_total",
			"Quote lookups answered from the worker's cache.",
			func(s cacheStats) int64 { return s.Hits }),
		counter("stockquote_quote_cache_misses_total",
			"Quote lookups the worker's cache could not answer (sent on to stooq, one per shared fetch).",
			func(s cacheStats) int64 { return s.Misses }),
		counter("stockquote_quote_cache_coalesced_total",
			"Quote lookups that joined a stooq fetch already in flight for the same symbol.",
			func(s cacheStats) int64 { return s.Coalesced }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stockquote_quote_cache_entries",
			Help: "Symbols held in the worker's quote cache.",
		}, func() float64 { return float64(stats().Entries) }),
	)
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
