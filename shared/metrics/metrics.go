// Package metrics holds what the programs' Prometheus metrics share: the
// registry with the runtime, process and build collectors, its /metrics
// handler, and counters read from the counted code at each scrape.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stockquote/stockquote/shared/buildinfo"
)

// NewRegistry returns a program's own registry holding the Go runtime and
// process collectors and stockquote_build_info = 1.
func NewRegistry(info buildinfo.Info) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "stockquote_build_info",
		Help: "Build information of the running binary; the value is always 1.",
		ConstLabels: prometheus.Labels{
			"program": info.Program, "version": info.Version, "commit": info.Commit, "goversion": info.GoVersion,
		},
	}).Set(1)
	return reg
}

// Handler serves reg in the Prometheus exposition formats.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Counter registers on reg a counter that calls value at each scrape (an
// atomic's Load, say), so counting costs the counted code nothing more.
func Counter(reg prometheus.Registerer, name, help string, value func() uint64) {
	promauto.With(reg).NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(value()) })
}
