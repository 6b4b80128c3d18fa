//go:build integration

package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
	"github.com/stockquote/stockquote/shared/amqprpc/amqptest"
)

// deadAddr returns a loopback host:port nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestIntegrationMultiHostURLs: DATABASE_URL names an unreachable host
// before the real one (pgx's multi-host form, with
// target_session_attrs=read-write), and AMQP_URL lists an unreachable
// broker beside the real one. The API migrates, serves and answers
// through them, and logs neither password.
func TestIntegrationMultiHostURLs(t *testing.T) {
	db, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	db.Host = deadAddr(t) + "," + db.Host
	q := db.Query()
	q.Set("target_session_attrs", "read-write")
	db.RawQuery = q.Encode()
	broker, err := url.Parse(amqptest.URL())
	if err != nil {
		t.Fatal(err)
	}
	deadBroker := *broker
	deadBroker.Host = deadAddr(t)
	queue := amqptest.NewQueue(t, "apiservice-multihost")
	fakeWorker(t, queue)
	const secret = "s3cret-password-on-the-dead-broker"
	deadBroker.User = url.UserPassword("someone", secret)
	env := map[string]string{
		"DATABASE_URL":     db.String(),
		"AMQP_URL":         deadBroker.String() + "," + broker.String(),
		"RPC_QUEUE":        queue,
		"JWT_SECRET":       strings.Repeat("k", 40),
		"HTTP_ADDR":        "127.0.0.1:0",
		"BCRYPT_COST":      "4",
		"SHUTDOWN_TIMEOUT": "5s",
	}
	ctx := context.Background()
	for _, args := range [][]string{{"migrate"}, {"user", "add", "-name", "alice"}} {
		if err := run(ctx, append([]string{"apiservice"}, args...), envFunc(env), strings.NewReader("alice-password\n"), io.Discard, io.Discard); err != nil {
			t.Fatalf("%v with a multi-host DATABASE_URL: %v", args, err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"apiservice"}, envFunc(env), nil, io.Discard, logs) }()
	var addr string
	waitFor(t, "http listening", func() bool {
		addr = logged(logs.String(), "http listening", "addr")
		return addr != ""
	})
	c := apiClient{t: t, base: "http://" + addr}
	waitFor(t, "/readyz 200", func() bool { code, _, _ := c.do("GET", "/readyz", "", ""); return code == 200 })
	tok := c.login("alice", "alice-password")
	if code, _, body := c.do("GET", "/api/v1/stock?q=aapl.us", tok, ""); code != 200 {
		t.Errorf("stock: %d %s", code, body)
	}
	if code, _, body := c.do("GET", "/api/v1/history", tok, ""); code != 200 || !strings.Contains(body, "AAPL.US") {
		t.Errorf("history: %d %s", code, body)
	}
	waitFor(t, "request queue checked", func() bool { return strings.Contains(logs.String(), "request queue checked") })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if l := logs.String(); strings.Contains(l, secret) || strings.Contains(l, "guest:guest@") {
		t.Errorf("the log shows a broker password:\n%s", l)
	}
}

// TestIntegrationQueueTypeMismatchStops: the workers declared the queue
// classic; an API told RPC_QUEUE_TYPE=quorum stops soon after it starts,
// saying what differs.
func TestIntegrationQueueTypeMismatchStops(t *testing.T) {
	queue := amqptest.NewQueue(t, "apiservice-qtype")
	fakeWorker(t, queue) // declares it classic
	env := map[string]string{
		"DATABASE_URL":   pgtest.NewDatabase(t),
		"AMQP_URL":       amqptest.URL(),
		"RPC_QUEUE":      queue,
		"RPC_QUEUE_TYPE": "quorum",
		"JWT_SECRET":     strings.Repeat("k", 40),
		"HTTP_ADDR":      "127.0.0.1:0",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, []string{"apiservice", "migrate"}, envFunc(env), nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	err := run(ctx, []string{"apiservice"}, envFunc(env), nil, io.Discard, logs)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("run = %v (ctx %v), want it to stop by itself with an error", err, ctx.Err())
	}
	for _, want := range []string{"RPC_QUEUE_TYPE=quorum", "x-queue-type"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
