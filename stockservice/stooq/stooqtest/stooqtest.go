// Package stooqtest is a fake of stooq.com's quote endpoint
// (GET /q/l/?s=SYMBOL&f=sd2t2ohlcvn&h&e=csv) for tests, offline runs and
// benchmarks. It answers as stooq does: status 200, CRLF line ends, the
// header and the symbol's row, or stooq's N/D row for an unknown symbol.
// It quotes AAPL.US, MSFT.US, GOOGL.US, ^SPX, NOD.US (named N/D) and
// t<1-6 digits>.us (T42.US is TEST42, priced from its number).
//
// Magic symbols answer a failure: ratelimit.test, html.test, challenge.test
// (a proof-of-work script and a POST /__verify form), keypage.test,
// badkey.test, garbage.test, error.test (status 500), phpwarning.test (PHP
// warnings before the CSV), truncated.test, huge.test (4 MiB of rows),
// slow.test (a quote after Options.SlowDelay) and notfound.test. With
// Options.RequireKey, a request without that apikey= gets the key page and
// one with another key the invalid-key page (a challenge comes first).
package stooqtest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Want converts stooq's local time; keep tests hermetic

	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// Header is the header line stooq sends, without its CRLF.
const Header = "Symbol,Date,Time,Open,High,Low,Close,Volume,Name"

// The refusal pages, modelled on the public reports of 2026 (HTML, status 200).
const (
	// KeyPage asks for an API key.
	KeyPage = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Stooq</title></head>\n<body>\n" +
		"<p>Access to CSV downloads requires an API key. Get your apikey at " +
		"<a href=\"https://stooq.com/q/d/?s=spy.us&amp;get_apikey\">stooq.com</a> and add &amp;apikey=... to the link.</p>\n" +
		"</body></html>\n"
	// BadKeyPage says the API key given is not valid.
	BadKeyPage = "<!DOCTYPE html>\n<html><head><title>Stooq</title></head>\n<body>\n" +
		"<p>Invalid apikey. Check the key or get a new one at " +
		"<a href=\"https://stooq.com/q/d/?s=spy.us&amp;get_apikey\">stooq.com</a>.</p>\n</body></html>\n"
	// ChallengePage is a proof-of-work interstitial.
	ChallengePage = "<!DOCTYPE html>\n<html><head><title>Checking your browser</title>\n" +
		"<script>\n// proof-of-work: find a nonce whose SHA-256 has the required leading zeros\n" +
		"async function solve(c,d){for(let n=0;;n++){const h=await crypto.subtle.digest('SHA-256',new TextEncoder().encode(c+n));" +
		"if(new Uint8Array(h)[0]===0&&d)return n}}\n</script></head>\n<body>\n" +
		"<form id=\"v\" method=\"POST\" action=\"/__verify\"><input type=\"hidden\" name=\"challenge\" value=\"8f14e45f\">" +
		"<input type=\"hidden\" name=\"nonce\"></form>\n<noscript>Please enable JavaScript.</noscript>\n</body></html>\n"
)

// pages are the magic symbols answered with a fixed body instead of a quote.
var pages = map[string]string{
	"ratelimit.test": "Exceeded the daily hits limit",
	"html.test":      "<!DOCTYPE html>\n<html><head><title>Stooq - Error</title></head>\n<body><h1>Service temporarily unavailable</h1></body></html>\n",
	"challenge.test": ChallengePage,
	"keypage.test":   KeyPage,
	"badkey.test":    BadKeyPage,
	"garbage.test":   "\x00\x01\x02\xff\xfe,\"unterminated\r\n\x89PNG\r\n\x1a\n",
}

// known are the fixed quotes: AAPL.US and MSFT.US in winter time (CET),
// GOOGL.US in summer time (CEST).
var known = map[string]string{
	"aapl.us":  "AAPL.US,2022-03-21,21:00:06,163.51,166.35,163.015,165.38,95752860,APPLE",
	"msft.us":  "MSFT.US,2022-01-14,22:00:11,304.18,310.82,303.75,310.2,39846368,MICROSOFT",
	"googl.us": "GOOGL.US,2023-07-03,19:00:02,120.32,121.02,119.705,120.56,13888290,ALPHABET",
	"^spx":     "^SPX,2023-07-03,19:04:41,4443.05,4454.06,4436.61,4455.59,1405697000,S&P500",
	"nod.us":   "NOD.US,2024-05-02,22:00:00,10,11,9.5,10.25,1000,N/D",
}

// generated matches the symbols quoted from their number.
var generated = regexp.MustCompile(`^t([0-9]{1,6})\.us$`)

// quoteRow returns the CSV row of a known or generated symbol (lower-case).
func quoteRow(symbol string) (string, bool) {
	if row, ok := known[symbol]; ok {
		return row, true
	}
	m := generated.FindStringSubmatch(symbol)
	if m == nil {
		return "", false
	}
	n, _ := strconv.Atoi(m[1])
	cents := 1000 + (n*7919)%99000 // 10.00 .. 999.99
	price := func(delta int) string {
		// -1 gives stooq's variable decimals (12.5, 12.05, 12).
		return strconv.FormatFloat(float64(max(cents+delta, 1))/100, 'f', -1, 64)
	}
	return fmt.Sprintf("T%s.US,2026-01-02,%02d:%02d:%02d,%s,%s,%s,%s,%d,TEST%[1]s", m[1], 15+n%7, n%60, (n*7)%60,
		price(-n%50), price(75), price(-80), price(0), 1000+n*13), true
}

// Options configure a Handler.
type Options struct {
	Latency    time.Duration // added to every answer
	SlowDelay  time.Duration // how long slow.test waits; default 30s
	RequireKey string        // the only apikey= accepted; "" accepts every request
	Challenge  bool          // answer every request with the bot challenge
}

// Handler is the fake endpoint. It is safe for concurrent use.
type Handler struct {
	mu    sync.Mutex
	opts  Options        // the setters change Latency and RequireKey
	keys  map[string]int // requests by apikey= value
	total int
}

// NewHandler returns a handler with opts.
func NewHandler(opts Options) *Handler {
	if opts.SlowDelay <= 0 {
		opts.SlowDelay = 30 * time.Second
	}
	return &Handler{opts: opts, keys: map[string]int{}}
}

// Server is a running fake stooq; point a stooq client at its URL.
type Server struct {
	*httptest.Server
	*Handler
}

// NewServer starts a fake stooq on a loopback port. Close it when done.
func NewServer(opts Options) *Server {
	h := NewHandler(opts)
	return &Server{Server: httptest.NewServer(h), Handler: h}
}

// SetRequireKey sets the only apikey= accepted; "" accepts every request.
func (h *Handler) SetRequireKey(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opts.RequireKey = key
}

// SetLatency sets the delay added to every answer.
func (h *Handler) SetLatency(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opts.Latency = d
}

// KeyHits reports how many requests carried apikey=key ("" counts the
// requests without one).
func (h *Handler) KeyHits(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.keys[key]
}

// TotalHits reports how many quote requests the handler has received.
func (h *Handler) TotalHits() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// Want returns the quote a correct client makes of the answer for symbol,
// or false for a symbol the handler does not quote.
func (h *Handler) Want(symbol string) (stockrpc.Quote, bool) {
	row, ok := quoteRow(strings.ToLower(symbol))
	loc, err := time.LoadLocation(stooq.Location)
	if !ok || err != nil {
		return stockrpc.Quote{}, false
	}
	q, err := stooq.Parse([]byte(Header+"\r\n"+row+"\r\n"), loc)
	return q, err == nil
}

// ServeHTTP answers like stooq's /q/l/ endpoint.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// Strict where stooq would answer something else, so client bugs fail.
	if r.URL.Path != "/q/l/" || q.Get("f") != "sd2t2ohlcvn" || q.Get("e") != "csv" || !q.Has("h") {
		http.Error(w, "fake stooq: want /q/l/?s=SYMBOL&f=sd2t2ohlcvn&h&e=csv", http.StatusBadRequest)
		return
	}
	symbol, key := strings.ToLower(q.Get("s")), q.Get("apikey")
	h.mu.Lock()
	opts := h.opts
	h.total++
	h.keys[key]++
	h.mu.Unlock()

	switch {
	case opts.Challenge:
		symbol = "challenge.test"
	case symbol == "challenge.test" || opts.RequireKey == "" || key == opts.RequireKey:
	case key == "":
		symbol = "keypage.test"
	default:
		symbol = "badkey.test"
	}
	if !sleep(r, opts.Latency) || (symbol == "slow.test" && !sleep(r, opts.SlowDelay)) {
		return
	}
	if page, ok := pages[symbol]; ok {
		_, _ = io.WriteString(w, page)
		return
	}
	up := strings.ToUpper(symbol)
	row, ok := quoteRow(symbol)
	switch {
	case ok:
	case strings.HasSuffix(symbol, ".test") && symbol != "notfound.test": // a failure around a quote
		row = up + ",2026-01-02,17:00:00,1.5,2,1,1.75,100," + up
	default:
		row = up + ",N/D,N/D,N/D,N/D,N/D,N/D,N/D," + up
	}
	body := Header + "\r\n" + row + "\r\n"
	switch symbol {
	case "error.test":
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
	case "phpwarning.test":
		_, _ = io.WriteString(w, "<br />\n<b>Warning</b>:  mysql_connect(): Too many connections in <b>/var/www/q/l/index.php</b> on line <b>12</b><br />\n"+body)
	case "truncated.test":
		_, _ = io.WriteString(w, body[:len(Header)+2+len(row)/2])
	case "huge.test":
		for n := 0; n < 4<<20; n += len(row) {
			if _, err := io.WriteString(w, body); err != nil {
				return
			}
			body = row + "\r\n"
		}
	default:
		_, _ = io.WriteString(w, body)
	}
}

// sleep waits d or until the client goes away; it reports whether to go on.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
