package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// TestStockQuota: per user, requests per minute and, separately, the
// requests that reached stooq; over either, 429 problem+json with
// Retry-After before any quote is asked for; another user is not
// affected; a minute later the user is served again.
func TestStockQuota(t *testing.T) {
	env := newTestEnv(t)
	asked := 0
	fetch := map[string]bool{} // symbols the fake stock service fetches (the rest it has cached)
	quotes := fetchingQuotes(func(s string) (stockrpc.Quote, bool, error) {
		asked++
		if fetch[s] {
			return stockrpc.Quote{}, true, &stockrpc.Error{Code: stockrpc.CodeNotFound}
		}
		return appleQuote, false, nil
	})
	withQuotes := func(d *serverDeps) { d.quotes = quotes }
	env.store.addHistory = func(_ context.Context, _ int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		return e, nil
	}
	now := testNow
	h := env.handler(t, &now, withQuotes, withStockQuota(newStockQuota(env.store, quotaConfig{RequestsPerMinute: 6, MissesPerMinute: 2}, slog.New(slog.DiscardHandler))))
	aliceToken, adminToken := env.token(t, alice.ID), env.token(t, admin.ID)
	get := func(token, symbol string) *http.Response {
		return serveWith(h, newRequest("GET", "/api/v1/stock?q="+symbol, nil, token)).Result()
	}

	// Four cached answers and two stooq fetches spend the six requests.
	fetch["nosuch1.us"], fetch["nosuch2.us"], fetch["nosuch3.us"] = true, true, true
	for _, s := range []string{"aapl.us", "aapl.us", "aapl.us", "aapl.us", "nosuch1.us", "nosuch2.us"} {
		if r := get(aliceToken, s); r.StatusCode != 200 && r.StatusCode != 404 {
			t.Fatalf("%s within the quota: %d", s, r.StatusCode)
		}
	}
	wantQuota429(t, get(aliceToken, "aapl.us"), 10*time.Second)
	// 10s later a request is back, but no stooq fetch is (one each 30s):
	// refused too, as the API cannot know beforehand that a request
	// would be answered from the cache.
	now = now.Add(10 * time.Second)
	wantQuota429(t, get(aliceToken, "nosuch3.us"), 30*time.Second)
	if asked != 6 {
		t.Errorf("the stock service was asked %d times, want 6 (refused requests ask nothing)", asked)
	}
	// Another user has its own quota.
	if r := get(adminToken, "aapl.us"); r.StatusCode != 200 {
		t.Errorf("another user: %d, want 200", r.StatusCode)
	}
	// A minute later everything is back.
	now = now.Add(time.Minute)
	if r := get(aliceToken, "nosuch3.us"); r.StatusCode != 404 {
		t.Errorf("a minute later: %d, want 404", r.StatusCode)
	}

	t.Run("off", func(t *testing.T) {
		h := env.handler(t, &now, withQuotes, withStockQuota(newStockQuota(env.store, quotaConfig{}, slog.New(slog.DiscardHandler))))
		for range 50 {
			if r := serveWith(h, newRequest("GET", "/api/v1/stock?q=nosuch1.us", nil, aliceToken)); r.Code != 404 {
				t.Fatalf("quota off: %d, want 404", r.Code)
			}
		}
	})
}

// wantQuota429 checks a quota refusal.
func wantQuota429(t *testing.T, r *http.Response, maxRetry time.Duration) {
	t.Helper()
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Content-Type") != problemContentType {
		t.Fatalf("status %d %s, want 429 problem+json", r.StatusCode, r.Header.Get("Content-Type"))
	}
	var p problem
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil || p.Status != 429 {
		t.Errorf("problem %+v, %v", p, err)
	}
	ra := r.Header.Get("Retry-After")
	d, err := time.ParseDuration(ra + "s")
	if err != nil || d < time.Second || d > maxRetry {
		t.Errorf("Retry-After %q, want 1s..%v", ra, maxRetry)
	}
}

// fetchingQuotes is a quoteRequester that says whether it fetched.
type fetchingQuotes func(symbol string) (stockrpc.Quote, bool, error)

func (f fetchingQuotes) Quote(_ context.Context, symbol string) (stockrpc.Quote, bool, error) {
	return f(symbol)
}

// TestStockQuotaLeases: with a limit large enough to lease, two replicas
// sharing the buckets admit at most the burst between them, at most one
// lease short of it each, and ask the database about once per lease.
func TestStockQuotaLeases(t *testing.T) {
	env := newTestEnv(t)
	env.quotes = func(context.Context, string) (stockrpc.Quote, error) { return appleQuote, nil }
	env.store.addHistory = func(_ context.Context, _ int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		return e, nil
	}
	now := testNow
	const perMinute = 200
	var replicas []http.Handler
	for range 2 {
		q := newStockQuota(env.store, quotaConfig{RequestsPerMinute: perMinute}, slog.New(slog.DiscardHandler))
		replicas = append(replicas, env.handler(t, &now, withStockQuota(q)))
	}
	token := env.token(t, alice.ID)
	ok := 0
	for i := range 3 * perMinute {
		switch r := serveWith(replicas[i%2], newRequest("GET", "/api/v1/stock?q=aapl.us", nil, token)); r.Code {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("request %d: %d", i+1, r.Code)
		}
		// Each replica has taken 3 leases of 20 by its 41st request.
		if i == 99 && (ok != 100 || env.store.rates.takes != 6) {
			t.Errorf("after 100 requests: %d admitted with %d bucket updates, want 100 with 6", ok, env.store.rates.takes)
		}
	}
	if ok > perMinute || ok < perMinute-2*maxLease {
		t.Errorf("%d requests admitted over two replicas, want at most %d and at least %d", ok, perMinute, perMinute-2*maxLease)
	}
}
