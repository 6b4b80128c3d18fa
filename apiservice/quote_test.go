package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
)

// fakeCaller is an rpcCaller calling its function field.
type fakeCaller func(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error)

func (f fakeCaller) Call(ctx context.Context, queue string, body []byte, headers map[string]any) ([]byte, error) {
	return f(ctx, queue, body, headers)
}

func TestRPCQuotes(t *testing.T) {
	quoteReply := `{"v":1,"quote":{"symbol":"AAPL.US","name":"APPLE","open":1,"high":2,"low":0.5,"close":1.5,"volume":10,"quoted_at":"2026-11-26T22:00:00Z"}}`
	tests := []struct {
		name     string
		reply    string
		callErr  error
		wantCode stockrpc.Code
		wantErr  error
	}{
		{name: "quote", reply: quoteReply},
		{name: "not found", reply: `{"v":1,"error":{"code":"not_found","message":"no such symbol"}}`, wantCode: stockrpc.CodeNotFound},
		{name: "rate limited", reply: `{"v":1,"error":{"code":"rate_limited","message":""}}`, wantCode: stockrpc.CodeRateLimited},
		{name: "garbage", reply: `<html>`, wantErr: errBadReply},
		{name: "both", reply: `{"v":1,"quote":{"symbol":"X"},"error":{"code":"internal"}}`, wantErr: errBadReply},
		{name: "neither", reply: `{"v":1}`, wantErr: errBadReply},
		{name: "other version", reply: `{"v":2,"quote":{"symbol":"X"}}`, wantErr: errBadReply},
		{name: "empty symbol", reply: `{"v":1,"quote":{"symbol":""}}`, wantErr: errBadReply},
		{name: "broker down", callErr: amqprpc.ErrUnavailable, wantErr: amqprpc.ErrUnavailable},
		{name: "no route", callErr: amqprpc.ErrNoRoute, wantErr: amqprpc.ErrNoRoute},
		{name: "timeout", callErr: fmt.Errorf("wait: %w", context.DeadlineExceeded), wantErr: errNoAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller := fakeCaller(func(ctx context.Context, queue string, body []byte, _ map[string]any) ([]byte, error) {
				if queue != stockrpc.QueueName {
					t.Errorf("queue = %q, want %q", queue, stockrpc.QueueName)
				}
				deadline, ok := ctx.Deadline()
				if !ok || time.Until(deadline) > 3*time.Second {
					t.Errorf("ctx deadline = %v, %v; want within the 3s RPC timeout", deadline, ok)
				}
				var req stockrpc.Request
				if err := json.Unmarshal(body, &req); err != nil || req.Version != stockrpc.Version || req.Symbol != "aapl.us" {
					t.Errorf("request = %s (%v)", body, err)
				}
				return []byte(tt.reply), tt.callErr
			})
			q, _, err := newTestRPCQuotes(caller, 3*time.Second).Quote(context.Background(), "aapl.us")
			switch {
			case tt.wantCode != "":
				var e *stockrpc.Error
				if !errors.As(err, &e) || e.Code != tt.wantCode {
					t.Errorf("err = %v, want code %q", err, tt.wantCode)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
			default:
				want := stockrpc.Quote{Symbol: "AAPL.US", Name: "APPLE", Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 10,
					QuotedAt: time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)}
				if err != nil || !q.QuotedAt.Equal(want.QuotedAt) || q.Symbol != want.Symbol || q.Close != want.Close || q.Volume != want.Volume {
					t.Errorf("Quote = %+v, %v; want %+v", q, err, want)
				}
			}
		})
	}
}

func newTestRPCQuotes(rpc rpcCaller, timeout time.Duration) *rpcQuotes {
	return newRPCQuotes(rpc, stockrpc.QueueName, timeout, noop.NewTracerProvider(), prometheus.NewRegistry())
}

// TestRPCQuotesReportFetch: a reply not marked cached reports a stooq
// fetch; a cached one does not.
func TestRPCQuotesReportFetch(t *testing.T) {
	for _, cached := range []bool{false, true} {
		reply, _ := json.Marshal(stockrpc.Reply{Version: stockrpc.Version, Cached: cached, Error: &stockrpc.Error{Code: stockrpc.CodeNotFound}})
		q := newTestRPCQuotes(fakeCaller(func(context.Context, string, []byte, map[string]any) ([]byte, error) { return reply, nil }), time.Second)
		if _, fetched, _ := q.Quote(context.Background(), "x.us"); fetched == cached {
			t.Errorf("reply cached=%v: fetch reported %v", cached, fetched)
		}
	}
}

// TestRPCQuotesHeadersAndLatency: each call carries the request id and
// trace context in its AMQP headers and is timed by outcome.
func TestRPCQuotesHeadersAndLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	var headers []map[string]any
	var callErr error
	caller := fakeCaller(func(_ context.Context, _ string, _ []byte, h map[string]any) ([]byte, error) {
		headers = append(headers, h)
		return []byte(`{"v":1,"quote":{"symbol":"X"}}`), callErr
	})
	q := newRPCQuotes(caller, "q", time.Second, noop.NewTracerProvider(), reg)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := tracing.Propagator().Extract(context.Background(), tracing.HeaderCarrier{"traceparent": parent})
	if _, _, err := q.Quote(logging.WithRequestID(ctx, "req-42"), "x.us"); err != nil {
		t.Fatal(err)
	}
	if headers[0][amqprpc.RequestIDHeader] != "req-42" {
		t.Errorf("request id header = %v, want req-42", headers[0][amqprpc.RequestIDHeader])
	}
	if tp, _ := headers[0]["traceparent"].(string); !strings.HasPrefix(tp, parent[:36]) {
		t.Errorf("traceparent = %q, want trace id of %q", tp, parent)
	}
	callErr = fmt.Errorf("call: %w", amqprpc.ErrUnavailable)
	if _, _, err := q.Quote(context.Background(), "x.us"); !errors.Is(err, amqprpc.ErrUnavailable) {
		t.Fatalf("err = %v, want the broker's error passed through", err)
	}
	if _, ok := headers[1][amqprpc.RequestIDHeader]; ok {
		t.Error("request id header set without a request id")
	}
	for outcome, want := range map[string]uint64{"ok": 1, "unavailable": 1, "timeout": 0} {
		if got := histCount(t, reg, "stockquote_rpc_client_duration_seconds", outcome); got != want {
			t.Errorf("rpc duration count{outcome=%s} = %d, want %d", outcome, got, want)
		}
	}
}

// TestCoalescedQuotes: concurrent callers for one symbol share one
// request and its answer, errors included; only the caller whose request
// it was reports the stooq fetch; the shared request outlives its first
// caller's cancellation; another symbol gets its own request.
func TestCoalescedQuotes(t *testing.T) {
	for _, wantErr := range []error{nil, &stockrpc.Error{Code: stockrpc.CodeNotFound}} {
		release := make(chan struct{})
		var mu sync.Mutex
		calls := map[string]int{}
		next := fetchingQuotesCtx(func(ctx context.Context, s string) (stockrpc.Quote, bool, error) {
			mu.Lock()
			calls[s]++
			mu.Unlock()
			<-release
			if ctx.Err() != nil {
				return stockrpc.Quote{}, true, ctx.Err()
			}
			return stockrpc.Quote{Symbol: s}, true, wantErr
		})
		c := newCoalescedQuotes(next, prometheus.NewRegistry())
		firstCtx, cancelFirst := context.WithCancel(context.Background())
		const n = 5
		type result struct {
			q       stockrpc.Quote
			fetched bool
			err     error
		}
		results := make(chan result, n+1)
		ask := func(ctx context.Context, s string) {
			q, fetched, err := c.Quote(ctx, s)
			results <- result{q, fetched, err}
		}
		go ask(firstCtx, "aapl.us")
		waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls["aapl.us"] == 1 })
		for range n - 1 {
			go ask(context.Background(), "aapl.us")
		}
		go ask(context.Background(), "msft.us")
		waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls["msft.us"] == 1 })
		// Time for the joiners to reach the shared request (singleflight
		// cannot be asked who waits).
		time.Sleep(200 * time.Millisecond)
		cancelFirst()
		close(release)
		fetches := 0
		for range n + 1 {
			r := <-results
			if !errors.Is(r.err, wantErr) || (wantErr == nil && r.q.Symbol == "") {
				t.Errorf("caller got %+v, want the shared answer (err %v)", r, wantErr)
			}
			if r.fetched {
				fetches++
			}
		}
		if calls["aapl.us"] != 1 || calls["msft.us"] != 1 {
			t.Errorf("requests %v, want one per symbol", calls)
		}
		if fetches != 2 {
			t.Errorf("%d callers reported a fetch, want 2 (one per request)", fetches)
		}
		if got := testutil.ToFloat64(c.joined); got != n-1 {
			t.Errorf("joined = %v, want %d", got, n-1)
		}
	}
}

// fetchingQuotesCtx is a quoteRequester calling its function field.
type fetchingQuotesCtx func(ctx context.Context, symbol string) (stockrpc.Quote, bool, error)

func (f fetchingQuotesCtx) Quote(ctx context.Context, symbol string) (stockrpc.Quote, bool, error) {
	return f(ctx, symbol)
}

// waitUntil polls cond for up to 5s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}
