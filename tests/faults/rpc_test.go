//go:build integration

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// timed runs f and returns its result and how long it took.
func timed(f func() response) (response, time.Duration) {
	start := time.Now()
	r := f()
	return r, time.Since(start)
}

// waitHits waits until the fake stooq has seen at least n requests.
func (s *system) waitHits(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stooq.TotalHits() < n {
		if time.Now().After(deadline) {
			t.Fatalf("stooq saw %d requests, want %d", s.Stooq.TotalHits(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrokerLinkLost cuts the API's broker link with a call in flight:
// the call fails fast with 503 (well under RPC_TIMEOUT), new calls fail at
// once, /readyz says not ready; once the link heals the API reconnects by
// itself and serves again. Then a broker "restart" (every link of both
// programs cut, new connections refused for a while) ends the same way.
func TestBrokerLinkLost(t *testing.T) {
	const rpcTimeout = 10 * time.Second
	s := newSystem(t, options{rpcTimeout: rpcTimeout, stooqTimeout: 8 * time.Second})
	tok := s.Login(t, "alice", "alice-password-1")

	t.Run("api link cut with a call in flight", func(t *testing.T) {
		s.Stooq.SetLatency(3 * time.Second)
		before := s.Stooq.TotalHits()
		done := make(chan response, 1)
		go func() {
			r, _ := s.Try(http.MethodGet, "/api/v1/stock?q=aapl.us", tok, nil)
			done <- r
		}()
		s.waitHits(t, before+1) // the worker is fetching: the call is in flight
		s.broker.down()
		cut := time.Now()
		r := <-done
		if d := time.Since(cut); d > 2*time.Second {
			t.Errorf("in-flight call answered %v after the cut, want well under %v", d, rpcTimeout)
		}
		wantProblem(t, r, http.StatusServiceUnavailable)
		s.Stooq.SetLatency(0)

		r, d := timed(func() response { return s.Do(t, http.MethodGet, "/api/v1/stock?q=msft.us", tok, nil) })
		wantProblem(t, r, http.StatusServiceUnavailable)
		if d > time.Second {
			t.Errorf("call while the link is down took %v, want at once", d)
		}
		waitStatus(t, s.API+"/readyz", http.StatusServiceUnavailable, 5*time.Second)

		s.broker.up()
		waitStatus(t, s.API+"/readyz", http.StatusOK, 15*time.Second)
		if r := s.Do(t, http.MethodGet, "/api/v1/stock?q=aapl.us", tok, nil); r.Status != http.StatusOK {
			t.Fatalf("after heal: %d %s", r.Status, r.Body)
		}
		// The in-flight request's reply reached nobody; only the 200 is kept.
		if n := s.CountRows(t, ""); n != 1 {
			t.Errorf("history rows = %d, want 1 (only the 200)", n)
		}
	})

	t.Run("broker restart", func(t *testing.T) {
		w := s.workers[0]
		s.broker.down()
		w.broker.down()
		waitStatus(t, w.health+"/readyz", http.StatusServiceUnavailable, 5*time.Second)
		r, d := timed(func() response { return s.Do(t, http.MethodGet, "/api/v1/stock?q=aapl.us", tok, nil) })
		wantProblem(t, r, http.StatusServiceUnavailable)
		if d > time.Second {
			t.Errorf("call while the broker is gone took %v, want at once", d)
		}
		time.Sleep(3 * time.Second) // refused for a while: several redials fail
		s.broker.up()
		w.broker.up()
		waitStatus(t, w.health+"/readyz", http.StatusOK, 15*time.Second)
		waitStatus(t, s.API+"/readyz", http.StatusOK, 15*time.Second)
		if r := s.Do(t, http.MethodGet, "/api/v1/stock?q=msft.us", tok, nil); r.Status != http.StatusOK {
			t.Fatalf("after restart: %d %s", r.Status, r.Body)
		}
		if n := s.CountRows(t, ""); n != 2 {
			t.Errorf("history rows = %d, want 2", n)
		}
	})
}

// TestNoWorkerConsuming: the queue exists but nobody consumes it. The call
// fails at its deadline with 503 (no worker answered), nothing is saved, and the broker drops
// the expired request so the queue empties by itself.
func TestNoWorkerConsuming(t *testing.T) {
	const rpcTimeout = 2 * time.Second
	s := newSystem(t, options{workers: -1, rpcTimeout: rpcTimeout})
	declareQueue(t, s.Queue)
	tok := s.Login(t, "alice", "alice-password-1")

	r, d := timed(func() response { return s.Do(t, http.MethodGet, "/api/v1/stock?q=aapl.us", tok, nil) })
	wantProblem(t, r, http.StatusServiceUnavailable)
	if d < rpcTimeout-100*time.Millisecond || d > rpcTimeout+3*time.Second {
		t.Errorf("answered after %v, want about RPC_TIMEOUT %v", d, rpcTimeout)
	}
	if n := s.CountRows(t, ""); n != 0 {
		t.Errorf("history rows = %d, want 0", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, c := queueDepth(t, s.Queue)
		if c != 0 {
			t.Fatalf("queue has %d consumers, want 0", c)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d expired requests after 10s", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWorkerKilledMidRequest: a worker receives the request and is killed
// (SIGKILL) before it replies. The broker redelivers the unacked request
// to a worker started afterwards, and the caller gets exactly one answer.
func TestWorkerKilledMidRequest(t *testing.T) {
	s := newSystem(t, options{rpcTimeout: 20 * time.Second, stooqTimeout: 10 * time.Second})
	tok := s.Login(t, "alice", "alice-password-1")
	s.Stooq.SetLatency(5 * time.Second)

	done := make(chan response, 1)
	go func() {
		r, _ := s.Try(http.MethodGet, "/api/v1/stock?q=aapl.us", tok, nil)
		done <- r
	}()
	s.waitHits(t, 1) // received, fetching, not replied
	s.workers[0].Kill()
	s.Stooq.SetLatency(0)
	s.startWorker(t)

	r := <-done
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	var q struct{ Symbol string }
	if err := json.Unmarshal(r.Body, &q); err != nil || q.Symbol != "AAPL.US" {
		t.Fatalf("answer %s (%v), want AAPL.US", r.Body, err)
	}
	if h := s.Stooq.TotalHits(); h != 2 {
		t.Errorf("stooq hits for aapl.us = %d, want 2 (the killed worker's and the redelivery's)", h)
	}
	if n := s.CountRows(t, ""); n != 1 {
		t.Errorf("history rows = %d, want exactly 1", n)
	}
	if n, _ := queueDepth(t, s.Queue); n != 0 {
		t.Errorf("queue depth = %d, want 0", n)
	}
}

// rpcClient is an in-process amqprpc client straight to the broker.
func rpcClient(t *testing.T) (*amqprpc.Conn, *amqprpc.Client) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	conn, err := amqprpc.Dial(amqprpc.Config{URL: amqpURL(), Name: t.Name(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	c := amqprpc.NewClient(conn, amqprpc.ClientOptions{Channels: 2, ContentType: stockrpc.ContentType})
	deadline := time.Now().Add(10 * time.Second)
	for c.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("RabbitMQ not reachable: %v", c.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return conn, c
}

// TestReplyThenCrashBeforeAck: a worker publishes its reply and dies
// before acking. The broker redelivers the request to the next worker,
// whose second reply is dropped and counted as a duplicate; the caller got
// exactly one answer.
func TestReplyThenCrashBeforeAck(t *testing.T) {
	queue := "faults.replycrash." + randomHex(6)
	declareQueue(t, queue)
	t.Cleanup(func() { deleteQueue(t, queue) })
	conn, c := rpcClient(t)
	defer conn.Close()
	defer c.Close()

	// The crashing worker: a raw consumer that replies and closes its
	// connection without acking.
	raw, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	crashed := make(chan struct{})
	go func() {
		defer close(crashed)
		d := <-deliveries
		_ = ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, Body: []byte("first")})
		raw.Close() // dies before the ack
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	reply, err := c.Call(ctx, queue, []byte("req"), nil)
	if err != nil || string(reply) != "first" {
		t.Fatalf("Call = %q, %v; want first", reply, err)
	}
	<-crashed

	// The next worker gets the redelivery and replies again.
	redelivered := make(chan bool, 1)
	srv := amqprpc.NewServer(conn, queue, func(_ context.Context, m amqprpc.Message) []byte {
		redelivered <- m.Redelivered
		return []byte("second")
	}, amqprpc.ServerOptions{})
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	defer func() { stop(); <-served }()
	select {
	case r := <-redelivered:
		if !r {
			t.Error("second worker's delivery not marked redelivered")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request was not redelivered")
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().DuplicateReplies.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("duplicate replies dropped = %d, want 1", c.Stats().DuplicateReplies.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := c.Stats(); st.Replies.Load() != 1 || st.UnknownReplies.Load() != 0 {
		t.Errorf("client replies, unknown = %d, %d; want exactly 1 reply delivered", st.Replies.Load(), st.UnknownReplies.Load())
	}
}

// TestThousandConcurrentSymbols: 1,000 concurrent calls for different
// symbols through the real worker; every caller gets its own symbol back,
// and the RPC client leaves no goroutine behind.
func TestThousandConcurrentSymbols(t *testing.T) {
	s := newSystem(t, options{rpcTimeout: 30 * time.Second, stooqTimeout: 10 * time.Second})
	ignore := goleak.IgnoreCurrent()
	conn, c := rpcClient(t)

	const n = 1000
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			sym := fmt.Sprintf("t%d.us", i)
			body, _ := json.Marshal(stockrpc.Request{Version: stockrpc.Version, Symbol: sym})
			raw, err := c.Call(ctx, s.Queue, body, nil)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", sym, err)
				return
			}
			rep, err := stockrpc.DecodeReply(raw)
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s: %w", sym, err)
			case rep.Error != nil:
				errs <- fmt.Errorf("%s: %v", sym, rep.Error)
			case rep.Quote.Symbol != fmt.Sprintf("T%d.US", i):
				errs <- fmt.Errorf("%s: got the quote of %s", sym, rep.Quote.Symbol)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d concurrent calls in %v", n, time.Since(start))
	if st := c.Stats(); st.Replies.Load() != n || st.LateReplies.Load()+st.DuplicateReplies.Load()+st.UnknownReplies.Load() != 0 {
		t.Errorf("client replies = %d, dropped %d late, %d duplicate, %d unknown; want %d and none dropped",
			st.Replies.Load(), st.LateReplies.Load(), st.DuplicateReplies.Load(), st.UnknownReplies.Load(), n)
	}
	c.Close()
	conn.Close()
	// The fake stooq runs in this process; its server-side keep-alive
	// connections to the worker belong to the fake, not to the RPC path.
	goleak.VerifyNone(t, ignore, goleak.IgnoreAnyFunction("net/http.(*conn).serve"))
}

// TestPoisonRequests: requests the worker cannot decode get an error
// reply at once (never redelivered); one without reply_to is acked and
// dropped. The worker keeps serving.
func TestPoisonRequests(t *testing.T) {
	s := newSystem(t, options{})
	conn, c := rpcClient(t)
	defer conn.Close()
	defer c.Close()

	for _, tc := range []struct {
		name string
		body string
		want stockrpc.Code
	}{
		{"not JSON", "\x00\xffnot json", stockrpc.CodeInvalid},
		{"empty", "", stockrpc.CodeInvalid},
		{"unknown version", `{"v":99,"symbol":"aapl.us"}`, stockrpc.CodeUnsupportedVersion},
		{"no version", `{"symbol":"aapl.us"}`, stockrpc.CodeUnsupportedVersion},
		{"bad symbol", `{"v":1,"symbol":"../../etc/passwd"}`, stockrpc.CodeInvalid},
		{"wrong types", `{"v":"1","symbol":42}`, stockrpc.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			raw, err := c.Call(ctx, s.Queue, []byte(tc.body), nil)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			rep, err := stockrpc.DecodeReply(raw)
			if err != nil || rep.Error == nil || rep.Error.Code != tc.want {
				t.Fatalf("reply %s (%v), want error code %s", raw, err, tc.want)
			}
		})
	}
	t.Run("no reply_to", func(t *testing.T) {
		withChannel(t, func(ch *amqp.Channel) error {
			return ch.Publish("", s.Queue, true, false, amqp.Publishing{Body: []byte(`{"v":1,"symbol":"aapl.us"}`)})
		})
		deadline := time.Now().Add(5 * time.Second)
		for {
			if n, _ := queueDepth(t, s.Queue); n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("request without reply_to still queued after 5s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		deadline = time.Now().Add(5 * time.Second)
		for !strings.Contains(s.workers[0].Logs(), "amqp request without reply_to dropped") {
			if time.Now().After(deadline) {
				t.Fatal("worker did not log dropping the request without reply_to")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if s.Stooq.TotalHits() != 0 {
		t.Errorf("stooq saw %d requests, want 0: nothing poisoned reaches it", s.Stooq.TotalHits())
	}
	tok := s.Login(t, "alice", "alice-password-1")
	if r := s.Do(t, http.MethodGet, "/api/v1/stock?q=aapl.us", tok, nil); r.Status != http.StatusOK {
		t.Fatalf("worker stopped serving after poison: %d %s", r.Status, r.Body)
	}
}
