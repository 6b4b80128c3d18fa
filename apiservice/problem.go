package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/redact"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// problemContentType is the media type of every error body (RFC 9457).
const problemContentType = "application/problem+json"

// problem is an RFC 9457 problem details body.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// Errors detected by the HTTP layer itself.
var (
	errInvalidInput     = errors.New("invalid input")
	errBodyTooLarge     = errors.New("request body too large")
	errUnauthenticated  = errors.New("unauthenticated")
	errBadCredentials   = errors.New("bad credentials") // the same whether or not the user exists
	errForbidden        = errors.New("forbidden")
	errRouteNotFound    = errors.New("route not found")
	errMethodNotAllowed = errors.New("method not allowed")
	errTooManyRequests  = errors.New("too many requests") // login attempts
	errQuotaExceeded    = errors.New("quota exceeded")    // a user's /stock quota
	errHeaderTooLarge   = errors.New("request headers too large")
	errURITooLong       = errors.New("request URI too long")
	errBadReply         = errors.New("bad reply from stock service")
	errNoAnswer         = errors.New("no stock service answered in time")
)

// clientError is err with msg, the problem detail the client sees.
type clientError struct {
	err error
	msg string
}

func (e *clientError) Error() string { return e.err.Error() + ": " + e.msg }
func (e *clientError) Unwrap() error { return e.err }

// withDetail wraps sentinel with a client-facing message.
func withDetail(sentinel error, msg string) error {
	return &clientError{err: sentinel, msg: msg}
}

// stooqKeyPage is where stooq hands out API keys (behind a CAPTCHA).
const stooqKeyPage = "https://stooq.com/q/d/?s=spy.us&get_apikey"

// problemKind is the answer to one kind of error. The client sees the
// error's withDetail message if it has one, else detail, else (for input
// errors, whose text describes only the input) the error text.
type problemKind struct {
	status int
	detail string
}

// problemKinds maps error kinds to answers; the first kind err wraps wins
// (errNoAnswer before the deadline it wraps).
var problemKinds = []struct {
	kind error
	problemKind
}{
	{errInvalidInput, problemKind{http.StatusBadRequest, ""}},
	{stockrpc.ErrInvalidSymbol, problemKind{http.StatusBadRequest, ""}},
	{errBodyTooLarge, problemKind{http.StatusRequestEntityTooLarge, "request body too large"}},
	{errUnauthenticated, problemKind{http.StatusUnauthorized, "missing, invalid or expired bearer token"}},
	// The only row a request relies on that can vanish is its user's.
	{postgres.ErrNotFound, problemKind{http.StatusUnauthorized, "invalid or expired bearer token"}},
	{errBadCredentials, problemKind{http.StatusUnauthorized, "invalid username or password"}},
	{errTooManyRequests, problemKind{http.StatusTooManyRequests, "too many failed login attempts; retry after the time in Retry-After"}},
	{errQuotaExceeded, problemKind{http.StatusTooManyRequests, "too many quote requests for this user; retry after the time in Retry-After"}},
	{errHeaderTooLarge, problemKind{http.StatusRequestHeaderFieldsTooLarge, "request headers too large"}},
	{errURITooLong, problemKind{http.StatusRequestURITooLong, "query string too long"}},
	{errForbidden, problemKind{http.StatusForbidden, ""}},
	{errRouteNotFound, problemKind{http.StatusNotFound, "no such route"}},
	{errMethodNotAllowed, problemKind{http.StatusMethodNotAllowed, "method not allowed for this route"}},
	{errNoAnswer, problemKind{http.StatusServiceUnavailable, "no stock service answered in time; try again later"}},
	{errBadReply, problemKind{http.StatusBadGateway, "stock service answered garbage"}},
	{amqprpc.ErrUnavailable, problemKind{http.StatusServiceUnavailable, "stock service unavailable"}},
	{amqprpc.ErrNoRoute, problemKind{http.StatusServiceUnavailable, "stock service unavailable"}},
	{amqprpc.ErrClosed, problemKind{http.StatusServiceUnavailable, "stock service unavailable"}},
	{postgres.ErrUnavailable, problemKind{http.StatusServiceUnavailable, "database unavailable"}},
	{postgres.ErrDuplicate, problemKind{http.StatusConflict, "username is taken"}},
	{context.DeadlineExceeded, problemKind{http.StatusGatewayTimeout, "timed out"}},
	// The client went away; nobody reads this answer.
	{context.Canceled, problemKind{http.StatusServiceUnavailable, "request cancelled"}},
}

// rpcProblems maps the stock service's error codes to answers; other codes
// are 502. stooq's refusals tell the operator what to do.
var rpcProblems = map[stockrpc.Code]problemKind{
	stockrpc.CodeInvalid:         {http.StatusBadRequest, "invalid symbol"},
	stockrpc.CodeNotFound:        {http.StatusNotFound, "unknown symbol"},
	stockrpc.CodeRateLimited:     {http.StatusServiceUnavailable, "quote provider daily limit reached; try again later"},
	stockrpc.CodeKeyRequired:     {http.StatusServiceUnavailable, "stooq requires an API key: set STOOQ_API_KEY on the stock service (get a key at " + stooqKeyPage + ")"},
	stockrpc.CodeKeyRejected:     {http.StatusServiceUnavailable, "stooq rejected the API key: check STOOQ_API_KEY on the stock service, or get a new key at " + stooqKeyPage},
	stockrpc.CodeChallenge:       {http.StatusServiceUnavailable, "stooq answered a bot challenge instead of a quote and the stock service does not solve challenges: run `stockservice check` and see docs/operations.md"},
	stockrpc.CodeOverBudget:      {http.StatusServiceUnavailable, "the stock service's own stooq request budget (STOOQ_MAX_RPS) is spent for now: try again shortly, or raise STOOQ_MAX_RPS"},
	stockrpc.CodeUpstreamTimeout: {http.StatusGatewayTimeout, "quote provider did not answer in time"},
}

// problemFor maps an error to its problem body, and reports whether it was
// unexpected (a 500 with a generic detail, logged in full).
func problemFor(err error) (problem, bool) {
	kind, known := kindOf(err)
	var ce *clientError
	switch {
	case errors.As(err, &ce):
		kind.detail = ce.msg
	case kind.detail == "":
		kind.detail = err.Error()
	}
	return problem{Type: "about:blank", Title: http.StatusText(kind.status), Status: kind.status, Detail: kind.detail}, !known
}

func kindOf(err error) (problemKind, bool) {
	var rpcErr *stockrpc.Error
	if errors.As(err, &rpcErr) {
		if k, ok := rpcProblems[rpcErr.Code]; ok {
			return k, true
		}
		return problemKind{http.StatusBadGateway, "quote provider failed"}, true
	}
	for _, k := range problemKinds {
		if errors.Is(err, k.kind) {
			return k.problemKind, true
		}
	}
	return problemKind{http.StatusInternalServerError, "internal error"}, false
}

// writeProblem answers err as problem+json, logging server-side failures,
// with the RFC 6750 challenge on token failures.
func writeProblem(c *gin.Context, logger *slog.Logger, err error) {
	p, unexpected := problemFor(err)
	p.Instance = c.Request.URL.Path
	if p.Status >= 500 {
		level := slog.LevelWarn
		if unexpected {
			level = slog.LevelError
		}
		logger.LogAttrs(c.Request.Context(), level, "request failed",
			slog.String("method", clientValue(c.Request.Method)),
			slog.String("path", clientValue(c.Request.URL.Path)),
			slog.Int("status", p.Status),
			slog.String("error", errorText(err)))
	}
	switch {
	case errors.Is(err, errBadCredentials):
		c.Header("WWW-Authenticate", `Basic realm="stockquote", charset="UTF-8"`)
	case p.Status == http.StatusUnauthorized:
		c.Header("WWW-Authenticate", `Bearer realm="stockquote", error="invalid_token"`)
	}
	body, _ := json.Marshal(p) // a struct of strings and an int always marshals
	c.Data(p.Status, problemContentType, append(body, '\n'))
	c.Abort()
}

// fail records err and stops the chain; errorMiddleware answers it.
func fail(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

// errorMiddleware answers the last error a handler recorded with fail.
func errorMiddleware(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 || c.Writer.Written() {
			return
		}
		writeProblem(c, logger, c.Errors.Last().Err)
	}
}

// maxLoggedErrorBytes bounds a logged error, whose client values should
// be cut already (quoteClient).
const maxLoggedErrorBytes = 2048

// errorText is err's message as logged: credentials masked, bounded.
func errorText(err error) string {
	s := redact.Text(err.Error())
	if len(s) > maxLoggedErrorBytes {
		s = s[:maxLoggedErrorBytes] + "...(cut)"
	}
	return s
}
