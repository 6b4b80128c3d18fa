package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// quoter fetches one symbol's quote: *stooq.Client, and stooqWatch
// around it.
type quoter interface {
	Quote(ctx context.Context, symbol string) (stockrpc.Quote, error)
}

// quoteSource answers a quote request and says whether it cost no stooq
// fetch of its own: *quoteCache.
type quoteSource interface {
	Quote(ctx context.Context, symbol string) (q stockrpc.Quote, cached bool, err error)
}

// handleQuote answers stockrpc requests with quotes from quotes. Every
// request gets a reply (a quote or a typed error), so callers never wait
// for silence; amqprpc drops requests whose deadline has passed before
// the handler runs.
func handleQuote(quotes quoteSource, log *slog.Logger) amqprpc.Handler {
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
			switch re.Code {
			case stockrpc.CodeNotFound, stockrpc.CodeInvalid, stockrpc.CodeOverBudget:
				level = slog.LevelInfo
			case stockrpc.CodeKeyRequired, stockrpc.CodeKeyRejected, stockrpc.CodeChallenge, stockrpc.CodeRateLimited:
				// The refusal watch warns once when stooq starts refusing
				// (see refusal.go), not once per request.
				level = slog.LevelDebug
			case stockrpc.CodeInternal:
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

// replyError maps an error to the code and message sent back on the wire.
// Messages are fixed per code: the full error (with URLs and upstream
// text) stays in this service's log.
func replyError(err error) *stockrpc.Error {
	var re *stockrpc.Error
	switch {
	case errors.As(err, &re):
		return re
	case errors.Is(err, stockrpc.ErrInvalidSymbol):
		return &stockrpc.Error{Code: stockrpc.CodeInvalid, Message: err.Error()}
	case errors.Is(err, stooq.ErrNotFound):
		return &stockrpc.Error{Code: stockrpc.CodeNotFound, Message: "stooq does not know this symbol"}
	case errors.Is(err, stooq.ErrRateLimited):
		return &stockrpc.Error{Code: stockrpc.CodeRateLimited, Message: "stooq's daily hits limit is exhausted"}
	case errors.Is(err, stooq.ErrKeyRequired):
		return &stockrpc.Error{Code: stockrpc.CodeKeyRequired, Message: "stooq requires an API key and the stock service has none (STOOQ_API_KEY is unset)"}
	case errors.Is(err, stooq.ErrKeyRejected):
		return &stockrpc.Error{Code: stockrpc.CodeKeyRejected, Message: "stooq rejected the stock service's API key (STOOQ_API_KEY)"}
	case errors.Is(err, stooq.ErrChallenge):
		return &stockrpc.Error{Code: stockrpc.CodeChallenge, Message: "stooq answered a bot challenge instead of a quote"}
	case errors.Is(err, stooq.ErrOverBudget):
		return &stockrpc.Error{Code: stockrpc.CodeOverBudget, Message: "the stock service's stooq request budget (STOOQ_MAX_RPS) had no room before the deadline"}
	case errors.Is(err, stooq.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return &stockrpc.Error{Code: stockrpc.CodeUpstreamTimeout, Message: "stooq did not answer in time"}
	case errors.Is(err, stooq.ErrUpstream):
		return &stockrpc.Error{Code: stockrpc.CodeUpstreamError, Message: "stooq failed or answered something that is not a quote"}
	default:
		return &stockrpc.Error{Code: stockrpc.CodeInternal, Message: "internal error in the stock service"}
	}
}

// encodeReply marshals r with the current version. Marshalling plain
// data cannot fail but for NaN prices, which the parser rejects; the
// fallback keeps the promise of always replying.
func encodeReply(log *slog.Logger, r stockrpc.Reply) []byte {
	r.Version = stockrpc.Version
	b, err := json.Marshal(r)
	if err != nil {
		log.Error("encode reply", "error", err)
		b, _ = json.Marshal(stockrpc.Reply{Version: stockrpc.Version, Error: &stockrpc.Error{Code: stockrpc.CodeInternal, Message: "cannot encode reply"}})
	}
	return b
}
