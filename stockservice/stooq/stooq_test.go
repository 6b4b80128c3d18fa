package stooq_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

func newClient(t testing.TB, baseURL string, opts stooq.Options) *stooq.Client {
	t.Helper()
	opts.BaseURL = baseURL
	c, err := stooq.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestQuoteAgainstFake(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{SlowDelay: 5 * time.Second})
	defer fake.Close()
	c := newClient(t, fake.URL, stooq.Options{Timeout: 300 * time.Millisecond})

	tests := []struct {
		symbol  string
		want    stockrpc.Quote
		wantErr error
	}{
		{symbol: "aapl.us", want: stockrpc.Quote{Symbol: "AAPL.US", Name: "APPLE", Open: 163.51, High: 166.35, Low: 163.015, Close: 165.38, Volume: 95752860,
			QuotedAt: time.Date(2022, 3, 21, 20, 0, 6, 0, time.UTC)}}, // CET = UTC+1
		{symbol: " MSFT.us ", want: stockrpc.Quote{Symbol: "MSFT.US", Name: "MICROSOFT", Open: 304.18, High: 310.82, Low: 303.75, Close: 310.2, Volume: 39846368,
			QuotedAt: time.Date(2022, 1, 14, 21, 0, 11, 0, time.UTC)}},
		{symbol: "googl.us", want: stockrpc.Quote{Symbol: "GOOGL.US", Name: "ALPHABET", Open: 120.32, High: 121.02, Low: 119.705, Close: 120.56, Volume: 13888290,
			QuotedAt: time.Date(2023, 7, 3, 17, 0, 2, 0, time.UTC)}}, // CEST = UTC+2
		{symbol: "^spx", want: stockrpc.Quote{Symbol: "^SPX", Name: "S&P500", Open: 4443.05, High: 4454.06, Low: 4436.61, Close: 4455.59, Volume: 1405697000,
			QuotedAt: time.Date(2023, 7, 3, 17, 4, 41, 0, time.UTC)}},
		{symbol: "nod.us", want: stockrpc.Quote{Symbol: "NOD.US", Name: "NOD.US", Open: 10, High: 11, Low: 9.5, Close: 10.25, Volume: 1000,
			QuotedAt: time.Date(2024, 5, 2, 20, 0, 0, 0, time.UTC)}},
		{symbol: "phpwarning.test", wantErr: stooq.ErrUpstream},
		{symbol: "appl.us", wantErr: stooq.ErrNotFound},
		{symbol: "notfound.test", wantErr: stooq.ErrNotFound},
		{symbol: "ratelimit.test", wantErr: stooq.ErrRateLimited},
		{symbol: "html.test", wantErr: stooq.ErrUpstream},
		{symbol: "truncated.test", wantErr: stooq.ErrUpstream},
		{symbol: "garbage.test", wantErr: stooq.ErrUpstream},
		{symbol: "huge.test", wantErr: stooq.ErrUpstream},
		{symbol: "error.test", wantErr: stooq.ErrUpstream},
		{symbol: "slow.test", wantErr: stooq.ErrTimeout},
		{symbol: "challenge.test", wantErr: stooq.ErrChallenge},
		{symbol: "keypage.test", wantErr: stooq.ErrKeyRequired},
		{symbol: "badkey.test", wantErr: stooq.ErrKeyRejected},
		{symbol: "aapl.us+msft.us", wantErr: stockrpc.ErrInvalidSymbol},
		{symbol: "aapl.us&f=x", wantErr: stockrpc.ErrInvalidSymbol},
		{symbol: "", wantErr: stockrpc.ErrInvalidSymbol},
	}
	for _, tt := range tests {
		t.Run(tt.symbol, func(t *testing.T) {
			got, err := c.Quote(context.Background(), tt.symbol)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Quote(%q) error = %v, want %v", tt.symbol, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Quote(%q): %v", tt.symbol, err)
			}
			if got != tt.want {
				t.Errorf("Quote(%q) = %+v, want %+v", tt.symbol, got, tt.want)
			}
		})
	}
}

func TestQuoteGeneratedSymbols(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{})
	defer fake.Close()
	c := newClient(t, fake.URL, stooq.Options{})

	var wg sync.WaitGroup
	for i := range 200 {
		sym := "t" + strconv.Itoa(i) + ".us"
		wg.Go(func() {
			got, err := c.Quote(context.Background(), sym)
			if err != nil {
				t.Errorf("Quote(%q): %v", sym, err)
				return
			}
			want, ok := fake.Want(sym)
			if !ok || got != want {
				t.Errorf("Quote(%q) = %+v, want %+v (%v)", sym, got, want, ok)
			}
		})
	}
	wg.Wait()
	if got := fake.TotalHits(); got != 200 {
		t.Errorf("TotalHits = %d, want 200", got)
	}
}

func TestQuoteRequest(t *testing.T) {
	var mu sync.Mutex
	var gotURL, gotUA string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotURL, gotUA = r.URL.String(), r.UserAgent()
		mu.Unlock()
		_, _ = w.Write([]byte(stooqtest.Header + "\r\n^DJI,2022-03-21,22:00:00,1,2,0.5,1.5,N/D,DOW\r\n"))
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/prefix", stooq.Options{UserAgent: "test-agent"})

	q, err := c.Quote(context.Background(), "^DJI")
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	if q.Volume != 0 || q.Close != 1.5 {
		t.Errorf("quote = %+v, want volume 0 close 1.5", q)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "/prefix/q/l/?s=%5Edji&f=sd2t2ohlcvn&h&e=csv"; gotURL != want {
		t.Errorf("request URL = %q, want %q", gotURL, want)
	}
	if gotUA != "test-agent" {
		t.Errorf("User-Agent = %q, want test-agent", gotUA)
	}
}

func TestQuoteWrongSymbolAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(stooqtest.Header + "\r\nMSFT.US,2022-03-21,22:00:00,1,2,0.5,1.5,10,MICROSOFT\r\n"))
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, stooq.Options{})
	if _, err := c.Quote(context.Background(), "aapl.us"); !errors.Is(err, stooq.ErrUpstream) {
		t.Errorf("error = %v, want ErrUpstream", err)
	}
}

func TestQuoteRedirectNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		http.Redirect(w, r, "/moved/q/l/?"+r.URL.RawQuery, http.StatusMovedPermanently)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, stooq.Options{})
	_, err := c.Quote(context.Background(), "aapl.us")
	if !errors.Is(err, stooq.ErrUpstream) || !strings.Contains(err.Error(), "/moved/q/l/") {
		t.Errorf("error = %v, want ErrUpstream naming the redirect target", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 {
		t.Errorf("requests = %q, want one (the redirect not followed)", paths)
	}
}

func TestQuoteTimeoutCoversBody(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(stooqtest.Header + "\r\n"))
		w.(http.Flusher).Flush()
		select { // the row never comes in time
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(t, srv.URL, stooq.Options{Timeout: 100 * time.Millisecond})
	if _, err := c.Quote(context.Background(), "aapl.us"); !errors.Is(err, stooq.ErrTimeout) {
		t.Errorf("error = %v, want ErrTimeout", err)
	}
}

func TestQuoteContext(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{SlowDelay: 5 * time.Second})
	defer fake.Close()
	c := newClient(t, fake.URL, stooq.Options{Timeout: 10 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Quote(ctx, "slow.test"); !errors.Is(err, stooq.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: error = %v, want ErrTimeout and DeadlineExceeded", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Quote(ctx, "aapl.us"); !errors.Is(err, context.Canceled) || errors.Is(err, stooq.ErrTimeout) {
		t.Errorf("cancelled: error = %v, want context.Canceled only", err)
	}
}

func TestQuoteUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := newClient(t, url, stooq.Options{})
	if _, err := c.Quote(context.Background(), "aapl.us"); !errors.Is(err, stooq.ErrNetwork) || !errors.Is(err, stooq.ErrUpstream) {
		t.Errorf("error = %v, want ErrNetwork, an ErrUpstream", err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		opts    stooq.Options
		wantErr bool
	}{
		{"defaults", stooq.Options{}, false},
		{"http", stooq.Options{BaseURL: "http://127.0.0.1:8089"}, false},
		{"no scheme", stooq.Options{BaseURL: "stooq.com"}, true},
		{"ftp", stooq.Options{BaseURL: "ftp://stooq.com"}, true},
		{"negative timeout", stooq.Options{Timeout: -1}, true},
		{"budget", stooq.Options{MaxRPS: 0.5}, false},
		{"negative budget", stooq.Options{MaxRPS: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stooq.New(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Errorf("New(%+v) error = %v, want error %v", tt.opts, err, tt.wantErr)
			}
		})
	}
}
