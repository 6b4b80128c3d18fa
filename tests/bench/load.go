package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// result is one measured scenario or ceiling.
type result struct {
	requests, ok, errors int64
	throughput           float64 // successful answers per second
	p50, p99, p999       time.Duration
	codes                string // status code histogram, e.g. "200:5120 502:3"
}

// request builds the i-th request of a scenario.
type request func(i uint64, t *vegeta.Target)

// attack drives url with vegeta at c concurrent clients (c workers, each
// with its own keep-alive connection, sending as fast as answers come)
// for d. okCode is the status a correct answer has. The connections are
// closed when it returns, as c clients that leave would: left idle, they
// would stay open on the server (the API keeps an idle connection for
// 120 s) and pile up scenario after scenario, so that a later scenario
// "at 256 clients" would run beside thousands of idle connections.
func attack(ctx context.Context, name string, c int, d time.Duration, okCode uint16, build request) result {
	tr := &http.Transport{DialContext: (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	att := vegeta.NewAttacker(
		// Before the options below, which set tr's connection limits.
		vegeta.Client(&http.Client{Transport: tr}),
		vegeta.Workers(uint64(c)), vegeta.MaxWorkers(uint64(c)),
		vegeta.Connections(c), vegeta.MaxConnections(c),
		vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second),
	)
	var n atomic.Uint64
	targeter := func(t *vegeta.Target) error {
		build(n.Add(1)-1, t)
		return nil
	}
	var m vegeta.Metrics
	var ok int64
	stop := context.AfterFunc(ctx, func() { att.Stop() })
	defer stop()
	for r := range att.Attack(targeter, vegeta.Rate{Freq: 0}, d, name) {
		m.Add(r)
		if r.Code == okCode {
			ok++
		}
	}
	m.Close()
	codes := make([]string, 0, len(m.StatusCodes))
	for code, k := range m.StatusCodes {
		codes = append(codes, code+":"+strconv.Itoa(k))
	}
	sort.Strings(codes)
	return result{
		requests:   int64(m.Requests),
		ok:         ok,
		errors:     int64(m.Requests) - ok,
		throughput: float64(ok) / m.Duration.Seconds(),
		p50:        m.Latencies.P50,
		p99:        m.Latencies.P99,
		p999:       m.Latencies.Quantile(0.999),
		codes:      strings.Join(codes, " "),
	}
}

// symbolPicker picks the symbol of the i-th request.
type symbolPicker func(i uint64) string

// hotSymbol always asks for one symbol.
func hotSymbol(i uint64) string { return "t1.us" }

// zipfSymbols spreads requests over n symbols (t0.us ... t<n-1>.us) with a
// Zipf distribution (s=1.1): a few symbols are asked for most of the time,
// with a long tail, as in real quote traffic.
func zipfSymbols(n int, seed uint64) symbolPicker {
	// Precompute a long sequence so the targeter needs no lock.
	const seqLen = 1 << 16
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// inverse-CDF sampling of a Zipf distribution over 1..n
	w := make([]float64, n)
	var sum float64
	for k := range n {
		w[k] = 1 / math.Pow(float64(k+1), 1.1)
		sum += w[k]
	}
	cdf := make([]float64, n)
	acc := 0.0
	for k := range n {
		acc += w[k] / sum
		cdf[k] = acc
	}
	seq := make([]string, seqLen)
	for i := range seq {
		u := r.Float64()
		k := sort.SearchFloat64s(cdf, u)
		if k >= n {
			k = n - 1
		}
		seq[i] = "t" + strconv.Itoa(k) + ".us"
	}
	return func(i uint64) string { return seq[i%seqLen] }
}

// uniformSymbols spreads requests evenly at random over n symbols (t0.us
// ... t<n-1>.us).
func uniformSymbols(n int, seed uint64) symbolPicker {
	// Precomputed, as zipfSymbols; long enough that a scenario seldom
	// wraps around to symbols it asked for a moment ago.
	const seqLen = 1 << 18
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	seq := make([]string, seqLen)
	for i := range seq {
		seq[i] = "t" + strconv.Itoa(r.IntN(n)) + ".us"
	}
	return func(i uint64) string { return seq[i%seqLen] }
}

// bearer returns a header with the i-th token of tokens.
func bearer(tokens []string, i uint64) http.Header {
	return http.Header{"Authorization": {"Bearer " + tokens[i%uint64(len(tokens))]}}
}

// stockRequests asks for /api/v1/stock as the users of tokens in turn.
func stockRequests(api string, tokens []string, pick symbolPicker) request {
	return func(i uint64, t *vegeta.Target) {
		t.Method = http.MethodGet
		t.URL = api + "/api/v1/stock?q=" + pick(i)
		t.Header = bearer(tokens, i)
	}
}

// get asks for a fixed path with one token.
func get(url, token string) request {
	h := http.Header{"Authorization": {"Bearer " + token}}
	return func(i uint64, t *vegeta.Target) {
		t.Method, t.URL, t.Header = http.MethodGet, url, h
	}
}

// loginRequests logs in as user with password.
func loginRequests(api, user, password string) request {
	body := []byte(fmt.Sprintf(`{"username":%q,"password":%q}`, user, password))
	h := http.Header{"Content-Type": {"application/json"}}
	return func(i uint64, t *vegeta.Target) {
		t.Method, t.URL, t.Body, t.Header = http.MethodPost, api+"/api/v1/login", body, h
	}
}
