// Package stooq is a client for stooq.com's quote endpoint
// ({base}/q/l/?s={symbol}&f=sd2t2ohlcvn&h&e=csv).
//
// stooq answers 200 whatever happens and reports failures in the body (an
// N/D row, the daily-limit text, a page asking for an API key, a bot
// challenge, other HTML or PHP warnings). The client turns each into one of
// the sentinel errors below, never into a quote, and never solves a
// challenge. The API key is added below any WrapTransport and redacted from
// every error. Programs without a tz database should import time/tzdata.
package stooq

import (
	"bytes"
	"cmp"
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
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/stockquote/stockquote/shared/stockrpc"
)

// Sentinel errors. Every error Quote returns wraps one of these,
// stockrpc.ErrInvalidSymbol, or context.Canceled when the caller gave up.
var (
	ErrNotFound    = errors.New("stooq: symbol not found")             // an N/D row
	ErrRateLimited = errors.New("stooq: daily hits limit exceeded")    // the daily quota is spent
	ErrUpstream    = errors.New("stooq: upstream error")               // failed, or not a quote
	ErrTimeout     = errors.New("stooq: timeout")                      // no answer in time
	ErrNetwork     = fmt.Errorf("%w: cannot reach stooq", ErrUpstream) // DNS, connection, TLS
	ErrKeyRequired = errors.New("stooq: API key required")             // a key page, and no key sent
	ErrKeyRejected = errors.New("stooq: API key rejected")             // an invalid-key page, or a key page although a key was sent
	ErrChallenge   = errors.New("stooq: bot challenge")                // a __verify form or proof-of-work page
	// ErrOverBudget: Options.MaxRPS had no room before the deadline; stooq was not asked.
	ErrOverBudget = errors.New("stooq: over the local request budget")
)

const (
	// Location is the time zone of stooq's dates and times.
	Location = "Europe/Warsaw"
	// headerLine is the exact header line stooq sends for f=sd2t2ohlcvn.
	headerLine = "Symbol,Date,Time,Open,High,Low,Close,Volume,Name"
	// maxBody bounds the bytes read of an answer; a quote is under 200.
	maxBody = 64 << 10
)

// Options configure a Client. The zero value of each field means its default.
type Options struct {
	BaseURL   string        // default https://stooq.com; scheme and host, optional path prefix
	Timeout   time.Duration // whole request, budget wait and body included; default 5s
	UserAgent string        // default "stockquote/1"
	APIKey    string        // sent as apikey= when set
	// MaxRPS, when positive, caps requests per second (a bucket of one second's worth):
	// a request waits for a token within its deadline, else fails with ErrOverBudget.
	MaxRPS float64
	// WrapTransport wraps the transport, to trace each request.
	WrapTransport func(http.RoundTripper) http.RoundTripper
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
	redact    *strings.Replacer // removes the API key, plain or query-escaped
	budget    *rate.Limiter     // nil: no budget
}

// New validates opts and returns a client.
func New(opts Options) (*Client, error) {
	opts.BaseURL = cmp.Or(opts.BaseURL, "https://stooq.com")
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("stooq: base url %q: want http(s)://host", opts.BaseURL)
	}
	if opts.Timeout < 0 {
		return nil, errors.New("stooq: negative timeout")
	}
	if opts.MaxRPS < 0 || math.IsNaN(opts.MaxRPS) || math.IsInf(opts.MaxRPS, 0) {
		return nil, errors.New("stooq: MaxRPS must be a finite number, 0 or more")
	}
	loc, err := time.LoadLocation(Location)
	if err != nil {
		return nil, fmt.Errorf("stooq: load time zone (import time/tzdata): %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64 // one host, a pool of workers
	var rt http.RoundTripper = transport
	redact := strings.NewReplacer()
	if opts.APIKey != "" {
		rt = keyTransport{next: rt, query: "&apikey=" + url.QueryEscape(opts.APIKey)}
		redact = strings.NewReplacer(opts.APIKey, "REDACTED", url.QueryEscape(opts.APIKey), "REDACTED")
	}
	if opts.WrapTransport != nil {
		rt = opts.WrapTransport(rt)
	}
	endpoint := base.JoinPath("q", "l", "/")
	endpoint.RawQuery, endpoint.Fragment = "", ""
	c := &Client{
		endpoint: endpoint,
		http: &http.Client{
			Transport: rt,
			// A redirect is reported, not followed: the key would go with it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		transport: transport,
		timeout:   cmp.Or(opts.Timeout, 5*time.Second),
		userAgent: cmp.Or(opts.UserAgent, "stockquote/1 (+https://github.com/stockquote/stockquote)"),
		loc:       loc,
		apiKey:    opts.APIKey,
		redact:    redact,
	}
	if opts.MaxRPS > 0 {
		c.budget = rate.NewLimiter(rate.Limit(opts.MaxRPS), int(math.Max(1, math.Ceil(opts.MaxRPS))))
	}
	return c, nil
}

// keyTransport adds the API key to each request's query, below any
// WrapTransport, so spans never record the key.
type keyTransport struct {
	next  http.RoundTripper
	query string // "&apikey=<escaped key>"
}

func (t keyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the request it is given.
	r := *req
	u := *req.URL
	u.RawQuery += t.query
	r.URL = &u
	return t.next.RoundTrip(&r)
}

// Quote fetches the latest quote of symbol.
func (c *Client) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	sym, err := stockrpc.NormalizeSymbol(symbol)
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("stooq quote: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
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
	u := *c.endpoint
	// The bare "h" cannot be written with url.Values; the symbol is escaped.
	u.RawQuery = "s=" + url.QueryEscape(sym) + "&f=sd2t2ohlcvn&h&e=csv"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return stockrpc.Quote{}, c.transportError(ctx, sym, err)
	}

	var q stockrpc.Quote
	keySent := c.apiKey != ""
	switch loc := resp.Header.Get("Location"); {
	case resp.StatusCode/100 == 3 && loc != "":
		err = fmt.Errorf("status %d, redirect to %q (point the base URL there): %w", resp.StatusCode, c.redact.Replace(loc), ErrUpstream)
	case resp.StatusCode/100 != 2:
		// A refusal page may come with an error status (401, 403, 429).
		if err = refusalPage(body, keySent); err == nil {
			err = ErrUpstream
		}
		err = fmt.Errorf("status %d: %w", resp.StatusCode, err)
	case len(body) > maxBody:
		err = fmt.Errorf("body larger than %d bytes: %w", maxBody, ErrUpstream)
	default:
		q, err = parse(body, c.loc, keySent)
		if err == nil && !strings.EqualFold(q.Symbol, sym) {
			err = fmt.Errorf("answer is for %q: %w", q.Symbol, ErrUpstream)
		}
	}
	if err != nil {
		return stockrpc.Quote{}, fmt.Errorf("stooq quote %q: %w", sym, err)
	}
	return q, nil
}

// CloseIdleConnections closes the idle keep-alive connections to stooq.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// transportError classifies a failure to get or read the response, keeping
// the cause as text with the key redacted (a *url.Error holds the URL).
func (c *Client) transportError(ctx context.Context, sym string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("stooq quote %q: %w: %w", sym, ErrTimeout, ctxErr)
		}
		return fmt.Errorf("stooq quote %q: %w", sym, ctxErr)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("stooq quote %q: %w: %s", sym, ErrTimeout, c.redact.Replace(err.Error()))
	}
	return fmt.Errorf("stooq quote %q: %w: %s", sym, ErrNetwork, c.redact.Replace(err.Error()))
}

// Parse reads one quote from a stooq CSV body (header plus one row),
// converting its date and time from loc to UTC. Any other body is an error
// wrapping one of the sentinel errors.
func Parse(body []byte, loc *time.Location) (stockrpc.Quote, error) {
	return parse(body, loc, false)
}

// parse is Parse; keySent makes a page asking for a key ErrKeyRejected.
func parse(body []byte, loc *time.Location, keySent bool) (stockrpc.Quote, error) {
	if bytes.Contains(body, []byte("Exceeded the daily hits limit")) {
		return stockrpc.Quote{}, ErrRateLimited
	}
	if err := refusalPage(body, keySent); err != nil {
		return stockrpc.Quote{}, err
	}
	row, err := csvRow(body)
	if err != nil {
		return stockrpc.Quote{}, err
	}
	return parseRow(row, loc)
}

// Markers of stooq's refusal pages, matched in the lower-cased body: what
// each page must contain to do its job, never one exact sentence.
var (
	htmlMarkers      = []string{"<html", "<!doctype html", "<head", "<body", "<form", "<script", "<meta", "<title"}
	challengeMarkers = []string{"__verify", "proof-of-work", "proof of work", "proofofwork", "crypto.subtle.digest"}
	keyMarker        = regexp.MustCompile(`api[ _-]?key`)
	invalidKeyMarker = regexp.MustCompile(`invalid|incorrect|wrong|expired|revoked|not valid|not recogni[sz]ed`)
)

// refusalPage classifies an HTML body as ErrChallenge, ErrKeyRejected or
// ErrKeyRequired; nil when it is none of these.
func refusalPage(body []byte, keySent bool) error {
	lower := bytes.ToLower(body)
	if bytes.HasPrefix(body, []byte(headerLine)) || !slices.ContainsFunc(htmlMarkers, func(m string) bool { return bytes.Contains(lower, []byte(m)) }) {
		return nil
	}
	switch {
	case slices.ContainsFunc(challengeMarkers, func(m string) bool { return bytes.Contains(lower, []byte(m)) }):
		return ErrChallenge
	case !keyMarker.Match(lower):
		return nil
	case keySent || invalidKeyMarker.Match(lower):
		return ErrKeyRejected
	default:
		return ErrKeyRequired
	}
}

// csvRow returns the data row of body, which must be stooq's header and
// exactly one row.
func csvRow(body []byte) ([]string, error) {
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = strings.Count(headerLine, ",") + 1
	recs, err := r.ReadAll()
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: not stooq csv: %v", ErrUpstream, err)
	case len(recs) == 0 || strings.Join(recs[0], ",") != headerLine:
		return nil, fmt.Errorf("%w: no stooq header", ErrUpstream)
	case len(recs) != 2:
		return nil, fmt.Errorf("%w: %d rows, want 1", ErrUpstream, len(recs)-1)
	}
	return recs[1], nil
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
	for i, dst := range []*float64{&q.Open, &q.High, &q.Low, &q.Close} {
		v, err := strconv.ParseFloat(row[3+i], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return stockrpc.Quote{}, fmt.Errorf("%w: bad price %q", ErrUpstream, row[3+i])
		}
		*dst = v
	}
	// Indices and currencies report N/D; some instruments a fractional
	// volume, of which the integer part is kept.
	if v := row[7]; v != "N/D" && v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= math.MaxInt64/2) {
			return stockrpc.Quote{}, fmt.Errorf("%w: bad volume %q", ErrUpstream, v)
		}
		q.Volume = int64(f)
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
