package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// stockQuota limits each user's /stock requests, and separately the
// requests that reached stooq (answered by neither the stock service's
// cache nor another request's fetch), per minute, across all API replicas
// (buckets in PostgreSQL, see postgres.TakeRate). It keeps one user from
// spending stooq's daily quota, which every user shares, and from filling
// history and /stats with one symbol.
//
// A request costs one request attempt, taken (atomically) before the
// quote is asked for, so the request limit holds exactly. Whether it
// reaches stooq is known only from the reply: the miss bucket is read
// before asking and charged after a miss, even beyond the burst (it then
// owes), so concurrent requests of one user can overshoot it once by at
// most their number, itself bounded by the request limit, and the debt
// holds the long-run rate.
type stockQuota struct {
	rates            rateLimiter
	requests, misses postgres.Limit // Burst 0: that limit is off
	logger           *slog.Logger
}

// perMinute is a limit of n attempts a minute, all of them at once if
// need be; n == 0 turns it off.
func perMinute(n int) postgres.Limit {
	if n <= 0 {
		return postgres.Limit{}
	}
	return postgres.Limit{Burst: n, Interval: time.Minute / time.Duration(n)}
}

func newStockQuota(rates rateLimiter, c quotaConfig, logger *slog.Logger) *stockQuota {
	return &stockQuota{rates: rates, requests: perMinute(c.RequestsPerMinute), misses: perMinute(c.MissesPerMinute), logger: logger}
}

func requestsKey(userID int64) string { return "stock:" + strconv.FormatInt(userID, 10) }
func missesKey(userID int64) string   { return "stock-miss:" + strconv.FormatInt(userID, 10) }

// admit spends one of userID's requests and checks it has a miss left;
// when either is exhausted it reports how long to wait.
func (q *stockQuota) admit(ctx context.Context, userID int64) (retryAfter time.Duration, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, dbCallTimeout)
	defer cancel()
	if q.requests.Burst > 0 {
		ok, retry, err := q.rates.TakeRate(ctx, requestsKey(userID), q.requests)
		if err != nil || !ok {
			return retry, false, err
		}
	}
	if q.misses.Burst > 0 {
		n, retry, err := q.rates.PeekRate(ctx, missesKey(userID), q.misses)
		if err != nil || n < 1 {
			return retry, false, err
		}
	}
	return 0, true, nil
}

// fetched charges userID one miss. A failure is logged, not answered:
// the quote was fetched already, and is worth answering.
func (q *stockQuota) fetched(ctx context.Context, userID int64) {
	if q.misses.Burst == 0 {
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

// fetchReportKey is the context key of a request's fetch report.
type fetchReportKey struct{}

// withFetchReport returns a context in which the quote client reports
// whether the stock service asked stooq for this request (its reply was
// not marked cached), and the flag it sets. A caller that joined another
// request's RPC (coalescedQuotes) is not reported: it cost no fetch.
func withFetchReport(ctx context.Context) (context.Context, *atomic.Bool) {
	var fetched atomic.Bool
	return context.WithValue(ctx, fetchReportKey{}, &fetched), &fetched
}

// markFetched reports a stooq fetch on a context from withFetchReport.
func markFetched(ctx context.Context) {
	if b, ok := ctx.Value(fetchReportKey{}).(*atomic.Bool); ok {
		b.Store(true)
	}
}
