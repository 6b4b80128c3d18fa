package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// quoterFunc is a hand-written fake quoter.
type quoterFunc func(ctx context.Context, symbol string) (stockrpc.Quote, error)

func (f quoterFunc) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	return f(ctx, symbol)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

func call(t *testing.T, h amqprpc.Handler, ctx context.Context, body string) stockrpc.Reply {
	t.Helper()
	raw := h(ctx, amqprpc.Message{Body: []byte(body), CorrelationID: "c1"})
	r, err := stockrpc.DecodeReply(raw)
	if err != nil {
		t.Fatalf("reply %s: %v", raw, err)
	}
	return r
}

// TestHandleQuoteWithFakeStooq drives the handler through the real stooq
// client against the fake, covering every failure mode end to end.
func TestHandleQuoteWithFakeStooq(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{SlowDelay: 5 * time.Second})
	defer fake.Close()
	client, err := stooq.New(stooq.Options{BaseURL: fake.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := handleQuote(newQuoteCache(client, 0, time.Now, prometheus.NewRegistry()), discardLogger())
	aapl, _ := fake.Want("aapl.us")

	tests := []struct {
		name      string
		body      string
		wantQuote *stockrpc.Quote
		wantCode  stockrpc.Code
	}{
		{name: "found", body: `{"v":1,"symbol":"AAPL.us"}`, wantQuote: &aapl},
		{name: "unknown", body: `{"v":1,"symbol":"nosuch.us"}`, wantCode: stockrpc.CodeNotFound},
		{name: "rate limited", body: `{"v":1,"symbol":"ratelimit.test"}`, wantCode: stockrpc.CodeRateLimited},
		{name: "html", body: `{"v":1,"symbol":"html.test"}`, wantCode: stockrpc.CodeUpstreamError},
		{name: "php warning", body: `{"v":1,"symbol":"phpwarning.test"}`, wantCode: stockrpc.CodeUpstreamError},
		{name: "truncated", body: `{"v":1,"symbol":"truncated.test"}`, wantCode: stockrpc.CodeUpstreamError},
		{name: "garbage", body: `{"v":1,"symbol":"garbage.test"}`, wantCode: stockrpc.CodeUpstreamError},
		{name: "huge", body: `{"v":1,"symbol":"huge.test"}`, wantCode: stockrpc.CodeUpstreamError},
		{name: "status 500", body: `{"v":1,"symbol":"error.test"}`, wantCode: stockrpc.CodeUpstreamError},
		{name: "slow", body: `{"v":1,"symbol":"slow.test"}`, wantCode: stockrpc.CodeUpstreamTimeout},
		{name: "challenge", body: `{"v":1,"symbol":"challenge.test"}`, wantCode: stockrpc.CodeChallenge},
		{name: "key page", body: `{"v":1,"symbol":"keypage.test"}`, wantCode: stockrpc.CodeKeyRequired},
		{name: "invalid key page", body: `{"v":1,"symbol":"badkey.test"}`, wantCode: stockrpc.CodeKeyRejected},
		{name: "malformed json", body: `{"v":1,`, wantCode: stockrpc.CodeInvalid},
		{name: "invalid symbol", body: `{"v":1,"symbol":"aapl.us+msft.us"}`, wantCode: stockrpc.CodeInvalid},
		{name: "empty symbol", body: `{"v":1,"symbol":""}`, wantCode: stockrpc.CodeInvalid},
		{name: "version 2", body: `{"v":2,"symbol":"aapl.us"}`, wantCode: stockrpc.CodeUnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, h, context.Background(), tt.body)
			if tt.wantQuote != nil {
				if r.Quote == nil || *r.Quote != *tt.wantQuote {
					t.Fatalf("reply = %+v (error %v), want quote %+v", r.Quote, r.Error, *tt.wantQuote)
				}
				return
			}
			if r.Error == nil || r.Error.Code != tt.wantCode {
				t.Fatalf("reply error = %v (quote %+v), want code %s", r.Error, r.Quote, tt.wantCode)
			}
		})
	}
}

func TestHandleQuoteMapsErrors(t *testing.T) {
	tests := []struct {
		err  error
		want stockrpc.Code
	}{
		{fmt.Errorf("x: %w", stooq.ErrNotFound), stockrpc.CodeNotFound},
		{fmt.Errorf("x: %w", stooq.ErrRateLimited), stockrpc.CodeRateLimited},
		{fmt.Errorf("x: %w", stooq.ErrUpstream), stockrpc.CodeUpstreamError},
		{fmt.Errorf("x: %w", stooq.ErrNetwork), stockrpc.CodeUpstreamError},
		{fmt.Errorf("x: %w", stooq.ErrKeyRequired), stockrpc.CodeKeyRequired},
		{fmt.Errorf("x: %w", stooq.ErrKeyRejected), stockrpc.CodeKeyRejected},
		{fmt.Errorf("x: %w", stooq.ErrChallenge), stockrpc.CodeChallenge},
		{fmt.Errorf("x: %w: rate: wait", stooq.ErrOverBudget), stockrpc.CodeOverBudget},
		{fmt.Errorf("x: %w: %w", stooq.ErrTimeout, context.DeadlineExceeded), stockrpc.CodeUpstreamTimeout},
		{context.DeadlineExceeded, stockrpc.CodeUpstreamTimeout},
		{fmt.Errorf("x: %w", stockrpc.ErrInvalidSymbol), stockrpc.CodeInvalid},
		{&stockrpc.Error{Code: stockrpc.CodeRateLimited, Message: "m"}, stockrpc.CodeRateLimited},
		{context.Canceled, stockrpc.CodeInternal},
		{errors.New("disk on fire"), stockrpc.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			h := handleQuote(newQuoteCache(quoterFunc(func(context.Context, string) (stockrpc.Quote, error) {
				return stockrpc.Quote{}, tt.err
			}), 0, time.Now, prometheus.NewRegistry()), discardLogger())
			r := call(t, h, context.Background(), `{"v":1,"symbol":"aapl.us"}`)
			if r.Error == nil || r.Error.Code != tt.want {
				t.Fatalf("reply error = %v, want code %s", r.Error, tt.want)
			}
			if r.Error.Code == stockrpc.CodeInternal && r.Error.Message == tt.err.Error() {
				t.Errorf("internal error text %q leaked to the wire", r.Error.Message)
			}
		})
	}
}

func TestHandleQuoteNormalizesAndSkipsExpired(t *testing.T) {
	var calls []string
	h := handleQuote(newQuoteCache(quoterFunc(func(_ context.Context, symbol string) (stockrpc.Quote, error) {
		calls = append(calls, symbol)
		return stockrpc.Quote{Symbol: "AAPL.US", Name: "APPLE", Close: 1}, nil
	}), 0, time.Now, prometheus.NewRegistry()), discardLogger())

	if r := call(t, h, context.Background(), `{"v":1,"symbol":"  AAPL.US "}`); r.Quote == nil {
		t.Fatalf("reply error = %v, want a quote", r.Error)
	}
	if len(calls) != 1 || calls[0] != "aapl.us" {
		t.Errorf("quoter calls = %q, want [aapl.us]", calls)
	}

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	r := call(t, h, ctx, `{"v":1,"symbol":"msft.us"}`)
	if r.Error == nil || r.Error.Code != stockrpc.CodeUpstreamTimeout {
		t.Errorf("expired request reply = %+v, want upstream_timeout", r)
	}
	if len(calls) != 1 {
		t.Errorf("quoter called for an expired request: %q", calls)
	}
}

// TestReplyCached: a reply says whether stooq was asked for it: the first
// request for a symbol fetches (cached false), the next ones within the
// TTL are answered from the cache, not-found answers included.
func TestReplyCached(t *testing.T) {
	fetches := 0
	stooqFake := quoterFunc(func(_ context.Context, symbol string) (stockrpc.Quote, error) {
		fetches++
		if symbol == "nosuch.us" {
			return stockrpc.Quote{}, stooq.ErrNotFound
		}
		return stockrpc.Quote{Symbol: "AAPL.US", Close: 1}, nil
	})
	h := handleQuote(newQuoteCache(stooqFake, time.Minute, time.Now, prometheus.NewRegistry()), discardLogger())
	for _, sym := range []string{"aapl.us", "nosuch.us"} {
		for i, want := range []bool{false, true, true} {
			if r := call(t, h, context.Background(), `{"v":1,"symbol":"`+sym+`"}`); r.Cached != want {
				t.Errorf("%s request %d: cached = %v, want %v", sym, i+1, r.Cached, want)
			}
		}
	}
	if fetches != 2 {
		t.Errorf("%d stooq fetches, want 2", fetches)
	}
}
