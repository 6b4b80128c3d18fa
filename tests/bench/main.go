// Command stockbench is the stockquote benchmark (make bench): it builds
// the real binaries, starts the fake stooq, the stock service and the API
// on a fresh database and a fresh queue, seeds history, drives load with
// vegeta and prints a table of throughput, latency, errors and each
// process's CPU and peak memory, each throughput next to the ceiling this
// machine allows for it, measured by the same run at the same
// concurrency. It fails when an answer is wrong: an unexpected error
// status, or history rows that do not match the successful /stock answers.
//
// It needs PostgreSQL (TEST_DATABASE_URL or -pg) and RabbitMQ
// (TEST_AMQP_URL or -amqp) and leaves nothing behind on either.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stockbench:", err)
		os.Exit(1)
	}
}

// options are the command-line settings.
type options struct {
	root, rootB     string
	pgURL, amqpURL  string
	rows, userRows  int
	duration        time.Duration
	ceilingDuration time.Duration
	clients         []int
	latency         time.Duration
	cacheTTL        time.Duration
	workers         int
	bcryptCost      int
	logLevel        string
	out             string
	workDir         string
	profileDir      string
	only            map[string]bool // scenario groups to run; nil = all
	apiExtraEnv     []string
	workerExtraEnv  []string
}

// groups are the scenario groups -only selects from.
var groups = []string{"stock", "many", "stats-cost", "cached", "remote", "replicas", "history", "stats", "login"}

// want reports whether the scenario group g runs.
func (o options) want(g string) bool { return o.only == nil || o.only[g] }

// wantAny reports whether any of the groups gs runs.
func (o options) wantAny(gs ...string) bool { return slices.ContainsFunc(gs, o.want) }

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{
		pgURL:   getenv("TEST_DATABASE_URL"),
		amqpURL: getenv("TEST_AMQP_URL"),
	}
	if o.pgURL == "" {
		o.pgURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	if o.amqpURL == "" {
		o.amqpURL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	fs := flag.NewFlagSet("stockbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "smoke run: 20,000 rows, 4 clients, 1s per scenario (overrides the sizes below)")
	fs.StringVar(&o.root, "root", "../..", "the stockquote module's directory (built with go build)")
	fs.StringVar(&o.rootB, "root-b", "", "a second stockquote tree: compare -root (A) with it (B) in the order A B B A on the many-symbol and zipf 1000 /stock scenarios at 64 clients (or the largest -clients below), and run nothing else")
	fs.StringVar(&o.pgURL, "pg", o.pgURL, "PostgreSQL server URL (a database that can CREATE DATABASE)")
	fs.StringVar(&o.amqpURL, "amqp", o.amqpURL, "RabbitMQ URL")
	fs.IntVar(&o.rows, "rows", 10_000_000, "history rows to seed")
	fs.IntVar(&o.userRows, "user-rows", 1_000_000, "history rows of the user whose /history is read")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each load scenario")
	fs.DurationVar(&o.ceilingDuration, "ceiling-duration", 5*time.Second, "length of each ceiling measurement")
	clients := fs.String("clients", "1,16,64,256", "concurrent clients, comma-separated")
	fs.DurationVar(&o.latency, "latency", 50*time.Millisecond, "the slow fake stooq's answer time")
	fs.DurationVar(&o.cacheTTL, "cache-ttl", 5*time.Second, "QUOTE_CACHE_TTL of the cached scenarios")
	fs.IntVar(&o.workers, "workers", 64, "stock service WORKERS")
	fs.IntVar(&o.bcryptCost, "bcrypt-cost", 10, "API BCRYPT_COST (the /login scenario measures it)")
	fs.StringVar(&o.logLevel, "log-level", "info", "LOG_LEVEL of both services (info logs every request, as in production)")
	fs.StringVar(&o.out, "out", "", "also write the report (Markdown) to this file")
	fs.StringVar(&o.profileDir, "profile", "", "write CPU profiles of the API and the stock service, taken during /stock zipf (stooq instant, cache off), to this directory")
	only := fs.String("only", "", "run only these scenario groups, comma-separated: "+strings.Join(groups, ","))
	apiEnv := fs.String("api-env", "", "extra API environment, comma-separated (e.g. RPC_CHANNELS=8,DB_MAX_CONNS=32)")
	workerEnv := fs.String("worker-env", "", "extra stock service environment, comma-separated")
	fs.StringVar(&o.workDir, "work", "", "keep binaries and logs in this directory (default: a temporary one, removed)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 4096 {
			return o, fmt.Errorf("-clients: %q is not a client count", s)
		}
		o.clients = append(o.clients, n)
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			g = strings.TrimSpace(g)
			if !slices.Contains(groups, g) {
				return o, fmt.Errorf("-only: unknown group %q; have %s", g, strings.Join(groups, ","))
			}
			o.only[g] = true
		}
	}
	for _, kv := range []struct {
		flag string
		dst  *[]string
	}{{*apiEnv, &o.apiExtraEnv}, {*workerEnv, &o.workerExtraEnv}} {
		for _, e := range strings.Split(kv.flag, ",") {
			if e = strings.TrimSpace(e); e != "" {
				if !strings.Contains(e, "=") {
					return o, fmt.Errorf("environment setting %q: want NAME=value", e)
				}
				*kv.dst = append(*kv.dst, e)
			}
		}
	}
	if *quick {
		o.rows, o.userRows = 20_000, 5_000
		o.duration, o.ceilingDuration = time.Second, 500*time.Millisecond
		o.clients = []int{4}
		o.latency = 20 * time.Millisecond
		o.cacheTTL = 200 * time.Millisecond
		o.workers = 8
		o.bcryptCost = 4
	}
	if o.rootB != "" && o.only != nil {
		return o, errors.New("-root-b runs only the ABBA comparison: drop -only")
	}
	if o.userRows > o.rows {
		return o, errors.New("-user-rows is more than -rows")
	}
	return o, nil
}

// run is the whole program.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	b := &bench{o: o, log: stderr}
	defer b.cleanup()
	if err := b.setup(ctx); err != nil {
		return err
	}
	if err := b.runAll(ctx); err != nil {
		return err
	}
	report := b.report()
	fmt.Fprint(stdout, report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if len(b.failures) > 0 {
		return fmt.Errorf("%d correctness failures:\n  %s", len(b.failures), strings.Join(b.failures, "\n  "))
	}
	return nil
}

// bench is the state of one run.
type bench struct {
	o        options
	log      io.Writer
	dir      string
	cleanups []func() error

	*tree         // the tree whose services run now
	trees []*tree // A, and B with -root-b

	secret    []byte
	instant   string // fake stooq URLs
	slow      string
	api       *proc
	apiStarts int
	apiPeakKB int64 // peak RSS of the API processes stopped so far
	apiURL    string
	apiDebug  string
	workers   []*proc
	debugURL  []string // workers' debug listeners
	workerURL []string // workers' HTTP_ADDR (/metrics)

	started   time.Time
	fullCount time.Duration // the pre-stock_counts /stats query, once, on an idle system
	rows      []row
	summary   []string // lines printed after the tables
	failures  []string
}

// tree is a source tree under test: its binaries, and its own database
// and queue, since two trees may differ in schema and queue settings.
type tree struct {
	name   string // A or B
	root   string
	bin    string // directory of its binaries
	dbURL  string
	db     *pgx.Conn
	queue  string
	tokens []string // bench users
	heavy  string   // token of the user with userRows rows
	admin  string   // superuser token
}

// row is one line of the report.
type row struct {
	group    string
	name     string
	clients  int
	res      result
	ceiling  float64 // 0: none
	ceilName string
	procs    []procUse
	machine  []procUse // the rest of the machine: CPU only
	note     string
}

// procUse is one process's CPU and memory during a scenario.
type procUse struct {
	name   string
	cpuPct float64
	peakMB float64
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%6.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) cleanup() {
	for _, f := range slices.Backward(b.cleanups) {
		if err := f(); err != nil {
			fmt.Fprintln(b.log, "cleanup:", err)
		}
	}
}

func (b *bench) defer_(f func() error) { b.cleanups = append(b.cleanups, f) }

const (
	jwtIssuer   = "stockquote-api"
	jwtAudience = "stockquote"
	benchUsers  = 50
)

// Production's soft memory limits (GOMEMLIMIT): what the Helm chart derives
// from its default memory limits (90% of 256Mi and of 128Mi) and what
// docker-compose.yml sets. The programs run with them here, so the peak RSS
// the report shows is the one a deployment gets; deploy/check keeps the
// three in step. -api-env / -worker-env GOMEMLIMIT=... override them.
const (
	apiGoMemLimit    = "230MiB"
	workerGoMemLimit = "115MiB"
)

// lastValue returns the value the last NAME=value of env gives name, as
// os/exec does with duplicates, or def when none does.
func lastValue(env []string, name, def string) string {
	for _, e := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v
		}
	}
	return def
}

func (b *bench) setup(ctx context.Context) error {
	b.started = time.Now()
	b.dir = b.o.workDir
	if b.dir == "" {
		d, err := os.MkdirTemp("", "stockbench-")
		if err != nil {
			return err
		}
		b.dir = d
		b.defer_(func() error { return os.RemoveAll(d) })
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	b.logf("building binaries into %s", b.dir)
	b.trees = []*tree{{name: "A", root: b.o.root}}
	if b.o.rootB != "" {
		b.trees = append(b.trees, &tree{name: "B", root: b.o.rootB})
	}
	for i, t := range b.trees {
		root, err := filepath.Abs(t.root)
		if err != nil {
			return err
		}
		t.root, t.bin = root, filepath.Join(b.dir, t.name)
		pkgs := []string{"./apiservice", "./stockservice"}
		if i == 0 {
			pkgs = append(pkgs, "./fakestooq")
		}
		if err := goBuild(ctx, t.root, t.bin, pkgs...); err != nil {
			return err
		}
	}
	if b.o.want("many") && b.o.rootB == "" {
		// The minimal chain is part of the benchmark, not of a tree.
		if err := goBuild(ctx, ".", b.dir, "./minimal"); err != nil {
			return err
		}
	}
	b.secret = []byte(randomHex(32))

	for _, s := range []struct {
		dst     *string
		latency time.Duration
	}{{&b.instant, 0}, {&b.slow, b.o.latency}} {
		addrs, err := freeAddrs(1)
		if err != nil {
			return err
		}
		addr := addrs[0]
		p, err := startProc("fakestooq", filepath.Join(b.trees[0].bin, "fakestooq"), []string{"-addr", addr, "-latency", s.latency.String()}, nil,
			filepath.Join(b.dir, fmt.Sprintf("fakestooq-%s.log", s.latency)))
		if err != nil {
			return err
		}
		b.defer_(p.stop)
		*s.dst = "http://" + addr
		if err := waitOK(ctx, p, *s.dst+"/q/l/?s=aapl.us&f=sd2t2ohlcvn&h&e=csv"); err != nil {
			return err
		}
	}

	for _, t := range b.trees {
		b.tree = t
		if err := b.prepareTree(ctx); err != nil {
			return err
		}
	}
	b.tree = b.trees[0]
	if err := b.startWorkers(ctx, 1, b.o.workers, b.instant, 0); err != nil {
		return err
	}
	return b.startAPI(ctx)
}

// goBuild builds pkgs of the module in dir into out.
func goBuild(ctx context.Context, dir, out string, pkgs ...string) error {
	build := exec.CommandContext(ctx, "go", append([]string{"build", "-trimpath", "-o", out + string(os.PathSeparator)}, pkgs...)...)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s in %s: %v\n%s", strings.Join(pkgs, " "), dir, err, out)
	}
	return nil
}

// prepareTree gives the current tree its queue and database: migrated by
// its own binary, with the bench users and the seeded history.
func (b *bench) prepareTree(ctx context.Context) error {
	var err error
	var drop func() error
	b.dbURL, drop, err = createDatabase(ctx, b.o.pgURL)
	if err != nil {
		return err
	}
	b.defer_(drop)
	queue := "bench.stock." + randomHex(6)
	b.queue = queue
	b.defer_(func() error { return deleteQueue(b.o.amqpURL, queue) })
	b.logf("tree %s (%s): migrating", b.name, b.root)
	if err := b.apiCommand(ctx, "", "migrate"); err != nil {
		return err
	}
	if err := b.apiCommand(ctx, "admin-password-1\n", "user", "add", "-name", "admin", "-superuser"); err != nil {
		return err
	}
	if err := b.apiCommand(ctx, "heavy-password-1\n", "user", "add", "-name", "heavy"); err != nil {
		return err
	}
	db, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	b.db = db
	b.defer_(func() error { return db.Close(context.Background()) })
	// The other users share heavy's password hash: creating them through
	// bcrypt would only make the setup slower.
	if _, err := b.db.Exec(ctx, `INSERT INTO users (username, password_hash)
		SELECT 'u' || g, (SELECT password_hash FROM users WHERE username = 'heavy') FROM generate_series(1, $1::int) g`, benchUsers); err != nil {
		return fmt.Errorf("create bench users: %w", err)
	}
	ids := map[string]int64{}
	rows, err := b.db.Query(ctx, `SELECT username, id FROM users`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		var id int64
		if err := rows.Scan(&name, &id); err != nil {
			return err
		}
		ids[name] = id
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var others []int64
	for i := 1; i <= benchUsers; i++ {
		id := ids["u"+strconv.Itoa(i)]
		others = append(others, id)
		tok, err := signToken(b.secret, jwtIssuer, jwtAudience, id)
		if err != nil {
			return err
		}
		b.tokens = append(b.tokens, tok)
	}
	if b.heavy, err = signToken(b.secret, jwtIssuer, jwtAudience, ids["heavy"]); err != nil {
		return err
	}
	if b.admin, err = signToken(b.secret, jwtIssuer, jwtAudience, ids["admin"]); err != nil {
		return err
	}
	b.logf("seeding %d history rows (%d for one user)", b.o.rows, b.o.userRows)
	if err := seedHistory(ctx, b.dbURL, ids["heavy"], others, b.o.userRows, b.o.rows); err != nil {
		return err
	}
	b.logf("seeded")
	return nil
}

// apiEnv is the API's environment.
func (b *bench) apiEnv(httpAddr string) []string {
	return append([]string{
		"DATABASE_URL=" + b.dbURL, "AMQP_URL=" + b.o.amqpURL, "RPC_QUEUE=" + b.queue,
		"JWT_SECRET=" + string(b.secret), "HTTP_ADDR=" + httpAddr, "LOG_LEVEL=" + b.o.logLevel,
		"BCRYPT_COST=" + strconv.Itoa(b.o.bcryptCost),
		"RPC_TIMEOUT=10s", "SHUTDOWN_TIMEOUT=10s", "GOMEMLIMIT=" + apiGoMemLimit,
		// The login throttle would answer most of the /login scenario with
		// 429: lift it, so the scenario measures bcrypt.
		"LOGIN_ACCOUNT_BURST=1000", "LOGIN_ACCOUNT_INTERVAL=1ms", "LOGIN_CLIENT_BURST=100000", "LOGIN_CLIENT_INTERVAL=1ms",
		// A few users drive the whole load: a per-user quota would refuse
		// most of it (apiExtraEnv can turn it on to measure its cost).
		"STOCK_QUOTA_REQUESTS_PER_MINUTE=0", "STOCK_QUOTA_MISSES_PER_MINUTE=0",
	}, b.o.apiExtraEnv...)
}

func (b *bench) apiCommand(ctx context.Context, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(b.bin, "apiservice"), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, b.apiEnv("127.0.0.1:0")...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apiservice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// startAPI stops the running API, if any, and starts one with the
// production defaults, -api-env, then extra (NAME=value settings of a
// scenario, which win).
func (b *bench) startAPI(ctx context.Context, extra ...string) error {
	if b.api != nil {
		// The report's API peak RSS covers the whole run, whichever
		// process had it.
		if s, err := b.api.sample(); err == nil {
			b.apiPeakKB = max(b.apiPeakKB, s.peakKB)
		}
		if err := b.api.stop(); err != nil {
			return err
		}
	}
	b.apiStarts++
	logName := "apiservice.log"
	if b.apiStarts > 1 {
		logName = fmt.Sprintf("apiservice-%d.log", b.apiStarts)
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		return err
	}
	addr, debug := addrs[0], addrs[1]
	b.apiDebug = "http://" + debug
	env := append(append(b.apiEnv(addr), "DEBUG_ADDR="+debug), extra...)
	p, err := startProc("apiservice", filepath.Join(b.bin, "apiservice"), nil, env, filepath.Join(b.dir, logName))
	if err != nil {
		return err
	}
	b.defer_(p.stop)
	b.api, b.apiURL = p, "http://"+addr
	return waitOK(ctx, p, b.apiURL+"/readyz")
}

// defaultTTL as a cache TTL leaves QUOTE_CACHE_TTL unset: the stock
// service's own default applies.
const defaultTTL time.Duration = -1

// workerEnv is a stock service's environment.
func (b *bench) workerEnv(httpAddr, debugAddr, stooqURL string, workers int, ttl time.Duration) []string {
	env := []string{
		"AMQP_URL=" + b.o.amqpURL, "RPC_QUEUE=" + b.queue, "STOOQ_URL=" + stooqURL, "STOOQ_TIMEOUT=5s",
		"WORKERS=" + strconv.Itoa(workers), "HTTP_ADDR=" + httpAddr,
		"DEBUG_ADDR=" + debugAddr, "LOG_LEVEL=" + b.o.logLevel, "SHUTDOWN_TIMEOUT=10s",
		"GOMEMLIMIT=" + workerGoMemLimit,
	}
	if ttl != defaultTTL {
		env = append(env, "QUOTE_CACHE_TTL="+ttl.String())
	}
	return append(env, b.o.workerExtraEnv...)
}

// startWorkers stops the running stock services and starts n with the
// given settings.
func (b *bench) startWorkers(ctx context.Context, n, workers int, stooqURL string, ttl time.Duration) error {
	for _, w := range b.workers {
		if err := w.stop(); err != nil {
			return err
		}
	}
	b.workers, b.debugURL, b.workerURL = nil, nil, nil
	for i := range n {
		addrs, err := freeAddrs(2)
		if err != nil {
			return err
		}
		addr, debug := addrs[0], addrs[1]
		p, err := startProc("stockservice", filepath.Join(b.bin, "stockservice"), nil, b.workerEnv(addr, debug, stooqURL, workers, ttl),
			filepath.Join(b.dir, fmt.Sprintf("stockservice-%d.log", i)))
		if err != nil {
			return err
		}
		b.defer_(p.stop)
		if err := waitOK(ctx, p, "http://"+addr+"/readyz"); err != nil {
			return err
		}
		b.workers = append(b.workers, p)
		b.debugURL = append(b.debugURL, "http://"+debug)
		b.workerURL = append(b.workerURL, "http://"+addr)
	}
	return nil
}

func deleteQueue(url, name string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	defer ch.Close()
	_, err = ch.QueueDelete(name, false, false, false)
	return err
}

// machine describes where the run happened.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				f := strings.Fields(l)
				if len(f) >= 2 {
					kb, _ := strconv.ParseFloat(f[1], 64)
					mem = fmt.Sprintf(", %.1f GiB RAM", kb/1024/1024)
				}
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			load = fmt.Sprintf(", load average %s %s %s", f[0], f[1], f[2])
		}
	}
	return fmt.Sprintf("%d CPUs (%s)%s%s, %s", runtime.NumCPU(), cpu, mem, load, runtime.Version())
}
