package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
)

// cacheEntry is a cached answer: a quote, or stooq.ErrNotFound.
type cacheEntry struct {
	quote   stockrpc.Quote
	err     error
	expires time.Time
}

// quoteCache protects stooq's daily quota: concurrent requests for a
// symbol share one fetch, and a quote (or stooq's "not found") is reused
// for ttl (0: no reuse, coalescing stays). Other errors are transient and
// never cached.
type quoteCache struct {
	next  quoter
	ttl   time.Duration
	now   func() time.Time
	group singleflight.Group

	mu        sync.Mutex
	entries   map[string]cacheEntry
	nextSweep time.Time

	hits, misses, coalesced prometheus.Counter
}

// newQuoteCache returns a quoteCache in front of next, its metrics
// registered with reg; now is the clock.
func newQuoteCache(next quoter, ttl time.Duration, now func() time.Time, reg prometheus.Registerer) *quoteCache {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "stockquote_quote_cache_" + name, Help: help})
	}
	c := &quoteCache{next: next, ttl: ttl, now: now, entries: map[string]cacheEntry{},
		hits:      counter("hits_total", "Quote lookups answered from the worker's cache."),
		misses:    counter("misses_total", "Quote lookups the worker's cache could not answer (sent on to stooq, one per shared fetch)."),
		coalesced: counter("coalesced_total", "Quote lookups that joined a stooq fetch already in flight for the same symbol."),
	}
	reg.MustRegister(c.hits, c.misses, c.coalesced, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "stockquote_quote_cache_entries",
		Help: "Symbols held in the worker's quote cache.",
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(len(c.entries))
	}))
	return c
}

// Quote returns symbol's quote and whether it cost no stooq fetch of its
// own (a cache hit, or another caller's fetch). The shared fetch outlives
// any one caller's context (bounded by the stooq client's timeout), but
// each caller returns as soon as its own context ends.
func (c *quoteCache) Quote(ctx context.Context, symbol string) (q stockrpc.Quote, cached bool, err error) {
	c.mu.Lock()
	e, ok := c.entries[symbol]
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		c.hits.Inc()
		return e.quote, true, e.err
	}
	led := false // set by the fetch before it answers on ch
	ch := c.group.DoChan(symbol, func() (any, error) {
		led = true
		c.misses.Inc()
		q, err := c.next.Quote(context.WithoutCancel(ctx), symbol)
		c.store(symbol, q, err)
		return q, err
	})
	select {
	case r := <-ch:
		if !led {
			c.coalesced.Inc()
		}
		q, _ := r.Val.(stockrpc.Quote)
		return q, !led, r.Err
	case <-ctx.Done():
		return stockrpc.Quote{}, false, ctx.Err()
	}
}

// store caches an answer worth reusing and, once per ttl, drops expired
// entries, so the map holds the symbols asked for in about 2*ttl.
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
