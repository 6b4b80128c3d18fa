package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// BenchmarkHistoryHandler measures the API's own work for a /history page
// of 100 (token, user, JSON, access log), the store faked.
func BenchmarkHistoryHandler(b *testing.B) {
	env := newTestEnv(b)
	page := make([]postgres.HistoryEntry, 101)
	for i := range page {
		page[i] = postgres.HistoryEntry{ID: int64(1000 - i), RequestedAt: testNow.Add(-time.Duration(i) * time.Second),
			Symbol: "AAPL.US", Name: "APPLE", Open: 189.5, High: 191.25, Low: 188.125, Close: 190.75, Volume: 123456}
	}
	env.store.history = func(context.Context, int64, int, *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
		return page, nil
	}
	benchHandler(b, env, "/api/v1/history?limit=100")
}

// BenchmarkStockHandler measures the API's own work for /stock, the quote
// and the store faked.
func BenchmarkStockHandler(b *testing.B) {
	env := newTestEnv(b)
	env.quotes = func(context.Context, string) (stockrpc.Quote, error) { return appleQuote, nil }
	env.store.addHistory = func(_ context.Context, _ int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		return e, nil
	}
	benchHandler(b, env, "/api/v1/stock?q=aapl.us")
}

func benchHandler(b *testing.B, env *testEnv, target string) {
	tok, err := env.auth.issue(alice.ID)
	if err != nil {
		b.Fatal(err)
	}
	logger := logging.New(io.Discard, logging.FormatJSON, slog.LevelInfo)
	h := newServer(env.deps(logger, time.Now, withStockQuota(newStockQuota(env.store, quotaConfig{}, logger))))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
