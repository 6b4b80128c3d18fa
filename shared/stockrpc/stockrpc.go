// Package stockrpc is the wire contract between the API service and the
// stock service: the queue, the request and reply bodies, the error codes.
// Fields and codes may be added, never renamed, retyped or reused; the
// golden-file test shows any change of the encoding as a diff.
package stockrpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// QueueName is the durable queue the stock service consumes quote requests
// from and the API service publishes them to (default exchange). The
// deployment checks read it from this line.
const QueueName = "stockrpc.quote.v1"

const (
	// Version is the message version this package writes. A receiver
	// answers a request of any other version with CodeUnsupportedVersion.
	Version = 1
	// ContentType is the AMQP content type of every request and reply.
	ContentType = "application/json"

	maxSymbolLen = 32
	symbolChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.^_-"
)

// Request asks for the latest quote of one symbol.
type Request struct {
	Version int    `json:"v"`
	Symbol  string `json:"symbol"`
}

// Reply answers a Request with either a Quote or an Error, never both.
type Reply struct {
	Version int    `json:"v"`
	Quote   *Quote `json:"quote,omitempty"`
	Error   *Error `json:"error,omitempty"`
	// Cached says stooq was not asked for this request (the answer came
	// from the worker's cache or another request's fetch): the API's
	// per-user quota of stooq fetches counts only replies without it.
	Cached bool `json:"cached,omitempty"`
}

// Quote is one symbol's latest quote as stooq reports it.
type Quote struct {
	Symbol string  `json:"symbol"` // upper-case, as stooq returns it
	Name   string  `json:"name"`
	Open   float64 `json:"open"`
	High   float64 `json:"high"`
	Low    float64 `json:"low"`
	Close  float64 `json:"close"`
	Volume int64   `json:"volume"`
	// QuotedAt is the quote's own date and time (not the request's), in UTC.
	QuotedAt time.Time `json:"quoted_at"`
}

// Code classifies a failed request. Codes are wire format: append only.
type Code string

// Error codes a Reply can carry.
const (
	// CodeInvalid: the request was malformed or the symbol is not valid.
	CodeInvalid Code = "invalid"
	// CodeNotFound: stooq does not know the symbol.
	CodeNotFound Code = "not_found"
	// CodeUpstreamError: stooq failed or answered something that is not a quote.
	CodeUpstreamError Code = "upstream_error"
	// CodeRateLimited: stooq's daily hit limit is exhausted.
	CodeRateLimited Code = "rate_limited"
	// CodeUpstreamTimeout: stooq did not answer in time.
	CodeUpstreamTimeout Code = "upstream_timeout"
	// CodeUnsupportedVersion: the request's version is not one the worker speaks.
	CodeUnsupportedVersion Code = "unsupported_version"
	// CodeInternal: the worker failed for a reason of its own.
	CodeInternal Code = "internal"
	// CodeKeyRequired: stooq asks for an API key and the worker sent none
	// (STOOQ_API_KEY is unset).
	CodeKeyRequired Code = "key_required"
	// CodeKeyRejected: stooq does not accept the API key the worker sent.
	CodeKeyRejected Code = "key_rejected"
	// CodeChallenge: stooq answered a bot challenge (an interstitial page
	// asking the client to prove it is a browser) instead of a quote.
	CodeChallenge Code = "challenge"
	// CodeOverBudget: the worker's own request budget for stooq
	// (STOOQ_MAX_RPS) had no room for the request within its deadline.
	CodeOverBudget Code = "over_budget"
)

// Error is a typed failure carried in a Reply; callers match it with
// errors.As.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// ErrInvalidSymbol reports a symbol that NormalizeSymbol rejects.
var ErrInvalidSymbol = errors.New("invalid symbol")

// NormalizeSymbol trims and lower-cases s and checks it: 1 to 32
// ASCII letters, digits and ".^_-" (stooq reads '+' and '&' as
// separators). Errors wrap ErrInvalidSymbol.
func NormalizeSymbol(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidSymbol)
	}
	if len(s) > maxSymbolLen {
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidSymbol, maxSymbolLen)
	}
	for _, c := range s {
		if !strings.ContainsRune(symbolChars, c) {
			return "", fmt.Errorf("%w: character %q not allowed (use letters, digits and .^_-)", ErrInvalidSymbol, c)
		}
	}
	return strings.ToLower(s), nil
}

// DecodeRequest parses a request body. It fails on malformed JSON,
// unknown versions and invalid symbols, with a *Error whose code says
// which; the returned request's symbol is normalized.
func DecodeRequest(body []byte) (Request, error) {
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return Request{}, &Error{Code: CodeInvalid, Message: "malformed request: " + err.Error()}
	}
	if req.Version != Version {
		return Request{}, &Error{Code: CodeUnsupportedVersion, Message: fmt.Sprintf("unsupported request version %d (want %d)", req.Version, Version)}
	}
	sym, err := NormalizeSymbol(req.Symbol)
	if err != nil {
		return Request{}, &Error{Code: CodeInvalid, Message: err.Error()}
	}
	req.Symbol = sym
	return req, nil
}

// DecodeReply parses a reply body. A reply with neither a quote nor an
// error, or of an unknown version, is an error.
func DecodeReply(body []byte) (Reply, error) {
	var r Reply
	if err := json.Unmarshal(body, &r); err != nil {
		return Reply{}, fmt.Errorf("decode reply: %w", err)
	}
	if r.Version != Version {
		return Reply{}, fmt.Errorf("decode reply: unsupported version %d", r.Version)
	}
	if (r.Quote == nil) == (r.Error == nil) {
		return Reply{}, errors.New("decode reply: want exactly one of quote and error")
	}
	return r, nil
}
