package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/shared/health"
	"github.com/stockquote/stockquote/shared/logging"
	"github.com/stockquote/stockquote/shared/stockrpc"
)

var (
	testNow    = time.Date(2026, 11, 27, 10, 20, 30, 0, time.UTC)
	testSecret = []byte("0123456789abcdef0123456789abcdef-test")
)

// fakeStore is a store whose methods call its function fields.
type fakeStore struct {
	userByName func(ctx context.Context, name string) (postgres.User, error)
	userByID   func(ctx context.Context, id int64) (postgres.User, error)
	createUser func(ctx context.Context, u postgres.User) (postgres.User, error)
	addHistory func(ctx context.Context, userID int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error)
	history    func(ctx context.Context, userID int64, limit int, after *postgres.HistoryCursor) ([]postgres.HistoryEntry, error)
	topStocks  func(ctx context.Context, n int) ([]postgres.StockCount, error)
	rates      *memRates
}

func (f *fakeStore) TakeRate(ctx context.Context, key string, l postgres.Limit) (bool, time.Duration, error) {
	return f.rates.TakeRate(ctx, key, l)
}
func (f *fakeStore) PeekRate(ctx context.Context, key string, l postgres.Limit) (int, time.Duration, error) {
	return f.rates.PeekRate(ctx, key, l)
}

// memRates keeps shared rate limits in memory, as postgres.TakeRate does
// in its table (the same algorithm: a theoretical arrival time per key).
// fail, if set, is returned by every call instead.
type memRates struct {
	mu    sync.Mutex
	now   func() time.Time
	tat   map[string]time.Time
	takes int // TakeRate calls, admitted or not
	fail  error
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func newMemRates(now func() time.Time) *memRates {
	return &memRates{now: now, tat: map[string]time.Time{}}
}

func (m *memRates) TakeRate(_ context.Context, key string, l postgres.Limit) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return false, 0, m.fail
	}
	m.takes++
	now := m.now()
	next := later(m.tat[key], now).Add(l.Interval)
	if limit := now.Add(time.Duration(l.Burst) * l.Interval); next.After(limit) {
		return false, next.Sub(limit), nil
	}
	m.tat[key] = next
	return true, 0, nil
}

func (f *fakeStore) ChargeRate(ctx context.Context, key string, l postgres.Limit) error {
	return f.rates.ChargeRate(ctx, key, l)
}

func (m *memRates) ChargeRate(_ context.Context, key string, l postgres.Limit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.takes++
	m.tat[key] = later(m.tat[key], m.now()).Add(l.Interval)
	return nil
}

func (m *memRates) PeekRate(_ context.Context, key string, l postgres.Limit) (int, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return 0, 0, m.fail
	}
	now := m.now()
	backlog := later(m.tat[key], now).Sub(now)
	n := l.Burst - int((backlog+l.Interval-1)/l.Interval)
	if n > 0 {
		return n, 0, nil
	}
	return 0, backlog + l.Interval - time.Duration(l.Burst)*l.Interval, nil
}

func (f *fakeStore) UserByName(ctx context.Context, name string) (postgres.User, error) {
	return f.userByName(ctx, name)
}
func (f *fakeStore) UserByID(ctx context.Context, id int64) (postgres.User, error) {
	return f.userByID(ctx, id)
}
func (f *fakeStore) CreateUser(ctx context.Context, u postgres.User) (postgres.User, error) {
	return f.createUser(ctx, u)
}
func (f *fakeStore) AddHistory(ctx context.Context, userID int64, e postgres.HistoryEntry) (postgres.HistoryEntry, error) {
	return f.addHistory(ctx, userID, e)
}
func (f *fakeStore) History(ctx context.Context, userID int64, limit int, after *postgres.HistoryCursor) ([]postgres.HistoryEntry, error) {
	return f.history(ctx, userID, limit, after)
}
func (f *fakeStore) TopStocks(ctx context.Context, n int) ([]postgres.StockCount, error) {
	return f.topStocks(ctx, n)
}

// fakeQuotes is a quoteRequester calling its function field; it reports
// no stooq fetch.
type fakeQuotes func(ctx context.Context, symbol string) (stockrpc.Quote, error)

func (f fakeQuotes) Quote(ctx context.Context, symbol string) (stockrpc.Quote, bool, error) {
	q, err := f(ctx, symbol)
	return q, false, err
}

// Test users: 1 is a normal user, 2 a superuser; both have password
// "password1".
var (
	testHash, _ = bcrypt.GenerateFromPassword([]byte("password1"), bcrypt.MinCost)
	alice       = postgres.User{ID: 1, Username: "alice", PasswordHash: string(testHash), CreatedAt: testNow}
	admin       = postgres.User{ID: 2, Username: "admin", PasswordHash: string(testHash), Superuser: true, CreatedAt: testNow}
)

// newFakeStore knows alice and admin and panics on anything else, so a
// test sets exactly the fields its route uses.
func newFakeStore() *fakeStore {
	users := map[int64]postgres.User{alice.ID: alice, admin.ID: admin}
	return &fakeStore{
		rates: newMemRates(func() time.Time { return testNow }),
		userByName: func(_ context.Context, name string) (postgres.User, error) {
			for _, u := range users {
				if u.Username == name {
					return u, nil
				}
			}
			return postgres.User{}, postgres.ErrNotFound
		},
		userByID: func(_ context.Context, id int64) (postgres.User, error) {
			if u, ok := users[id]; ok {
				return u, nil
			}
			return postgres.User{}, postgres.ErrNotFound
		},
	}
}

type testEnv struct {
	store  *fakeStore
	quotes fakeQuotes
	checks []health.Check
	auth   *tokenAuth
	pw     *passwords
	logs   *strings.Builder
	// metrics and metricsHandler are passed to newServer; nil observes nothing.
	metrics        *httpMetrics
	metricsHandler http.Handler
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	pw, err := newPasswords(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{
		store: newFakeStore(),
		quotes: func(context.Context, string) (stockrpc.Quote, error) {
			t.Error("unexpected quote request")
			return stockrpc.Quote{}, nil
		},
		auth: &tokenAuth{secret: testSecret, issuer: "stockquote-api", audience: "stockquote", ttl: time.Hour, now: func() time.Time { return testNow }},
		pw:   pw,
		logs: &strings.Builder{},
	}
	return env
}

// serve sends r through a server built from env's current fakes.
func (env *testEnv) serve(t testing.TB, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	logger := logging.New(env.logs, logging.FormatText, slog.LevelInfo)
	h := newServer(env.deps(logger, func() time.Time { return testNow }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// serverOption changes one of the dependencies a test server is built with.
type serverOption = func(*serverDeps)

func withLoginThrottle(l *loginThrottle) serverOption { return func(d *serverDeps) { d.login = l } }
func withStockQuota(q *stockQuota) serverOption       { return func(d *serverDeps) { d.quota = q } }
func withTrustedProxies(p []string) serverOption      { return func(d *serverDeps) { d.trustedProxies = p } }

// defaultConfig is the configuration with only the required variables set.
func defaultConfig() config {
	cfg, _ := loadConfig(envFunc(validEnv()), needAll)
	return cfg
}

// deps are the server dependencies built from env's current fakes, with
// the default limits.
func (env *testEnv) deps(logger *slog.Logger, now func() time.Time, opts ...serverOption) serverDeps {
	sec := defaultConfig()
	quotes := func(ctx context.Context, s string) (stockrpc.Quote, error) { return env.quotes(ctx, s) }
	d := serverDeps{
		logger:         logger,
		auth:           env.auth,
		pw:             env.pw,
		store:          env.store,
		quotes:         fakeQuotes(quotes),
		login:          newLoginThrottle(sec.Login, now, env.store),
		quota:          newStockQuota(env.store, sec.StockQuota, logger),
		checks:         env.checks,
		now:            now,
		metrics:        env.metrics,
		metricsHandler: env.metricsHandler,
	}
	for _, o := range opts {
		o(&d)
	}
	return d
}

func (env *testEnv) token(t *testing.T, userID int64) string {
	t.Helper()
	tok, err := env.auth.issue(userID)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newRequest(method, target string, body io.Reader, token string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// checkProblem asserts w is a problem+json answer with the given status.
func checkProblem(t *testing.T, w *httptest.ResponseRecorder, status int) problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != problemContentType {
		t.Errorf("Content-Type = %q, want %q", ct, problemContentType)
	}
	var p problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Type == "" || p.Instance == "" {
		t.Errorf("problem = %+v, want status %d with title, type and instance", p, status)
	}
	return p
}

func decodeBody[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body, err)
	}
	return v
}
