// Package stooq is a client for stooq.com's quote endpoint
// ({base}/q/l/?s={symbol}&f=sd2t2ohlcvn&h&e=csv).
//
// stooq answers 200 whatever happens and reports failures in the body: an
// N/D row for an unknown symbol, the plain text "Exceeded the daily hits
// limit" when the quota is spent, an HTML page asking for an API key, a
// bot-challenge interstitial, other HTML pages or PHP warnings when it is
// unwell. The client turns each of these into one of the sentinel errors
// below, wrapped with context, and never into a quote. It never tries to
// solve a challenge: whom to serve is stooq's decision.
//
// The API key (Options.APIKey) is a secret: it is added to the query by the
// innermost transport, so wrappers (tracing) never see it, and it is
// redacted from every error the client returns.
//
// stooq's dates and times are its local time (Europe/Warsaw). The client
// needs the tz database to convert them to UTC; programs that may run
// without one (distroless images) should import time/tzdata.
package stooq

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/stockquote/stockquote/shared/stockrpc"
)

// Sentinel errors. Every error Quote returns wraps one of these, or the
// context's error when the caller's context was cancelled (not timed out),
// or stockrpc.ErrInvalidSymbol.
var (
	// ErrNotFound: stooq does not know the symbol (an N/D row).
	ErrNotFound = errors.New("stooq: symbol not found")
	// ErrRateLimited: stooq's daily hits limit is exhausted.
	ErrRateLimited = errors.New("stooq: daily hits limit exceeded")
	// ErrUpstream: stooq failed or answered something that is not a quote.
	ErrUpstream = errors.New("stooq: upstream error")
	// ErrTimeout: stooq did not answer in time.
	ErrTimeout = errors.New("stooq: timeout")
	// ErrNetwork: stooq could not be reached (DNS, connection, TLS). It
	// wraps ErrUpstream, so callers that do not care see an upstream error.
	ErrNetwork = fmt.Errorf("%w: cannot reach stooq", ErrUpstream)
	// ErrKeyRequired: stooq answered a page asking for an API key, and the
	// client sent none.
	ErrKeyRequired = errors.New("stooq: API key required")
	// ErrKeyRejected: stooq answered a page asking for an API key, or
	// saying the key is invalid, although the client sent one.
	ErrKeyRejected = errors.New("stooq: API key rejected")
	// ErrChallenge: stooq answered a bot-challenge interstitial (a
	// __verify form or a proof-of-work script) instead of a quote.
	ErrChallenge = errors.New("stooq: bot challenge")
	// ErrOverBudget: the client's own request budget (Options.MaxRPS) had
	// no room for the request before its deadline; stooq was not asked.
	ErrOverBudget = errors.New("stooq: over the local request budget")
)

// Defaults for Options.
const (
	DefaultBaseURL   = "https://stooq.com"
	DefaultTimeout   = 5 * time.Second
	DefaultUserAgent = "stockquote/1 (+https://github.com/stockquote/stockquote)"
	// Location is the time zone stooq reports dates and times in.
	Location = "Europe/Warsaw"
)

// headerLine is the exact header line stooq sends for f=sd2t2ohlcvn.
const headerLine = "Symbol,Date,Time,Open,High,Low,Close,Volume,Name"

// maxBody bounds the bytes read of an answer; a quote is under 200.
const maxBody = 64 << 10

// rateLimitText is the whole body stooq sends once the daily quota is spent.
const rateLimitText = "Exceeded the daily hits limit"

// Options configure a Client. The zero value of each field means its default.
type Options struct {
	BaseURL   string        // default DefaultBaseURL; scheme and host, optional path prefix
	Timeout   time.Duration // whole request, headers and body; default DefaultTimeout
	UserAgent string        // default DefaultUserAgent
	// WrapTransport, when set, wraps the keep-alive transport (to trace or
	// measure each request).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// APIKey, when set, is sent as apikey= on every request.
	APIKey string
	// MaxRPS, when positive, caps the requests per second this client
	// sends (a token bucket holding one second's worth); a request waits
	// for a token within its deadline, else fails with ErrOverBudget.
	MaxRPS float64
}

// Client fetches quotes from stooq. It is safe for concurrent use.
type Client struct {
	endpoint  *url.URL
	http      *http.Client
	transport *http.Transport // below the wrappers, for CloseIdleConnections
	timeout   time.Duration
	userAgent string
	loc       *time.Location
	apiKey    string
	budget    *rate.Limiter // nil: no budget
}

// New validates opts and returns a client.
func New(opts Options) (*Client, error) {
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("stooq: parse base url: %w", err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("stooq: base url %q: want http(s)://host", opts.BaseURL)
	}
	if opts.Timeout < 0 {
		return nil, errors.New("stooq: negative timeout")
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	loc, err := time.LoadLocation(Location)
	if err != nil {
		return nil, fmt.Errorf("stooq: load time zone (import time/tzdata): %w", err)
	}
	if opts.MaxRPS < 0 || math.IsNaN(opts.MaxRPS) || math.IsInf(opts.MaxRPS, 0) {
		return nil, errors.New("stooq: MaxRPS must be a finite number, 0 or more")
	}
	transport := newTransport()
	var rt http.RoundTripper = transport
	if opts.APIKey != "" {
		rt = keyTransport{next: rt, query: "&apikey=" + url.QueryEscape(opts.APIKey)}
	}
	if opts.WrapTransport != nil {
		rt = opts.WrapTransport(rt)
	}
	endpoint := base.JoinPath("q", "l") // net/url escapes; trailing slash below
	endpoint.Path += "/"
	endpoint.RawQuery = ""
	endpoint.Fragment = ""
	client := &http.Client{
		Transport: rt,
		// A redirect is reported, not followed: the key transport would
		// send the key to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &Client{endpoint: endpoint, http: client, transport: transport, timeout: opts.Timeout, userAgent: opts.UserAgent, loc: loc, apiKey: opts.APIKey}
	if opts.MaxRPS > 0 {
		c.budget = rate.NewLimiter(rate.Limit(opts.MaxRPS), int(math.Max(1, math.Ceil(opts.MaxRPS))))
	}
	return c, nil
}

// keyTransport adds the API key to each request's query. It sits below
// any WrapTransport, so spans and metrics record the URL without the key.
type keyTransport struct {
	next  http.RoundTripper
	query string // "&apikey=<escaped key>"
}

func (t keyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A shallow copy with its own URL: a RoundTripper must not modify the
	// request it is given.
	r := *req
	u := *req.URL
	u.RawQuery += t.query
	r.URL = &u
	return t.next.RoundTrip(&r)
}

// redact removes the API key, plain or query-escaped, from s.
func (c *Client) redact(s string) string {
	if c.apiKey == "" {
		return s
	}
	s = strings.ReplaceAll(s, c.apiKey, "REDACTED")
	return strings.ReplaceAll(s, url.QueryEscape(c.apiKey), "REDACTED")
}

// newTransport is a keep-alive transport sized for a worker pool that
// talks to one host.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// url returns the request URL for symbol, which must be normalized.
func (c *Client) url(symbol string) string {
	u := *c.endpoint
	// The bare "h" cannot be expressed with url.Values, so the query is
	// written by hand; the symbol is escaped so nothing can be injected.
	u.RawQuery = "s=" + url.QueryEscape(symbol) + "&f=sd2t2ohlcvn&h&e=csv"
	return u.String()
}

// Quote fetches the latest quote of symbol.
func (c *Client) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	sym, err := stockrpc.NormalizeSymbol(symbol)
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("stooq quote: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout) // budget wait, headers and body
	defer cancel()
	if c.budget != nil {
		// Wait fails at once when the token would come after the deadline.
		if err := c.budget.Wait(ctx); err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: %w", sym, ctx.Err())
			}
			return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: %w: %v", sym, ErrOverBudget, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(sym), nil)
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: %w", sym, err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "text/csv, text/plain;q=0.9, */*;q=0.1")

	resp, err := c.http.Do(req)
	if err != nil {
		return stockrpc.Quote{}, c.transportError(ctx, sym, err)
	}
	defer resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: status %d, redirect to %q (point the base URL there): %w", sym, resp.StatusCode, c.redact(loc), ErrUpstream)
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return stockrpc.Quote{}, c.transportError(ctx, sym, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// A refusal page may come with an error status (401, 403, 429).
		if err := c.refusal(body); err != nil {
			return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: status %d: %w", sym, resp.StatusCode, err)
		}
		return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: status %d: %w", sym, resp.StatusCode, ErrUpstream)
	}
	if len(body) > maxBody {
		return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: body larger than %d bytes: %w", sym, maxBody, ErrUpstream)
	}
	q, err := Parse(body, c.loc)
	if errors.Is(err, ErrKeyRequired) && c.apiKey != "" {
		err = ErrKeyRejected // asked for a key although it got one
	}
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: %w", sym, err)
	}
	if !strings.EqualFold(q.Symbol, sym) {
		return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: answer is for %q: %w", sym, q.Symbol, ErrUpstream)
	}
	return q, nil
}

// CloseIdleConnections closes the keep-alive connections to stooq that
// are idle; call it at shutdown.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// refusal classifies a body that is not a quote as one of stooq's
// refusals (Parse's rules), with the client's key taken into account;
// nil when it is none.
func (c *Client) refusal(body []byte) error {
	err := refusalPage(body)
	if errors.Is(err, ErrKeyRequired) && c.apiKey != "" {
		return ErrKeyRejected
	}
	return err
}

// transportError classifies a failure to get or read the response. The
// cause is kept as text with the key redacted (a *url.Error, say, would
// carry the whole request URL).
func (c *Client) transportError(ctx context.Context, sym string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("stooq quote %q: %w: %w", sym, ErrTimeout, ctxErr)
		}
		return fmt.Errorf("stooq quote %q: %w", sym, ctxErr)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("stooq quote %q: %w: %s", sym, ErrTimeout, c.redact(err.Error()))
	}
	return fmt.Errorf("stooq quote %q: %w: %s", sym, ErrNetwork, c.redact(err.Error()))
}

// Parse reads one quote from a stooq CSV body (header plus one row),
// converting its date and time from loc to UTC. It returns an error
// wrapping ErrNotFound for an N/D row, ErrRateLimited for the daily-limit
// text, ErrChallenge for a bot-challenge page, ErrKeyRequired for a page
// asking for an API key, ErrKeyRejected for one saying the key is invalid,
// and ErrUpstream for anything else that is not exactly a quote.
func Parse(body []byte, loc *time.Location) (stockrpc.Quote, error) {
	if loc == nil {
		loc = time.UTC
	}
	if bytes.Contains(body, []byte(rateLimitText)) {
		return stockrpc.Quote{}, ErrRateLimited
	}
	if err := refusalPage(body); err != nil {
		return stockrpc.Quote{}, err
	}
	row, err := csvRow(body)
	if err != nil {
		return stockrpc.Quote{}, err
	}
	return parseRow(row, loc)
}

// Markers of stooq's refusal pages, matched in the lower-cased body. Each
// page is recognised by what it must contain to do its job, never by one
// exact sentence, which stooq may reword at any time.
var (
	// A page in HTML at all: the key page and the challenge are.
	htmlMarkers = []string{"<html", "<!doctype html", "<head", "<body", "<form", "<script", "<meta", "<title"}
	// The challenge interstitial: its verification form or endpoint, or
	// the proof-of-work script computing a hash in the browser.
	challengeMarkers = []string{"__verify", "proof-of-work", "proof of work", "proofofwork", "crypto.subtle.digest"}
	// A page about an API key: "apikey", "api key", "api_key", "API-Key".
	keyMarker = regexp.MustCompile(`api[ _-]?key`)
	// Words of a page saying the key given is not accepted.
	invalidKeyMarker = regexp.MustCompile(`invalid|incorrect|wrong|expired|revoked|not valid|not recogni[sz]ed`)
)

// refusalPage classifies a body that is not stooq's CSV: ErrChallenge,
// ErrKeyRejected, ErrKeyRequired, or nil when it is none of these.
func refusalPage(body []byte) error {
	if bytes.HasPrefix(body, []byte(headerLine)) {
		return nil // CSV that failed to parse: not a page
	}
	lower := bytes.ToLower(body)
	html := false
	for _, m := range htmlMarkers {
		if bytes.Contains(lower, []byte(m)) {
			html = true
			break
		}
	}
	if !html {
		return nil
	}
	for _, m := range challengeMarkers {
		if bytes.Contains(lower, []byte(m)) {
			return ErrChallenge
		}
	}
	if keyMarker.Match(lower) {
		if invalidKeyMarker.Match(lower) {
			return ErrKeyRejected
		}
		return ErrKeyRequired
	}
	return nil
}

// csvRow reads the data row of body with encoding/csv, checking that body
// is stooq's header and exactly one row.
func csvRow(body []byte) ([]string, error) {
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = strings.Count(headerLine, ",") + 1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%w: not stooq csv: %v", ErrUpstream, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrUpstream)
	}
	if h := strings.Join(recs[0], ","); h != headerLine {
		return nil, fmt.Errorf("%w: unexpected header %q", ErrUpstream, h)
	}
	switch len(recs) {
	case 1:
		return nil, fmt.Errorf("%w: header without a row", ErrUpstream)
	case 2:
		return recs[1], nil
	default:
		return nil, fmt.Errorf("%w: %d rows, want 1", ErrUpstream, len(recs)-1)
	}
}

// parseRow converts one data row: Symbol,Date,Time,Open,High,Low,Close,Volume,Name.
func parseRow(row []string, loc *time.Location) (stockrpc.Quote, error) {
	sym, date, clock, closing := row[0], row[1], row[2], row[6]
	if _, err := stockrpc.NormalizeSymbol(sym); err != nil {
		return stockrpc.Quote{}, fmt.Errorf("%w: bad symbol %q", ErrUpstream, sym)
	}
	if closing == "N/D" || date == "N/D" {
		return stockrpc.Quote{}, fmt.Errorf("%w: %s", ErrNotFound, sym)
	}
	q := stockrpc.Quote{Symbol: strings.ToUpper(sym), Name: strings.TrimSpace(row[8])}
	if q.Name == "" || q.Name == "N/D" {
		q.Name = q.Symbol
	}
	fields := []struct {
		name string
		s    string
		dst  *float64
	}{{"open", row[3], &q.Open}, {"high", row[4], &q.High}, {"low", row[5], &q.Low}, {"close", closing, &q.Close}}
	for _, f := range fields {
		v, err := strconv.ParseFloat(f.s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return stockrpc.Quote{}, fmt.Errorf("%w: bad %s %q", ErrUpstream, f.name, f.s)
		}
		*f.dst = v
	}
	// Instruments without volume (indices, currencies) report N/D or 0.
	if v := row[7]; v != "N/D" && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			// Some instruments report fractional volume; keep the integer part.
			f, ferr := strconv.ParseFloat(v, 64)
			if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > math.MaxInt64/2 {
				return stockrpc.Quote{}, fmt.Errorf("%w: bad volume %q", ErrUpstream, v)
			}
			n = int64(f)
		}
		if n < 0 {
			return stockrpc.Quote{}, fmt.Errorf("%w: bad volume %q", ErrUpstream, v)
		}
		q.Volume = n
	}
	if clock == "N/D" || clock == "" {
		clock = "00:00:00"
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05", date+" "+clock, loc)
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("%w: bad date/time %q %q", ErrUpstream, date, clock)
	}
	q.QuotedAt = t.UTC()
	return q, nil
}
