package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

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

// refusalWatch wraps the stooq client: it counts stooq's refusals by
// reason and logs a warning when the reason changes, and a line when stooq
// serves again, so the operator learns at once why quotes fail without a
// log line per request.
type refusalWatch struct {
	next     quoter
	refusals *prometheus.CounterVec
	log      *slog.Logger

	mu   sync.Mutex
	last stockrpc.Code // the current refusal; "" while stooq serves
}

// newRefusalWatch registers the refusal counter with reg, every reason at
// zero so that rate() sees the first refusal.
func newRefusalWatch(next quoter, reg prometheus.Registerer, log *slog.Logger) *refusalWatch {
	w := &refusalWatch{
		next: next,
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockquote_stooq_refusals_total",
			Help: "Quote fetches stooq refused, by reason: key_required, key_rejected, challenge, rate_limited.",
		}, []string{"reason"}),
		log: log,
	}
	for reason := range refusalAdvice {
		w.refusals.WithLabelValues(string(reason))
	}
	reg.MustRegister(w.refusals)
	return w
}

// Quote implements quoter.
func (w *refusalWatch) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	q, err := w.next.Quote(ctx, symbol)
	w.observe(ctx, err)
	return q, err
}

// observe records one fetch's outcome. Only a quote or stooq's "not
// found" show that stooq serves again; timeouts and other failures say
// nothing about its refusals.
func (w *refusalWatch) observe(ctx context.Context, err error) {
	var code stockrpc.Code
	if err != nil {
		code = replyError(err).Code
		if _, refused := refusalAdvice[code]; refused {
			w.refusals.WithLabelValues(string(code)).Inc()
		} else if code != stockrpc.CodeNotFound {
			return
		} else {
			code = ""
		}
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
