package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// rateLimiter keeps token buckets that every API replica shares (in
// PostgreSQL: see postgres.TakeRate).
type rateLimiter interface {
	// TakeRate spends one attempt of key's bucket if it has one left.
	TakeRate(ctx context.Context, key string, l postgres.Limit) (ok bool, retryAfter time.Duration, err error)
	// PeekRate reports how many attempts key's bucket has left, writing nothing.
	PeekRate(ctx context.Context, key string, l postgres.Limit) (available int, retryAfter time.Duration, err error)
	// ChargeRate spends one attempt even if none is left (the bucket owes it).
	ChargeRate(ctx context.Context, key string, l postgres.Limit) error
}

// clientLimiter is a token bucket per client address in this process's
// memory: a cheap first line that needs no database round trip (with N
// replicas an address gets N times the rate; the per-account limit is the
// one shared). Idle addresses are forgotten once their bucket is full
// again, and at most max are remembered.
type clientLimiter struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex // makes get-or-create atomic
	lru   *expirable.LRU[string, *rate.Limiter]
}

func newClientLimiter(burst int, interval time.Duration, max int) *clientLimiter {
	return &clientLimiter{
		limit: rate.Every(interval),
		burst: burst,
		lru:   expirable.NewLRU[string, *rate.Limiter](max, nil, time.Duration(burst)*interval),
	}
}

// reserve spends one of key's tokens at now. When none is left it spends
// nothing and reports how long until one is back; otherwise the returned
// reservation can give the token back (CancelAt).
func (l *clientLimiter) reserve(key string, now time.Time) (r *rate.Reservation, retryAfter time.Duration, ok bool) {
	l.mu.Lock()
	lim, found := l.lru.Get(key)
	if !found {
		lim = rate.NewLimiter(l.limit, l.burst)
	}
	// Add also restarts the entry's expiry: only idle addresses expire.
	l.lru.Add(key, lim)
	l.mu.Unlock()
	r = lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d, false
	}
	return r, 0, true
}

// len reports how many addresses are tracked.
func (l *clientLimiter) len() int { return l.lru.Len() }

// loginThrottle limits login attempts per account, across every API
// replica (buckets in PostgreSQL), and per client address in this process.
//
// A wrong guess costs the account one attempt (keyed on the lower-cased
// name, whether or not the user exists, so answers reveal nothing); a
// successful login costs nothing. The bucket is read before bcrypt, and
// any answer given after a password check other than a charged 401 is a
// 429, so a 429 says nothing about the guess and at most burst + refills
// guesses are ever told apart, however many replicas and requests.
//
// So that an attacker draining an account cannot lock its real user out,
// an address that logged in as that account within TrustedWindow is
// charged to its own (account, address) bucket instead (OWASP's "device
// cookie", keyed on the address since the API has no cookies).
type loginThrottle struct {
	rates   rateLimiter
	account postgres.Limit
	clients *clientLimiter
	trusted *expirable.LRU[string, time.Time] // pair key -> last success; nil: trust no one
	window  time.Duration
	now     func() time.Time

	mu       sync.Mutex
	checking map[string]int // password checks in flight, by bucket key
}

// throttleConfig sets the login limits; see securityConfig for the
// environment variables and defaults.
type throttleConfig struct {
	AccountBurst    int
	AccountInterval time.Duration
	ClientBurst     int
	ClientInterval  time.Duration
	MaxKeys         int           // client addresses (and, separately, trusted pairs) remembered per process
	TrustedWindow   time.Duration // how long a successful login keeps its client trusted; <= 0 trusts no one
}

// newLoginThrottle returns a loginThrottle keeping account buckets in
// rates and reading the clock now.
func newLoginThrottle(c throttleConfig, now func() time.Time, rates rateLimiter) *loginThrottle {
	t := &loginThrottle{
		rates:    rates,
		account:  postgres.Limit{Burst: c.AccountBurst, Interval: c.AccountInterval},
		clients:  newClientLimiter(c.ClientBurst, c.ClientInterval, c.MaxKeys),
		window:   c.TrustedWindow,
		now:      now,
		checking: map[string]int{},
	}
	if c.TrustedWindow > 0 {
		t.trusted = expirable.NewLRU[string, time.Time](c.MaxKeys, nil, c.TrustedWindow)
	}
	return t
}

// accountKey is the shared bucket key of an account. Names are folded:
// "Alice" and "alice" are one account (migration 5), so they share one
// bucket whichever spelling an attacker tries.
func accountKey(username string) string { return "login:" + strings.ToLower(username) }

// pairKey is the key of an (account, client address) pair; '|' occurs in
// neither a valid username nor an address, so pairs cannot collide.
func pairKey(username, client string) string {
	return "login-known:" + strings.ToLower(username) + "|" + client
}

// bucketKey is the bucket a login attempt for username from client is
// charged to: its own pair's if client is trusted for username.
func (t *loginThrottle) bucketKey(username, client string) string {
	if t.trusted != nil {
		pair := pairKey(username, client)
		if at, ok := t.trusted.Get(pair); ok && t.now().Sub(at) < t.window {
			return pair
		}
	}
	return accountKey(username)
}

// beginCheck admits a password check against key's bucket: it needs an
// attempt left beyond the checks of key already running in this process.
// If ok, endCheck(key) must follow.
func (t *loginThrottle) beginCheck(ctx context.Context, key string) (retryAfter time.Duration, ok bool, err error) {
	available, retry, err := t.rates.PeekRate(ctx, key, t.account)
	if err != nil {
		return 0, false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if available <= t.checking[key] {
		return max(retry, time.Second), false, nil
	}
	t.checking[key]++
	return 0, true, nil
}

func (t *loginThrottle) endCheck(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.checking[key]--; t.checking[key] <= 0 {
		delete(t.checking, key)
	}
}

// trust records that client has just logged in successfully as username:
// for the trusted window its attempts at that account no longer share the
// per-account bucket. Call it only after a correct password.
func (t *loginThrottle) trust(username, client string) {
	if t.trusted != nil {
		t.trusted.Add(pairKey(username, client), t.now())
	}
}

// rateSweeper is the part of the store that forgets full buckets.
type rateSweeper interface {
	SweepRates(ctx context.Context) (int64, error)
}

// sweepRates deletes the shared buckets that are full again every
// interval, until stop is called. Every replica sweeps; a sweep is one
// DELETE over a table about as large as the keys used recently.
func sweepRates(ctx context.Context, db rateSweeper, logger *slog.Logger, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			sweepCtx, cancelSweep := context.WithTimeout(ctx, dbCallTimeout)
			n, err := db.SweepRates(sweepCtx)
			cancelSweep()
			if err != nil && ctx.Err() == nil {
				logger.Warn("sweep rate limits", "error", err)
			} else if n > 0 {
				logger.Debug("swept rate limits", "deleted", n)
			}
		}
	}()
	return func() { cancel(); <-done }
}
