package main

import (
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseProc(t *testing.T) {
	stat := []byte("4242 (api service) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 123456789 5000 18446744073709551615\n")
	status := []byte("Name:\tapiservice\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n")
	got, err := parseProc(stat, status)
	if err != nil {
		t.Fatal(err)
	}
	want := procSample{cpu: 3250 * time.Millisecond, rssKB: 40960, peakKB: 51200}
	if got != want {
		t.Errorf("parseProc = %+v, want %+v", got, want)
	}
	if _, err := parseProc([]byte("4242 (x) S 1"), status); err == nil {
		t.Error("parseProc accepted a short stat line")
	}
	if _, err := parseProc(stat, []byte("Name:\tx\n")); err == nil {
		t.Error("parseProc accepted a status without VmHWM")
	}
}

func TestComposed(t *testing.T) {
	tests := []struct {
		rates []float64
		want  float64
	}{
		{[]float64{8000, 6000, 20000, 20000}, 1 / (1.0/8000 + 1.0/6000 + 1.0/20000 + 1.0/20000)},
		{[]float64{1000, 1000}, 500},
		{[]float64{1000, 0}, 0},
	}
	for _, tt := range tests {
		if got := composed(tt.rates...); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("composed(%v) = %v, want %v", tt.rates, got, tt.want)
		}
	}
}

func TestZipfSymbols(t *testing.T) {
	pick := zipfSymbols(1000, 1)
	counts := map[string]int{}
	const n = 100_000
	for i := range uint64(n) {
		s := pick(i)
		if !strings.HasPrefix(s, "t") || !strings.HasSuffix(s, ".us") {
			t.Fatalf("symbol %q", s)
		}
		counts[s]++
	}
	// Zipf: the first symbol is the most common by far, yet the tail is long.
	if counts["t0.us"] < n/10 {
		t.Errorf("t0.us asked %d times of %d, want the head to dominate", counts["t0.us"], n)
	}
	if len(counts) < 500 {
		t.Errorf("%d distinct symbols, want a long tail (at least 500 of 1000)", len(counts))
	}
}

// TestProductionMemoryLimits: both programs start with production's
// GOMEMLIMIT unless -api-env / -worker-env set another, and the report's
// settings line names the one in effect.
func TestProductionMemoryLimits(t *testing.T) {
	def := &bench{tree: &tree{}}
	if got := lastValue(def.apiEnv(":0"), "GOMEMLIMIT", ""); got != apiGoMemLimit {
		t.Errorf("API GOMEMLIMIT = %q, want production's %q", got, apiGoMemLimit)
	}
	if got := lastValue(def.workerEnv(":0", ":0", "http://x", 1, 0), "GOMEMLIMIT", ""); got != workerGoMemLimit {
		t.Errorf("stock service GOMEMLIMIT = %q, want production's %q", got, workerGoMemLimit)
	}

	o, err := parseOptions([]string{"-api-env", "GOMEMLIMIT=off,RPC_CHANNELS=4", "-worker-env", "GOMEMLIMIT=64MiB"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{o: o, tree: &tree{}}
	if got := lastValue(b.apiEnv(":0"), "GOMEMLIMIT", ""); got != "off" {
		t.Errorf("API GOMEMLIMIT with -api-env GOMEMLIMIT=off = %q, want off", got)
	}
	if got := lastValue(b.workerEnv(":0", ":0", "http://x", 1, 0), "GOMEMLIMIT", ""); got != "64MiB" {
		t.Errorf("stock service GOMEMLIMIT with -worker-env = %q, want 64MiB", got)
	}
	if r := b.report(); !strings.Contains(r, "GOMEMLIMIT API off, stock service 64MiB (production's: "+apiGoMemLimit+", "+workerGoMemLimit+")") {
		t.Errorf("report settings line does not name the limits in effect:\n%s", r)
	}
}

func TestUniformSymbols(t *testing.T) {
	pick := uniformSymbols(manySymbols, 1)
	counts := map[string]int{}
	const n = 200_000
	for i := range uint64(n) {
		counts[pick(i)]++
	}
	// Uniform over 10,000: 20 draws each on average, so every symbol is
	// drawn and none is hot.
	if len(counts) != manySymbols {
		t.Errorf("%d distinct symbols, want %d", len(counts), manySymbols)
	}
	for s, k := range counts {
		if k > 60 {
			t.Errorf("%s drawn %d times of %d, want about %d", s, k, n, n/manySymbols)
		}
	}
}

func TestWorkerEnvDefaultTTL(t *testing.T) {
	b := &bench{tree: &tree{}}
	if got := lastValue(b.workerEnv(":0", ":0", "http://x", 1, defaultTTL), "QUOTE_CACHE_TTL", "unset"); got != "unset" {
		t.Errorf("QUOTE_CACHE_TTL = %q with defaultTTL, want it unset", got)
	}
	if got := lastValue(b.workerEnv(":0", ":0", "http://x", 1, 0), "QUOTE_CACHE_TTL", "unset"); got != "0s" {
		t.Errorf("QUOTE_CACHE_TTL = %q with 0, want 0s", got)
	}
}

func TestManyCheck(t *testing.T) {
	tests := []struct {
		pair    result
		c       int
		minimal float64
		want    string
	}{
		{result{throughput: 3000, p99: 50 * time.Millisecond}, 64, 2000, "1.50x the minimal chain (2000 req/s, mean of before and after). Target at 64 clients (at least 1.2x, p99 at most 60.0 ms): met."},
		{result{throughput: 2200, p99: 50 * time.Millisecond}, 64, 2000, "1.10x the minimal chain (2000 req/s, mean of before and after). Target at 64 clients (at least 1.2x, p99 at most 60.0 ms): NOT met."},
		{result{throughput: 3000, p99: 61 * time.Millisecond}, 64, 2000, "p99 at most 60.0 ms): NOT met."},
		{result{throughput: 3000, p99: 61 * time.Millisecond}, 16, 2000, "1.50x the minimal chain (2000 req/s, mean of before and after)."},
		{result{throughput: 3000}, 64, 0, "the minimal chain gave no figure."},
	}
	for _, tt := range tests {
		if got := manyCheck(tt.pair, tt.c, tt.minimal); !strings.HasSuffix(got, tt.want) {
			t.Errorf("manyCheck(%v, %d, %v) = %q, want it to end in %q", tt.pair, tt.c, tt.minimal, got, tt.want)
		}
	}
}

func TestParseOptionsGroups(t *testing.T) {
	o, err := parseOptions([]string{"-only", "many", "-clients", "64"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.want("many") || o.wantAny("stock", "history") {
		t.Errorf("-only many: want many and nothing else, got %v", o.only)
	}
	if _, err := parseOptions([]string{"-root-b", "/tmp/b", "-only", "many"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("-root-b with -only: want an error, since -root-b runs only the ABBA comparison")
	}
}
