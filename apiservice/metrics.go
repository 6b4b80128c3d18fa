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

// newRPCClientCollector reads the RPC client's stats at each scrape.
func newRPCClientCollector(stats func() amqprpc.ClientStats) *metrics.Collector[amqprpc.ClientStats] {
	type counter = metrics.Counter[amqprpc.ClientStats]
	d := func(name, help string, v func(amqprpc.ClientStats) uint64) counter {
		return counter{Name: "stockquote_rpc_client_" + name, Help: help, Value: v}
	}
	return metrics.NewCollector(stats,
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

// newHistoryWriteCollector exports the store's history write counters.
func newHistoryWriteCollector(stats func() postgres.HistoryWriteStats) prometheus.Collector {
	type counter = metrics.Counter[postgres.HistoryWriteStats]
	return metrics.NewCollector(stats,
		counter{Name: "stockquote_db_history_statements_total", Help: "INSERT statements that saved history rows (one or several each).",
			Value: func(s postgres.HistoryWriteStats) uint64 { return s.Statements }},
		counter{Name: "stockquote_db_history_rows_total", Help: "History rows saved.",
			Value: func(s postgres.HistoryWriteStats) uint64 { return s.Rows }},
		counter{Name: "stockquote_db_history_split_total", Help: "Multi-row INSERTs that failed for one row and were retried row by row.",
			Value: func(s postgres.HistoryWriteStats) uint64 { return s.Split }},
	)
}
