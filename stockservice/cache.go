package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// cacheStats counts how quoteCache answered.
type cacheStats struct {
	Hits      int64 `json:"hits"`      // answered from the cache, stooq not asked
	Misses    int64 `json:"misses"`    // stooq asked (one per fetch, however many callers shared it)
	Coalesced int64 `json:"coalesced"` // callers that shared another caller's in-flight fetch
	Entries   int   `json:"entries"`   // symbols cached now (expired ones included until swept)
}

// cacheEntry is a cached answer: a quote, or stooq.ErrNotFound.
type cacheEntry struct {
	quote   stockrpc.Quote
	err     error
	expires time.Time
}

// quoteCache wraps a quoter with request coalescing and a short TTL cache,
// so that a symbol asked for many times costs one stooq hit per TTL:
// concurrent requests for a symbol share one fetch (always), and a
// successful answer (or stooq's "not found") is reused until ttl has
// passed (ttl 0 turns reuse off, coalescing stays). Other errors are never
// cached: rate limits, timeouts and upstream failures are transient, and
// the next request should try again.
type quoteCache struct {
	next quoter
	ttl  time.Duration
	now  func() time.Time

	group singleflight.Group

	mu        sync.Mutex
	entries   map[string]cacheEntry
	nextSweep time.Time

	hits, misses, coalesced atomic.Int64
}

// newQuoteCache returns a quoteCache in front of next; now is the clock.
func newQuoteCache(next quoter, ttl time.Duration, now func() time.Time) *quoteCache {
	return &quoteCache{next: next, ttl: ttl, now: now, entries: map[string]cacheEntry{}}
}

// Quote returns symbol's quote and whether it cost no stooq fetch of its
// own (a cache hit, or another caller's fetch). The shared fetch does not
// depend on any single caller's context (one caller giving up must not
// fail the others), but each caller still returns as soon as its own
// context ends. The fetch itself is bounded by the stooq client's timeout.
func (c *quoteCache) Quote(ctx context.Context, symbol string) (q stockrpc.Quote, cached bool, err error) {
	if e, ok := c.lookup(symbol); ok {
		c.hits.Add(1)
		return e.quote, true, e.err
	}
	led := false // set by the fetch's goroutine before it answers on ch
	ch := c.group.DoChan(symbol, func() (any, error) {
		led = true
		c.misses.Add(1)
		q, err := c.next.Quote(context.WithoutCancel(ctx), symbol)
		c.store(symbol, q, err)
		return q, err
	})
	select {
	case r := <-ch:
		if !led {
			c.coalesced.Add(1)
		}
		if r.Err != nil {
			return stockrpc.Quote{}, !led, r.Err
		}
		return r.Val.(stockrpc.Quote), !led, nil
	case <-ctx.Done():
		return stockrpc.Quote{}, false, ctx.Err()
	}
}

// lookup returns a fresh cached answer for symbol.
func (c *quoteCache) lookup(symbol string) (cacheEntry, bool) {
	if c.ttl <= 0 {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[symbol]
	if !ok || !c.now().Before(e.expires) {
		return cacheEntry{}, false
	}
	return e, true
}

// store caches an answer worth reusing and, once per ttl, drops expired
// entries so the map holds at most the symbols asked for in about 2*ttl.
func (c *quoteCache) store(symbol string, q stockrpc.Quote, err error) {
	if c.ttl <= 0 || (err != nil && !errors.Is(err, stooq.ErrNotFound)) {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !now.Before(c.nextSweep) {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		c.nextSweep = now.Add(c.ttl)
	}
	c.entries[symbol] = cacheEntry{quote: q, err: err, expires: now.Add(c.ttl)}
}

// Stats returns the counters so far.
func (c *quoteCache) Stats() cacheStats {
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	return cacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Coalesced: c.coalesced.Load(), Entries: n}
}
