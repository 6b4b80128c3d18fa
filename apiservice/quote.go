package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
