//go:build integration

package faults

// The harness is adapted from e2e's (build the real binaries once, run
// them with a JSON log capture, walk the API over HTTP) and adds what
// breaking things needs: toxiproxy links in front of the broker and the
// database, workers that can be killed and restarted, and queue checks.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// binDir holds the binaries TestMain builds once for the whole suite.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stockquote-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "../apiservice", "../stockservice")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "faults: build binaries:", err)
		return 1
	}
	return m.Run()
}

// amqpURL is the broker the suite uses.
func amqpURL() string {
	if u := os.Getenv("TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// ---- toxiproxy links ----

// toxiServer is the in-process toxiproxy every link belongs to.
var toxiServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())

// link is a toxiproxy proxy between a program and the broker or the
// database: down cuts every connection and refuses new ones (what a
// restart looks like from outside), up heals it, slow adds latency.
type link struct {
	t     *testing.T
	proxy *toxiproxy.Proxy
}

// newLink starts a proxy on a loopback port in front of upstream
// (host:port) and stops it when the test ends.
func newLink(t *testing.T, name, upstream string) *link {
	t.Helper()
	p := toxiproxy.NewProxy(toxiServer, name+"-"+randomHex(4), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy to %s: %v", upstream, err)
	}
	t.Cleanup(p.Stop)
	return &link{t: t, proxy: p}
}

// addr is the proxy's listening address.
func (l *link) addr() string {
	l.proxy.Lock()
	defer l.proxy.Unlock()
	return l.proxy.Listen
}

// down closes every connection through the link and refuses new ones.
func (l *link) down() { l.proxy.Stop() }

// up accepts connections again, on the same address.
func (l *link) up() {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := l.proxy.Start()
		if err == nil || err == toxiproxy.ErrProxyAlreadyStarted {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("restart proxy on %s: %v", l.addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slow delays everything sent through the link in the given direction
// ("upstream": towards the server, "downstream": back) by d.
func (l *link) slow(stream string, d time.Duration) {
	l.t.Helper()
	body := fmt.Sprintf(`{"name":"slow-%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`, stream, stream, d.Milliseconds())
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		l.t.Fatalf("add latency toxic: %v", err)
	}
}

// fast removes the latency added by slow.
func (l *link) fast(stream string) {
	l.t.Helper()
	if err := l.proxy.Toxics.RemoveToxic(context.Background(), "slow-"+stream); err != nil {
		l.t.Fatalf("remove latency toxic: %v", err)
	}
}

// viaLink returns rawURL with its host replaced by l's address.
func viaLink(t *testing.T, rawURL string, l *link) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %s: %v", rawURL, err)
	}
	u.Host = l.addr()
	return u.String()
}

// hostOf returns the host:port of rawURL.
func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %s: %v", rawURL, err)
	}
	return u.Host
}

// ---- programs ----

// proc is a running program under test.
type proc struct {
	name    string
	cmd     *exec.Cmd
	addr    chan string
	exited  chan struct{} // closed when the process has exited
	exitErr error         // set before exited is closed
	mu      sync.Mutex
	logs    bytes.Buffer
}

// start runs binary with env, capturing its JSON log lines, and waits for
// the line that reports its listening address. At the end of the test a
// program still running gets SIGTERM and must exit cleanly.
func start(t *testing.T, binary string, env []string) *proc {
	t.Helper()
	p := &proc{name: binary, addr: make(chan string, 1), exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, binary))
	p.cmd.Env = env
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(line)
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && strings.Contains(rec.Msg, "listening") && rec.Addr != "" {
				select {
				case p.addr <- rec.Addr:
				default:
				}
			}
		}
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			if _, err := p.terminate(30 * time.Second); err != nil && !t.Failed() {
				t.Errorf("%s: %v", binary, err)
			}
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", binary, p.Logs())
		}
	})
	return p
}

// Logs returns everything the program logged so far.
func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// listenAddr waits for the program's listening address.
func (p *proc) listenAddr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-p.addr:
		return a
	case <-p.exited:
		t.Fatalf("%s exited before listening: %v\n%s", p.name, p.exitErr, p.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not report a listening address in 30s\n%s", p.name, p.Logs())
	}
	return ""
}

// terminate sends SIGTERM and waits up to limit for the exit; it reports
// how long the exit took and an error unless the program exited 0 in time
// (in which case it is killed).
func (p *proc) terminate(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		took := time.Since(start)
		if p.exitErr != nil {
			return took, fmt.Errorf("exited with %v after SIGTERM", p.exitErr)
		}
		return took, nil
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return time.Since(start), fmt.Errorf("did not exit within %v of SIGTERM", limit)
	}
}

// kill sends SIGKILL (no chance to clean up) and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// waitStatus polls url until it answers want, failing the test after d.
func waitStatus(t *testing.T, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := 0
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			last = resp.StatusCode
			if resp.StatusCode == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still %d, not %d, after %v", url, last, want, d)
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, url string) {
	t.Helper()
	waitStatus(t, url, http.StatusOK, 30*time.Second)
}

// ---- the system under test ----

// system is one isolated deployment: its own database, queue and fake
// stooq, the API reaching the broker and the database through links.
type system struct {
	api      string // base URL of the API
	apiProc  *proc
	dbURL    string // direct, for the test's own queries
	queue    string
	stooq    *stooqtest.Server
	secret   string
	env      []string // the API's environment
	base     []string
	workers  []*worker
	broker   *link // between the API and RabbitMQ
	db       *link // between the API and PostgreSQL
	stooqTmo time.Duration
}

// options tune a system.
type options struct {
	workers      int           // stock services to start (default 1; -1 for none)
	rpcTimeout   time.Duration // API RPC_TIMEOUT (default 5s)
	stooqTimeout time.Duration // worker STOOQ_TIMEOUT (default 1s)
	slowDelay    time.Duration // how long slow.test waits (default 20s)
}

// newSystem migrates a fresh database, creates the users admin
// (superuser) and alice, and starts the workers and the API service.
func newSystem(t *testing.T, o options) *system {
	t.Helper()
	if o.rpcTimeout == 0 {
		o.rpcTimeout = 5 * time.Second
	}
	if o.stooqTimeout == 0 {
		o.stooqTimeout = time.Second
	}
	if o.slowDelay == 0 {
		o.slowDelay = 20 * time.Second
	}
	if o.workers == 0 {
		o.workers = 1
	}
	s := &system{
		dbURL:    pgtest.NewDatabase(t),
		queue:    "faults." + strings.ReplaceAll(t.Name(), "/", ".") + "." + randomHex(6),
		stooq:    stooqtest.NewServer(stooqtest.Options{SlowDelay: o.slowDelay}),
		secret:   randomHex(32),
		base:     []string{"PATH=" + os.Getenv("PATH"), "LOG_LEVEL=debug"},
		stooqTmo: o.stooqTimeout,
	}
	t.Cleanup(s.stooq.Close)
	t.Cleanup(func() { deleteQueue(t, s.queue) })
	s.broker = newLink(t, "api-broker", hostOf(t, amqpURL()))
	s.db = newLink(t, "api-db", hostOf(t, s.dbURL))

	s.env = append(append([]string(nil), s.base...),
		"DATABASE_URL="+viaLink(t, s.dbURL, s.db),
		"AMQP_URL="+viaLink(t, amqpURL(), s.broker),
		"RPC_QUEUE="+s.queue,
		"JWT_SECRET="+s.secret,
		"HTTP_ADDR=127.0.0.1:0",
		"RPC_TIMEOUT="+o.rpcTimeout.String(),
		"BCRYPT_COST=4",
		"SHUTDOWN_TIMEOUT=10s",
	)
	s.command(t, "", "migrate")
	s.command(t, "admin-password-1\n", "user", "add", "-name", "admin", "-email", "admin@example.com", "-superuser")
	s.command(t, "alice-password-1\n", "user", "add", "-name", "alice")

	for range max(o.workers, 0) {
		s.startWorker(t)
	}
	s.apiProc = start(t, "apiservice", s.env)
	s.api = "http://" + s.apiProc.listenAddr(t)
	if o.workers > 0 {
		waitReady(t, s.api+"/readyz")
	} else {
		waitReady(t, s.api+"/healthz")
	}
	return s
}

// worker is one running stock service and its own link to the broker.
type worker struct {
	*proc
	broker *link
	health string // base URL of its probes
}

// startWorker starts a stock service on the system's queue, reaching the
// broker through a link of its own, and waits until it consumes.
func (s *system) startWorker(t *testing.T) *worker {
	t.Helper()
	l := newLink(t, "worker-broker", hostOf(t, amqpURL()))
	p := start(t, "stockservice", append(append([]string(nil), s.base...),
		"AMQP_URL="+viaLink(t, amqpURL(), l),
		"RPC_QUEUE="+s.queue,
		"STOOQ_URL="+s.stooq.URL,
		"STOOQ_TIMEOUT="+s.stooqTmo.String(),
		"WORKERS=8",
		"HTTP_ADDR=127.0.0.1:0",
		"SHUTDOWN_TIMEOUT=10s",
	))
	w := &worker{proc: p, broker: l, health: "http://" + p.listenAddr(t)}
	waitReady(t, w.health+"/readyz")
	s.workers = append(s.workers, w)
	return w
}

// command runs `apiservice args...` to completion with stdin.
func (s *system) command(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "apiservice"), args...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apiservice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// withChannel runs f on a channel of a fresh, short-lived broker
// connection; an unreachable broker fails the test.
func withChannel(t *testing.T, f func(ch *amqp.Channel) error) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatalf("RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("RabbitMQ channel: %v", err)
	}
	defer ch.Close()
	if err := f(ch); err != nil {
		t.Fatal(err)
	}
}

// deleteQueue removes a test's queue from the shared broker.
func deleteQueue(t *testing.T, name string) {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Errorf("delete queue %s: %v", name, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("delete queue %s: %v", name, err)
		return
	}
	defer ch.Close()
	if _, err := ch.QueueDelete(name, false, false, false); err != nil {
		t.Errorf("delete queue %s: %v", name, err)
	}
}

// declareQueue declares an RPC queue with the arguments amqprpc uses.
func declareQueue(t *testing.T, name string) {
	t.Helper()
	withChannel(t, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic})
		return err
	})
}

// queueDepth reports the messages ready in queue (unacked ones are not
// counted by the broker until their consumer goes away) and its consumers.
func queueDepth(t *testing.T, name string) (messages, consumers int) {
	t.Helper()
	withChannel(t, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic})
		messages, consumers = q.Messages, q.Consumers
		return err
	})
	return messages, consumers
}

// ---- HTTP ----

// response is an HTTP answer with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// httpClient bounds every request, so a hang fails the test instead of
// stalling it.
var httpClient = &http.Client{Timeout: 60 * time.Second}

// do sends a request with an optional bearer token and JSON body.
func (s *system) do(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	r, err := s.try(method, path, token, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// try is do without a test: safe from any goroutine, it returns the
// transport error instead of failing.
func (s *system) try(method, path, token string, body any) (response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.api+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return send(req)
}

// send is the single HTTP entry point of the suite.
func send(req *http.Request) (response, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// login returns a token for the user, failing the test otherwise.
func (s *system) login(t *testing.T, user, password string) string {
	t.Helper()
	r := s.do(t, http.MethodPost, "/api/v1/login", "", map[string]string{"username": user, "password": password})
	if r.status != http.StatusOK {
		t.Fatalf("login %s: status %d: %s", user, r.status, r.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(r.body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login %s: bad answer %s (%v)", user, r.body, err)
	}
	return tok.AccessToken
}

// problem is an RFC 9457 problem details body.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// checkProblem reports what is wrong with r as a problem+json answer of
// one of the given statuses, or "" when nothing is.
func checkProblem(r response, statuses ...int) string {
	ok := false
	for _, s := range statuses {
		ok = ok || r.status == s
	}
	if !ok {
		return fmt.Sprintf("status = %d, want one of %v; body %s", r.status, statuses, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		return fmt.Sprintf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.status || p.Title == "" {
		return fmt.Sprintf("problem body %s (%v): want status %d and a title", r.body, err, r.status)
	}
	return ""
}

// wantProblem fails the test unless r is a problem+json answer with one
// of the given statuses.
func wantProblem(t *testing.T, r response, statuses ...int) {
	t.Helper()
	if msg := checkProblem(r, statuses...); msg != "" {
		t.Fatal(msg)
	}
}

// countRows counts history rows in the system's database (directly, not
// through the link).
func (s *system) countRows(t *testing.T, where string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	q := "SELECT count(*) FROM history"
	if where != "" {
		q += " WHERE " + where
	}
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("count history: %v", err)
	}
	return n
}
