package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// quoter fetches one symbol's quote: *stooq.Client, or stooqWatch around it.
type quoter interface {
	Quote(ctx context.Context, symbol string) (stockrpc.Quote, error)
}

// handleQuote answers stockrpc requests with quotes from quotes. Every
// request gets a reply (a quote or a typed error), so callers never wait
// for silence.
func handleQuote(quotes *quoteCache, log *slog.Logger) amqprpc.Handler {
	return func(ctx context.Context, m amqprpc.Message) []byte {
		req, err := stockrpc.DecodeRequest(m.Body)
		if err != nil {
			log.InfoContext(ctx, "bad request", "correlation_id", m.CorrelationID, "error", err)
			return encodeReply(log, stockrpc.Reply{Error: replyError(err)})
		}
		// The deadline may pass between delivery and now; stooq's answer
		// would reach nobody, so do not spend a hit of the daily quota on it.
		if err := ctx.Err(); err != nil {
			return encodeReply(log, stockrpc.Reply{Error: replyError(err)})
		}
		start := time.Now()
		q, cached, err := quotes.Quote(ctx, req.Symbol)
		if err != nil {
			re := replyError(err)
			level := slog.LevelWarn
			switch {
			case slices.Contains(refusals, re.Code):
				level = slog.LevelDebug // stooqWatch warns once when stooq starts refusing
			case re.Code == stockrpc.CodeNotFound || re.Code == stockrpc.CodeInvalid || re.Code == stockrpc.CodeOverBudget:
				level = slog.LevelInfo
			case re.Code == stockrpc.CodeInternal:
				level = slog.LevelError
			}
			log.Log(ctx, level, "quote failed", "symbol", req.Symbol, "code", re.Code,
				"correlation_id", m.CorrelationID, "duration", time.Since(start), "error", err)
			return encodeReply(log, stockrpc.Reply{Error: re, Cached: cached})
		}
		log.DebugContext(ctx, "quote", "symbol", req.Symbol, "correlation_id", m.CorrelationID, "duration", time.Since(start))
		return encodeReply(log, stockrpc.Reply{Quote: &q, Cached: cached})
	}
}

// failure is what the worker makes of an error.
type failure struct {
	err     error
	code    stockrpc.Code
	message string // fixed per code: the full error, with URLs, stays in this service's log
	result  string // what `stockservice check` prints
	advice  string // what the operator does
}

// stooqFailures classifies the stooq client's errors, in the order they
// are tried (ErrNetwork wraps ErrUpstream).
var stooqFailures = []failure{
	{stooq.ErrNotFound, stockrpc.CodeNotFound, "stooq does not know this symbol",
		"unknown symbol", "stooq answers, but has no quote for this symbol; check it (e.g. " + checkSymbol + ")"},
	{stooq.ErrRateLimited, stockrpc.CodeRateLimited, "stooq's daily hits limit is exhausted",
		"daily limit", "stooq's daily hits limit is spent: quotes resume when it resets; a longer QUOTE_CACHE_TTL or STOOQ_MAX_RPS spends fewer hits"},
	{stooq.ErrKeyRequired, stockrpc.CodeKeyRequired, "stooq requires an API key and the stock service has none (STOOQ_API_KEY is unset)",
		"key required", "stooq requires an API key: get one at https://stooq.com/q/d/?s=spy.us&get_apikey and set STOOQ_API_KEY on the stock service"},
	{stooq.ErrKeyRejected, stockrpc.CodeKeyRejected, "stooq rejected the stock service's API key (STOOQ_API_KEY)",
		"key rejected", "stooq rejects the API key: check STOOQ_API_KEY on the stock service, or get a new key"},
	{stooq.ErrChallenge, stockrpc.CodeChallenge, "stooq answered a bot challenge instead of a quote",
		"challenge", "stooq answers a bot challenge (a browser check) instead of quotes and the stock service never solves one: run `stockservice check` later or from another network; see docs/operations.md"},
	{stooq.ErrOverBudget, stockrpc.CodeOverBudget, "the stock service's stooq request budget (STOOQ_MAX_RPS) had no room before the deadline",
		"over budget", "raise STOOQ_MAX_RPS, or QUOTE_CACHE_TTL to ask stooq less often"},
	{stooq.ErrTimeout, stockrpc.CodeUpstreamTimeout, "stooq did not answer in time",
		"timeout", "stooq did not answer within STOOQ_TIMEOUT; check the network path to STOOQ_URL, or raise STOOQ_TIMEOUT"},
	{stooq.ErrNetwork, stockrpc.CodeUpstreamError, "stooq failed or answered something that is not a quote",
		"network error", "stooq cannot be reached: check STOOQ_URL, DNS, proxies (HTTPS_PROXY) and egress rules"},
	{stooq.ErrUpstream, stockrpc.CodeUpstreamError, "stooq failed or answered something that is not a quote",
		"unexpected answer", "stooq answered something that is not a quote; the detail below says what"},
}

// classify is the one mapping from an error to its failure.
func classify(err error) failure {
	var re *stockrpc.Error
	switch {
	case errors.As(err, &re):
		return failure{code: re.Code, message: re.Message}
	case errors.Is(err, stockrpc.ErrInvalidSymbol):
		return failure{code: stockrpc.CodeInvalid, message: err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = stooq.ErrTimeout // the request's deadline passed before stooq answered
	}
	for _, f := range stooqFailures {
		if errors.Is(err, f.err) {
			return f
		}
	}
	return failure{code: stockrpc.CodeInternal, message: "internal error in the stock service",
		result: "unexpected answer", advice: "the detail below says what"}
}

// replyError is the error sent on the wire for err.
func replyError(err error) *stockrpc.Error {
	f := classify(err)
	return &stockrpc.Error{Code: f.code, Message: f.message}
}

// encodeReply marshals r with the current version. Only a NaN price (which
// the parser rejects) could fail it; the fallback still replies.
func encodeReply(log *slog.Logger, r stockrpc.Reply) []byte {
	r.Version = stockrpc.Version
	b, err := json.Marshal(r)
	if err != nil {
		log.Error("encode reply", "error", err)
		b, _ = json.Marshal(stockrpc.Reply{Version: stockrpc.Version, Error: &stockrpc.Error{Code: stockrpc.CodeInternal, Message: "cannot encode reply"}})
	}
	return b
}
