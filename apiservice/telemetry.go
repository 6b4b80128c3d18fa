package main

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/metrics"
	"github.com/stockquote/stockquote/shared/tracing"
)

// requestIDHeader is the HTTP header a request id comes in and goes out in.
const requestIDHeader = "X-Request-ID"

// serverTelemetry is what newServer needs to observe requests; its zero
// value observes nothing but logs (and serves no /metrics).
type serverTelemetry struct {
	metrics *httpMetrics // nil: no HTTP metrics
	// metricsHandler serves GET /metrics on the API port; nil when
	// METRICS_ADDR moves it to its own listener.
	metricsHandler http.Handler
}

// withTelemetry gives the server its metrics and /metrics handler; without
// it the server records no metrics and serves no /metrics.
func withTelemetry(tel serverTelemetry) serverOption {
	return func(s *serverSettings) { s.telemetry = tel }
}

// httpMetrics counts and times requests by route (gin's route template,
// never the raw path, so the label set stays bounded), method and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newHTTPMetrics registers the HTTP metrics with reg.
func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockquote_http_requests_total",
			Help: "HTTP requests answered, by method, route template and status code.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stockquote_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method and route template.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// routeLabel is the route template of the request, or "unmatched" for
// unknown paths (and wrong methods), which must not each get a series.
func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// middleware records every request once it is answered.
func (m *httpMetrics) middleware(now func() time.Time) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := now()
		c.Next()
		method, route := methodLabel(c.Request.Method), routeLabel(c)
		m.requests.WithLabelValues(method, route, strconv.Itoa(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(method, route).Observe(now().Sub(start).Seconds())
	}
}

// requestID takes a well-formed incoming X-Request-ID or makes a new
// one, echoes it in the response and puts it in the request's context,
// where the logger and the RPC client find it.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(requestIDHeader)
		if !logging.ValidRequestID(id) {
			id = logging.NewRequestID()
		}
		c.Header(requestIDHeader, id)
		c.Request = c.Request.WithContext(logging.WithRequestID(c.Request.Context(), id))
		c.Next()
	}
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

// clientStatser is the part of *amqprpc.Client the RPC collector reads.
type clientStatser interface {
	Stats() amqprpc.ClientStats
}

// newRPCClientCollector returns a collector reading client.Stats() at
// each scrape.
func newRPCClientCollector(client clientStatser) *metrics.Collector[amqprpc.ClientStats] {
	type counter = metrics.Counter[amqprpc.ClientStats]
	d := func(name, help string, v func(amqprpc.ClientStats) uint64) counter {
		return counter{Name: "stockquote_rpc_client_" + name, Help: help, Value: v}
	}
	return metrics.NewCollector(client.Stats,
		d("calls_total", "RPC calls made.", func(s amqprpc.ClientStats) uint64 { return s.Calls }),
		d("replies_total", "RPC replies handed to their caller.", func(s amqprpc.ClientStats) uint64 { return s.Replies }),
		d("timeouts_total", "RPC calls ended by their deadline or cancellation before a reply.", func(s amqprpc.ClientStats) uint64 { return s.Expired }),
		d("late_replies_total", "Replies that came after their caller gave up (dropped).", func(s amqprpc.ClientStats) uint64 { return s.LateReplies }),
		d("duplicate_replies_total", "Second and later replies to one request (dropped).", func(s amqprpc.ClientStats) uint64 { return s.DuplicateReplies }),
		d("unknown_replies_total", "Replies with an unknown correlation id (dropped).", func(s amqprpc.ClientStats) uint64 { return s.UnknownReplies }),
		d("returned_total", "Requests the broker returned as unroutable (no worker queue).", func(s amqprpc.ClientStats) uint64 { return s.Returns }),
		d("unavailable_total", "RPC calls failed fast because the broker was unavailable.", func(s amqprpc.ClientStats) uint64 { return s.Unavailable }),
	)
}

// newCoalescedQuotesCollector exports how many quote requests joined
// another's RPC: calls made + joined = /stock requests that asked.
func newCoalescedQuotesCollector(q interface{ Joined() uint64 }) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "stockquote_quote_requests_coalesced_total",
		Help: "Quote requests answered by an RPC for the same symbol that another request had in flight (QUOTE_COALESCE).",
	}, func() float64 { return float64(q.Joined()) })
}

// newHistoryWriteCollector exports the store's history write counters:
// rows / statements is the mean number of /stock requests saved per
// INSERT (group commit under load).
func newHistoryWriteCollector(db interface {
	HistoryWriteStats() postgres.HistoryWriteStats
}) prometheus.Collector {
	type counter = metrics.Counter[postgres.HistoryWriteStats]
	return metrics.NewCollector(db.HistoryWriteStats,
		counter{Name: "stockquote_db_history_statements_total", Help: "INSERT statements that saved history rows (one or several each).",
			Value: func(s postgres.HistoryWriteStats) uint64 { return s.Statements }},
		counter{Name: "stockquote_db_history_rows_total", Help: "History rows saved.",
			Value: func(s postgres.HistoryWriteStats) uint64 { return s.Rows }},
		counter{Name: "stockquote_db_history_split_total", Help: "Multi-row INSERTs that failed for one row and were retried row by row.",
			Value: func(s postgres.HistoryWriteStats) uint64 { return s.Split }},
	)
}

// observedCaller wraps the RPC client: each call gets a client span, the
// request id and trace context in its AMQP headers, and its latency
// recorded by outcome.
type observedCaller struct {
	next     rpcCaller
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	duration *prometheus.HistogramVec
}

// newObservedCaller registers the RPC latency histogram with reg.
func newObservedCaller(next rpcCaller, tp trace.TracerProvider, prop propagation.TextMapPropagator, reg prometheus.Registerer) *observedCaller {
	c := &observedCaller{
		next:   next,
		tracer: tp.Tracer("github.com/stockquote/stockquote/apiservice"),
		prop:   prop,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stockquote_rpc_client_duration_seconds",
			Help:    "Time from sending an RPC request to its reply or failure, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
	}
	reg.MustRegister(c.duration)
	return c
}

// Call implements rpcCaller.
func (c *observedCaller) Call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error) {
	ctx, span := c.tracer.Start(ctx, queue+" publish", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("messaging.system", "rabbitmq"),
			attribute.String("messaging.destination.name", queue),
			attribute.String("messaging.operation.type", "send"),
		))
	defer span.End()
	h := maps.Clone(headers)
	if h == nil {
		h = make(map[string]any, 3)
	}
	if id := logging.RequestID(ctx); id != "" {
		h[amqprpc.RequestIDHeader] = id
	}
	c.prop.Inject(ctx, tracing.HeaderCarrier(h))
	start := time.Now()
	out, err := c.next.Call(ctx, queue, body, h)
	outcome := rpcOutcome(err)
	c.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, outcome)
	}
	return out, err
}

// rpcOutcome is the bounded label of a call's result.
func rpcOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, amqprpc.ErrUnavailable), errors.Is(err, amqprpc.ErrClosed):
		return "unavailable"
	case errors.Is(err, amqprpc.ErrNoRoute):
		return "no_route"
	default:
		return "error"
	}
}
