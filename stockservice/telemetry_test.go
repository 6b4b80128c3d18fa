package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
	"github.com/stockquote/stockquote/stockservice/stooq"
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

func TestMeasuredQuoter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newStooqMetrics(reg)
	errs := map[string]error{
		"ok.us":    nil,
		"nd.us":    fmt.Errorf("x: %w", stooq.ErrNotFound),
		"slow.us":  fmt.Errorf("x: %w", stooq.ErrTimeout),
		"limit.us": stooq.ErrRateLimited,
		"html.us":  stooq.ErrUpstream,
		"other.us": errors.New("boom"),
	}
	q := measuredQuoter{next: quoterFunc(func(_ context.Context, s string) (stockrpc.Quote, error) {
		return stockrpc.Quote{Symbol: s}, errs[s]
	}), m: m}
	for sym := range errs {
		if _, err := q.Quote(context.Background(), sym); !errors.Is(err, errs[sym]) {
			t.Errorf("Quote(%s) err = %v, want %v", sym, err, errs[sym])
		}
	}
	q.Quote(context.Background(), "ok.us")
	for outcome, want := range map[string]float64{
		"ok": 2, string(stockrpc.CodeNotFound): 1, string(stockrpc.CodeUpstreamTimeout): 1,
		string(stockrpc.CodeRateLimited): 1, string(stockrpc.CodeUpstreamError): 1, string(stockrpc.CodeInternal): 1,
	} {
		if got := testutil.ToFloat64(m.calls.WithLabelValues(outcome)); got != want {
			t.Errorf("stooq requests{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
	if got := testutil.CollectAndCount(m.duration); got != 6 {
		t.Errorf("duration series = %d, want 6 (one per outcome)", got)
	}
}

type fakeServerStats amqprpc.ServerStats

func (f fakeServerStats) Stats() amqprpc.ServerStats { return amqprpc.ServerStats(f) }

func TestRPCServerCollector(t *testing.T) {
	c := newRPCServerCollector(fakeServerStats{Deliveries: 9, Handled: 7, Expired: 1, Panics: 2, NoReplyTo: 3, ReplyErrors: 4})
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
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	stats := cacheStats{Hits: 2, Misses: 1, Coalesced: 3, Entries: 4}
	registerCacheMetrics(reg, func() cacheStats { return stats })
	want := `
# HELP stockquote_quote_cache_hits_total Quote lookups answered from the worker's cache.
# TYPE stockquote_quote_cache_hits_total counter
stockquote_quote_cache_hits_total 2
# HELP stockquote_quote_cache_misses_total Quote lookups the worker's cache could not answer (sent on to stooq, one per shared fetch).
# TYPE stockquote_quote_cache_misses_total counter
stockquote_quote_cache_misses_total 1
# HELP stockquote_quote_cache_coalesced_total Quote lookups that joined a stooq fetch already in flight for the same symbol.
# TYPE stockquote_quote_cache_coalesced_total counter
stockquote_quote_cache_coalesced_total 3
# HELP stockquote_quote_cache_entries Symbols held in the worker's quote cache.
# TYPE stockquote_quote_cache_entries gauge
stockquote_quote_cache_entries 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
