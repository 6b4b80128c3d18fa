package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockquote/stockquote/shared/stockrpc"
)

// refusalAdvice says, per reason stooq refuses quotes, what the operator
// does about it. Its keys are the reasons the refusal counter knows.
var refusalAdvice = map[stockrpc.Code]string{
	stockrpc.CodeKeyRequired: "stooq requires an API key: get one at https://stooq.com/q/d/?s=spy.us&get_apikey and set STOOQ_API_KEY on the stock service",
	stockrpc.CodeKeyRejected: "stooq rejects the API key: check STOOQ_API_KEY on the stock service, or get a new key",
	stockrpc.CodeChallenge:   "stooq answers a bot challenge instead of quotes; the stock service does not solve challenges: run `stockservice check` and see docs/operations.md",
	stockrpc.CodeRateLimited: "stooq's daily hits limit is spent: quotes resume when it resets; a longer QUOTE_CACHE_TTL or STOOQ_MAX_RPS spends fewer hits",
}

// stooqWatch wraps the stooq client below the cache, so it sees real
// fetches only. It counts and times them by outcome, counts stooq's
// refusals by reason, and logs a warning when the reason changes and a
// line when stooq serves again: the operator learns at once why quotes
// fail, without a log line per request.
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
	for reason := range refusalAdvice {
		w.refusals.WithLabelValues(string(reason))
	}
	reg.MustRegister(w.calls, w.duration, w.refusals)
	return w
}

// Quote implements quoter.
func (w *stooqWatch) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	start := time.Now()
	q, err := w.next.Quote(ctx, symbol)
	outcome := "ok"
	if err != nil {
		outcome = string(replyError(err).Code)
		trace.SpanFromContext(ctx).SetStatus(codes.Error, outcome)
	}
	w.calls.WithLabelValues(outcome).Inc()
	w.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	w.watchRefusal(ctx, stockrpc.Code(outcome))
	return q, err
}

// watchRefusal records one fetch's outcome. Only a quote or stooq's "not
// found" show that stooq serves again; timeouts and other failures say
// nothing about its refusals.
func (w *stooqWatch) watchRefusal(ctx context.Context, code stockrpc.Code) {
	switch _, refused := refusalAdvice[code]; {
	case refused:
		w.refusals.WithLabelValues(string(code)).Inc()
	case code == "ok" || code == stockrpc.CodeNotFound:
		code = ""
	default:
		return
	}
	w.mu.Lock()
	last := w.last
	w.last = code
	w.mu.Unlock()
	switch {
	case code == last:
	case code != "":
		w.log.WarnContext(ctx, "stooq refuses quotes", "reason", code, "previous", last, "action", refusalAdvice[code])
	default:
		w.log.InfoContext(ctx, "stooq serves quotes again", "previous", last)
	}
}
