//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stockquote/stockquote/shared/amqprpc"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// scrape GETs /metrics from the run's probe port and parses it.
func scrape(t *testing.T, s *started) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value sums the counter or histogram sample count of the series of
// family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	var sum float64
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestIntegrationTelemetry calls a real worker over RabbitMQ with a
// request id and traceparent in the headers, then checks its log lines
// carry both and its /metrics counted the calls.
func TestIntegrationTelemetry(t *testing.T) {
	fake := stooqtest.NewServer(stooqtest.Options{})
	defer fake.Close()
	s, queue := startWorker(t, fake, map[string]string{"LOG_LEVEL": "debug"})
	client := newRPCClient(t)

	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	call := func(symbol string, headers map[string]any) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.Call(ctx, queue, []byte(request(symbol)), headers); err != nil {
			t.Fatalf("Call(%s): %v", symbol, err)
		}
	}
	call("aapl.us", map[string]any{amqprpc.RequestIDHeader: "it-req-1", "traceparent": parent})
	call("nosuch.us", map[string]any{amqprpc.RequestIDHeader: "it-req-2", "traceparent": parent})
	call("msft.us", nil)

	// Every line about it-req-1 and it-req-2 carries the trace id.
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(s.stderr.String()))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		id, _ := rec["request_id"].(string)
		if id == "" {
			continue
		}
		seen[id]++
		if rec["trace_id"] != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("line %s: trace_id = %v, want the caller's", sc.Text(), rec["trace_id"])
		}
	}
	if seen["it-req-1"] < 1 || seen["it-req-2"] < 2 { // not found also logs "quote failed"
		t.Errorf("lines per request id = %v, want it-req-1 >= 1 and it-req-2 >= 2\n%s", seen, s.stderr)
	}

	// The server counts a request handled after publishing its reply, so
	// the caller may see the reply first.
	var fams map[string]*dto.MetricFamily
	waitFor(t, "3 requests counted handled", func() bool {
		fams = scrape(t, s)
		return value(fams, "stockquote_rpc_server_handled_total", nil) >= 3
	})
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"stockquote_rpc_server_deliveries_total", nil, 3},
		{"stockquote_rpc_server_handled_total", nil, 3},
		{"stockquote_rpc_server_redeliveries_total", nil, 0},
		{"stockquote_rpc_server_in_flight", nil, 0},
		{"stockquote_rpc_server_handler_duration_seconds", nil, 3},
		{"stockquote_stooq_requests_total", map[string]string{"outcome": "ok"}, 2},
		{"stockquote_stooq_requests_total", map[string]string{"outcome": "not_found"}, 1},
		{"stockquote_stooq_request_duration_seconds", nil, 3},
		{"stockquote_build_info", map[string]string{"program": "stockservice"}, 1},
	}
	for _, tt := range tests {
		if got := value(fams, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v (-1: family missing)", tt.name, tt.labels, got, tt.want)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	if err := s.stop(t, 15*time.Second); err != nil {
		t.Errorf("run = %v, want nil", err)
	}
}
