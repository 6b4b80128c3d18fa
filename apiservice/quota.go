package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// stockQuota limits each user's /stock requests, and separately those that
// reached stooq, per minute across all replicas (buckets in PostgreSQL), so
// one user cannot spend stooq's shared daily quota. A database call per
// request would cost more than the request, so each replica takes leases of
// a tenth of the burst (at most maxLease): a user may get a lease per replica
// more than the burst (limits under 20 a minute hold exactly). Only the
// reply tells whether stooq was asked, so admit needs a miss left and
// fetched spends it (charging the bucket, which then owes it, if need be).
type stockQuota struct {
	rates            rateLimiter
	requests, misses postgres.Limit // Burst 0: that limit is off
	held             *expirable.LRU[string, *lease]
	logger           *slog.Logger
}

// lease is the attempts of one bucket this replica holds; its mutex also
// keeps concurrent requests from taking two leases.
type lease struct {
	mu   sync.Mutex
	left int
}

const (
	maxLease   = 20
	leaseTTL   = 10 * time.Second // unspent attempts expire; the bucket refills anyway
	heldLeases = 10_000
)

// quotaConfig sets the /stock quotas; 0 turns a limit off.
type quotaConfig struct {
	RequestsPerMinute int
	MissesPerMinute   int
}

func newStockQuota(rates rateLimiter, c quotaConfig, logger *slog.Logger) *stockQuota {
	return &stockQuota{
		rates:    rates,
		requests: perMinute(c.RequestsPerMinute),
		misses:   perMinute(c.MissesPerMinute),
		held:     expirable.NewLRU[string, *lease](heldLeases, nil, leaseTTL),
		logger:   logger,
	}
}

// perMinute is a limit of n attempts a minute, all at once if need be.
func perMinute(n int) postgres.Limit {
	if n <= 0 {
		return postgres.Limit{}
	}
	return postgres.Limit{Burst: n, Interval: time.Minute / time.Duration(n)}
}

func requestsKey(userID int64) string { return "stock:" + strconv.FormatInt(userID, 10) }
func missesKey(userID int64) string   { return "stock-miss:" + strconv.FormatInt(userID, 10) }

// leaseFor returns this replica's lease of key's bucket, locked.
func (q *stockQuota) leaseFor(key string) *lease {
	l, ok := q.held.Get(key)
	if !ok {
		// Two requests may both miss here and take a lease each: harmless.
		l = &lease{}
		q.held.Add(key, l)
	}
	l.mu.Lock()
	return l
}

// take reports whether key's bucket has an attempt left, spending it if
// spend, and refilling the lease from the database when it is empty.
func (q *stockQuota) take(ctx context.Context, key string, lim postgres.Limit, spend bool) (retryAfter time.Duration, ok bool, err error) {
	if lim.Burst == 0 {
		return 0, true, nil
	}
	l := q.leaseFor(key)
	defer l.mu.Unlock()
	if l.left == 0 {
		// k attempts at once are one attempt of a bucket with k times the
		// interval and a k-th of the burst: the same row, the same window.
		if k := min(lim.Burst/10, maxLease); k > 1 {
			ok, _, err := q.rates.TakeRate(ctx, key, postgres.Limit{Burst: lim.Burst / k, Interval: lim.Interval * time.Duration(k)})
			if err != nil {
				return 0, false, err
			}
			if ok {
				l.left = k
			}
		}
		if l.left == 0 {
			ok, retry, err := q.rates.TakeRate(ctx, key, lim)
			if err != nil || !ok {
				return retry, false, err
			}
			l.left = 1
		}
	}
	if spend {
		l.left--
	}
	return 0, true, nil
}

// admit spends one of userID's requests and checks it has a miss left;
// when either is exhausted it reports how long to wait.
func (q *stockQuota) admit(ctx context.Context, userID int64) (retryAfter time.Duration, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, dbCallTimeout)
	defer cancel()
	if retry, ok, err := q.take(ctx, requestsKey(userID), q.requests, true); !ok {
		return retry, false, err
	}
	return q.take(ctx, missesKey(userID), q.misses, false)
}

// fetched spends one of userID's misses. A failure to charge it is only
// logged: the quote was fetched already and is worth answering.
func (q *stockQuota) fetched(ctx context.Context, userID int64) {
	if q.misses.Burst == 0 {
		return
	}
	l := q.leaseFor(missesKey(userID))
	spent := l.left > 0
	if spent {
		l.left--
	}
	l.mu.Unlock()
	if spent {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbCallTimeout)
	defer cancel()
	if err := q.rates.ChargeRate(ctx, missesKey(userID), q.misses); err != nil {
		q.logger.WarnContext(ctx, "charge stooq fetch to quota", "user_id", userID, "error", err)
	}
}
