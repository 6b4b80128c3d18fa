//go:build integration

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/amqprpc/amqptest"
	"github.com/stockquote/stockquote/shared/leaktest"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// newRPCClient returns a client on its own connection, ready to call.
func newRPCClient(t *testing.T) *amqprpc.Client {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := amqprpc.Dial(amqprpc.Config{URL: amqptest.URL(), Name: t.Name(), Logger: log})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	client := amqprpc.NewClient(conn, amqprpc.ClientOptions{Channels: 2})
	t.Cleanup(func() { client.Close() })
	waitFor(t, "client ready", func() bool { return client.Ready() == nil })
	return client
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startWorker runs the service on a unique queue against fake and waits
// until /readyz says it consumes.
func startWorker(t *testing.T, fake *stooqtest.Server, env map[string]string) (*started, string) {
	t.Helper()
	queue := amqptest.NewQueue(t, "stockservice-test")
	full := map[string]string{
		"AMQP_URL":         amqptest.URL(),
		"RPC_QUEUE":        queue,
		"STOOQ_URL":        fake.URL,
		"HTTP_ADDR":        "127.0.0.1:0",
		"WORKERS":          "8",
		"SHUTDOWN_TIMEOUT": "10s",
	}
	for k, v := range env {
		full[k] = v
	}
	s := startRun(t, full)
	waitFor(t, "/readyz 200", func() bool { return s.probe(t, "/readyz") == http.StatusOK })
	return s, queue
}

func quote(t *testing.T, c *amqprpc.Client, queue, body string) stockrpc.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := c.Call(ctx, queue, []byte(body), nil)
	if err != nil {
		t.Fatalf("Call(%s): %v", body, err)
	}
	r, err := stockrpc.DecodeReply(raw)
	if err != nil {
		t.Fatalf("reply %s: %v", raw, err)
	}
	return r
}

func request(symbol string) string {
	b, _ := json.Marshal(stockrpc.Request{Version: stockrpc.Version, Symbol: symbol})
	return string(b)
}

func TestIntegrationWorker(t *testing.T) {
	leaktest.Check(t)
	fake := stooqtest.NewServer(stooqtest.Options{SlowDelay: 3 * time.Second})
	defer fake.Close()
	s, queue := startWorker(t, fake, map[string]string{"STOOQ_TIMEOUT": "1s"})
	client := newRPCClient(t)

	t.Run("every outcome", func(t *testing.T) {
		aapl, _ := fake.Want("aapl.us")
		tests := []struct {
			body     string
			want     *stockrpc.Quote
			wantCode stockrpc.Code
		}{
			{body: request("AAPL.US"), want: &aapl},
			{body: request("nosuch.us"), wantCode: stockrpc.CodeNotFound},
			{body: request("ratelimit.test"), wantCode: stockrpc.CodeRateLimited},
			{body: request("html.test"), wantCode: stockrpc.CodeUpstreamError},
			{body: request("garbage.test"), wantCode: stockrpc.CodeUpstreamError},
			{body: request("slow.test"), wantCode: stockrpc.CodeUpstreamTimeout},
			{body: request("a+b"), wantCode: stockrpc.CodeInvalid},
			{body: `not json`, wantCode: stockrpc.CodeInvalid},
			{body: `{"v":9,"symbol":"aapl.us"}`, wantCode: stockrpc.CodeUnsupportedVersion},
		}
		for _, tt := range tests {
			r := quote(t, client, queue, tt.body)
			if tt.want != nil {
				if r.Quote == nil || *r.Quote != *tt.want {
					t.Errorf("%s: reply quote %+v error %v, want %+v", tt.body, r.Quote, r.Error, *tt.want)
				}
				continue
			}
			if r.Error == nil || r.Error.Code != tt.wantCode {
				t.Errorf("%s: reply error %v, want code %s", tt.body, r.Error, tt.wantCode)
			}
		}
	})

	t.Run("concurrent symbols get their own answers", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 300 {
			sym := "t" + strconv.Itoa(i) + ".us"
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				raw, err := client.Call(ctx, queue, []byte(request(sym)), nil)
				if err != nil {
					t.Errorf("Call(%s): %v", sym, err)
					return
				}
				r, err := stockrpc.DecodeReply(raw)
				want, _ := fake.Want(sym)
				if err != nil || r.Quote == nil || *r.Quote != want {
					t.Errorf("%s: reply %s (%v), want %+v", sym, raw, err, want)
				}
			})
		}
		wg.Wait()
	})

	if err := s.stop(t, 15*time.Second); err != nil {
		t.Errorf("run = %v, want nil", err)
	}
}

// TestIntegrationGracefulShutdown cancels the service while requests are
// in flight: each must still get its answer, and run must return nil.
func TestIntegrationGracefulShutdown(t *testing.T) {
	leaktest.Check(t)
	fake := stooqtest.NewServer(stooqtest.Options{Latency: 700 * time.Millisecond})
	defer fake.Close()
	s, queue := startWorker(t, fake, nil)
	client := newRPCClient(t)

	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		sym := "t" + strconv.Itoa(i) + ".us"
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			raw, err := client.Call(ctx, queue, []byte(request(sym)), nil)
			if err != nil {
				errs <- err
				return
			}
			r, err := stockrpc.DecodeReply(raw)
			if err != nil || r.Quote == nil {
				errs <- errors.New("no quote in reply " + string(raw))
			}
		})
	}
	waitFor(t, "requests to reach stooq", func() bool { return fake.TotalHits() == n })
	if err := s.stop(t, 15*time.Second); err != nil {
		t.Errorf("run = %v, want nil", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("in-flight request: %v", err)
	}
}
