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

// rateLimiter keeps the token buckets every API replica shares (in
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
// memory: a first line that costs no database round trip. Idle addresses
// are forgotten once their bucket is full again, and at most max are kept.
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

// reserve spends one of key's tokens at now, or spends nothing and reports
// how long until one is back. The reservation can give the token back.
func (l *clientLimiter) reserve(key string, now time.Time) (r *rate.Reservation, retryAfter time.Duration, ok bool) {
	l.mu.Lock()
	lim, found := l.lru.Get(key)
	if !found {
		lim = rate.NewLimiter(l.limit, l.burst)
	}
	l.lru.Add(key, lim) // restarts the expiry: only idle addresses expire
	l.mu.Unlock()
	r = lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d, false
	}
	return r, 0, true
}

// loginThrottle limits login attempts per account across every replica
// (buckets in PostgreSQL) and per client address in this process. Only a
// wrong guess costs the account an attempt, and any answer after a password
// check other than a charged 401 is a 429, so at most burst + refills
// guesses are told apart. An address trusted for an account has its own
// bucket, so an attacker cannot lock the real user out (docs/security.md).
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

// throttleConfig sets the login limits (LOGIN_*).
type throttleConfig struct {
	AccountBurst    int
	AccountInterval time.Duration
	ClientBurst     int
	ClientInterval  time.Duration
	MaxKeys         int           // client addresses, and trusted pairs, kept per process
	TrustedWindow   time.Duration // <= 0 trusts no one
}

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

// accountKey is an account's bucket key; names are folded, as "Alice" and
// "alice" are one account.
func accountKey(username string) string { return "login:" + strings.ToLower(username) }

// pairKey is an (account, address) bucket key; '|' is in neither part.
func pairKey(username, client string) string {
	return "login-known:" + strings.ToLower(username) + "|" + client
}

// bucketKey is the bucket a login attempt is charged to: its pair's if
// client is trusted for username, else the account's.
func (t *loginThrottle) bucketKey(username, client string) string {
	if t.trusted != nil {
		pair := pairKey(username, client)
		if at, ok := t.trusted.Get(pair); ok && t.now().Sub(at) < t.window {
			return pair
		}
	}
	return accountKey(username)
}

// beginCheck admits a password check if key's bucket has an attempt left
// beyond the checks of key running in this process; endCheck(key) must
// follow an admitted one.
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

// trust records a successful login of client as username.
func (t *loginThrottle) trust(username, client string) {
	if t.trusted != nil {
		t.trusted.Add(pairKey(username, client), t.now())
	}
}

// sweepRates calls sweep (which deletes the shared buckets that are full
// again) every minute, until stop is called.
func sweepRates(ctx context.Context, sweep func(context.Context) (int64, error), logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			sweepCtx, cancelSweep := context.WithTimeout(ctx, dbCallTimeout)
			n, err := sweep(sweepCtx)
			cancelSweep()
			if err != nil && ctx.Err() == nil {
				logger.Warn("sweep rate limits", "error", err)
			} else if n > 0 {
				logger.Debug("swept rate limits", "deleted", n)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}
