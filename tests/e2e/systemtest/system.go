package systemtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
	"github.com/stockquote/stockquote/shared/amqprpc/amqptest"
	"github.com/stockquote/stockquote/stockservice/stooq/stooqtest"
)

// AMQPURL is the broker the suites use: TEST_AMQP_URL, or the local
// RabbitMQ.
func AMQPURL() string {
	if u := os.Getenv("TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// RandomHex returns n random bytes in hex, for unique names.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// System is one isolated deployment: its own database, queue and fake
// stooq. New prepares it; StartWorker and StartAPI run the programs.
type System struct {
	API         string // base URL of the API started by the suite
	APIProc     *Proc  // that API's process
	DatabaseURL string // direct, for the test's own queries
	Queue       string
	Stooq       *stooqtest.Server
	Secret      string   // the API's JWT_SECRET
	Env         []string // the API's environment, for starting copies

	programs     *Programs
	base         []string
	stooqTimeout time.Duration
	check        Check
	workers      int
}

// Options tune a System.
type Options struct {
	QueuePrefix  string        // first part of the queue name, e.g. the suite's name
	RPCTimeout   time.Duration // API RPC_TIMEOUT (default 3s)
	StooqTimeout time.Duration // worker STOOQ_TIMEOUT (default 1s)
	SlowDelay    time.Duration // how long the fake stooq's slow.test waits (default 20s)

	// Route, if set, returns the URL the API uses to reach rawURL, the
	// system's "database" or "broker" (for example through a proxy).
	Route func(service, rawURL string) string

	// Check, if set, sees every exchange made through Do and Send.
	Check Check

	// Env is added to the environment of every program started (API,
	// workers and commands), e.g. RPC_QUEUE_TYPE=quorum.
	Env []string
}

// New creates the system's database (migrated, with the users admin,
// a superuser with password admin-password-1, and alice, with
// alice-password-1), its queue and its fake stooq, all removed when the
// test ends. It starts no program.
func New(t *testing.T, programs *Programs, o Options) *System {
	t.Helper()
	if o.RPCTimeout == 0 {
		o.RPCTimeout = 3 * time.Second
	}
	if o.StooqTimeout == 0 {
		o.StooqTimeout = time.Second
	}
	if o.SlowDelay == 0 {
		o.SlowDelay = 20 * time.Second
	}
	if o.Route == nil {
		o.Route = func(_, rawURL string) string { return rawURL }
	}
	s := &System{
		DatabaseURL:  pgtest.NewDatabase(t),
		Queue:        o.QueuePrefix + "." + strings.ReplaceAll(t.Name(), "/", ".") + "." + RandomHex(6),
		Stooq:        stooqtest.NewServer(stooqtest.Options{SlowDelay: o.SlowDelay}),
		Secret:       RandomHex(32),
		programs:     programs,
		base:         append([]string{"PATH=" + os.Getenv("PATH"), "LOG_LEVEL=debug"}, o.Env...),
		stooqTimeout: o.StooqTimeout,
		check:        o.Check,
	}
	t.Cleanup(s.Stooq.Close)
	t.Cleanup(func() { DeleteQueue(t, s.Queue) })

	s.Env = append(append([]string(nil), s.base...),
		"DATABASE_URL="+o.Route("database", s.DatabaseURL),
		"AMQP_URL="+o.Route("broker", AMQPURL()),
		"RPC_QUEUE="+s.Queue,
		"JWT_SECRET="+s.Secret,
		"HTTP_ADDR=127.0.0.1:0",
		"RPC_TIMEOUT="+o.RPCTimeout.String(),
		"BCRYPT_COST=4",
		"SHUTDOWN_TIMEOUT=10s",
		// The suites send far more /stock requests per user than a
		// person would; the quota's own tests turn it back on.
		"STOCK_QUOTA_REQUESTS_PER_MINUTE=0",
		"STOCK_QUOTA_MISSES_PER_MINUTE=0",
	)
	s.Command(t, "", "migrate")
	s.Command(t, "admin-password-1\n", "user", "add", "-name", "admin", "-email", "admin@example.com", "-superuser")
	s.Command(t, "alice-password-1\n", "user", "add", "-name", "alice")
	return s
}

// Worker is one running stock service.
type Worker struct {
	*Proc
	Addr string // host:port of its probes and metrics
}

// StartWorker starts a stock service on the system's queue, reaching the
// broker at amqpURL, with extra settings (NAME=value), and waits until it
// is ready.
func (s *System) StartWorker(t *testing.T, amqpURL string, extra ...string) *Worker {
	t.Helper()
	p := s.programs.Start(t, "stockservice", append(append(append([]string(nil), s.base...),
		"AMQP_URL="+amqpURL,
		"RPC_QUEUE="+s.Queue,
		"STOOQ_URL="+s.Stooq.URL,
		"STOOQ_TIMEOUT="+s.stooqTimeout.String(),
		"WORKERS=8",
		"HTTP_ADDR=127.0.0.1:0",
		"SHUTDOWN_TIMEOUT=10s",
	), extra...))
	w := &Worker{Proc: p, Addr: p.ListenAddr(t)}
	WaitReady(t, "http://"+w.Addr+"/readyz")
	s.workers++
	return w
}

// StartAPI starts a copy of the API service with the system's environment
// plus extra settings, and waits until it is ready (/readyz once a worker
// was started, /healthz before). It returns its base URL and process.
func (s *System) StartAPI(t *testing.T, extra ...string) (string, *Proc) {
	t.Helper()
	p := s.programs.Start(t, "apiservice", append(append([]string(nil), s.Env...), extra...))
	base := "http://" + p.ListenAddr(t)
	if s.workers > 0 {
		WaitReady(t, base+"/readyz")
	} else {
		WaitReady(t, base+"/healthz")
	}
	return base, p
}

// Command runs `apiservice args...` to completion with stdin.
func (s *System) Command(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(s.programs.Path("apiservice"), args...)
	cmd.Env = s.Env
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apiservice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// CheckStooq runs `stockservice check args...` against the system's fake
// stooq with extra settings (NAME=value) and no broker, and returns its
// combined output and exit code.
func (s *System) CheckStooq(t *testing.T, extra []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(s.programs.Path("stockservice"), append([]string{"check"}, args...)...)
	cmd.Env = append(append(append([]string(nil), s.base...),
		"STOOQ_URL="+s.Stooq.URL, "STOOQ_TIMEOUT="+s.stooqTimeout.String()), extra...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("stockservice check: %v\n%s", err, out)
	return "", -1
}

// CountRows counts history rows in the system's database, directly.
func (s *System) CountRows(t *testing.T, where string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.DatabaseURL)
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

// DeleteQueue removes a test's queue from the suite's broker, reporting
// (not stopping the test on) a failure, so it suits t.Cleanup.
func DeleteQueue(t *testing.T, name string) {
	amqptest.DeleteQueue(t, AMQPURL(), name)
}
