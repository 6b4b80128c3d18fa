package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
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
			q, err := newRPCQuotes(caller, stockrpc.QueueName, 3*time.Second).Quote(context.Background(), "aapl.us")
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

// blockingQuotes is a quoteRequester whose answers wait for release; it
// counts the requests per symbol and records each request's context.
type blockingQuotes struct {
	release chan struct{}
	err     error

	mu    sync.Mutex
	calls map[string]int
	ctxs  []context.Context
}

func newBlockingQuotes() *blockingQuotes {
	return &blockingQuotes{release: make(chan struct{}), calls: map[string]int{}}
}

func (b *blockingQuotes) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	b.mu.Lock()
	b.calls[symbol]++
	b.ctxs = append(b.ctxs, ctx)
	b.mu.Unlock()
	select {
	case <-b.release:
	case <-ctx.Done():
		return stockrpc.Quote{}, fmt.Errorf("call: %w", ctx.Err())
	}
	if b.err != nil {
		return stockrpc.Quote{}, b.err
	}
	return stockrpc.Quote{Symbol: symbol, Close: 1.5}, nil
}

func (b *blockingQuotes) count(symbol string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[symbol]
}

// waitCalls waits until symbol has had n requests.
func (b *blockingQuotes) waitCalls(t *testing.T, symbol string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.count(symbol) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d requests after 10s, want %d", symbol, b.count(symbol), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCoalescedQuotesShareOneRequest: concurrent callers for one symbol
// share one request, other symbols get their own, and every caller gets
// the answer; once answered, nothing is kept.
func TestCoalescedQuotesShareOneRequest(t *testing.T) {
	next := newBlockingQuotes()
	c := newCoalescedQuotes(next)
	const n = 20
	type result struct {
		q   stockrpc.Quote
		err error
	}
	results := make(chan result, n+1)
	ask := func(symbol string) {
		q, err := c.Quote(context.Background(), symbol)
		results <- result{q, err}
	}
	go ask("AAPL.US")
	next.waitCalls(t, "AAPL.US", 1)
	for range n - 1 {
		go ask("AAPL.US")
	}
	go ask("MSFT.US")
	next.waitCalls(t, "MSFT.US", 1)
	waitJoined(t, c, n-1) // the request is held until release
	close(next.release)
	for range n + 1 {
		r := <-results
		if r.err != nil || r.q.Close != 1.5 || (r.q.Symbol != "AAPL.US" && r.q.Symbol != "MSFT.US") {
			t.Errorf("Quote = %+v, %v", r.q, r.err)
		}
	}
	aapl := next.count("AAPL.US")
	if aapl != 1 {
		t.Errorf("%d requests for %d concurrent AAPL.US callers, want 1", aapl, n)
	}
	if got := c.Joined(); got != n-1 {
		t.Errorf("Joined = %d, want %d (the callers that sent no request)", got, n-1)
	}
	if got := next.count("MSFT.US"); got != 1 {
		t.Errorf("MSFT.US: %d requests, want 1", got)
	}
	// Not a cache: the next caller sends its own request.
	if _, err := c.Quote(context.Background(), "AAPL.US"); err != nil {
		t.Fatal(err)
	}
	if got := next.count("AAPL.US"); got != aapl+1 {
		t.Errorf("a call after the answer made %d requests in all, want %d", got, aapl+1)
	}
}

// sharedCtx returns the context of the i-th request next received.
func (b *blockingQuotes) sharedCtx(i int) context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ctxs[i]
}

// quoteAsync calls c.Quote on a goroutine; the channel gets its error.
func quoteAsync(c quoteRequester, ctx context.Context, symbol string) <-chan error {
	out := make(chan error, 1)
	go func() {
		_, err := c.Quote(ctx, symbol)
		out <- err
	}()
	return out
}

// waitJoined waits until n callers have joined another's request.
func waitJoined(t *testing.T, c *coalescedQuotes, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Joined() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers joined after 10s, want %d", c.Joined(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// twoCallers starts a caller for AAPL.US with ctx1, waits until its
// request is in flight, then starts a second one with ctx2 and waits
// until it has joined that request. The channels get their errors.
func twoCallers(t *testing.T, c *coalescedQuotes, next *blockingQuotes, ctx1, ctx2 context.Context) (first, second <-chan error) {
	t.Helper()
	first = quoteAsync(c, ctx1, "AAPL.US")
	next.waitCalls(t, "AAPL.US", 1)
	joined := c.Joined()
	second = quoteAsync(c, ctx2, "AAPL.US")
	waitJoined(t, c, joined+1)
	return first, second
}

func recvWithin(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return within 5s", what)
		return nil
	}
}

// TestCoalescedQuotesFirstCallerGivesUp: the caller whose request others
// joined can go away without failing them: the request goes on (with the
// first caller's context values, not its cancellation), the others get
// the answer, and the first caller gets its own context's error.
func TestCoalescedQuotesFirstCallerGivesUp(t *testing.T) {
	next := newBlockingQuotes()
	c := newCoalescedQuotes(next)
	ctx, cancel := context.WithCancel(logging.WithRequestID(context.Background(), "req-1"))
	first, second := twoCallers(t, c, next, ctx, context.Background())
	cancel()
	time.Sleep(20 * time.Millisecond) // a wrongly abandoned request would end now
	shared := next.sharedCtx(0)
	if err := shared.Err(); err != nil {
		t.Errorf("the request ended with its first caller while another waited: %v", err)
	}
	if got := logging.RequestID(shared); got != "req-1" {
		t.Errorf("the shared request carries request id %q, want the first caller's req-1", got)
	}
	close(next.release)
	if err := recvWithin(t, second, "the second caller"); err != nil {
		t.Errorf("second caller: %v", err)
	}
	if err := recvWithin(t, first, "the first caller"); !errors.Is(err, context.Canceled) {
		t.Errorf("first caller: %v, want context.Canceled", err)
	}
	if got := next.count("AAPL.US"); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

// TestCoalescedQuotesJoinedCallerGivesUp: a caller that joined returns as
// soon as its context ends; the request goes on for the first caller.
func TestCoalescedQuotesJoinedCallerGivesUp(t *testing.T) {
	next := newBlockingQuotes()
	c := newCoalescedQuotes(next)
	ctx, cancel := context.WithCancel(context.Background())
	first, second := twoCallers(t, c, next, context.Background(), ctx)
	cancel()
	if err := recvWithin(t, second, "the caller that gave up"); !errors.Is(err, context.Canceled) {
		t.Errorf("second caller: %v, want context.Canceled", err)
	}
	if err := next.sharedCtx(0).Err(); err != nil {
		t.Errorf("the request ended with a joined caller: %v", err)
	}
	close(next.release)
	if err := recvWithin(t, first, "the first caller"); err != nil {
		t.Errorf("first caller: %v", err)
	}
}

// TestCoalescedQuotesAbandonedWhenNobodyWaits: once every caller has
// gone the request is abandoned (its context ends, so the RPC stops
// waiting), and a later caller sends a new request instead of joining
// the abandoned one.
func TestCoalescedQuotesAbandonedWhenNobodyWaits(t *testing.T) {
	next := newBlockingQuotes()
	c := newCoalescedQuotes(next)
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	first, second := twoCallers(t, c, next, ctx1, ctx2)
	cancel2()
	if err := recvWithin(t, second, "the joined caller"); !errors.Is(err, context.Canceled) {
		t.Errorf("joined caller: %v, want context.Canceled", err)
	}
	cancel1()
	if err := recvWithin(t, first, "the first caller"); !errors.Is(err, context.Canceled) {
		t.Errorf("first caller: %v, want context.Canceled", err)
	}
	if err := next.sharedCtx(0).Err(); err == nil {
		t.Error("nobody waits, but the request was not abandoned")
	}
	third := quoteAsync(c, context.Background(), "AAPL.US")
	next.waitCalls(t, "AAPL.US", 2)
	close(next.release)
	if err := recvWithin(t, third, "a later caller"); err != nil {
		t.Errorf("a caller after the abandoned request: %v", err)
	}
	if got := c.Joined(); got != 1 {
		t.Errorf("Joined = %d, want 1 (the later caller sent its own request)", got)
	}
}

// TestCoalescedQuotesShareErrors: a failed request fails every caller
// that shared it with the same error, and is not remembered.
func TestCoalescedQuotesShareErrors(t *testing.T) {
	next := newBlockingQuotes()
	next.err = fmt.Errorf("call: %w", amqprpc.ErrUnavailable)
	c := newCoalescedQuotes(next)
	errs := make(chan error, 2)
	go func() {
		_, err := c.Quote(context.Background(), "AAPL.US")
		errs <- err
	}()
	next.waitCalls(t, "AAPL.US", 1)
	go func() {
		_, err := c.Quote(context.Background(), "AAPL.US")
		errs <- err
	}()
	waitJoined(t, c, 1)
	close(next.release)
	for range 2 {
		if err := <-errs; !errors.Is(err, amqprpc.ErrUnavailable) {
			t.Errorf("caller: %v, want ErrUnavailable", err)
		}
	}
	before := next.count("AAPL.US")
	if _, err := c.Quote(context.Background(), "AAPL.US"); !errors.Is(err, amqprpc.ErrUnavailable) {
		t.Errorf("later caller: %v", err)
	}
	if got := next.count("AAPL.US"); got != before+1 {
		t.Errorf("the failure was reused: %d requests, want %d", got, before+1)
	}
}

// TestCoalescedQuotesJoinedDeadlineIsNoAnswer: a joined caller whose own
// deadline passes gets what a caller of its own RPC would: 503 "no stock
// service answered in time", not a 504.
func TestCoalescedQuotesJoinedDeadlineIsNoAnswer(t *testing.T) {
	next := newBlockingQuotes()
	defer close(next.release)
	c := newCoalescedQuotes(next)
	_ = quoteAsync(c, context.Background(), "AAPL.US")
	next.waitCalls(t, "AAPL.US", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Quote(ctx, "AAPL.US")
	if !errors.Is(err, errNoAnswer) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("joined caller past its deadline: %v, want errNoAnswer wrapping DeadlineExceeded", err)
	}
	if p, _ := problemFor(err); p.Status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", p.Status)
	}
}

// panickingQuotes panics on its first request while holding it until
// release, and answers the later ones.
type panickingQuotes struct {
	*blockingQuotes
}

func (p *panickingQuotes) Quote(ctx context.Context, symbol string) (stockrpc.Quote, error) {
	p.mu.Lock()
	p.calls[symbol]++
	n := p.calls[symbol]
	p.mu.Unlock()
	if n == 1 {
		<-p.release
		panic("boom")
	}
	return stockrpc.Quote{Symbol: symbol}, nil
}

// TestCoalescedQuotesPanic: when the shared request panics, the first
// caller panics (for the server's recoverer to answer 500), the joined
// callers get an error instead of waiting forever, and the symbol is not
// left stuck: the next caller sends a new request.
func TestCoalescedQuotesPanic(t *testing.T) {
	next := &panickingQuotes{newBlockingQuotes()}
	c := newCoalescedQuotes(next)
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_, _ = c.Quote(context.Background(), "AAPL.US")
	}()
	next.waitCalls(t, "AAPL.US", 1)
	joined := quoteAsync(c, context.Background(), "AAPL.US")
	waitJoined(t, c, 1)
	close(next.release)
	if v := <-panicked; v != "boom" {
		t.Errorf("first caller recovered %v, want the panic", v)
	}
	if err := recvWithin(t, joined, "the joined caller"); err == nil {
		t.Error("joined caller: no error from a request that panicked")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if q, err := c.Quote(ctx, "AAPL.US"); err != nil || q.Symbol != "AAPL.US" {
		t.Errorf("a later caller: %+v, %v; want a new request's answer", q, err)
	}
}

// TestCoalescedQuotesJoinedSpanNamesTheSharedRequest: a joined request's
// span records which request (id and trace) it waited for, since the
// stock service logs only that one.
func TestCoalescedQuotesJoinedSpanNamesTheSharedRequest(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tracer := tp.Tracer("test")

	next := newBlockingQuotes()
	c := newCoalescedQuotes(next)
	firstCtx, firstSpan := tracer.Start(logging.WithRequestID(context.Background(), "req-1"), "first")
	joinedCtx, joinedSpan := tracer.Start(context.Background(), "joined")
	first, joined := twoCallers(t, c, next, firstCtx, joinedCtx)
	close(next.release)
	for _, ch := range []<-chan error{first, joined} {
		if err := recvWithin(t, ch, "a caller"); err != nil {
			t.Fatal(err)
		}
	}
	firstSpan.End()
	joinedSpan.End()

	var events []sdktrace.Event
	for _, s := range rec.Ended() {
		if s.Name() == "joined" {
			events = s.Events()
		}
	}
	if len(events) != 1 {
		t.Fatalf("joined span events = %+v, want one", events)
	}
	got := map[string]string{}
	for _, a := range events[0].Attributes {
		got[string(a.Key)] = a.Value.AsString()
	}
	want := map[string]string{
		"stockquote.quote.request_id": "req-1",
		"stockquote.quote.trace_id":   firstSpan.SpanContext().TraceID().String(),
	}
	if !maps.Equal(got, want) {
		t.Errorf("event %q attributes = %v, want %v", events[0].Name, got, want)
	}
}
