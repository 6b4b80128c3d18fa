package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/shared/buildinfo"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/metrics"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

// TestHTTPMetrics sends requests through the server and scrapes its
// /metrics: counts move under the route template, never the raw path.
func TestHTTPMetrics(t *testing.T) {
	env := newTestEnv(t)
	reg := metrics.NewRegistry(buildinfo.New("apiservice", "v9", "c0ffee"))
	env.metrics, env.metricsHandler = newHTTPMetrics(reg), metrics.Handler(reg)
	env.quotes = func(context.Context, string) (stockrpc.Quote, error) { return appleQuote, nil }
	env.store.addHistory = func(_ context.Context, _ int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		return e, nil
	}
	tok := env.token(t, alice.ID)

	for _, sym := range []string{"aapl.us", "msft.us", "aapl.us"} {
		if w := env.serve(t, newRequest("GET", "/api/v1/stock?q="+sym, nil, tok)); w.Code != 200 {
			t.Fatalf("stock %s = %d: %s", sym, w.Code, w.Body)
		}
	}
	env.serve(t, newRequest("GET", "/api/v1/stock?q=x", nil, "")) // 401
	env.serve(t, newRequest("GET", "/no/such/path/1", nil, ""))
	env.serve(t, newRequest("GET", "/no/such/path/2", nil, ""))
	env.serve(t, newRequest("DELETE", "/healthz", nil, ""))

	tests := []struct {
		method, route, status string
		want                  float64
	}{
		{"GET", "/api/v1/stock", "200", 3},
		{"GET", "/api/v1/stock", "401", 1},
		{"GET", "unmatched", "404", 2},
		{"DELETE", "unmatched", "405", 1},
	}
	m := env.metrics
	for _, tt := range tests {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tt.method, tt.route, tt.status)); got != tt.want {
			t.Errorf("requests{%s %s %s} = %v, want %v", tt.method, tt.route, tt.status, got, tt.want)
		}
	}

	w := env.serve(t, newRequest("GET", "/metrics", nil, ""))
	if w.Code != 200 {
		t.Fatalf("GET /metrics = %d: %s", w.Code, w.Body)
	}
	body := w.Body.String()
	for _, want := range []string{
		`stockquote_http_requests_total{method="GET",route="/api/v1/stock",status="200"} 3`,
		`stockquote_http_request_duration_seconds_count{method="GET",route="/api/v1/stock"} 4`,
		`stockquote_build_info{commit="c0ffee",`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "/no/such/path") || strings.Contains(body, "aapl.us") {
		t.Error("/metrics has a raw path or query in a label")
	}
	// The scrape itself is counted under its own route.
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET", "/metrics", "200")); got != 1 {
		t.Errorf("requests{GET /metrics 200} = %v, want 1", got)
	}
}

// TestNoMetricsRoute: with METRICS_ADDR set, the API port has no /metrics.
func TestNoMetricsRoute(t *testing.T) {
	env := newTestEnv(t)
	if w := env.serve(t, newRequest("GET", "/metrics", nil, "")); w.Code != http.StatusNotFound {
		t.Errorf("GET /metrics without a metrics handler = %d, want 404", w.Code)
	}
}

var generatedID = regexp.MustCompile(`^[A-Z2-7]{26}$`)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name, in string
		keep     bool
	}{
		{"none", "", false},
		{"well formed", "abc-123.X_y:z", true},
		{"too long", strings.Repeat("a", logging.MaxRequestIDLen+1), false},
		{"forged log line", "x\" level=ERROR", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			r := newRequest("GET", "/healthz", nil, "")
			if tt.in != "" {
				r.Header.Set("X-Request-ID", tt.in)
			}
			w := env.serve(t, r)
			got := w.Header().Get("X-Request-ID")
			switch {
			case tt.keep && got != tt.in:
				t.Errorf("X-Request-ID = %q, want the incoming %q", got, tt.in)
			case !tt.keep && !generatedID.MatchString(got):
				t.Errorf("X-Request-ID = %q, want a fresh id", got)
			}
			if !strings.Contains(env.logs.String(), "request_id="+got) {
				t.Errorf("request log lacks request_id=%s:\n%s", got, env.logs)
			}
		})
	}
}

// TestTraceRequests: with tracing off (a no-op provider) the server still
// continues an incoming traceparent (so logs and AMQP headers carry its
// trace id), and a request without one gets no trace.
func TestTraceRequests(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name, traceparent, want string
	}{
		{"caller's trace", parent, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"none", "", ""},
		{"malformed", "00-zz-yy-01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			h := traceRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
					got = sc.TraceID().String()
				}
			}), tracenoop.NewTracerProvider())
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.traceparent != "" {
				r.Header.Set("traceparent", tt.traceparent)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tt.want {
				t.Errorf("trace id in the handler = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRequestLogLine checks the fields of the per-request line and that
// neither the password nor the token reaches the log.
func TestRequestLogLine(t *testing.T) {
	env := newTestEnv(t)
	env.quotes = func(context.Context, string) (stockrpc.Quote, error) { return appleQuote, nil }
	env.store.addHistory = func(_ context.Context, _ int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
		return e, nil
	}
	tok := env.token(t, alice.ID)
	env.serve(t, newRequest("GET", "/api/v1/stock?q=aapl.us", nil, tok))
	env.serve(t, newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"alice","password":"password1"}`), ""))
	logs := env.logs.String()
	for _, want := range []string{"msg=request", "route=/api/v1/stock", "path=/api/v1/stock", "status=200", "user_id=1", "duration_ms=", "request_id=", "route=/api/v1/login"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{tok, "password1"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a secret %q:\n%s", secret, logs)
		}
	}
}

func TestRPCClientMetrics(t *testing.T) {
	var s amqprpc.ClientStats
	for v, n := range map[*atomic.Uint64]uint64{&s.Calls: 10, &s.Replies: 7, &s.Expired: 2, &s.LateReplies: 1, &s.DuplicateReplies: 3, &s.Returns: 4, &s.Unavailable: 5, &s.UnknownReplies: 6} {
		v.Store(n)
	}
	want := map[string]float64{
		"stockquote_rpc_client_calls_total":             10,
		"stockquote_rpc_client_replies_total":           7,
		"stockquote_rpc_client_timeouts_total":          2,
		"stockquote_rpc_client_late_replies_total":      1,
		"stockquote_rpc_client_duplicate_replies_total": 3,
		"stockquote_rpc_client_returned_total":          4,
		"stockquote_rpc_client_unavailable_total":       5,
		"stockquote_rpc_client_unknown_replies_total":   6,
	}
	reg := prometheus.NewPedanticRegistry()
	registerRPCClientMetrics(reg, &s)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != len(want) {
		t.Errorf("got %d families, want %d", len(fams), len(want))
	}
	for _, f := range fams {
		if f.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is %v, want a counter", f.GetName(), f.GetType())
		}
		if got := f.GetMetric()[0].GetCounter().GetValue(); got != want[f.GetName()] {
			t.Errorf("%s = %v, want %v", f.GetName(), got, want[f.GetName()])
		}
	}
}

// histCount returns the sample count of the histogram series with label outcome.
func histCount(t *testing.T, reg prometheus.Gatherer, name, outcome string) uint64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func TestRPCOutcome(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), "timeout"},
		{context.Canceled, "canceled"},
		{fmt.Errorf("x: %w", amqprpc.ErrUnavailable), "unavailable"},
		{amqprpc.ErrClosed, "unavailable"},
		{amqprpc.ErrNoRoute, "no_route"},
		{io.EOF, "error"},
	}
	for _, tt := range tests {
		if got := rpcOutcome(tt.err); got != tt.want {
			t.Errorf("rpcOutcome(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// BenchmarkTelemetryOverhead measures what the HTTP metrics middleware
// adds to a cheap request (GET /healthz) through the whole middleware
// chain (request id, JSON request log to io.Discard, recovery, limits):
//
//	go test -run '^$' -bench TelemetryOverhead -benchmem ./apiservice/
func BenchmarkTelemetryOverhead(b *testing.B) {
	for _, withMetrics := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", withMetrics), func(b *testing.B) {
			env := newTestEnv(b)
			if withMetrics {
				env.metrics = newHTTPMetrics(prometheus.NewRegistry())
			}
			logger := logging.New(io.Discard, logging.FormatJSON, slog.LevelInfo)
			h := newServer(env.deps(logger, time.Now))
			r := newRequest("GET", "/healthz", nil, "")
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
