package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
)

// quoteRequester gets the latest quote of a normalized symbol; fetched
// reports whether the stock service asked stooq for it.
type quoteRequester interface {
	Quote(ctx context.Context, symbol string) (q stockrpc.Quote, fetched bool, err error)
}

// rpcCaller is the part of *amqprpc.Client rpcQuotes uses.
type rpcCaller interface {
	Call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error)
}

// rpcQuotes asks the stock service for quotes over the RPC queue.
type rpcQuotes struct {
	rpc      rpcCaller
	queue    string
	timeout  time.Duration
	tracer   trace.Tracer
	duration *prometheus.HistogramVec
}

// newRPCQuotes returns an rpcQuotes calling queue, each call bounded by
// timeout, and registers its latency histogram with reg.
func newRPCQuotes(rpc rpcCaller, queue string, timeout time.Duration, tp trace.TracerProvider, reg prometheus.Registerer) *rpcQuotes {
	q := &rpcQuotes{
		rpc:     rpc,
		queue:   queue,
		timeout: timeout,
		tracer:  tp.Tracer("github.com/stockquote/stockquote/apiservice"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stockquote_rpc_client_duration_seconds",
			Help:    "Time from sending an RPC request to its reply or failure, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
	}
	reg.MustRegister(q.duration)
	return q
}

// Quote implements quoteRequester.
func (q *rpcQuotes) Quote(ctx context.Context, symbol string) (stockrpc.Quote, bool, error) {
	body, err := json.Marshal(stockrpc.Request{Version: stockrpc.Version, Symbol: symbol})
	if err != nil {
		return stockrpc.Quote{}, false, fmt.Errorf("encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	raw, err := q.call(ctx, body)
	if errors.Is(err, context.DeadlineExceeded) {
		// No worker answered; a slow stooq would be answered
		// upstream_timeout, as STOOQ_TIMEOUT is shorter.
		return stockrpc.Quote{}, false, fmt.Errorf("call %s: %w: %w", q.queue, errNoAnswer, err)
	}
	if err != nil {
		return stockrpc.Quote{}, false, fmt.Errorf("call %s: %w", q.queue, err)
	}
	reply, err := stockrpc.DecodeReply(raw)
	if err != nil {
		return stockrpc.Quote{}, false, fmt.Errorf("%w: %w", errBadReply, err)
	}
	fetched := !reply.Cached
	if reply.Error != nil {
		return stockrpc.Quote{}, fetched, reply.Error
	}
	if reply.Quote.Symbol == "" {
		return stockrpc.Quote{}, fetched, fmt.Errorf("%w: quote without symbol", errBadReply)
	}
	return *reply.Quote, fetched, nil
}

// call sends one request inside a client span, with the request id and
// trace context in its headers, and records how long it took.
func (q *rpcQuotes) call(ctx context.Context, body []byte) ([]byte, error) {
	ctx, span := q.tracer.Start(ctx, q.queue+" publish", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("messaging.system", "rabbitmq"),
			attribute.String("messaging.destination.name", q.queue),
			attribute.String("messaging.operation.type", "send"),
		))
	defer span.End()
	headers := make(map[string]any, 3)
	if id := logging.RequestID(ctx); id != "" {
		headers[amqprpc.RequestIDHeader] = id
	}
	tracing.Propagator().Inject(ctx, tracing.HeaderCarrier(headers))
	start := time.Now()
	out, err := q.rpc.Call(ctx, q.queue, body, headers)
	outcome := rpcOutcome(err)
	q.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
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

// coalescedQuotes lets concurrent requests for one symbol share one RPC
// (QUOTE_COALESCE). Nothing is kept once it is answered: not a cache.
type coalescedQuotes struct {
	next   quoteRequester
	group  singleflight.Group
	joined prometheus.Counter
}

func newCoalescedQuotes(next quoteRequester, reg prometheus.Registerer) *coalescedQuotes {
	c := &coalescedQuotes{next: next, joined: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stockquote_quote_requests_coalesced_total",
		Help: "Quote requests answered by an RPC for the same symbol that another request had in flight (QUOTE_COALESCE).",
	})}
	reg.MustRegister(c.joined)
	return c
}

// Quote implements quoteRequester. The shared RPC ignores its first
// caller's cancellation, so that caller leaving fails no one else; only
// that caller is charged a stooq fetch.
func (c *coalescedQuotes) Quote(ctx context.Context, symbol string) (stockrpc.Quote, bool, error) {
	own, fetched := false, false
	v, err, _ := c.group.Do(symbol, func() (any, error) {
		own = true
		q, f, err := c.next.Quote(context.WithoutCancel(ctx), symbol)
		fetched = f
		return q, err
	})
	if !own {
		c.joined.Inc()
	}
	q, _ := v.(stockrpc.Quote)
	return q, fetched, err
}
