package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// quoteRequester gets the latest quote of a normalized symbol. Its errors
// are *stockrpc.Error for failures the stock service reports, amqprpc
// sentinels, context errors, or errBadReply.
type quoteRequester interface {
	Quote(ctx context.Context, symbol string) (stockrpc.Quote, error)
}

// rpcCaller is the part of *amqprpc.Client the quote adapter uses.
type rpcCaller interface {
	Call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error)
}

// rpcQuotes asks the stock service for quotes over the RPC queue.
type rpcQuotes struct {
	rpc     rpcCaller
	queue   string
	timeout time.Duration
}

// newRPCQuotes returns a quoteRequester that calls queue (normally
// stockrpc.QueueName), each call bounded by timeout.
func newRPCQuotes(rpc rpcCaller, queue string, timeout time.Duration) *rpcQuotes {
	return &rpcQuotes{rpc: rpc, queue: queue, timeout: timeout}
}

// Quote implements quoteRequester.
func (q *rpcQuotes) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	body, err := json.Marshal(stockrpc.Request{Version: stockrpc.Version, Symbol: symbol})
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	raw, err := q.rpc.Call(ctx, q.queue, body, nil)
	if errors.Is(err, context.DeadlineExceeded) {
		// No reply at all within the deadline: no worker is consuming, or
		// all are too busy. (A slow stooq is not this case: the worker's
		// STOOQ_TIMEOUT is shorter, so it answers upstream_timeout.)
		return stockrpc.Quote{}, fmt.Errorf("call %s: %w: %w", q.queue, errNoAnswer, err)
	}
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("call %s: %w", q.queue, err)
	}
	reply, err := stockrpc.DecodeReply(raw)
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("%w: %w", errBadReply, err)
	}
	if !reply.Cached {
		markFetched(ctx)
	}
	if reply.Error != nil {
		return stockrpc.Quote{}, reply.Error
	}
	if reply.Quote.Symbol == "" {
		return stockrpc.Quote{}, fmt.Errorf("%w: quote without symbol", errBadReply)
	}
	return *reply.Quote, nil
}

// coalescedQuotes shares one quote request among the concurrent callers
// asking for the same symbol: a caller that arrives while a request for
// its symbol is in flight waits for that request's answer instead of
// sending its own. It saves a broker round trip, and the stock service's
// work, per joined caller; the stock service coalesces its stooq fetches
// the same way (across API replicas too), so the answer is the one the
// caller's own request would most likely have got. Nothing is kept once
// the request is answered: this is not a cache.
//
// The first caller sends the request on its own goroutine (a goroutine
// per request cost the API 3% of its CPU growing fresh stacks). The
// request does not end with that caller's context: it is abandoned only
// when every caller waiting for it has gone, else bounded by the RPC
// timeout. A joined caller returns as soon as its own context ends; the
// first caller, whose goroutine carries the request, returns its
// context's error once the request is over. The request carries the
// first caller's request id and trace context.
type coalescedQuotes struct {
	next   quoteRequester
	joined atomic.Uint64

	mu    sync.Mutex
	calls map[string]*quoteCall // requests in flight, by symbol
}

// quoteCall is one request in flight.
type quoteCall struct {
	symbol             string
	requestID, traceID string        // of the first caller, whose request it is
	done               chan struct{} // closed once q and err are set
	q                  stockrpc.Quote
	err                error

	waiting int                // callers still waiting, the first included; guarded by mu
	cancel  context.CancelFunc // abandons the request
}

func newCoalescedQuotes(next quoteRequester) *coalescedQuotes {
	return &coalescedQuotes{next: next, calls: map[string]*quoteCall{}}
}

// Quote implements quoteRequester.
func (c *coalescedQuotes) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	c.mu.Lock()
	if call, ok := c.calls[symbol]; ok {
		call.waiting++
		c.mu.Unlock()
		c.joined.Add(1)
		// The worker logs the first caller's request id, not this one's.
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent("joined a quote request in flight", trace.WithAttributes(
				attribute.String("stockquote.quote.request_id", call.requestID),
				attribute.String("stockquote.quote.trace_id", call.traceID)))
		}
		select {
		case <-call.done:
			return call.q, call.err
		case <-ctx.Done():
			c.leave(call)
			return stockrpc.Quote{}, gaveUp(ctx)
		}
	}
	callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	call := &quoteCall{
		symbol: symbol, done: make(chan struct{}), waiting: 1, cancel: cancel,
		requestID: logging.RequestID(ctx),
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		call.traceID = sc.TraceID().String()
	}
	c.calls[symbol] = call
	c.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { c.leave(call) })
	answered := false
	defer func() {
		// Also when next panics (recoverer answers this caller): the
		// callers waiting get an error, the next caller a new request.
		if !answered {
			call.err = fmt.Errorf("quote %s: the shared request panicked", symbol)
		}
		stop()
		cancel()
		c.mu.Lock()
		if c.calls[symbol] == call {
			delete(c.calls, symbol)
		}
		c.mu.Unlock()
		close(call.done)
	}()
	call.q, call.err = c.next.Quote(callCtx, symbol)
	answered = true
	if ctx.Err() != nil {
		return stockrpc.Quote{}, gaveUp(ctx)
	}
	return call.q, call.err
}

// gaveUp is the error of a caller whose context ended before its answer.
// A deadline means no stock service answered in time (503), as rpcQuotes
// says when the deadline is its own, not a gateway timeout.
func gaveUp(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	return err
}

// leave takes a caller that gave up off call; the last one abandons the
// request, which nobody can join from then on.
func (c *coalescedQuotes) leave(call *quoteCall) {
	c.mu.Lock()
	defer c.mu.Unlock()
	call.waiting--
	if call.waiting > 0 {
		return
	}
	call.cancel()
	if c.calls[call.symbol] == call {
		delete(c.calls, call.symbol)
	}
}

// Joined counts the calls that waited for another caller's request
// instead of sending their own.
func (c *coalescedQuotes) Joined() uint64 { return c.joined.Load() }
