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

// stockQuota limits each user's /stock requests, and separately the
// requests that reached stooq (answered by neither the stock service's
// cache nor another request's fetch), per minute, across all API replicas
// (buckets in PostgreSQL, see postgres.TakeRate). It keeps one user from
// spending stooq's daily quota, which every user shares, and from filling
// history and /stats with one symbol.
//
// Asking the database on every request would cost more than the rest of
// the request, so each replica takes a user's attempts in leases of up to
// a tenth of the burst (at most maxLease) and spends them locally. A user
// can therefore be refused while another replica still holds a few
// attempts, and can exceed a burst by at most one lease per replica;
// limits under 20 a minute lease one attempt at a time and hold exactly.
//
// A request spends one request attempt before the quote is asked for.
// Whether it reaches stooq is known only from the reply, so it must hold a
// miss attempt before asking, and spends it after a miss; a miss with
// none left (concurrent requests of one user) is charged to the bucket,
// which then owes it.
type stockQuota struct {
	rates            rateLimiter
	requests, misses postgres.Limit // Burst 0: that limit is off
	held             *expirable.LRU[string, *lease]
	logger           *slog.Logger
}

// lease is the attempts of one bucket this replica has taken and not yet
// spent. Its mutex also keeps concurrent requests from taking two leases.
type lease struct {
	mu   sync.Mutex
	left int
}

const (
	maxLease = 20
	// leaseTTL bounds how long unspent attempts stay usable here; they are
	// not given back, the bucket refills them in time anyway.
	leaseTTL   = 10 * time.Second
	heldLeases = 10_000
)

// perMinute is a limit of n attempts a minute, all of them at once if
// need be; n == 0 turns it off.
func perMinute(n int) postgres.Limit {
	if n <= 0 {
		return postgres.Limit{}
	}
	return postgres.Limit{Burst: n, Interval: time.Minute / time.Duration(n)}
}

func newStockQuota(rates rateLimiter, c quotaConfig, logger *slog.Logger) *stockQuota {
	return &stockQuota{
		rates: rates, requests: perMinute(c.RequestsPerMinute), misses: perMinute(c.MissesPerMinute),
		held: expirable.NewLRU[string, *lease](heldLeases, nil, leaseTTL), logger: logger,
	}
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

// refill takes a lease from key's bucket under lim into l when l is
// spent: leaseSize attempts at once if the bucket has them, else one.
func (q *stockQuota) refill(ctx context.Context, l *lease, key string, lim postgres.Limit) (retryAfter time.Duration, err error) {
	if l.left > 0 {
		return 0, nil
	}
	// Taking k attempts at once is one attempt of a bucket with k times
	// the interval and a k-th of the burst: the same row, the same window.
	if k := min(lim.Burst/10, maxLease); k > 1 {
		ok, _, err := q.rates.TakeRate(ctx, key, postgres.Limit{Burst: lim.Burst / k, Interval: lim.Interval * time.Duration(k)})
		if err != nil {
			return 0, err
		}
		if ok {
			l.left = k
			return 0, nil
		}
	}
	ok, retry, err := q.rates.TakeRate(ctx, key, lim)
	if ok {
		l.left = 1
	}
	return retry, err
}

// admit spends one of userID's requests and checks it has a miss left;
// when either is exhausted it reports how long to wait.
func (q *stockQuota) admit(ctx context.Context, userID int64) (retryAfter time.Duration, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, dbCallTimeout)
	defer cancel()
	if q.requests.Burst > 0 {
		l := q.leaseFor(requestsKey(userID))
		retry, err := q.refill(ctx, l, requestsKey(userID), q.requests)
		ok := l.left > 0
		if ok {
			l.left--
		}
		l.mu.Unlock()
		if err != nil || !ok {
			return retry, false, err
		}
	}
	if q.misses.Burst > 0 {
		l := q.leaseFor(missesKey(userID))
		retry, err := q.refill(ctx, l, missesKey(userID), q.misses)
		ok := l.left > 0
		l.mu.Unlock()
		if err != nil || !ok {
			return retry, false, err
		}
	}
	return 0, true, nil
}

// fetched spends one of userID's misses. A failure to charge the bucket
// is logged, not answered: the quote was fetched already, and is worth
// answering.
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

// quotaConfig sets the /stock quotas; see loadSecurityConfig.
type quotaConfig struct {
	RequestsPerMinute int // STOCK_QUOTA_REQUESTS_PER_MINUTE; 0 = off
	MissesPerMinute   int // STOCK_QUOTA_MISSES_PER_MINUTE; 0 = off
}
