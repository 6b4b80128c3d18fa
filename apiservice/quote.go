package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

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
// The shared request does not depend on any one caller's context (a
// caller giving up must not fail the others); it is bounded by the RPC
// timeout. Each caller still returns as soon as its own context ends. The
// request carries the first caller's request id and trace context.
type coalescedQuotes struct {
	next   quoteRequester
	group  singleflight.Group
	joined atomic.Uint64
}

func newCoalescedQuotes(next quoteRequester) *coalescedQuotes {
	return &coalescedQuotes{next: next}
}

// Quote implements quoteRequester.
func (c *coalescedQuotes) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	led := false // set by the request's goroutine before it answers on ch
	ch := c.group.DoChan(symbol, func() (any, error) {
		led = true
		return c.next.Quote(context.WithoutCancel(ctx), symbol)
	})
	select {
	case r := <-ch:
		if !led {
			c.joined.Add(1)
		}
		if r.Err != nil {
			return stockrpc.Quote{}, r.Err
		}
		return r.Val.(stockrpc.Quote), nil
	case <-ctx.Done():
		return stockrpc.Quote{}, ctx.Err()
	}
}

// Joined counts the calls that were answered by another caller's request.
func (c *coalescedQuotes) Joined() uint64 { return c.joined.Load() }
