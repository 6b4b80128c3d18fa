package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/tracing"
)

const testParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestObserveHandler: the handler's context carries the caller's request
// id and trace, so its log lines name both; metrics move.
func TestObserveHandler(t *testing.T) {
	var logs bytes.Buffer
	log := logging.New(&logs, logging.FormatJSON, slog.LevelDebug)
	reg := prometheus.NewRegistry()
	m := newHandlerMetrics(reg)
	var inFlightDuring float64
	inner := func(ctx context.Context, msg amqprpc.Message) []byte {
		if msg.CorrelationID != "c1" {
			if got := logging.RequestID(ctx); got != "" {
				t.Errorf("forged request id reached the handler as %q", got)
			}
			return nil
		}
		inFlightDuring = testutil.ToFloat64(m.inFlight)
		if got := logging.RequestID(ctx); got != "req-7" {
			t.Errorf("request id in handler ctx = %q, want req-7", got)
		}
		if got := trace.SpanContextFromContext(ctx).TraceID().String(); got != testParent[3:35] {
			t.Errorf("trace id in handler ctx = %s, want %s", got, testParent[3:35])
		}
		log.InfoContext(ctx, "inside")
		return []byte("reply")
	}
	h := observeHandler(inner, m, noop.NewTracerProvider(), tracing.Propagator(), log)
	got := h(context.Background(), amqprpc.Message{
		Headers:       map[string]any{"traceparent": testParent, amqprpc.RequestIDHeader: "req-7"},
		CorrelationID: "c1",
		Redelivered:   true,
	})
	if string(got) != "reply" {
		t.Errorf("reply = %q, want the inner handler's", got)
	}
	// A forged request id is not taken.
	h(context.Background(), amqprpc.Message{Headers: map[string]any{amqprpc.RequestIDHeader: "bad id\n"}})

	if inFlightDuring != 1 || testutil.ToFloat64(m.inFlight) != 0 {
		t.Errorf("in flight during/after = %v/%v, want 1/0", inFlightDuring, testutil.ToFloat64(m.inFlight))
	}
	if got := testutil.ToFloat64(m.redeliveries); got != 1 {
		t.Errorf("redeliveries = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.duration); got != 1 {
		t.Errorf("duration series = %d, want 1", got)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var withID int
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if rec["request_id"] == "req-7" {
			withID++
			if rec["trace_id"] != testParent[3:35] {
				t.Errorf("line %s: trace_id = %v, want %s", l, rec["trace_id"], testParent[3:35])
			}
		}
		if strings.Contains(l, "bad id") {
			t.Errorf("forged request id logged: %s", l)
		}
	}
	if withID != 2 { // "inside" and "rpc handled"
		t.Errorf("%d lines carry the request id, want 2:\n%s", withID, logs.String())
	}
}
