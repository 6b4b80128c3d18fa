package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// freshFlight shares one run of a read among the callers waiting for it,
// without ever handing a caller a result older than its call: a caller
// that arrives while a run is in progress joins the next run, which
// starts when that one ends. So at most one run is in progress, the next
// one collects every caller meanwhile, and each caller's answer comes from
// a run that started after it asked, as fresh as running alone.
type freshFlight[T any] struct {
	fn      func(context.Context) (T, error) // the read
	timeout time.Duration                    // bounds each run (runs outlive any one caller)

	mu      sync.Mutex
	running bool
	next    *flightRound[T] // the round newcomers join; nil when none waits
}

type flightRound[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// do runs fn, or joins the next shared run of it.
func (f *freshFlight[T]) do(ctx context.Context) (T, error) {
	f.mu.Lock()
	if f.next == nil {
		f.next = &flightRound[T]{done: make(chan struct{})}
	}
	r := f.next
	if !f.running {
		f.running = true
		f.next = nil
		go f.run(r)
	}
	f.mu.Unlock()
	select {
	case <-r.done:
		return r.val, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// waiting reports whether callers are gathered for the next run (tests).
func (f *freshFlight[T]) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		return 0
	}
	return 1
}

// run serves r, then each round that gathered meanwhile, until none did.
func (f *freshFlight[T]) run(r *flightRound[T]) {
	for r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		r.val, r.err = f.fn(ctx)
		cancel()
		close(r.done)
		f.mu.Lock()
		r, f.next = f.next, nil
		if r == nil {
			f.running = false
		}
		f.mu.Unlock()
	}
}

// sharedTopStocks lets concurrent /stats requests share one query (see
// freshFlight): the query aggregates thousands of counter rows, and at 16
// clients and more PostgreSQL's CPU, not the answer, was the limit.
type sharedTopStocks struct {
	next  topStocker
	n     int // the n whose calls are shared; others go straight through
	round *freshFlight[[]postgres.StockCount]
}

func newSharedTopStocks(next topStocker, n int) *sharedTopStocks {
	return &sharedTopStocks{next: next, n: n, round: &freshFlight[[]postgres.StockCount]{
		fn:      func(ctx context.Context) ([]postgres.StockCount, error) { return next.TopStocks(ctx, n) },
		timeout: dbCallTimeout,
	}}
}

// TopStocks implements topStocker. Callers must not modify the result.
func (s *sharedTopStocks) TopStocks(ctx context.Context, n int) ([]postgres.StockCount, error) {
	if n != s.n {
		return s.next.TopStocks(ctx, n)
	}
	top, err := s.round.do(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		// The caller's own deadline passed while it waited for a shared
		// query: the database did not answer in time, as the store says
		// when its own call times out (503, not the RPC's 504).
		return nil, fmt.Errorf("top %d stocks: %w: %w", n, postgres.ErrUnavailable, err)
	}
	return top, err
}
