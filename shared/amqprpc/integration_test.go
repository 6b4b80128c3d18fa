//go:build integration

package amqprpc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stockquote/stockquote/shared/amqprpc/amqptest"
	"github.com/stockquote/stockquote/shared/leaktest"
	"github.com/stockquote/stockquote/shared/redact"
)

// setup registers the goroutine-leak check (it runs after every other
// cleanup) and returns a logger writing to the test output.
func setup(t *testing.T) *slog.Logger {
	t.Helper()
	leaktest.Check(t)
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// uniqueQueue returns a fresh queue name and deletes the queue at the end.
func uniqueQueue(t *testing.T) string { return amqptest.NewQueue(t, "amqprpc-test") }

// withChannel runs f on a channel of a fresh, short-lived connection.
func withChannel(t *testing.T, f func(ch *amqp.Channel)) {
	t.Helper()
	conn, err := amqp.Dial(amqptest.URL())
	if err != nil {
		t.Fatalf("RabbitMQ not reachable at %s: %v", redact.URL(amqptest.URL()), err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	f(ch)
}

// dialReady dials url and waits until the connection is up; an
// unreachable broker fails the test.
func dialReady(t *testing.T, log *slog.Logger, rawURL string) *Conn {
	t.Helper()
	conn, err := Dial(Config{URL: rawURL, Name: t.Name(), Logger: log})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	waitFor(t, 5*time.Second, func() error { return conn.Ready() }, "RabbitMQ not reachable at "+redact.URLs(rawURL))
	return conn
}

// waitDown waits up to 2s until ready reports an error (the link is seen
// as down).
func waitDown(t *testing.T, ready func() error, what string) {
	t.Helper()
	waitFor(t, 2*time.Second, func() error {
		if ready() == nil {
			return errors.New("still ready")
		}
		return nil
	}, what)
}

// waitFor polls cond until it returns nil or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() error, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %v", what, err, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startServer serves h on queue until the test ends and waits until it
// consumes. The returned stop function cancels Serve and waits for it.
func startServer(t *testing.T, conn *Conn, queue string, workers int, h Handler) (*Server, func() error) {
	t.Helper()
	srv := NewServer(conn, queue, h, ServerOptions{Workers: workers})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			serveErr = <-errc
		})
		return serveErr
	}
	t.Cleanup(func() { stop() })
	waitFor(t, 5*time.Second, srv.Ready, "server ready")
	return srv, stop
}

// callResult is what one Call returned.
type callResult struct {
	body []byte
	err  error
}

// callAsync runs one Call in the background; its result arrives on the
// returned channel.
func callAsync(ctx context.Context, c *Client, queue, body string) <-chan callResult {
	resc := make(chan callResult, 1)
	go func() {
		b, err := c.Call(ctx, queue, []byte(body), nil)
		resc <- callResult{b, err}
	}()
	return resc
}

func newClient(t *testing.T, conn *Conn, opts ClientOptions) *Client {
	t.Helper()
	c := NewClient(conn, opts)
	t.Cleanup(func() { c.Close() })
	waitFor(t, 5*time.Second, c.Ready, "client ready")
	return c
}

func echo(prefix string) Handler {
	return func(ctx context.Context, m Message) []byte {
		return append([]byte(prefix), m.Body...)
	}
}

func TestRoundTrip(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	conn := dialReady(t, log, amqptest.URL())
	var got Message
	var gotDeadline time.Time
	var mu sync.Mutex
	startServer(t, conn, queue, 1, func(ctx context.Context, m Message) []byte {
		mu.Lock()
		got = m
		gotDeadline, _ = ctx.Deadline()
		mu.Unlock()
		return append([]byte("re:"), m.Body...)
	})
	c := newClient(t, conn, ClientOptions{})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	want, _ := ctx.Deadline()
	reply, err := c.Call(ctx, queue, []byte("hello"), map[string]any{"x-trace": "abc"})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if string(reply) != "re:hello" {
		t.Errorf("reply = %q, want %q", reply, "re:hello")
	}
	mu.Lock()
	defer mu.Unlock()
	if got.Headers["x-trace"] != "abc" {
		t.Errorf("handler header x-trace = %v, want abc", got.Headers["x-trace"])
	}
	if d := gotDeadline.Sub(want); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("handler ctx deadline = %v, want %v (±1ms)", gotDeadline, want)
	}
	if got.CorrelationID == "" {
		t.Error("handler CorrelationID is empty")
	}
	if s := c.Stats(); s.Calls.Load() != 1 || s.Replies.Load() != 1 {
		t.Errorf("client calls, replies = %d, %d; want 1, 1", s.Calls.Load(), s.Replies.Load())
	}
}

// TestContentTypeOnTheWire: the client sets its ContentType on every
// request and the server its own on every reply, whatever the request
// carried.
func TestContentTypeOnTheWire(t *testing.T) {
	log := setup(t)
	conn := dialReady(t, log, amqptest.URL())

	toClient := uniqueQueue(t)
	withChannel(t, func(ch *amqp.Channel) {
		if _, err := ch.QueueDeclare(toClient, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	})
	c := newClient(t, conn, ClientOptions{ContentType: "application/x-req"})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	callAsync(ctx, c, toClient, "hi") // nobody replies: only the request is looked at
	withChannel(t, func(ch *amqp.Channel) {
		ds, err := ch.Consume(toClient, "", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-ds:
			if d.ContentType != "application/x-req" {
				t.Errorf("request content type = %q, want application/x-req", d.ContentType)
			}
		case <-ctx.Done():
			t.Fatal("request never arrived")
		}
	})

	toServer := uniqueQueue(t)
	srv := NewServer(conn, toServer, echo(""), ServerOptions{ContentType: "application/x-reply"})
	sctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	t.Cleanup(func() { stop(); <-served })
	waitFor(t, 5*time.Second, srv.Ready, "server consuming")
	withChannel(t, func(ch *amqp.Channel) {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = ch.Publish("", toServer, false, false, amqp.Publishing{ContentType: "text/plain", ReplyTo: q.Name, CorrelationId: "1", Body: []byte("hi")})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-ds:
			if d.ContentType != "application/x-reply" {
				t.Errorf("reply content type = %q, want application/x-reply", d.ContentType)
			}
		case <-ctx.Done():
			t.Fatal("reply never arrived")
		}
	})
}

func TestConcurrentCallsGetTheirOwnReply(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	conn := dialReady(t, log, amqptest.URL())
	startServer(t, conn, queue, 8, echo("re:"))
	c := newClient(t, conn, ClientOptions{Channels: 2})

	const n = 1000
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("call-%d", i)
			reply, err := c.Call(ctx, queue, []byte(body), nil)
			if err != nil {
				failed.Add(1)
				t.Errorf("call %d: %v", i, err)
				return
			}
			if want := "re:" + body; string(reply) != want {
				failed.Add(1)
				t.Errorf("call %d: reply %q, want %q", i, reply, want)
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls in %v", n, time.Since(start))
	if s := c.Stats(); s.Replies.Load() != n || s.LateReplies.Load()+s.DuplicateReplies.Load()+s.UnknownReplies.Load() != 0 {
		t.Errorf("client replies = %d, dropped %d late, %d duplicate, %d unknown; want %d and none dropped",
			s.Replies.Load(), s.LateReplies.Load(), s.DuplicateReplies.Load(), s.UnknownReplies.Load(), n)
	}
}

func TestUnroutableFailsAtOnce(t *testing.T) {
	log := setup(t)
	conn := dialReady(t, log, amqptest.URL())
	c := newClient(t, conn, ClientOptions{})
	queue := "amqprpc-test-nobody-" + strings.ToLower(rand.Text()[:10]) // never declared

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, queue, []byte("x"), nil)
	if !errors.Is(err, ErrNoRoute) {
		t.Fatalf("Call error = %v, want ErrNoRoute", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("ErrNoRoute after %v, want at once", d)
	}
	if s := c.Stats(); s.Returns.Load() != 1 {
		t.Errorf("Returns = %d, want 1", s.Returns.Load())
	}
}

func TestNoConsumerEndsAtDeadline(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	withChannel(t, func(ch *amqp.Channel) {
		if err := declareQueue(ch, queue, QueueClassic); err != nil {
			t.Fatal(err)
		}
	})
	conn := dialReady(t, log, amqptest.URL())
	c := newClient(t, conn, ClientOptions{})

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, queue, []byte("x"), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("Call returned after %v, want about 300ms", d)
	}
	// The request carried a 300ms expiration: the broker drops it.
	waitFor(t, 3*time.Second, func() error {
		var err error
		withChannel(t, func(ch *amqp.Channel) {
			q, qerr := ch.QueueDeclarePassive(queue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic})
			if qerr != nil {
				err = qerr
			} else if q.Messages != 0 {
				err = fmt.Errorf("%d messages in queue", q.Messages)
			}
		})
		return err
	}, "expired request dropped by broker")
}

func TestSlowHandlerReplyIsCountedLate(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	conn := dialReady(t, log, amqptest.URL())
	var sawDeadline atomic.Bool
	startServer(t, conn, queue, 1, func(ctx context.Context, m Message) []byte {
		<-ctx.Done() // the handler's ctx ends at the caller's deadline
		sawDeadline.Store(errors.Is(ctx.Err(), context.DeadlineExceeded))
		time.Sleep(100 * time.Millisecond) // and it replies anyway, late
		return []byte("too late")
	})
	c := newClient(t, conn, ClientOptions{})

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, queue, []byte("x"), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call error = %v, want context.DeadlineExceeded", err)
	}
	waitFor(t, 3*time.Second, func() error {
		if s := c.Stats(); s.LateReplies.Load() != 1 {
			return fmt.Errorf("late replies = %d", s.LateReplies.Load())
		}
		return nil
	}, "late reply counted")
	if !sawDeadline.Load() {
		t.Error("handler ctx did not end with DeadlineExceeded")
	}
	if s := c.Stats(); s.Replies.Load() != 0 || s.DuplicateReplies.Load() != 0 || s.UnknownReplies.Load() != 0 {
		t.Errorf("client replies, duplicate, unknown = %d, %d, %d; want the late reply dropped, nothing else",
			s.Replies.Load(), s.DuplicateReplies.Load(), s.UnknownReplies.Load())
	}
}

func TestServerDropsWithoutCallingHandler(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	conn := dialReady(t, log, amqptest.URL())
	var calls atomic.Int32
	srv, _ := startServer(t, conn, queue, 1, func(ctx context.Context, m Message) []byte {
		calls.Add(1)
		if string(m.Body) == "panic" {
			panic("boom")
		}
		return m.Body
	})

	past := time.Now().Add(-time.Second).UnixMilli()
	withChannel(t, func(ch *amqp.Channel) {
		for _, p := range []amqp.Publishing{
			{Body: []byte("expired"), ReplyTo: "amqprpc-test-void", CorrelationId: "1", Headers: amqp.Table{deadlineHeader: past}},
			{Body: []byte("no reply_to"), CorrelationId: "2"},
			{Body: []byte("panic"), ReplyTo: "amqprpc-test-void", CorrelationId: "3"},
		} {
			if err := ch.Publish("", queue, false, false, p); err != nil {
				t.Fatal(err)
			}
		}
	})
	// Deliveries is counted on receipt, the outcome once the request is
	// handled: wait for the outcomes, not just the deliveries.
	waitFor(t, 3*time.Second, func() error {
		s := srv.Stats()
		got := [...]uint64{s.Deliveries.Load(), s.Handled.Load(), s.Expired.Load(), s.Panics.Load(), s.NoReplyTo.Load(), s.ReplyErrors.Load()}
		if want := [...]uint64{3, 0, 1, 1, 1, 0}; got != want {
			return fmt.Errorf("server stats (deliveries, handled, expired, panics, no reply_to, reply errors) = %v, want %v", got, want)
		}
		return nil
	}, "three deliveries, each with its outcome")
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1 (only the panicking request)", n)
	}

	// The worker survived the panic and still answers.
	c := newClient(t, conn, ClientOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if reply, err := c.Call(ctx, queue, []byte("ok"), nil); err != nil || string(reply) != "ok" {
		t.Errorf("Call after panic = %q, %v; want ok", reply, err)
	}
}

func TestServeDrainsInFlightOnShutdown(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	conn := dialReady(t, log, amqptest.URL())
	started := make(chan struct{})
	srv, stop := startServer(t, conn, queue, 1, func(ctx context.Context, m Message) []byte {
		close(started)
		time.Sleep(300 * time.Millisecond)
		return []byte("done")
	})
	c := newClient(t, conn, ClientOptions{})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resc := callAsync(ctx, c, queue, "x")
	<-started
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if s := srv.Stats(); s.Handled.Load() != 1 {
		t.Errorf("Serve returned before the handler in flight finished: %d handled", s.Handled.Load())
	}
	r := <-resc
	if r.err != nil || string(r.body) != "done" {
		t.Errorf("Call = %q, %v; want the in-flight reply", r.body, r.err)
	}
	if err := srv.Ready(); err == nil {
		t.Error("server Ready after shutdown = nil")
	}
}

func TestClientCloseFailsPendingCalls(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	conn := dialReady(t, log, amqptest.URL())
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	startServer(t, conn, queue, 1, func(ctx context.Context, m Message) []byte {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	defer close(release)
	c := NewClient(conn, ClientOptions{})
	waitFor(t, 5*time.Second, c.Ready, "client ready")

	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Call(ctx, queue, []byte("x"), nil)
		errc <- err
	}()
	<-started
	start := time.Now()
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("pending Call = %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("pending call failed after %v, want at once", d)
	}
}

func TestReconnectAfterBrokerConnectionCut(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	p, proxied := proxiedBroker(t)

	srvConn := dialReady(t, log, amqptest.URL())
	release := make(chan struct{})
	defer close(release)
	startServer(t, srvConn, queue, 2, func(ctx context.Context, m Message) []byte {
		if string(m.Body) == "block" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return append([]byte("re:"), m.Body...)
	})
	conn := dialReady(t, log, proxied)
	c := newClient(t, conn, ClientOptions{})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Call(ctx, queue, []byte("warm-up"), nil); err != nil {
		t.Fatalf("Call before cut: %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, queue, []byte("block"), nil)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the request reach the handler

	p.cut(true)
	start := time.Now()
	if err := <-errc; !errors.Is(err, ErrUnavailable) {
		t.Errorf("in-flight Call after cut = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("in-flight call failed after %v, want fast", d)
	}
	waitDown(t, conn.Ready, "conn down")
	start = time.Now()
	if _, err := c.Call(ctx, queue, []byte("down"), nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Call while down = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Call while down took %v, want at once", d)
	}

	p.cut(false)
	waitFor(t, 5*time.Second, c.Ready, "client ready after reconnect")
	reply, err := c.Call(ctx, queue, []byte("again"), nil)
	if err != nil || string(reply) != "re:again" {
		t.Fatalf("Call after reconnect = %q, %v; want re:again", reply, err)
	}
	if n := p.active(); n != 1 {
		t.Errorf("%d connections through the proxy after the reconnect, want 1", n)
	}
}

// TestServerConcurrencyIsWorkers: with more requests waiting than
// Workers, exactly Workers handlers run at once on the server's one
// channel, and every request gets its own reply.
func TestServerConcurrencyIsWorkers(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	conn := dialReady(t, log, amqptest.URL())
	const workers, calls = 4, 12
	var running, peak atomic.Int32
	release := make(chan struct{})
	startServer(t, conn, queue, workers, func(ctx context.Context, m Message) []byte {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return append([]byte("re:"), m.Body...)
	})
	c := newClient(t, conn, ClientOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	errc := make(chan error, calls)
	for i := range calls {
		go func() {
			body := fmt.Sprint(i)
			reply, err := c.Call(ctx, queue, []byte(body), nil)
			if err == nil && string(reply) != "re:"+body {
				err = fmt.Errorf("call %s got reply %q", body, reply)
			}
			errc <- err
		}()
	}
	waitFor(t, 5*time.Second, func() error {
		if n := running.Load(); n != workers {
			return fmt.Errorf("%d handlers running", n)
		}
		return nil
	}, "Workers handlers running")
	time.Sleep(100 * time.Millisecond) // room for a fifth to start if the bound were wrong
	if p := peak.Load(); p != workers {
		t.Errorf("peak concurrent handlers = %d, want %d", p, workers)
	}
	close(release)
	for range calls {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if p := peak.Load(); p != workers {
		t.Errorf("peak concurrent handlers = %d, want %d", p, workers)
	}
}

// TestServerLinkCut cuts the server's broker link while it handles a
// request: the server reconnects by itself, the unacked request is
// redelivered and answered, and the caller gets its reply.
func TestServerLinkCut(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	p, proxied := proxiedBroker(t)

	srvConn := dialReady(t, log, proxied)
	var seen atomic.Int32
	started := make(chan struct{}, 4)
	srv, _ := startServer(t, srvConn, queue, 2, func(ctx context.Context, m Message) []byte {
		if seen.Add(1) == 1 {
			started <- struct{}{}
			time.Sleep(200 * time.Millisecond) // the link is cut meanwhile
		}
		return append([]byte("re:"), m.Body...)
	})
	c := newClient(t, dialReady(t, log, amqptest.URL()), ClientOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resc := callAsync(ctx, c, queue, "x")
	<-started
	p.cut(true)
	waitDown(t, srvConn.Ready, "server conn down")
	p.cut(false)
	r := <-resc
	if r.err != nil || string(r.body) != "re:x" {
		t.Fatalf("Call across the server's reconnect = %q, %v; want re:x", r.body, r.err)
	}
	if s := srv.Stats(); s.Deliveries.Load() < 2 {
		t.Errorf("deliveries = %d, want the request delivered again after the cut", s.Deliveries.Load())
	}
	waitFor(t, 5*time.Second, srv.Ready, "server ready after reconnect")
}

// TestServerRecoversWhileOldHandlerRuns: a handler still busy when its
// channel is lost keeps its slot, but does not hold up the next session:
// once the link is back, the other Workers slots answer new calls at
// once, and Ready says not ready while nothing consumes.
func TestServerRecoversWhileOldHandlerRuns(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	p, proxied := proxiedBroker(t)
	srvConn := dialReady(t, log, proxied)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 8)
	var running, peak atomic.Int32
	srv, _ := startServer(t, srvConn, queue, 2, func(ctx context.Context, m Message) []byte {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if string(m.Body) == "slow" && !m.Redelivered {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return append([]byte("re:"), m.Body...)
	})
	c := newClient(t, dialReady(t, log, amqptest.URL()), ClientOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	slow := callAsync(ctx, c, queue, "slow")
	<-started

	p.cut(true)
	waitDown(t, srv.Ready, "server not ready after the cut")
	p.cut(false)
	waitFor(t, 5*time.Second, srv.Ready, "server ready after reconnect")

	start := time.Now()
	callCtx, callCancel := context.WithTimeout(ctx, 3*time.Second)
	defer callCancel()
	reply, err := c.Call(callCtx, queue, []byte("fast"), nil)
	if err != nil || string(reply) != "re:fast" {
		t.Fatalf("Call after reconnect = %q, %v; want re:fast while the old handler still runs", reply, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Call after reconnect took %v, want at once", d)
	}
	// The redelivered "slow" request is answered by the new session (the
	// old handler's reply could not be sent); no more than Workers
	// handlers ever ran at once.
	select {
	case r := <-slow:
		if r.err != nil || string(r.body) != "re:slow" {
			t.Errorf("slow call = %q, %v; want its reply after redelivery", r.body, r.err)
		}
	case <-ctx.Done():
		t.Fatal("slow call never answered")
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("peak concurrent handlers = %d, want at most Workers (2)", p)
	}
}

// proxy is a TCP proxy that can cut every live connection and refuse new
// ones, to simulate the broker going away.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	refuse bool
	wg     sync.WaitGroup
}

// proxiedBroker starts a proxy to the test broker and returns it with the
// broker URL that goes through it.
func proxiedBroker(t *testing.T) (*proxy, string) {
	t.Helper()
	u, err := url.Parse(amqptest.URL())
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = p.addr()
	return p, viaProxy.String()
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			down.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns[down] = struct{}{}
		p.conns[up] = struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Add(2)
		go pipe(up, down)
		go pipe(down, up)
	}
}

// cut closes every live connection; refuse decides whether new ones are
// turned away until the next cut(false).
func (p *proxy) cut(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
	if refuse {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut(true)
	p.wg.Wait()
}
