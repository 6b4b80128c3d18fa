package metrics

import "github.com/prometheus/client_golang/prometheus"

// Counter names one field of a stats snapshot S as a Prometheus counter.
type Counter[S any] struct {
	Name  string // full metric name, e.g. stockquote_rpc_client_calls_total
	Help  string
	Value func(S) uint64
}

// Collector is a prometheus.Collector that takes one snapshot of stats at
// each scrape and reports its counters, so counting costs the counted
// code nothing more.
type Collector[S any] struct {
	stats    func() S
	counters []Counter[S]
}

// NewCollector returns a collector reading stats() at each scrape (for
// example client.Stats) and reporting the given counters.
func NewCollector[S any](stats func() S, counters ...Counter[S]) *Collector[S] {
	return &Collector[S]{stats: stats, counters: counters}
}

func (k Counter[S]) desc() *prometheus.Desc { return prometheus.NewDesc(k.Name, k.Help, nil, nil) }

// Describe implements prometheus.Collector.
func (c *Collector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, k := range c.counters {
		ch <- k.desc()
	}
}

// Collect implements prometheus.Collector.
func (c *Collector[S]) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, k := range c.counters {
		ch <- prometheus.MustNewConstMetric(k.desc(), prometheus.CounterValue, float64(k.Value(s)))
	}
}
