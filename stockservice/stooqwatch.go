package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockquote/stockquote/shared/stockrpc"
)

// refusals are the reasons stooq refuses to serve quotes at all.
var refusals = []stockrpc.Code{stockrpc.CodeKeyRequired, stockrpc.CodeKeyRejected, stockrpc.CodeChallenge, stockrpc.CodeRateLimited}

// stooqWatch wraps the stooq client below the cache, so it sees real
// fetches only: it counts and times them by outcome and counts refusals,
// warning when the reason changes (not per request) and noting recovery.
type stooqWatch struct {
	next     quoter
	log      *slog.Logger
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refusals *prometheus.CounterVec

	mu   sync.Mutex
	last stockrpc.Code // the current refusal; "" while stooq serves
}

// newStooqWatch registers the stooq metrics with reg, every refusal
// reason at zero so that rate() sees the first refusal.
func newStooqWatch(next quoter, reg prometheus.Registerer, log *slog.Logger) *stooqWatch {
	w := &stooqWatch{
		next: next,
		log:  log,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockquote_stooq_requests_total",
			Help: "Quote requests sent to stooq, by outcome (ok or the stockrpc error code).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stockquote_stooq_request_duration_seconds",
			Help:    "Time stooq took to answer, by outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockquote_stooq_refusals_total",
			Help: "Quote fetches stooq refused, by reason: key_required, key_rejected, challenge, rate_limited.",
		}, []string{"reason"}),
	}
	for _, reason := range refusals {
		w.refusals.WithLabelValues(string(reason))
	}
	reg.MustRegister(w.calls, w.duration, w.refusals)
	return w
}

// Quote implements quoter.
func (w *stooqWatch) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	start := time.Now()
	q, err := w.next.Quote(ctx, symbol)
	f := failure{code: "ok"}
	if err != nil {
		f = classify(err)
		trace.SpanFromContext(ctx).SetStatus(codes.Error, string(f.code))
	}
	w.calls.WithLabelValues(string(f.code)).Inc()
	w.duration.WithLabelValues(string(f.code)).Observe(time.Since(start).Seconds())

	var refusal stockrpc.Code // "" when stooq serves
	switch {
	case slices.Contains(refusals, f.code):
		refusal = f.code
		w.refusals.WithLabelValues(string(refusal)).Inc()
	case f.code != "ok" && f.code != stockrpc.CodeNotFound:
		return q, err // timeouts and other failures say nothing about refusals
	}
	w.mu.Lock()
	last := w.last
	w.last = refusal
	w.mu.Unlock()
	switch {
	case refusal == last:
	case refusal != "":
		w.log.WarnContext(ctx, "stooq refuses quotes", "reason", refusal, "previous", last, "action", f.advice)
	default:
		w.log.InfoContext(ctx, "stooq serves quotes again", "previous", last)
	}
	return q, err
}
