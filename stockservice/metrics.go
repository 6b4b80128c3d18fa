package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/metrics"
)

// newRPCServerCollector returns a collector reading stats (the server's
// counters) at each scrape.
func newRPCServerCollector(stats func() amqprpc.ServerStats) *metrics.Collector[amqprpc.ServerStats] {
	type s = amqprpc.ServerStats
	d := func(name, help string, v func(s) uint64) metrics.Counter[s] {
		return metrics.Counter[s]{Name: "stockquote_rpc_server_" + name, Help: help, Value: v}
	}
	return metrics.NewCollector(stats,
		d("deliveries_total", "Requests received from the queue.", func(s s) uint64 { return s.Deliveries }),
		d("handled_total", "Requests answered and acked.", func(s s) uint64 { return s.Handled }),
		d("expired_total", "Requests dropped unhandled because their deadline had passed.", func(s s) uint64 { return s.Expired }),
		d("panics_total", "Handler panics (request acked without a reply).", func(s s) uint64 { return s.Panics }),
		d("no_reply_to_total", "Requests dropped for lack of reply_to.", func(s s) uint64 { return s.NoReplyTo }),
		d("reply_errors_total", "Replies that could not be published (request left for redelivery).", func(s s) uint64 { return s.ReplyErrors }),
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

// registerCacheMetrics exposes the quote cache's own counters, read from
// stats at each scrape, so the hot path pays nothing for metrics.
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
