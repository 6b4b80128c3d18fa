package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingQuoter answers from fn and counts calls per symbol.
type countingQuoter struct {
	mu    sync.Mutex
	calls map[string]int
	fn    func(ctx context.Context, symbol string) (stockrpc.Quote, error)
}

func (q *countingQuoter) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	q.mu.Lock()
	if q.calls == nil {
		q.calls = map[string]int{}
	}
	q.calls[symbol]++
	q.mu.Unlock()
	return q.fn(ctx, symbol)
}

func (q *countingQuoter) count(symbol string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls[symbol]
}

func TestQuoteCacheReuse(t *testing.T) {
	errFlaky := fmt.Errorf("%w: 500", stooq.ErrUpstream)
	answer := func(_ context.Context, symbol string) (stockrpc.Quote, error) {
		switch symbol {
		case "NOSUCH.US":
			return stockrpc.Quote{}, fmt.Errorf("%w: %s", stooq.ErrNotFound, symbol)
		case "FLAKY.US":
			return stockrpc.Quote{}, errFlaky
		case "LIMIT.US":
			return stockrpc.Quote{}, stooq.ErrRateLimited
		case "NOKEY.US":
			return stockrpc.Quote{}, stooq.ErrKeyRequired
		case "BADKEY.US":
			return stockrpc.Quote{}, stooq.ErrKeyRejected
		case "CHALLENGE.US":
			return stockrpc.Quote{}, stooq.ErrChallenge
		case "BUDGET.US":
			return stockrpc.Quote{}, stooq.ErrOverBudget
		}
		return stockrpc.Quote{Symbol: symbol, Close: 1.5}, nil
	}
	tests := []struct {
		name      string
		ttl       time.Duration
		symbol    string
		wait      time.Duration // between the two requests
		wantCalls int
		wantErr   error
	}{
		{"hit within ttl", 5 * time.Second, "AAPL.US", 4 * time.Second, 1, nil},
		{"miss after ttl", 5 * time.Second, "AAPL.US", 5 * time.Second, 2, nil},
		{"ttl zero never reuses", 0, "AAPL.US", 0, 2, nil},
		{"not found is cached", 5 * time.Second, "NOSUCH.US", time.Second, 1, stooq.ErrNotFound},
		{"upstream error is not cached", 5 * time.Second, "FLAKY.US", 0, 2, stooq.ErrUpstream},
		{"rate limit is not cached", 5 * time.Second, "LIMIT.US", 0, 2, stooq.ErrRateLimited},
		{"key required is not cached", 5 * time.Second, "NOKEY.US", 0, 2, stooq.ErrKeyRequired},
		{"key rejected is not cached", 5 * time.Second, "BADKEY.US", 0, 2, stooq.ErrKeyRejected},
		{"challenge is not cached", 5 * time.Second, "CHALLENGE.US", 0, 2, stooq.ErrChallenge},
		{"over budget is not cached", 5 * time.Second, "BUDGET.US", 0, 2, stooq.ErrOverBudget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			next := &countingQuoter{fn: answer}
			c := newQuoteCache(next, tt.ttl, clock.now, prometheus.NewRegistry())
			for i := range 2 {
				q, _, err := c.Quote(context.Background(), tt.symbol)
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
					t.Fatalf("request %d: error = %v, want %v", i+1, err, tt.wantErr)
				}
				if tt.wantErr == nil && q.Symbol != tt.symbol {
					t.Fatalf("request %d: quote %+v, want symbol %s", i+1, q, tt.symbol)
				}
				clock.add(tt.wait)
			}
			if got := next.count(tt.symbol); got != tt.wantCalls {
				t.Errorf("stooq asked %d times, want %d", got, tt.wantCalls)
			}
			hits, misses := testutil.ToFloat64(c.hits), testutil.ToFloat64(c.misses)
			if hits+misses != 2 || misses != float64(tt.wantCalls) {
				t.Errorf("hits, misses = %v, %v, want %d misses of 2 requests", hits, misses, tt.wantCalls)
			}
		})
	}
}

func TestQuoteCacheSweepsExpired(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	next := &countingQuoter{fn: func(_ context.Context, s string) (stockrpc.Quote, error) { return stockrpc.Quote{Symbol: s}, nil }}
	c := newQuoteCache(next, time.Second, clock.now, prometheus.NewRegistry())
	for i := range 100 {
		if _, _, err := c.Quote(context.Background(), fmt.Sprintf("T%d.US", i)); err != nil {
			t.Fatal(err)
		}
	}
	clock.add(2 * time.Second)
	if _, _, err := c.Quote(context.Background(), "AAPL.US"); err != nil {
		t.Fatal(err)
	}
	if got := len(c.entries); got != 1 {
		t.Errorf("entries after sweep = %d, want 1", got)
	}
}

// TestQuoteCacheCoalesces checks that concurrent requests for one symbol
// share a single fetch, with the cache off so only coalescing can explain it.
func TestQuoteCacheCoalesces(t *testing.T) {
	release := make(chan struct{})
	var entered atomic.Int32
	next := &countingQuoter{fn: func(_ context.Context, s string) (stockrpc.Quote, error) {
		entered.Add(1)
		<-release
		return stockrpc.Quote{Symbol: s}, nil
	}}
	c := newQuoteCache(next, 0, time.Now, prometheus.NewRegistry())
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			q, _, err := c.Quote(context.Background(), "AAPL.US")
			if err == nil && q.Symbol != "AAPL.US" {
				err = fmt.Errorf("quote %+v", q)
			}
			errs <- err
		})
	}
	// Wait until the fetch is in flight and every caller has had time to
	// join it; a late caller would start a second fetch, which the count
	// below reports.
	deadline := time.Now().Add(10 * time.Second)
	for entered.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := next.count("AAPL.US")
	if got < 1 || got > 2 {
		t.Errorf("stooq asked %d times for %d concurrent requests, want 1 (2 if a goroutine started late)", got, n)
	}
	if coalesced, misses := testutil.ToFloat64(c.coalesced), testutil.ToFloat64(c.misses); coalesced != float64(n-got) || misses != float64(got) {
		t.Errorf("misses, coalesced = %v, %v, want %d misses (fetches) and %d coalesced (the other callers)", misses, coalesced, got, n-got)
	}
}

// TestQuoteCacheCallerGivesUp checks that a caller whose context ends
// returns at once, without failing the fetch the others wait for.
func TestQuoteCacheCallerGivesUp(t *testing.T) {
	release := make(chan struct{})
	next := &countingQuoter{fn: func(ctx context.Context, s string) (stockrpc.Quote, error) {
		select {
		case <-release:
			return stockrpc.Quote{Symbol: s}, nil
		case <-ctx.Done():
			return stockrpc.Quote{}, ctx.Err()
		}
	}}
	c := newQuoteCache(next, time.Minute, time.Now, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, _, err := c.Quote(ctx, "AAPL.US"); first <- err }()
	for next.count("AAPL.US") == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { _, _, err := c.Quote(context.Background(), "AAPL.US"); second <- err }()
	cancel()
	select {
	case err := <-first:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: error = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled caller did not return")
	}
	close(release)
	if err := <-second; err != nil {
		t.Errorf("other caller: %v", err)
	}
	if _, _, err := c.Quote(context.Background(), "AAPL.US"); err != nil {
		t.Errorf("cached answer: %v", err)
	}
	if got := next.count("AAPL.US"); got != 1 {
		t.Errorf("stooq asked %d times, want 1", got)
	}
}

func TestCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newQuoteCache(quoterFunc(func(_ context.Context, s string) (stockrpc.Quote, error) {
		return stockrpc.Quote{Symbol: s}, nil
	}), time.Minute, time.Now, reg)
	for _, s := range []string{"a.us", "b.us", "a.us", "a.us"} {
		if _, _, err := c.Quote(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP stockquote_quote_cache_hits_total Quote lookups answered from the worker's cache.
# TYPE stockquote_quote_cache_hits_total counter
stockquote_quote_cache_hits_total 2
# HELP stockquote_quote_cache_misses_total Quote lookups the worker's cache could not answer (sent on to stooq, one per shared fetch).
# TYPE stockquote_quote_cache_misses_total counter
stockquote_quote_cache_misses_total 2
# HELP stockquote_quote_cache_coalesced_total Quote lookups that joined a stooq fetch already in flight for the same symbol.
# TYPE stockquote_quote_cache_coalesced_total counter
stockquote_quote_cache_coalesced_total 0
# HELP stockquote_quote_cache_entries Symbols held in the worker's quote cache.
# TYPE stockquote_quote_cache_entries gauge
stockquote_quote_cache_entries 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
