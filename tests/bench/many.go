package main

// The many-symbol /stock scenario, its minimal-chain ceiling, and the ABBA
// comparison of two source trees.
//
// Many symbols: requests spread uniformly at random over 10,000 symbols,
// so nearly every request needs its own RPC and (cache or not) its own
// stooq fetch; the fake stooq answers at once and both services run with
// their default settings (QUOTE_CACHE_TTL and QUOTE_COALESCE unset). Every
// successful answer must have added one history row.
//
// Its ceiling is the minimal chain (tests/bench/minimal): the same request path
// written plainly, with none of the services' tricks, run as two real
// processes on the same PostgreSQL database, RabbitMQ and fake stooq, hit
// by the same load at the same concurrency, before and after the pair (the
// ratio uses the mean). Run just this group at 64 clients with
//
//	make bench BENCH_FLAGS='-only many -clients 64'
//
// ABBA: -root-b DIR builds a second tree and compares it (B) with -root
// (A) on the many-symbol and zipf 1000 scenarios, in the order A B B A,
// each tree on its own database and queue:
//
//	make bench BENCH_FLAGS='-root /abs/before -root-b /abs/after -clients 64'

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

// manySymbols is how many symbols the many-symbol scenario asks for.
const manySymbols = 10_000

const manyGroup = "/stock, many symbols (10,000, uniform), stooq instant, the services' defaults"

// minimalChain is the running minimal chain.
type minimalChain struct {
	api, worker *proc
	url         string
}

func (m *minimalChain) samples() []namedSample {
	api, _ := m.api.sample()
	worker, _ := m.worker.sample()
	return []namedSample{{"api", api}, {"worker", worker}}
}

// startMinimal starts the minimal chain's worker and API on the current
// tree's database, with production's memory limits as the pair has.
func (b *bench) startMinimal(ctx context.Context) (*minimalChain, error) {
	queue := "bench.minimal." + randomHex(6)
	b.defer_(func() error { return deleteQueue(b.o.amqpURL, queue) })
	bin := filepath.Join(b.dir, "minimal")
	m := &minimalChain{}
	for _, p := range []struct {
		dst  **proc
		role string
		args []string
		env  []string
	}{
		{&m.worker, "worker", []string{"-stooq", b.instant, "-workers", strconv.Itoa(b.o.workers)}, []string{"GOMEMLIMIT=" + workerGoMemLimit}},
		{&m.api, "api", []string{"-db", b.dbURL, "-issuer", jwtIssuer, "-audience", jwtAudience},
			[]string{"GOMEMLIMIT=" + apiGoMemLimit, "JWT_SECRET=" + string(b.secret)}},
	} {
		addrs, err := freeAddrs(1)
		if err != nil {
			return nil, err
		}
		addr := addrs[0]
		args := append([]string{"-role", p.role, "-addr", addr, "-amqp", b.o.amqpURL, "-queue", queue}, p.args...)
		started, err := startProc("minimal "+p.role, bin, args, p.env, filepath.Join(b.dir, "minimal-"+p.role+".log"))
		if err != nil {
			return nil, err
		}
		b.defer_(started.stop)
		if err := waitOK(ctx, started, "http://"+addr+"/healthz"); err != nil {
			return nil, err
		}
		*p.dst = started
		m.url = "http://" + addr
	}
	return m, nil
}

// many runs the many-symbol scenario against the pair and the minimal
// chain at each concurrency; at c0 also the pair without its caches
// (QUOTE_COALESCE=off, QUOTE_CACHE_TTL=0).
func (b *bench) many(ctx context.Context, c0 int) error {
	m, err := b.startMinimal(ctx)
	if err != nil {
		return err
	}
	if err := b.startWorkers(ctx, 1, b.o.workers, b.instant, defaultTTL); err != nil {
		return err
	}
	pick := uniformSymbols(manySymbols, 11)
	for _, c := range b.o.clients {
		before, err := b.minimal(ctx, m, c, pick, "before the pair")
		if err != nil {
			return err
		}
		first := len(b.rows)
		if err := b.stock(ctx, manyGroup, "many symbols", c, pick, manySymbols, 0, 0); err != nil {
			return err
		}
		pair := b.rows[len(b.rows)-1]
		if c == c0 {
			if err := b.startWorkers(ctx, 1, b.o.workers, b.instant, 0); err != nil {
				return err
			}
			if err := b.withoutCoalescing(ctx, func() error {
				return b.stock(ctx, manyGroup, "many symbols, QUOTE_COALESCE=off QUOTE_CACHE_TTL=0", c, pick, manySymbols, 0, 0)
			}); err != nil {
				return err
			}
			if err := b.startWorkers(ctx, 1, b.o.workers, b.instant, defaultTTL); err != nil {
				return err
			}
		}
		last := len(b.rows)
		after, err := b.minimal(ctx, m, c, pick, "after the pair")
		if err != nil {
			return err
		}
		ceiling := (before.throughput + after.throughput) / 2
		for i := first; i < last; i++ {
			b.rows[i].ceiling, b.rows[i].ceilName = ceiling, "minimal chain"
		}
		b.summary = append(b.summary, manyCheck(pair.res, c, ceiling))
	}
	for _, p := range []*proc{m.api, m.worker} {
		if err := p.stop(); err != nil {
			return err
		}
	}
	// The groups that follow expect the cache off.
	return b.startWorkers(ctx, 1, b.o.workers, b.instant, 0)
}

// minimal runs the many-symbol load against the minimal chain and checks
// its answers as the pair's.
func (b *bench) minimal(ctx context.Context, m *minimalChain, c int, pick symbolPicker, when string) (result, error) {
	before, err := maxHistoryID(ctx, b.db)
	if err != nil {
		return result{}, err
	}
	name := "minimal chain, " + when
	b.logf("%s: %s at %d clients", manyGroup, name, c)
	r := b.measure(row{group: manyGroup, name: name, clients: c}, m.samples, func() result {
		return attack(ctx, name, c, b.o.duration, http.StatusOK, stockRequests(m.url, b.tokens, pick))
	})
	added, err := rowsAfter(ctx, b.db, before)
	if err != nil {
		return result{}, err
	}
	b.checkStock(r, added)
	r.note = fmt.Sprintf("CPU/req %d µs", cpuPerRequest(r).Microseconds())
	b.rows = append(b.rows, r)
	return r.res, nil
}

// Issue 15's target for the many-symbol scenario at 64 clients.
const (
	targetClients = 64
	targetRatio   = 1.2
	targetP99     = 60 * time.Millisecond
)

// manyCheck says how the pair compares with the minimal chain at c clients.
func manyCheck(pair result, c int, minimal float64) string {
	if minimal <= 0 {
		return fmt.Sprintf("Many symbols at %d clients: the pair %.0f req/s, p99 %s ms; the minimal chain gave no figure.", c, pair.throughput, ms(pair.p99))
	}
	ratio := pair.throughput / minimal
	s := fmt.Sprintf("Many symbols at %d clients: the pair %.0f req/s, p99 %s ms, is %.2fx the minimal chain (%.0f req/s, mean of before and after).",
		c, pair.throughput, ms(pair.p99), ratio, minimal)
	if c == targetClients {
		verdict := "met"
		if ratio < targetRatio || pair.p99 > targetP99 {
			verdict = "NOT met"
		}
		s += fmt.Sprintf(" Target at %d clients (at least %.1fx, p99 at most %s ms): %s.", targetClients, targetRatio, ms(targetP99), verdict)
	}
	return s
}

// abba compares tree A with tree B at c clients: per round, the
// many-symbol scenario with the services' defaults, then zipf 1000 with
// the cache off, as the other /stock groups run them, in the order
// A B B A so a drift of the machine weighs on both alike. Each round
// starts fresh processes.
func (b *bench) abba(ctx context.Context, c int) error {
	group := fmt.Sprintf("ABBA at %d clients: A = %s, B = %s", c, b.trees[0].root, b.trees[1].root)
	scenarios := []struct {
		name    string
		ttl     time.Duration
		pick    symbolPicker
		symbols int
	}{
		{"many symbols, defaults", defaultTTL, uniformSymbols(manySymbols, 11), manySymbols},
		{"zipf 1000, cache off", 0, zipfSymbols(1000, 42), 1000},
	}
	runs := map[string][]result{} // by scenario and tree
	for _, t := range []*tree{b.trees[0], b.trees[1], b.trees[1], b.trees[0]} {
		b.tree = t
		for i, s := range scenarios {
			if err := b.startWorkers(ctx, 1, b.o.workers, b.instant, s.ttl); err != nil {
				return err
			}
			if i == 0 {
				if err := b.startAPI(ctx); err != nil {
					return err
				}
			}
			k := s.name + "/" + t.name
			name := fmt.Sprintf("%s, %s (%d)", s.name, t.name, len(runs[k])+1)
			if err := b.stock(ctx, group, name, c, s.pick, s.symbols, 0, 0); err != nil {
				return err
			}
			runs[k] = append(runs[k], b.rows[len(b.rows)-1].res)
		}
	}
	mean := func(rs []result) (tput float64, p99 time.Duration) {
		for _, r := range rs {
			tput += r.throughput / float64(len(rs))
			p99 += r.p99 / time.Duration(len(rs))
		}
		return tput, p99
	}
	for _, s := range scenarios {
		at, ap := mean(runs[s.name+"/A"])
		bt, bp := mean(runs[s.name+"/B"])
		b.summary = append(b.summary, fmt.Sprintf("ABBA at %d clients, %s (means of 2 runs each): A %.0f req/s, p99 %s ms; B %.0f req/s, p99 %s ms; B/A: req/s %.2fx, p99 %.2fx.",
			c, s.name, at, ms(ap), bt, ms(bp), bt/at, float64(bp)/float64(ap)))
	}
	return nil
}
