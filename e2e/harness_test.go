//go:build integration

package e2e

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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// binDir holds the binaries TestMain builds once for the whole suite.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stockquote-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
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
		fmt.Fprintln(os.Stderr, "e2e: build binaries:", err)
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

// proc is a running program under test.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr chan string
	done chan error
	mu   sync.Mutex
	logs bytes.Buffer
}

// start runs binary with env, capturing its JSON log lines, and waits for
// the line that reports its listening address.
func start(t *testing.T, binary string, env []string) *proc {
	t.Helper()
	p := &proc{name: binary, addr: make(chan string, 1), done: make(chan error, 1)}
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
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.stop(t)
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
	case err := <-p.done:
		t.Fatalf("%s exited before listening: %v\n%s", p.name, err, p.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not report a listening address in 30s\n%s", p.name, p.Logs())
	}
	return ""
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil && !t.Failed() {
			t.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, p.Logs())
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("%s did not exit within 30s of SIGTERM", p.name)
	}
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 30s", url)
}

// system is one isolated deployment: its own database, queue and fake stooq.
type system struct {
	api    string // base URL of the API
	dbURL  string
	queue  string
	stooq  *stooqtest.Server
	secret string
	env    []string // the API's environment, for starting more copies

	apiProc    *proc  // the API process, for its logs
	worker     *proc  // the stock service process (nil with noWorker)
	workerAddr string // the stock service's probe and metrics address
}

// options tune a system.
type options struct {
	noWorker   bool          // start no stock service
	rpcTimeout time.Duration // API RPC_TIMEOUT
}

// newSystem migrates a fresh database, creates the users admin (superuser)
// and alice, and starts the stock service and the API service.
func newSystem(t *testing.T, o options) *system {
	t.Helper()
	if o.rpcTimeout == 0 {
		o.rpcTimeout = 3 * time.Second
	}
	s := &system{
		dbURL:  pgtest.NewDatabase(t),
		queue:  "e2e." + t.Name() + "." + randomHex(6),
		stooq:  stooqtest.NewServer(stooqtest.Options{SlowDelay: 20 * time.Second}),
		secret: randomHex(32),
	}
	t.Cleanup(s.stooq.Close)
	t.Cleanup(func() { deleteQueue(t, s.queue) })
	base := []string{"PATH=" + os.Getenv("PATH"), "LOG_LEVEL=debug"}

	s.env = append(base,
		"DATABASE_URL="+s.dbURL,
		"AMQP_URL="+amqpURL(),
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

	if !o.noWorker {
		worker := start(t, "stockservice", append(base,
			"AMQP_URL="+amqpURL(),
			"RPC_QUEUE="+s.queue,
			"STOOQ_URL="+s.stooq.URL,
			"STOOQ_TIMEOUT=1s",
			"WORKERS=8",
			"HTTP_ADDR=127.0.0.1:0",
			"SHUTDOWN_TIMEOUT=10s",
		))
		s.worker, s.workerAddr = worker, worker.listenAddr(t)
		waitReady(t, "http://"+s.workerAddr+"/readyz")
	}
	api := start(t, "apiservice", s.env)
	s.apiProc = api
	s.api = "http://" + api.listenAddr(t)
	if o.noWorker {
		waitReady(t, s.api+"/healthz")
	} else {
		waitReady(t, s.api+"/readyz")
	}
	return s
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

// response is an HTTP answer with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with an optional bearer token and JSON body.
func (s *system) do(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return send(t, req)
}

// send is the suite's single way to call the API: every exchange is also
// checked against the OpenAPI description (see openapi_test.go).
func send(t *testing.T, req *http.Request) response {
	t.Helper()
	reqBody := requestBody(t, req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	checkSpec(t, req, reqBody, r)
	return r
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
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	decode(t, r, &tok)
	if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		t.Fatalf("login %s: bad token answer %s", user, r.body)
	}
	return tok.AccessToken
}

func decode(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem is an RFC 9457 problem details body.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// wantProblem checks r is a problem+json answer with the given status.
func wantProblem(t *testing.T, r response, status int) problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problem
	decode(t, r, &p)
	if p.Status != status || p.Title == "" {
		t.Errorf("problem = %+v, want status %d and a title", p, status)
	}
	return p
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
