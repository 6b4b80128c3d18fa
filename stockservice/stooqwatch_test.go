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
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stockquote/stockquote/shared/stockrpc"
	"github.com/stockquote/stockquote/shared/tracing"
	"github.com/stockquote/stockquote/stockservice/stooq"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// TestRefusalWatch: every refusal is counted by reason, but a warning is
// logged only when the reason changes, and one line when stooq serves
// again; other failures change nothing.
func TestRefusalWatch(t *testing.T) {
	errs := map[string]error{
		"ok.us":        nil,
		"nd.us":        fmt.Errorf("x: %w", stooq.ErrNotFound),
		"nokey.us":     fmt.Errorf("x: %w", stooq.ErrKeyRequired),
		"badkey.us":    fmt.Errorf("x: %w", stooq.ErrKeyRejected),
		"challenge.us": fmt.Errorf("x: %w", stooq.ErrChallenge),
		"limit.us":     stooq.ErrRateLimited,
		"slow.us":      fmt.Errorf("x: %w", stooq.ErrTimeout),
		"budget.us":    fmt.Errorf("x: %w", stooq.ErrOverBudget),
	}
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	w := newStooqWatch(quoterFunc(func(_ context.Context, s string) (stockrpc.Quote, error) {
		return stockrpc.Quote{Symbol: s}, errs[s]
	}), reg, slog.New(slog.NewJSONHandler(&logs, nil)))

	if got := testutil.CollectAndCount(w.refusals); got != 4 {
		t.Errorf("refusal series before any refusal = %d, want 4 (every reason at 0)", got)
	}
	for _, s := range []string{
		"ok.us", "nokey.us", "nokey.us", "slow.us", "nokey.us", // one warning
		"badkey.us", "badkey.us", // one warning
		"budget.us", "challenge.us", "challenge.us", // one warning
		"nd.us", "ok.us", // one "serves again"
		"limit.us", "limit.us", "ok.us", // one warning, one "serves again"
	} {
		if _, err := w.Quote(context.Background(), s); err != errs[s] {
			t.Fatalf("Quote(%s) err = %v, want %v passed on", s, err, errs[s])
		}
	}
	for reason, want := range map[stockrpc.Code]float64{
		stockrpc.CodeKeyRequired: 3, stockrpc.CodeKeyRejected: 2, stockrpc.CodeChallenge: 2, stockrpc.CodeRateLimited: 2,
	} {
		if got := testutil.ToFloat64(w.refusals.WithLabelValues(string(reason))); got != want {
			t.Errorf("refusals{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	type line struct{ Level, Msg, Reason, Previous, Action string }
	var got []line
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var r line
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		r.Action = fmt.Sprint(r.Action != "")
		got = append(got, r)
	}
	want := []line{
		{"WARN", "stooq refuses quotes", "key_required", "", "true"},
		{"WARN", "stooq refuses quotes", "key_rejected", "key_required", "true"},
		{"WARN", "stooq refuses quotes", "challenge", "key_rejected", "true"},
		{"INFO", "stooq serves quotes again", "", "challenge", "false"},
		{"WARN", "stooq refuses quotes", "rate_limited", "", "true"},
		{"INFO", "stooq serves quotes again", "", "rate_limited", "false"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("log lines:\n got %v\nwant %v\n%s", got, want, logs.String())
	}
	if !strings.Contains(logs.String(), "set STOOQ_API_KEY") {
		t.Errorf("the key_required warning does not say to set STOOQ_API_KEY:\n%s", logs.String())
	}
}

func TestStooqWatchMetrics(t *testing.T) {
	errs := map[string]error{
		"ok.us":    nil,
		"nd.us":    fmt.Errorf("x: %w", stooq.ErrNotFound),
		"slow.us":  fmt.Errorf("x: %w", stooq.ErrTimeout),
		"limit.us": stooq.ErrRateLimited,
		"html.us":  stooq.ErrUpstream,
		"other.us": errors.New("boom"),
	}
	m := newStooqWatch(quoterFunc(func(_ context.Context, s string) (stockrpc.Quote, error) {
		return stockrpc.Quote{Symbol: s}, errs[s]
	}), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	for sym := range errs {
		if _, err := m.Quote(context.Background(), sym); !errors.Is(err, errs[sym]) {
			t.Errorf("Quote(%s) err = %v, want %v", sym, err, errs[sym])
		}
	}
	m.Quote(context.Background(), "ok.us")
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

// TestStooqKeyNotInSpans: with tracing on, the stooq client span records
// the request URL, but never the API key, even on failures.
func TestStooqKeyNotInSpans(t *testing.T) {
	const key = "span-test-k3y"
	fake := stooqtest.NewServer(stooqtest.Options{RequireKey: key})
	defer fake.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	for _, k := range []string{key, "wrong-" + key} {
		client, err := stooq.New(stooq.Options{BaseURL: fake.URL, APIKey: k, WrapTransport: traceTransport(tp, tracing.Propagator())})
		if err != nil {
			t.Fatal(err)
		}
		for _, sym := range []string{"aapl.us", "challenge.test", "error.test"} {
			client.Quote(context.Background(), sym)
		}
	}
	if got := fake.KeyHits(key); got != 3 {
		t.Fatalf("stooq saw the key %d times, want 3 (the client must send it)", got)
	}
	spans := rec.Ended()
	if len(spans) != 6 {
		t.Fatalf("%d spans, want 6", len(spans))
	}
	sawURL := false
	for _, s := range spans {
		var text strings.Builder
		fmt.Fprint(&text, s.Name(), s.Status(), s.Attributes(), s.Events(), s.Links())
		if strings.Contains(text.String(), key) {
			t.Errorf("span %q holds the key: %s", s.Name(), text.String())
		}
		if strings.Contains(text.String(), "/q/l/?s=") {
			sawURL = true
		}
	}
	if !sawURL {
		t.Error("no span records the request URL; the test proves nothing")
	}
}
