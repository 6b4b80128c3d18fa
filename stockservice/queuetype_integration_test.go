//go:build integration

package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/amqprpc/amqptest"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// TestIntegrationQuorumQueue: a worker with RPC_QUEUE_TYPE=quorum
// declares a quorum queue and answers through it; a second worker told
// classic for the same queue stops by itself with the broker's reason,
// while the first goes on answering.
func TestIntegrationQuorumQueue(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{})
	t.Cleanup(fake.Close)
	_, queue := startWorker(t, fake, map[string]string{"RPC_QUEUE_TYPE": "quorum", "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/," + amqptest.URL()})
	c := newRPCClient(t)
	if r := quote(t, c, queue, request("aapl.us")); r.Error != nil || r.Quote == nil {
		t.Fatalf("quote through the quorum queue: %+v", r)
	}

	s := startRun(t, map[string]string{
		"AMQP_URL":       amqptest.URL(),
		"RPC_QUEUE":      queue,
		"RPC_QUEUE_TYPE": "classic",
		"STOOQ_URL":      fake.URL,
		"HTTP_ADDR":      "127.0.0.1:0",
	})
	select {
	case err := <-s.done:
		s.done <- err // for Cleanup
		if !errors.Is(err, amqprpc.ErrQueueMismatch) || !strings.Contains(err.Error(), "x-queue-type") {
			t.Errorf("classic worker on a quorum queue: run = %v, want ErrQueueMismatch naming x-queue-type", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("classic worker on a quorum queue still running after 15s")
	}
	if r := quote(t, c, queue, request("msft.us")); r.Error != nil || r.Quote == nil {
		t.Errorf("quote after the refused worker: %+v", r)
	}
}
