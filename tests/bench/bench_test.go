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
	def := &bench{}
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
	b := &bench{o: o}
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
