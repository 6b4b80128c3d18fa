// Package stooqtest is a fake stooq.com quote endpoint for tests, local
// offline runs and benchmarks. It answers GET /q/l/?s=...&f=sd2t2ohlcvn&h&e=csv
// exactly as stooq does: status 200, CRLF line ends, the header line, then
// one row per requested symbol (symbols joined with '+'), upper-cased, with
// prices carrying a variable number of decimals. Unknown symbols get
// stooq's N/D row.
//
// Known symbols: AAPL.US APPLE, MSFT.US MICROSOFT, GOOGL.US ALPHABET,
// ^SPX S&P500, NOD.US (whose Name is N/D), and every symbol matching t<1-6 digits>.us (T42.US is named TEST42) with a
// quote derived from its number, so load tests can use 1,000 symbols.
//
// A request for a magic symbol gets a failure instead of a quote:
//
//	ratelimit.test    body "Exceeded the daily hits limit" (status 200)
//	html.test         an HTML error page (status 200)
//	phpwarning.test   PHP warnings printed before a valid CSV answer
//	truncated.test    the CSV cut off in the middle of the row
//	garbage.test      binary garbage
//	huge.test         a valid header followed by 4 MiB of rows
//	error.test        status 500 with a plain-text body
//	slow.test         waits Options.SlowDelay (default 30s) or until the
//	                  client goes away, then answers a valid quote
//	notfound.test     the N/D row (as for any unknown symbol)
//	challenge.test    a bot-challenge interstitial: a proof-of-work script
//	                  and a POST /__verify form (status 200)
//	keypage.test      the page asking for an API key (status 200)
//	badkey.test       the page saying the API key is invalid (status 200)
//
// With Options.Challenge set, every request gets challenge.test's answer.
// With Options.RequireKey (SetRequireKey) set, a request without apikey=
// gets the key page and one with another key the invalid-key page, as
// stooq answers since it asks for keys; a challenge comes before that.
//
// Every request also waits Options.Latency (SetLatency), and every symbol
// asked for is counted (Hits).
package stooqtest

import (
	"bytes"
	"fmt"
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

// RateLimitBody is stooq's whole answer once the daily quota is spent.
const RateLimitBody = "Exceeded the daily hits limit"

// Row is one CSV row as stooq writes it. Fields are kept as text so prices
// keep exactly the decimals given.
type Row struct {
	Symbol, Date, Time, Open, High, Low, Close, Volume, Name string
}

// String renders r as a CSV line without the line end.
func (r Row) String() string {
	return strings.Join([]string{r.Symbol, r.Date, r.Time, r.Open, r.High, r.Low, r.Close, r.Volume, r.Name}, ",")
}

// defaultRows are the known symbols. AAPL.US and MSFT.US are quoted in
// winter time (CET, UTC+1), GOOGL.US in summer time (CEST, UTC+2).
func defaultRows() []Row {
	return []Row{
		{"AAPL.US", "2022-03-21", "21:00:06", "163.51", "166.35", "163.015", "165.38", "95752860", "APPLE"},
		{"MSFT.US", "2022-01-14", "22:00:11", "304.18", "310.82", "303.75", "310.2", "39846368", "MICROSOFT"},
		{"GOOGL.US", "2023-07-03", "19:00:02", "120.32", "121.02", "119.705", "120.56", "13888290", "ALPHABET"},
		{"^SPX", "2023-07-03", "19:04:41", "4443.05", "4454.06", "4436.61", "4455.59", "1405697000", "S&P500"},
		{"NOD.US", "2024-05-02", "22:00:00", "10", "11", "9.5", "10.25", "1000", "N/D"},
	}
}

// magic lists the symbols that get a failure instead of a quote; the
// symbol names the failure in ServeHTTP.
var magic = map[string]bool{
	"ratelimit.test": true, "html.test": true, "phpwarning.test": true, "truncated.test": true,
	"garbage.test": true, "huge.test": true, "error.test": true, "slow.test": true,
	"challenge.test": true, "keypage.test": true, "badkey.test": true,
}

// The refusal pages, modelled on the public reports of 2026 (see
// stooq's notes in the repository's shared docs): HTML, status 200.
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

// generated matches the symbols that get a quote derived from their number.
var generated = regexp.MustCompile(`^t([0-9]{1,6})\.us$`)

// Options configure a Handler.
type Options struct {
	Latency   time.Duration // added to every request
	SlowDelay time.Duration // how long slow.test waits; default 30s
	// RequireKey, when set, is the only apikey= the fake accepts.
	RequireKey string
	Challenge  bool // answer every request with the bot challenge
}

// Handler is the fake endpoint. It is safe for concurrent use.
type Handler struct {
	slowDelay time.Duration

	mu      sync.Mutex
	rows    map[string]Row // by lower-case symbol
	mode    string         // a magic symbol every request is answered as; "" answers quotes
	latency time.Duration
	key     string // required apikey; "" accepts any request
	keys    map[string]int
	hits    map[string]int
	total   int
}

// NewHandler returns a handler with opts.
func NewHandler(opts Options) *Handler {
	if opts.SlowDelay <= 0 {
		opts.SlowDelay = 30 * time.Second
	}
	h := &Handler{slowDelay: opts.SlowDelay, rows: map[string]Row{}, latency: opts.Latency, key: opts.RequireKey,
		keys: map[string]int{}, hits: map[string]int{}}
	if opts.Challenge {
		h.mode = "challenge.test"
	}
	for _, r := range defaultRows() {
		h.rows[strings.ToLower(r.Symbol)] = r
	}
	return h
}

// Server is a running fake stooq: an httptest.Server serving a Handler.
// Point a stooq client at its URL.
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
	h.key = key
}

// KeyHits reports how many requests carried apikey=key ("" counts the
// requests without one).
func (h *Handler) KeyHits(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.keys[key]
}

// SetLatency sets the delay added to every request.
func (h *Handler) SetLatency(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latency = d
}

// Hits reports how many requests asked for symbol (case-insensitive).
func (h *Handler) Hits(symbol string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[strings.ToLower(symbol)]
}

// TotalHits reports how many requests the handler has received.
func (h *Handler) TotalHits() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// row returns the row the handler answers for symbol, if it knows it.
func (h *Handler) row(symbol string) (Row, bool) {
	symbol = strings.ToLower(symbol)
	h.mu.Lock()
	r, ok := h.rows[symbol]
	h.mu.Unlock()
	if ok {
		return r, true
	}
	if m := generated.FindStringSubmatch(symbol); m != nil {
		return generatedRow(m[1]), true
	}
	return Row{}, false
}

// Want returns the quote a correct client makes of the handler's answer
// for symbol, or false for symbols the handler does not know.
func (h *Handler) Want(symbol string) (stockrpc.Quote, bool) {
	r, ok := h.row(symbol)
	if !ok {
		return stockrpc.Quote{}, false
	}
	loc, err := time.LoadLocation(stooq.Location)
	if err != nil {
		return stockrpc.Quote{}, false
	}
	q, err := stooq.Parse([]byte(Header+"\r\n"+r.String()+"\r\n"), loc)
	if err != nil {
		return stockrpc.Quote{}, false
	}
	return q, true
}

// generatedRow derives a deterministic quote from the digits of t<n>.us.
func generatedRow(digits string) Row {
	n, _ := strconv.Atoi(digits)   // the pattern guarantees 1-6 digits
	cents := 1000 + (n*7919)%99000 // 10.00 .. 999.99
	price := func(delta int) string {
		c := cents + delta
		if c < 1 {
			c = 1
		}
		// FormatFloat with -1 gives stooq's variable decimals (12.5, 12.05, 12).
		return strconv.FormatFloat(float64(c)/100, 'f', -1, 64)
	}
	return Row{
		Symbol: "T" + digits + ".US",
		Date:   "2026-01-02",
		Time:   fmt.Sprintf("%02d:%02d:%02d", 15+n%7, n%60, (n*7)%60),
		Open:   price(-n % 50),
		High:   price(75),
		Low:    price(-80),
		Close:  price(0),
		Volume: strconv.Itoa(1000 + n*13),
		Name:   "TEST" + digits,
	}
}

// ServeHTTP answers like stooq's /q/l/ endpoint.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/q/l/" && r.URL.Path != "/q/l" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	// The fake is strict where the real service would silently answer
	// something else, so client bugs show up as failures.
	if q.Get("f") != "sd2t2ohlcvn" || q.Get("e") != "csv" || !q.Has("h") {
		http.Error(w, "fake stooq: want f=sd2t2ohlcvn&h&e=csv", http.StatusBadRequest)
		return
	}
	// '+' joins symbols; url.Query has already decoded a literal '+' to a space.
	symbols := strings.FieldsFunc(strings.ToLower(q.Get("s")), func(c rune) bool { return c == '+' || c == ' ' })

	key := q.Get("apikey")

	h.mu.Lock()
	mode, latency, wantKey := h.mode, h.latency, h.key
	h.total++
	h.keys[key]++
	for _, s := range symbols {
		h.hits[s]++
	}
	h.mu.Unlock()

	if mode == "" {
		for _, s := range symbols {
			if magic[s] {
				mode = s
				break
			}
		}
	}
	if wantKey != "" && mode != "challenge.test" {
		switch key {
		case wantKey:
		case "":
			mode = "keypage.test"
		default:
			mode = "badkey.test"
		}
	}
	if !sleep(r, latency) {
		return
	}
	if mode == "slow.test" && !sleep(r, h.slowDelay) {
		return
	}

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch mode {
	case "ratelimit.test":
		_, _ = w.Write([]byte(RateLimitBody))
		return
	case "html.test":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!DOCTYPE html>\n<html><head><title>Stooq - Error</title></head>\n<body><h1>Service temporarily unavailable</h1></body></html>\n"))
		return
	case "challenge.test", "keypage.test", "badkey.test":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(map[string]string{"challenge.test": ChallengePage, "keypage.test": KeyPage, "badkey.test": BadKeyPage}[mode]))
		return
	case "garbage.test":
		_, _ = w.Write([]byte("\x00\x01\x02\xff\xfe,\"unterminated\r\n\x89PNG\r\n\x1a\n"))
		return
	case "error.test":
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("Internal Server Error"))
		return
	}

	var b bytes.Buffer
	if mode == "phpwarning.test" {
		b.WriteString("<br />\n<b>Warning</b>:  mysql_connect(): Too many connections in <b>/var/www/q/l/index.php</b> on line <b>12</b><br />\n")
	}
	b.WriteString(Header + "\r\n")
	for _, s := range symbols {
		if row, ok := h.row(s); ok {
			b.WriteString(row.String() + "\r\n")
			continue
		}
		if magic[s] {
			up := strings.ToUpper(s)
			b.WriteString(Row{up, "2026-01-02", "17:00:00", "1.5", "2", "1", "1.75", "100", up}.String() + "\r\n")
			continue
		}
		up := strings.ToUpper(s)
		b.WriteString(up + ",N/D,N/D,N/D,N/D,N/D,N/D,N/D," + up + "\r\n")
	}
	switch mode {
	case "truncated.test":
		body := b.Bytes()
		if i := bytes.Index(body, []byte("\r\n")); i >= 0 && len(body) > i+2 {
			body = body[:i+2+(len(body)-i-2)/2]
		}
		_, _ = w.Write(body)
	case "huge.test":
		_, _ = w.Write(b.Bytes())
		line := []byte(Row{"HUGE.TEST", "2026-01-02", "17:00:00", "1.5", "2", "1", "1.75", "100", "HUGE"}.String() + "\r\n")
		for n := 0; n < 4<<20; n += len(line) {
			if _, err := w.Write(line); err != nil {
				return
			}
		}
	default:
		_, _ = w.Write(b.Bytes())
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
