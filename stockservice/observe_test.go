package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
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
	var inFlightDuring float64
	inner := func(ctx context.Context, msg amqprpc.Message) []byte {
		if msg.CorrelationID != "c1" {
			if got := logging.RequestID(ctx); got != "" {
				t.Errorf("forged request id reached the handler as %q", got)
			}
			return nil
		}
		inFlightDuring = metricValue(t, reg, "stockquote_rpc_server_in_flight")
		if got := logging.RequestID(ctx); got != "req-7" {
			t.Errorf("request id in handler ctx = %q, want req-7", got)
		}
		if got := trace.SpanContextFromContext(ctx).TraceID().String(); got != testParent[3:35] {
			t.Errorf("trace id in handler ctx = %s, want %s", got, testParent[3:35])
		}
		log.InfoContext(ctx, "inside")
		return []byte("reply")
	}
	h := observeHandler(inner, reg, noop.NewTracerProvider(), tracing.Propagator(), log)
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

	if after := metricValue(t, reg, "stockquote_rpc_server_in_flight"); inFlightDuring != 1 || after != 0 {
		t.Errorf("in flight during/after = %v/%v, want 1/0", inFlightDuring, after)
	}
	if got := metricValue(t, reg, "stockquote_rpc_server_redeliveries_total"); got != 1 {
		t.Errorf("redeliveries = %v, want 1", got)
	}
	if got := metricValue(t, reg, "stockquote_rpc_server_handler_duration_seconds"); got != 2 {
		t.Errorf("handler durations observed = %v, want 2", got)
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

// metricValue reads a gauge's or counter's value, or a histogram's sample
// count, from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestRPCServerMetrics(t *testing.T) {
	var s amqprpc.ServerStats
	for v, n := range map[*atomic.Uint64]uint64{&s.Deliveries: 9, &s.Handled: 7, &s.Expired: 1, &s.Panics: 2, &s.NoReplyTo: 3, &s.ReplyErrors: 4} {
		v.Store(n)
	}
	reg := prometheus.NewPedanticRegistry()
	registerRPCServerMetrics(reg, &s)
	want := `
# HELP stockquote_rpc_server_deliveries_total Requests received from the queue.
# TYPE stockquote_rpc_server_deliveries_total counter
stockquote_rpc_server_deliveries_total 9
# HELP stockquote_rpc_server_expired_total Requests dropped unhandled because their deadline had passed.
# TYPE stockquote_rpc_server_expired_total counter
stockquote_rpc_server_expired_total 1
# HELP stockquote_rpc_server_handled_total Requests answered and acked.
# TYPE stockquote_rpc_server_handled_total counter
stockquote_rpc_server_handled_total 7
# HELP stockquote_rpc_server_no_reply_to_total Requests dropped for lack of reply_to.
# TYPE stockquote_rpc_server_no_reply_to_total counter
stockquote_rpc_server_no_reply_to_total 3
# HELP stockquote_rpc_server_panics_total Handler panics (request acked without a reply).
# TYPE stockquote_rpc_server_panics_total counter
stockquote_rpc_server_panics_total 2
# HELP stockquote_rpc_server_reply_errors_total Replies that could not be published (request left for redelivery).
# TYPE stockquote_rpc_server_reply_errors_total counter
stockquote_rpc_server_reply_errors_total 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
