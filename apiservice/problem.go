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

// Errors detected by the HTTP layer itself. Handlers wrap them with a
// message that is safe to show to the client (it becomes the detail).
var (
	// errInvalidInput: the request is malformed or fails validation (400).
	errInvalidInput = errors.New("invalid input")
	// errUnauthenticated: no valid bearer token (401 + WWW-Authenticate).
	errUnauthenticated = errors.New("unauthenticated")
	// errBadCredentials: login failed; same answer whether or not the
	// user exists (401).
	errBadCredentials = errors.New("bad credentials")
	// errForbidden: authenticated, but not allowed (403).
	errForbidden = errors.New("forbidden")
	// errRouteNotFound: no such route (404).
	errRouteNotFound = errors.New("route not found")
	// errMethodNotAllowed: the route exists for other methods (405).
	errMethodNotAllowed = errors.New("method not allowed")
	// errTooManyRequests: login attempts throttled (429 + Retry-After).
	errTooManyRequests = errors.New("too many requests")
	// errQuotaExceeded: a user's /stock quota is spent (429 + Retry-After).
	errQuotaExceeded = errors.New("quota exceeded")
	// errHeaderTooLarge: the request headers exceed the limit (431).
	errHeaderTooLarge = errors.New("request headers too large")
	// errURITooLong: the query string exceeds the limit (414).
	errURITooLong = errors.New("request URI too long")
	// errBadReply: the stock service answered something undecodable (502).
	errBadReply = errors.New("bad reply from stock service")
	// errNoAnswer: no stock service replied before the RPC deadline (503).
	errNoAnswer = errors.New("no stock service answered in time")
)

// clientError marks an error whose message is meant for the client: the
// problem detail is msg, and err selects the status.
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

// problemFor is THE mapping from errors to HTTP status and problem body.
// The boolean reports whether err is unexpected (a 500 that must be logged
// in full); its detail is then generic so internals never leak.
func problemFor(err error) (problem, bool) {
	status, detail := http.StatusInternalServerError, ""
	unexpected := false

	var ce *clientError
	if errors.As(err, &ce) {
		detail = ce.msg
	}
	var rpcErr *stockrpc.Error
	var maxBytes *http.MaxBytesError

	switch {
	case errors.Is(err, errInvalidInput), errors.Is(err, stockrpc.ErrInvalidSymbol):
		status = http.StatusBadRequest
		if detail == "" {
			detail = err.Error()
		}
	case errors.As(err, &maxBytes):
		status = http.StatusRequestEntityTooLarge
		detail = "request body too large"
	case errors.Is(err, errUnauthenticated):
		status = http.StatusUnauthorized
		if detail == "" {
			detail = "missing, invalid or expired bearer token"
		}
	case errors.Is(err, errBadCredentials):
		status = http.StatusUnauthorized
		detail = "invalid username or password"
	case errors.Is(err, errTooManyRequests):
		status, detail = http.StatusTooManyRequests, "too many failed login attempts; retry after the time in Retry-After"
	case errors.Is(err, errQuotaExceeded):
		status, detail = http.StatusTooManyRequests, "too many quote requests for this user; retry after the time in Retry-After"
	case errors.Is(err, errHeaderTooLarge):
		status, detail = http.StatusRequestHeaderFieldsTooLarge, "request headers too large"
	case errors.Is(err, errURITooLong):
		status, detail = http.StatusRequestURITooLong, "query string too long"
	case errors.Is(err, errForbidden):
		status = http.StatusForbidden
	case errors.Is(err, errRouteNotFound):
		status = http.StatusNotFound
		detail = "no such route"
	case errors.Is(err, errMethodNotAllowed):
		status = http.StatusMethodNotAllowed
		detail = "method not allowed for this route"
	case errors.As(err, &rpcErr):
		switch rpcErr.Code {
		case stockrpc.CodeInvalid:
			status, detail = http.StatusBadRequest, "invalid symbol"
		case stockrpc.CodeNotFound:
			status, detail = http.StatusNotFound, "unknown symbol"
		case stockrpc.CodeRateLimited:
			status, detail = http.StatusServiceUnavailable, "quote provider daily limit reached; try again later"
		// stooq's refusals: the detail tells the operator what to do.
		case stockrpc.CodeKeyRequired:
			status, detail = http.StatusServiceUnavailable, "stooq requires an API key: set STOOQ_API_KEY on the stock service (get a key at "+stooqKeyPage+")"
		case stockrpc.CodeKeyRejected:
			status, detail = http.StatusServiceUnavailable, "stooq rejected the API key: check STOOQ_API_KEY on the stock service, or get a new key at "+stooqKeyPage
		case stockrpc.CodeChallenge:
			status, detail = http.StatusServiceUnavailable, "stooq answered a bot challenge instead of a quote and the stock service does not solve challenges: run `stockservice check` and see docs/operations.md"
		case stockrpc.CodeOverBudget:
			status, detail = http.StatusServiceUnavailable, "the stock service's own stooq request budget (STOOQ_MAX_RPS) is spent for now: try again shortly, or raise STOOQ_MAX_RPS"
		case stockrpc.CodeUpstreamTimeout:
			status, detail = http.StatusGatewayTimeout, "quote provider did not answer in time"
		default: // upstream_error, unsupported_version, internal and codes added later
			status, detail = http.StatusBadGateway, "quote provider failed"
		}
	case errors.Is(err, errNoAnswer):
		status, detail = http.StatusServiceUnavailable, "no stock service answered in time; try again later"
	case errors.Is(err, errBadReply):
		status, detail = http.StatusBadGateway, "stock service answered garbage"
	case errors.Is(err, amqprpc.ErrUnavailable), errors.Is(err, amqprpc.ErrNoRoute), errors.Is(err, amqprpc.ErrClosed):
		status, detail = http.StatusServiceUnavailable, "stock service unavailable"
	case errors.Is(err, postgres.ErrUnavailable):
		status, detail = http.StatusServiceUnavailable, "database unavailable"
	case errors.Is(err, postgres.ErrDuplicate):
		status = http.StatusConflict
		if detail == "" {
			detail = "already exists"
		}
	case errors.Is(err, context.DeadlineExceeded):
		status, detail = http.StatusGatewayTimeout, "timed out"
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		status, detail = http.StatusServiceUnavailable, "request cancelled"
	default:
		unexpected = true
		detail = "internal error"
	}
	return problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	}, unexpected
}

// writeProblem answers err as problem+json, logging unexpected errors in
// full. It sets the RFC 6750 challenge on token failures.
func writeProblem(c *gin.Context, logger *slog.Logger, err error) {
	p, unexpected := problemFor(err)
	p.Instance = c.Request.URL.Path
	if unexpected {
		logger.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
			slog.String("method", clientValue(c.Request.Method)),
			slog.String("path", clientValue(c.Request.URL.Path)),
			slog.String("error", errorText(err)))
	} else if p.Status >= 500 {
		logger.LogAttrs(c.Request.Context(), slog.LevelWarn, "request failed",
			slog.String("method", clientValue(c.Request.Method)),
			slog.String("path", clientValue(c.Request.URL.Path)),
			slog.Int("status", p.Status),
			slog.String("error", errorText(err)))
	}
	switch {
	case errors.Is(err, errUnauthenticated):
		c.Header("WWW-Authenticate", `Bearer realm="stockquote", error="invalid_token"`)
	case errors.Is(err, errBadCredentials):
		c.Header("WWW-Authenticate", `Basic realm="stockquote", charset="UTF-8"`)
	}
	c.Header("Cache-Control", "no-store")
	c.Render(p.Status, problemRender{p})
	c.Abort()
}

// problemRender renders a problem with its own media type.
type problemRender struct{ p problem }

func (r problemRender) Render(w http.ResponseWriter) error {
	r.WriteContentType(w)
	return json.NewEncoder(w).Encode(r.p)
}

func (r problemRender) WriteContentType(w http.ResponseWriter) {
	w.Header().Set("Content-Type", problemContentType)
}

// fail records err on the context and stops the chain; the error
// middleware turns it into a problem response.
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

// maxLoggedErrorBytes bounds an error logged for a request: client values
// inside are cut already (quoteClient), this is the backstop for any that
// is not.
const maxLoggedErrorBytes = 2048

// errorText is err's message as logged: credentials masked, bounded.
func errorText(err error) string {
	s := redact.Text(err.Error())
	if len(s) > maxLoggedErrorBytes {
		s = s[:maxLoggedErrorBytes] + "...(cut)"
	}
	return s
}
