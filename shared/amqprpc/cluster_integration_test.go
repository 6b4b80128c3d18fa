//go:build integration

package amqprpc

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stockquote/stockquote/shared/amqprpc/amqptest"
)

// viaAddr returns the test broker's URL with its host replaced by addr.
func viaAddr(t *testing.T, addr string) string {
	t.Helper()
	u, err := url.Parse(amqptest.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// active reports how many connections p carries now.
func (p *proxy) active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2 // each connection's two sockets
}

// TestConnSkipsDeadAddress: with an address nothing answers on in the
// list, the connection comes up on the other one and a call goes through.
// The first address tried is random, so it dials a few times.
func TestConnSkipsDeadAddress(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	srvConn := dialReady(t, log, amqptest.URL())
	startServer(t, srvConn, queue, 1, echo("re:"))

	list := viaAddr(t, closedAddr(t)) + "," + amqptest.URL()
	for i := range 4 {
		conn := dialReady(t, log, list)
		c := NewClient(conn, ClientOptions{})
		waitFor(t, 5*time.Second, c.Ready, "client ready")
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		reply, err := c.Call(ctx, queue, []byte("x"), nil)
		cancel()
		c.Close()
		conn.Close()
		if err != nil || string(reply) != "re:x" {
			t.Fatalf("dial %d: Call = %q, %v; want re:x", i, reply, err)
		}
	}
}

// TestConnFailsOverToNextAddress: two addresses (proxies in front of the
// broker, as two cluster nodes would be). When the node in use goes away
// for good, the call in flight fails at once with ErrUnavailable and the
// client comes back on the other address by itself: no call waits for
// the lost node to return.
func TestConnFailsOverToNextAddress(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	p1, url1 := proxiedBroker(t)
	p2, url2 := proxiedBroker(t)

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
	conn := dialReady(t, log, url1+" , "+url2)
	c := newClient(t, conn, ClientOptions{})
	waitFor(t, 5*time.Second, c.Ready, "client ready")

	used, other := p1, p2
	if p2.active() > 0 {
		used, other = p2, p1
	}
	if used.active() == 0 || other.active() != 0 {
		t.Fatalf("connections through the proxies: %d and %d, want one through one", used.active(), other.active())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, queue, []byte("block"), nil)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the request reach the handler

	used.cut(true) // that node is gone and stays gone
	start := time.Now()
	if err := <-errc; !errors.Is(err, ErrUnavailable) {
		t.Errorf("in-flight Call after the node went = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("in-flight call failed after %v, want fast", d)
	}
	waitFor(t, 5*time.Second, c.Ready, "client ready on the other address")
	if other.active() == 0 {
		t.Error("no connection through the other address")
	}
	reply, err := c.Call(ctx, queue, []byte("again"), nil)
	if err != nil || string(reply) != "re:again" {
		t.Fatalf("Call after failover = %q, %v; want re:again", reply, err)
	}
	if n := other.active(); n != 1 {
		t.Errorf("%d connections through the other address, want 1", n)
	}
}

// TestQuorumQueueRoundTrip: a server declares its queue as a quorum queue
// and answers through it; the queue is then quorum (a classic declaration
// of it is refused).
func TestQuorumQueueRoundTrip(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	conn := dialReady(t, log, amqptest.URL())
	srv := NewServer(conn, queue, echo("q:"), ServerOptions{Workers: 2, QueueType: QueueQuorum})
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	waitFor(t, 5*time.Second, srv.Ready, "server consuming")

	c := newClient(t, conn, ClientOptions{})
	cctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if reply, err := c.Call(cctx, queue, []byte("x"), nil); err != nil || string(reply) != "q:x" {
		t.Fatalf("Call = %q, %v; want q:x", reply, err)
	}
	if err := CheckQueue(cctx, conn, queue, QueueQuorum); err != nil {
		t.Errorf("CheckQueue quorum = %v, want nil", err)
	}
	if err := CheckQueue(cctx, conn, queue, QueueClassic); !errors.Is(err, ErrQueueMismatch) {
		t.Errorf("CheckQueue classic = %v, want ErrQueueMismatch", err)
	}
}

// TestQueueTypeMismatch: the queue exists as classic. A server that wants
// quorum stops at once with ErrQueueMismatch (a retry cannot fix it), and
// CheckQueue says the same; a queue that does not exist passes the check
// and is not created by it.
func TestQueueTypeMismatch(t *testing.T) {
	log := setup(t)
	queue := uniqueQueue(t)
	withChannel(t, func(ch *amqp.Channel) {
		if err := declareQueue(ch, queue, QueueClassic); err != nil {
			t.Fatal(err)
		}
	})
	conn := dialReady(t, log, amqptest.URL())
	srv := NewServer(conn, queue, echo(""), ServerOptions{QueueType: QueueQuorum})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := srv.Serve(ctx)
	if !errors.Is(err, ErrQueueMismatch) {
		t.Fatalf("Serve = %v, want ErrQueueMismatch", err)
	}
	if !strings.Contains(err.Error(), "x-queue-type") || !strings.Contains(err.Error(), "RPC_QUEUE") {
		t.Errorf("error %q does not say what differs and what to do", err)
	}
	if err := CheckQueue(ctx, conn, queue, QueueQuorum); !errors.Is(err, ErrQueueMismatch) {
		t.Errorf("CheckQueue quorum = %v, want ErrQueueMismatch", err)
	}
	if err := CheckQueue(ctx, conn, queue, QueueClassic); err != nil {
		t.Errorf("CheckQueue classic = %v, want nil", err)
	}

	absent := "amqprpc-test-absent-" + strings.ToLower(rand.Text()[:10])
	if err := CheckQueue(ctx, conn, absent, QueueQuorum); err != nil {
		t.Errorf("CheckQueue on a missing queue = %v, want nil", err)
	}
	withChannel(t, func(ch *amqp.Channel) {
		_, err := ch.QueueDeclarePassive(absent, true, false, false, false, nil)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			t.Errorf("after CheckQueue, passive declare of the missing queue = %v, want NOT_FOUND", err)
			_, _ = ch.QueueDelete(absent, false, false, false)
		}
	})
}

// TestCheckQueueWaitsForBroker: CheckQueue returns ctx's error when no
// broker answers.
func TestCheckQueueWaitsForBroker(t *testing.T) {
	log := setup(t)
	conn, err := Dial(Config{URL: viaAddr(t, closedAddr(t)), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := CheckQueue(ctx, conn, "any", QueueQuorum); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CheckQueue = %v, want DeadlineExceeded", err)
	}
}

// TestQuorumQueueBehaviour pins what this package relies on from the
// broker's quorum queues (docs/reliability.md lists them): the mandatory
// flag returns a request for a missing queue, the x-deadline header
// arrives as an int64, an expired message at the head is dropped, and an
// unacked message comes back marked redelivered when its channel closes.
func TestQuorumQueueBehaviour(t *testing.T) {
	setup(t)
	queue := uniqueQueue(t)
	conn, err := amqp.Dial(amqptest.URL())
	if err != nil {
		t.Fatalf("RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := declareQueue(ch, queue, QueueQuorum); err != nil {
		t.Fatal(err)
	}
	depth := func() int {
		t.Helper()
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q.Messages
	}
	publish := func(key string, p amqp.Publishing) {
		t.Helper()
		if err := ch.Publish("", key, true, false, p); err != nil {
			t.Fatal(err)
		}
	}

	returns := ch.NotifyReturn(make(chan amqp.Return, 2))
	publish(queue+".missing", amqp.Publishing{Body: []byte("nowhere")})
	select {
	case r := <-returns:
		if r.ReplyCode != amqp.NoRoute {
			t.Errorf("return code %d, want %d (NO_ROUTE)", r.ReplyCode, amqp.NoRoute)
		}
	case <-time.After(5 * time.Second):
		t.Error("request to a missing queue was not returned")
	}

	publish(queue, amqp.Publishing{Expiration: "100", Body: []byte("stale")})
	time.Sleep(600 * time.Millisecond)
	if n := depth(); n != 0 {
		t.Errorf("expired message still queued: depth %d", n)
	}

	deadline := time.Now().Add(time.Minute).UnixMilli()
	publish(queue, amqp.Publishing{Headers: amqp.Table{deadlineHeader: deadline}, Body: []byte("held")})
	for i, wantRedelivered := range []bool{false, true} {
		c2, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		ds, err := c2.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-ds:
			if d.Redelivered != wantRedelivered {
				t.Errorf("delivery %d: redelivered %v, want %v", i, d.Redelivered, wantRedelivered)
			}
			if got, ok := d.Headers[deadlineHeader].(int64); !ok || got != deadline {
				t.Errorf("delivery %d: %s = %#v, want int64 %d", i, deadlineHeader, d.Headers[deadlineHeader], deadline)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("delivery %d never came", i)
		}
		c2.Close() // unacked: the queue takes it back
	}
	select {
	case r := <-returns:
		t.Errorf("a request to the existing quorum queue was returned: %d %s", r.ReplyCode, r.ReplyText)
	default:
	}
}
