package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/metrics"
)

// httpMetrics counts and times requests by route (gin's route template,
// never the raw path, so the label set stays bounded), method and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

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

// routeLabel is the route template of the request, or "unmatched", so
// unknown paths do not each get a series.
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

// registerRPCClientMetrics exports the RPC client's counters.
func registerRPCClientMetrics(reg prometheus.Registerer, s *amqprpc.ClientStats) {
	c := func(name, help string, value func() uint64) {
		metrics.Counter(reg, "stockquote_rpc_client_"+name, help, value)
	}
	c("calls_total", "RPC calls made.", s.Calls.Load)
	c("replies_total", "RPC replies handed to their caller.", s.Replies.Load)
	c("timeouts_total", "RPC calls ended by their deadline or cancellation before a reply.", s.Expired.Load)
	c("late_replies_total", "Replies that came after their caller gave up (dropped).", s.LateReplies.Load)
	c("duplicate_replies_total", "Second and later replies to one request (dropped).", s.DuplicateReplies.Load)
	c("unknown_replies_total", "Replies with an unknown correlation id (dropped).", s.UnknownReplies.Load)
	c("returned_total", "Requests the broker returned as unroutable (no worker queue).", s.Returns.Load)
	c("unavailable_total", "RPC calls failed fast because the broker was unavailable.", s.Unavailable.Load)
}

// registerHistoryWriteMetrics exports the store's history write counters.
func registerHistoryWriteMetrics(reg prometheus.Registerer, s *postgres.HistoryWriteStats) {
	metrics.Counter(reg, "stockquote_db_history_statements_total", "INSERT statements that saved history rows (one or several each).",
		s.Statements.Load)
	metrics.Counter(reg, "stockquote_db_history_rows_total", "History rows saved.",
		s.Rows.Load)
	metrics.Counter(reg, "stockquote_db_history_split_total", "Multi-row INSERTs that failed for one row and were retried row by row.",
		s.Split.Load)
}
