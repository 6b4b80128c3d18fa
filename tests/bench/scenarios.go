package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ceilings are the bare rates of the stages of a /stock request at one
// concurrency, measured by this run.
type ceilings struct {
	rpc, insert, gin, stooq, stooqSlow result
}

// meanCeilings is the stage-by-stage mean rate of two measurements.
func meanCeilings(a, b ceilings) ceilings {
	mean := func(x, y result) result {
		x.throughput = (x.throughput + y.throughput) / 2
		return x
	}
	return ceilings{rpc: mean(a.rpc, b.rpc), insert: mean(a.insert, b.insert), gin: mean(a.gin, b.gin),
		stooq: mean(a.stooq, b.stooq), stooqSlow: mean(a.stooqSlow, b.stooqSlow)}
}

// composed is 1 / (1/RPC + 1/INSERT + 1/GinJWT + 1/StooqFetch): the
// throughput if the stages shared the machine with no overlap and no
// overhead of their own.
func composed(rates ...float64) float64 {
	var inv float64
	for _, r := range rates {
		if r <= 0 {
			return 0
		}
		inv += 1 / r
	}
	return 1 / inv
}

func (b *bench) measureCeilings(ctx context.Context, c int, group string) (ceilings, error) {
	var cl ceilings
	var err error
	d := b.o.ceilingDuration
	b.logf("%s at %d clients", group, c)
	use := map[*result][]procUse{}
	run := func(dst *result, f func() (result, error)) error {
		before, start := sampleMachine(), time.Now()
		r, err := f()
		use[dst] = machineUse(before, sampleMachine(), time.Since(start))
		*dst = r
		return err
	}
	if err = run(&cl.rpc, func() (result, error) { return rpcCeiling(ctx, b.o.amqpURL, c, d) }); err != nil {
		return cl, err
	}
	if err = run(&cl.insert, func() (result, error) { return insertCeiling(ctx, b.dbURL, 20, c, d) }); err != nil {
		return cl, err
	}
	zipf := zipfSymbols(1000, 7)
	pick := func(w, i int) string { return zipf(uint64(w*100003 + i)) }
	if err = run(&cl.stooq, func() (result, error) { return stooqCeiling(ctx, b.instant, pick, c, d) }); err != nil {
		return cl, err
	}
	if err = run(&cl.stooqSlow, func() (result, error) { return stooqCeiling(ctx, b.slow, pick, c, d) }); err != nil {
		return cl, err
	}
	url, stop, err := ginJWTServer(b.secret, jwtIssuer, jwtAudience)
	if err != nil {
		return cl, err
	}
	_ = run(&cl.gin, func() (result, error) {
		return attack(ctx, "gin-jwt", c, d, http.StatusOK, get(url+"/jwt", b.tokens[0])), nil
	})
	stop()
	for _, x := range []struct {
		name string
		r    *result
	}{{"bare amqp091 request/reply", &cl.rpc}, {"bare GORM single-row INSERT", &cl.insert}, {"bare Gin + JWT verify", &cl.gin},
		{"bare stooq fetch from the fake", &cl.stooq}, {fmt.Sprintf("bare stooq fetch, %s fake", b.o.latency), &cl.stooqSlow}} {
		b.rows = append(b.rows, row{group: group, name: x.name, clients: c, res: *x.r, machine: use[x.r]})
		if x.r.errors > 0 || x.r.ok == 0 {
			b.failures = append(b.failures, fmt.Sprintf("ceiling %s at %d clients: %d ok, %d errors", x.name, c, x.r.ok, x.r.errors))
		}
	}
	return cl, nil
}

// withoutCoalescing runs f against an API started with QUOTE_COALESCE=off,
// then starts the API again with the run's settings.
func (b *bench) withoutCoalescing(ctx context.Context, f func() error) error {
	if err := b.startAPI(ctx, "QUOTE_COALESCE=off"); err != nil {
		return err
	}
	if err := f(); err != nil {
		return err
	}
	return b.startAPI(ctx)
}

// namedSample is a process's sample under its name in the report.
type namedSample struct {
	name string
	s    procSample
}

// pairSamples samples the API and every stock service.
func (b *bench) pairSamples() []namedSample {
	api, _ := b.api.sample()
	api.peakKB = max(api.peakKB, b.apiPeakKB)
	out := []namedSample{{"api", api}}
	for i, w := range b.workers {
		s, _ := w.sample()
		out = append(out, namedSample{fmt.Sprintf("worker%d", i+1), s})
	}
	return out
}

// measure runs load and records its row with the CPU and memory of the
// processes sample reads.
func (b *bench) measure(r row, sample func() []namedSample, load func() result) row {
	before := sample()
	mBefore := sampleMachine()
	start := time.Now()
	r.res = load()
	wall := time.Since(start)
	mAfter := sampleMachine()
	after := sample()
	for i := range min(len(before), len(after)) {
		r.procs = append(r.procs, procUse{name: after[i].name,
			cpuPct: 100 * (after[i].s.cpu - before[i].s.cpu).Seconds() / wall.Seconds(),
			peakMB: float64(after[i].s.peakKB) / 1024})
	}
	r.machine = machineUse(mBefore, mAfter, wall)
	return r
}

// cpuPerRequest is the CPU time of a row's processes and of the rest of
// the stack (PostgreSQL, RabbitMQ, the fake stooq), not the load tool's,
// per successful answer.
func cpuPerRequest(r row) time.Duration {
	if r.res.throughput <= 0 {
		return 0
	}
	var pct float64
	for _, p := range r.procs {
		pct += p.cpuPct
	}
	for _, p := range r.machine {
		if p.name != "self" && p.name != "idle" {
			pct += p.cpuPct
		}
	}
	return time.Duration(pct / 100 / r.res.throughput * float64(time.Second))
}

// checkStock records a failure unless every request of a /stock row
// succeeded and added one history row.
func (b *bench) checkStock(r row, added int64) {
	if added != r.res.ok {
		b.failures = append(b.failures, fmt.Sprintf("%s %s at %d clients: %d successful answers but %d history rows", r.group, r.name, r.clients, r.res.ok, added))
	}
	if r.res.errors > 0 || r.res.ok == 0 {
		b.failures = append(b.failures, fmt.Sprintf("%s %s at %d clients: %d ok, %d errors (%s)", r.group, r.name, r.clients, r.res.ok, r.res.errors, r.res.codes))
	}
}

// stooqFetches sums the stock services' quote cache misses: their stooq fetches.
func (b *bench) stooqFetches() (n int64) {
	for _, u := range b.workerURL {
		n += max(0, readCounter(u, "stockquote_quote_cache_misses_total"))
	}
	return n
}

// readCounter reads an unlabelled metric from the /metrics page at base
// (-1 if unreadable).
func readCounter(base, name string) int64 {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				return int64(n)
			}
		}
	}
	return -1
}

// stock runs one /stock scenario and checks that every successful answer
// added one history row and that there were no errors. With a cache TTL,
// it also checks stooq was asked at most once per symbol per TTL.
func (b *bench) stock(ctx context.Context, group, name string, c int, pick symbolPicker, symbols int, ceiling float64, ttl time.Duration) error {
	before, err := maxHistoryID(ctx, b.db)
	if err != nil {
		return err
	}
	fetchesBefore := b.stooqFetches()
	rpcBefore := readCounter(b.apiURL, "stockquote_rpc_client_calls_total")
	b.logf("%s: %s at %d clients", group, name, c)
	r := b.measure(row{group: group, name: name, clients: c, ceiling: ceiling, ceilName: "composed"}, b.pairSamples, func() result {
		return attack(ctx, name, c, b.o.duration, http.StatusOK, stockRequests(b.apiURL, b.tokens, pick))
	})
	added, err := rowsAfter(ctx, b.db, before)
	if err != nil {
		return err
	}
	fetches := b.stooqFetches() - fetchesBefore
	r.note = fmt.Sprintf("stooq fetches %d, CPU/req %d µs", fetches, cpuPerRequest(r).Microseconds())
	if rpcAfter := readCounter(b.apiURL, "stockquote_rpc_client_calls_total"); rpcBefore >= 0 && rpcAfter >= 0 {
		// Fewer RPCs than requests: the API's coalescing (QUOTE_COALESCE).
		r.note = fmt.Sprintf("RPCs %d, %s", rpcAfter-rpcBefore, r.note)
	}
	b.checkStock(r, added)
	if ttl > 0 {
		periods := int64(math.Ceil(b.o.duration.Seconds()/ttl.Seconds())) + 1
		if limit := int64(min(int64(symbols), r.res.requests)) * periods * int64(len(b.workers)); fetches > limit {
			b.failures = append(b.failures, fmt.Sprintf("%s %s at %d clients: %d stooq fetches, more than %d symbols x %d cache periods",
				group, name, c, fetches, symbols, periods))
		}
	}
	b.rows = append(b.rows, r)
	return nil
}

// plain runs a scenario whose only correctness condition is no errors.
func (b *bench) plain(ctx context.Context, group, name string, c int, ceiling float64, ceilName string, req request) {
	b.logf("%s: %s at %d clients", group, name, c)
	r := b.measure(row{group: group, name: name, clients: c, ceiling: ceiling, ceilName: ceilName}, b.pairSamples, func() result {
		return attack(ctx, name, c, b.o.duration, http.StatusOK, req)
	})
	if r.res.errors > 0 || r.res.ok == 0 {
		b.failures = append(b.failures, fmt.Sprintf("%s %s at %d clients: %d ok, %d errors (%s)", group, name, c, r.res.ok, r.res.errors, r.res.codes))
	}
	b.rows = append(b.rows, r)
}

func (b *bench) runAll(ctx context.Context) error {
	zipf := zipfSymbols(1000, 42)
	cls := map[int]ceilings{}
	// The concurrency of the single-point comparisons: 64, or the
	// largest client count below it.
	c0 := b.o.clients[0]
	for _, c := range b.o.clients {
		if c <= 64 && c > c0 {
			c0 = c
		}
	}
	fast := func(c int) float64 {
		cl := cls[c]
		return composed(cl.rpc.throughput, cl.insert.throughput, cl.gin.throughput, cl.stooq.throughput)
	}
	slow := func(c int) float64 {
		cl := cls[c]
		return composed(cl.rpc.throughput, cl.insert.throughput, cl.gin.throughput, cl.stooqSlow.throughput)
	}

	if b.o.rootB != "" {
		if err := b.abba(ctx, c0); err != nil {
			return err
		}
		return b.checkStats(ctx)
	}

	// Stooq instant, cache off: the target scenario. The ceilings are
	// measured at each concurrency first, whatever of their users runs.
	for _, c := range b.o.clients {
		if !b.o.wantAny("stock", "stats-cost", "cached", "remote", "replicas", "history", "stats") {
			break
		}
		cl, err := b.measureCeilings(ctx, c, "ceilings")
		if err != nil {
			return err
		}
		cls[c] = cl
		if !b.o.want("stock") {
			continue
		}
		first := len(b.rows)
		if err := b.stock(ctx, "/stock, stooq instant, cache off", "hot symbol", c, hotSymbol, 1, fast(c), 0); err != nil {
			return err
		}
		var wait func() error
		if c == c0 && b.o.profileDir != "" {
			wait = b.profile(ctx, c)
		}
		if err := b.stock(ctx, "/stock, stooq instant, cache off", "zipf 1000", c, zipf, 1000, fast(c), 0); err != nil {
			return err
		}
		if wait != nil {
			if err := wait(); err != nil {
				return err
			}
		}
		if c == c0 {
			// Like for like with the composed ceiling, which has one RPC
			// per request: the same two scenarios without the API's
			// coalescing of concurrent requests for one symbol.
			if err := b.withoutCoalescing(ctx, func() error {
				if err := b.stock(ctx, "/stock, stooq instant, cache off", "hot symbol, QUOTE_COALESCE=off", c, hotSymbol, 1, fast(c), 0); err != nil {
					return err
				}
				return b.stock(ctx, "/stock, stooq instant, cache off", "zipf 1000, QUOTE_COALESCE=off", c, zipf, 1000, fast(c), 0)
			}); err != nil {
				return err
			}
		}
		// The ceilings again, right after: the load of the rest of the
		// machine drifts, so a ratio to ceilings taken only before the
		// scenarios is as good as that one moment. Every ratio at this
		// concurrency uses the mean of the two, stage by stage.
		after, err := b.measureCeilings(ctx, c, "ceilings, measured again after the /stock scenarios")
		if err != nil {
			return err
		}
		cls[c] = meanCeilings(cl, after)
		for i := first; i < len(b.rows); i++ {
			if b.rows[i].ceilName == "composed" {
				b.rows[i].ceiling = fast(c)
			}
		}
	}

	if b.o.want("many") {
		if err := b.many(ctx, c0); err != nil {
			return err
		}
	}

	// What the /stats counters cost /stock: the same load back to back
	// with the counting triggers on and off, in the order on, off, off, on
	// so that a drift during the group (table and index growth, autovacuum,
	// the rest of the machine) weighs on both sides alike; then the
	// triggers are on again and the counts rebuilt.
	if b.o.want("stats-cost") {
		group := "/stats strategy: /stock with and without the counter triggers"
		for i, on := range []bool{true, false, false, true} {
			trigger := map[bool]string{true: "ENABLE", false: "DISABLE"}[on]
			if _, err := b.db.Exec(ctx, `ALTER TABLE history `+trigger+` TRIGGER USER`); err != nil {
				return err
			}
			suffix := map[bool]string{true: ", counters on", false: ", counters off"}[on]
			if i >= 2 {
				suffix += " (2)"
			}
			if err := b.stock(ctx, group, "hot symbol"+suffix, c0, hotSymbol, 1, fast(c0), 0); err != nil {
				return err
			}
			if err := b.stock(ctx, group, "zipf 1000"+suffix, c0, zipf, 1000, fast(c0), 0); err != nil {
				return err
			}
		}
		for _, stmt := range []string{
			`ALTER TABLE history ENABLE TRIGGER USER`,
			`DELETE FROM stock_counts`,
			`INSERT INTO stock_counts (stock, shard, n) SELECT lower(symbol), id % 16, count(*) FROM history GROUP BY 1, 2`,
		} {
			if _, err := b.db.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
	}

	cached := []struct {
		group    string
		stooqURL string
		ceiling  func(int) float64
	}{
		{"cached", b.instant, fast},
		{"remote", b.slow, slow},
	}
	for _, p := range cached {
		if !b.o.want(p.group) {
			continue
		}
		if err := b.startWorkers(ctx, 1, b.o.workers, p.stooqURL, b.o.cacheTTL); err != nil {
			return err
		}
		latency := "instant"
		if p.stooqURL == b.slow {
			latency = b.o.latency.String()
		}
		group := fmt.Sprintf("/stock, stooq %s, cache %s", latency, b.o.cacheTTL)
		for _, c := range b.o.clients {
			if err := b.stock(ctx, group, "hot symbol", c, hotSymbol, 1, p.ceiling(c), b.o.cacheTTL); err != nil {
				return err
			}
			if err := b.stock(ctx, group, "zipf 1000", c, zipf, 1000, p.ceiling(c), b.o.cacheTTL); err != nil {
				return err
			}
		}
	}

	// Stooq remote, cache off: throughput against worker concurrency and replicas.
	if b.o.want("replicas") {
		group := fmt.Sprintf("/stock, stooq %s, cache off: workers and replicas", b.o.latency)
		for _, s := range []struct{ replicas, workers int }{{1, 16}, {1, b.o.workers}, {2, b.o.workers}} {
			if err := b.startWorkers(ctx, s.replicas, s.workers, b.slow, 0); err != nil {
				return err
			}
			name := fmt.Sprintf("zipf 1000, %d x WORKERS=%d", s.replicas, s.workers)
			if err := b.stock(ctx, group, name, c0, zipf, 1000, slow(c0), 0); err != nil {
				return err
			}
		}
		if err := b.startWorkers(ctx, 1, b.o.workers, b.instant, 0); err != nil {
			return err
		}
	}

	if b.o.want("history") {
		for _, c := range b.o.clients {
			b.plain(ctx, "/history", fmt.Sprintf("page of 100, user with %d rows", b.o.userRows), c, cls[c].gin.throughput, "gin+jwt",
				get(b.apiURL+"/api/v1/history?limit=100", b.heavy))
		}
	}
	if b.o.want("stats") {
		for _, c := range b.o.clients {
			b.plain(ctx, "/stats", fmt.Sprintf("top stocks, %d rows", b.o.rows), c, cls[c].gin.throughput, "gin+jwt",
				get(b.apiURL+"/api/v1/stats", b.admin))
		}
	}
	if b.o.want("login") {
		b.plain(ctx, "/login", fmt.Sprintf("bcrypt cost %d", b.o.bcryptCost), min(c0, 16), 0, "",
			loginRequests(b.apiURL, "heavy", "heavy-password-1"))
	}
	return b.checkStats(ctx)
}

// checkStats compares /stats with a full count of history.
func (b *bench) checkStats(ctx context.Context) error {
	b.logf("checking /stats against a full count of history")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.apiURL+"/api/v1/stats", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	type count struct {
		Stock          string `json:"stock"`
		TimesRequested int64  `json:"times_requested"`
	}
	var got []count
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return fmt.Errorf("decode /stats: %w", err)
	}
	// The query /stats ran before stock_counts (migration 1's index-only
	// strategy); timed for the report.
	start := time.Now()
	rows, err := b.db.Query(ctx, `SELECT lower(symbol), count(*) FROM history GROUP BY 1
		ORDER BY 2 DESC, lower(symbol) COLLATE "C" LIMIT $1`, max(len(got), 1))
	if err != nil {
		return err
	}
	want, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (count, error) {
		var c count
		err := r.Scan(&c.Stock, &c.TimesRequested)
		return c, err
	})
	if err != nil {
		return err
	}
	b.fullCount = time.Since(start)
	if len(got) == 0 || !slices.Equal(got, want) {
		b.failures = append(b.failures, fmt.Sprintf("/stats = %v, a full count of history says %v", got, want))
	}
	return nil
}

// profile starts CPU profiles of the API and the first stock service,
// lasting most of a scenario, and returns a function that waits for them
// and writes them to the profile directory.
func (b *bench) profile(ctx context.Context, c int) func() error {
	secs := max(1, int(b.o.duration.Seconds())-2)
	targets := map[string]string{"api": b.apiDebug, "stockservice": b.debugURL[0]}
	errs := make(chan error, len(targets))
	for name, base := range targets {
		go func() {
			errs <- func() error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), nil)
				if err != nil {
					return err
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return fmt.Errorf("profile %s: %w", name, err)
				}
				defer resp.Body.Close()
				if err := os.MkdirAll(b.o.profileDir, 0o755); err != nil {
					return err
				}
				f, err := os.Create(filepath.Join(b.o.profileDir, fmt.Sprintf("%s-%dclients.pprof", name, c)))
				if err != nil {
					return err
				}
				if _, err := io.Copy(f, resp.Body); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			}()
		}()
	}
	return func() error {
		var all []error
		for range targets {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	}
}
