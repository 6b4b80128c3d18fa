//go:build integration

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// logLines returns the JSON log lines of p whose request_id is id.
func logLines(p *proc, id string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["request_id"] == id {
			out = append(out, rec)
		}
	}
	return out
}

// waitLines polls p's logs until cond holds for the lines of id.
func waitLines(t *testing.T, p *proc, id string, cond func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines := logLines(p, id)
		if cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: log lines for request %s never matched; got %v\n%s", p.Name, id, lines, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRequestIDAndTraceReachWorker sends a quote request with an
// X-Request-ID and a W3C traceparent to the API and checks that the
// worker logs both on every line about it, and that the API echoes the id
// and logs its request line with them.
func TestRequestIDAndTraceReachWorker(t *testing.T) {
	s := newSystem(t, options{})
	tok := s.Login(t, "alice", "alice-password-1")
	id := "e2e-" + randomHex(8)
	traceID := randomHex(16)
	req, _ := http.NewRequest(http.MethodGet, s.API+"/api/v1/stock?q=aapl.us", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Request-ID", id)
	req.Header.Set("traceparent", "00-"+traceID+"-"+randomHex(8)+"-01")
	r := send(t, req)
	if r.Status != http.StatusOK {
		t.Fatalf("stock = %d: %s", r.Status, r.Body)
	}
	if got := r.Header.Get("X-Request-ID"); got != id {
		t.Errorf("X-Request-ID echoed %q, want %q", got, id)
	}

	workerLines := waitLines(t, s.worker, id, func(l []map[string]any) bool {
		for _, rec := range l {
			if rec["msg"] == "rpc handled" {
				return true
			}
		}
		return false
	})
	for _, rec := range workerLines {
		if rec["trace_id"] != traceID {
			t.Errorf("worker line %v: trace_id = %v, want %s", rec, rec["trace_id"], traceID)
		}
	}
	if len(workerLines) < 2 { // the handler's debug "quote" line and "rpc handled"
		t.Errorf("worker logged %d lines for the request, want at least 2: %v", len(workerLines), workerLines)
	}

	apiLines := waitLines(t, s.APIProc, id, func(l []map[string]any) bool { return len(l) > 0 })
	var found bool
	for _, rec := range apiLines {
		if rec["msg"] != "request" {
			continue
		}
		found = true
		if rec["trace_id"] != traceID || rec["route"] != "/api/v1/stock" || rec["status"] != float64(200) || rec["user_id"] == nil {
			t.Errorf("API request line %v: want trace_id %s, route /api/v1/stock, status 200 and a user_id", rec, traceID)
		}
		if _, ok := rec["duration_ms"].(float64); !ok {
			t.Errorf("API request line %v: duration_ms is not a number", rec)
		}
	}
	if !found {
		t.Errorf("no API request line for %s: %v", id, apiLines)
	}

	// Without an incoming id the API makes one and still passes it on.
	r = s.Do(t, http.MethodGet, "/api/v1/stock?q=msft.us", tok, nil)
	gen := r.Header.Get("X-Request-ID")
	if r.Status != http.StatusOK || gen == "" {
		t.Fatalf("stock without id = %d, X-Request-ID %q", r.Status, gen)
	}
	waitLines(t, s.worker, gen, func(l []map[string]any) bool { return len(l) > 0 })
}

// scrape fetches and parses a Prometheus endpoint.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// sample sums the counters, gauges or histogram counts of family name
// over the series whose labels include want; -1 if the family is missing.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
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
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMetrics scrapes both programs after some traffic.
func TestMetrics(t *testing.T) {
	s := newSystem(t, options{})
	tok := s.Login(t, "alice", "alice-password-1")
	for _, q := range []string{"aapl.us", "msft.us", "nosuch.us"} {
		s.Do(t, http.MethodGet, "/api/v1/stock?q="+q, tok, nil)
	}
	s.Do(t, http.MethodGet, "/no/such/route", "", nil)

	api := scrape(t, s.API+"/metrics")
	worker := scrape(t, "http://"+s.workerAddr+"/metrics")
	tests := []struct {
		where  string
		fams   map[string]*dto.MetricFamily
		name   string
		labels map[string]string
		want   float64
	}{
		{"api", api, "stockquote_http_requests_total", map[string]string{"method": "GET", "route": "/api/v1/stock", "status": "200"}, 2},
		{"api", api, "stockquote_http_requests_total", map[string]string{"method": "GET", "route": "/api/v1/stock", "status": "404"}, 1},
		{"api", api, "stockquote_http_requests_total", map[string]string{"route": "unmatched", "status": "404"}, 1},
		{"api", api, "stockquote_http_requests_total", map[string]string{"method": "POST", "route": "/api/v1/login", "status": "200"}, 1},
		{"api", api, "stockquote_http_request_duration_seconds", map[string]string{"route": "/api/v1/stock"}, 3},
		{"api", api, "stockquote_rpc_client_calls_total", nil, 3},
		{"api", api, "stockquote_rpc_client_replies_total", nil, 3},
		{"api", api, "stockquote_rpc_client_timeouts_total", nil, 0},
		{"api", api, "stockquote_rpc_client_duration_seconds", map[string]string{"outcome": "ok"}, 3},
		{"api", api, "stockquote_build_info", map[string]string{"program": "apiservice"}, 1},
		{"worker", worker, "stockquote_rpc_server_deliveries_total", nil, 3},
		{"worker", worker, "stockquote_rpc_server_handler_duration_seconds", nil, 3},
		{"worker", worker, "stockquote_stooq_requests_total", map[string]string{"outcome": "ok"}, 2},
		{"worker", worker, "stockquote_stooq_requests_total", map[string]string{"outcome": "not_found"}, 1},
		{"worker", worker, "stockquote_build_info", map[string]string{"program": "stockservice"}, 1},
	}
	for _, tt := range tests {
		if got := sample(tt.fams, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s %s%v = %v, want %v (-1: missing)", tt.where, tt.name, tt.labels, got, tt.want)
		}
	}
	if got := sample(api, "go_sql_max_open_connections", map[string]string{"db_name": "stockquote"}); got < 1 {
		t.Errorf("api go_sql_max_open_connections = %v, want the pool size", got)
	}
	checkDashboard(t, api, worker)
	for name := range api {
		if strings.Contains(name, "aapl") {
			t.Errorf("symbol leaked into a metric name: %s", name)
		}
	}
	for _, f := range api {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "/no/such") || strings.Contains(l.GetValue(), "aapl") {
					t.Errorf("raw path or query in label %s=%q of %s", l.GetName(), l.GetValue(), f.GetName())
				}
			}
		}
	}
}

// checkDashboard fails for every metric the chart's Grafana dashboard
// queries that neither program exports, so the dashboard cannot drift
// from the code.
func checkDashboard(t *testing.T, scraped ...map[string]*dto.MetricFamily) {
	t.Helper()
	b, err := os.ReadFile("../../charts/stockquote/dashboards/stockquote.json")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	walk(dash)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has %d queries, want the whole set", len(exprs))
	}
	name := regexp.MustCompile(`\b(stockquote_[a-z_]+|go_sql_[a-z_]+)`)
	for _, e := range exprs {
		for _, m := range name.FindAllString(e, -1) {
			fam := m
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				if strings.HasSuffix(m, "_seconds"+suf) {
					fam = strings.TrimSuffix(m, suf)
				}
			}
			found := false
			for _, fams := range scraped {
				if _, ok := fams[fam]; ok {
					found = true
				}
			}
			if !found {
				t.Errorf("dashboard queries %s, which no program exports (query %q)", m, e)
			}
		}
	}
}

// TestVersion runs --version on both binaries.
func TestVersion(t *testing.T) {
	want := regexp.MustCompile(`^(apiservice|stockservice) \S+ \(commit \S+, go[0-9.]+\S*\)\n$`)
	for _, bin := range []string{"apiservice", "stockservice"} {
		out, err := exec.Command(programs.Path(bin), "--version").Output()
		if err != nil {
			t.Fatalf("%s --version: %v", bin, err)
		}
		if !want.Match(out) || !strings.HasPrefix(string(out), bin+" ") {
			t.Errorf("%s --version = %q, want %q", bin, out, fmt.Sprint(want))
		}
	}
}
