package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

func TestClientLimiter(t *testing.T) {
	now := testNow
	l := newClientLimiter(3, time.Minute, 100)
	for i := range 3 {
		if _, _, ok := l.reserve("k", now); !ok {
			t.Fatalf("reserve %d refused within the burst", i+1)
		}
	}
	if _, retry, ok := l.reserve("k", now); ok || retry != time.Minute {
		t.Fatalf("reserve after the burst = %v, %v; want refused, retry in 1m", ok, retry)
	}
	// Refused attempts cost nothing: 30s later half a token is back.
	now = now.Add(30 * time.Second)
	if _, retry, ok := l.reserve("k", now); ok || retry != 30*time.Second {
		t.Fatalf("reserve 30s later = %v, %v; want refused, retry in 30s", ok, retry)
	}
	now = now.Add(30 * time.Second)
	r, _, ok := l.reserve("k", now)
	if !ok {
		t.Fatal("reserve one interval after draining refused")
	}
	// Cancelling gives the token back (a successful login costs nothing).
	r.CancelAt(now)
	if _, _, ok := l.reserve("k", now); !ok {
		t.Fatal("the token given back is not usable")
	}
	if _, _, ok := l.reserve("other", now); !ok {
		t.Fatal("another key was throttled")
	}
	// Memory is bounded.
	for i := range 1000 {
		l.reserve(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	if n := l.lru.Len(); n != 100 {
		t.Errorf("%d addresses tracked, want the cap 100", n)
	}
}

// loginEnv is a login handler over a fake shared rate store, with a
// clock the test moves.
type loginEnv struct {
	env *testEnv
	now time.Time
	h   http.Handler
}

func newLoginEnv(t *testing.T, cfg throttleConfig) *loginEnv {
	e := &loginEnv{env: newTestEnv(t), now: testNow}
	e.h = e.env.handler(t, &e.now, withLoginThrottle(newLoginThrottle(cfg, func() time.Time { return e.now }, e.env.store)))
	return e
}

// login tries alice's login from client and returns the status.
func (e *loginEnv) login(client, password string) int {
	return serveWith(e.h, loginRequest("alice", password, client)).Code
}

// attack guesses alice's password from n rotating addresses and returns
// how many guesses were answered 401 (checked and charged).
func (e *loginEnv) attack(n int) (checked int) {
	for i := range n {
		if e.login(fmt.Sprintf("10.9.%d.%d", i/250, i%250), "guess-guess") == http.StatusUnauthorized {
			checked++
		}
	}
	return checked
}

func TestLoginThrottleTrustedClient(t *testing.T) {
	cfg := throttleConfig{
		AccountBurst: 3, AccountInterval: time.Minute,
		ClientBurst: 5, ClientInterval: 10 * time.Second,
		MaxKeys: 1000, TrustedWindow: 24 * time.Hour,
	}
	const home = "192.0.2.7" // the real user's usual address

	tests := []struct {
		name    string
		trustAt string        // client that logged in before the attack, "" for none
		later   time.Duration // time between that login and the attack
		client  string        // client the real user tries after the attack
		want    int
	}{
		{"known client still logs in", home, time.Hour, home, 200},
		{"unknown client is throttled", home, time.Hour, "198.51.100.1", 429},
		{"no earlier login, throttled", "", 0, home, 429},
		{"trust expires after the window", home, 24 * time.Hour, home, 429},
		{"trust just inside the window", home, 24*time.Hour - time.Second, home, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoginEnv(t, cfg)
			if tt.trustAt != "" && e.login(tt.trustAt, "password1") != 200 {
				t.Fatal("first login refused")
			}
			e.now = e.now.Add(tt.later)
			if got := e.attack(100); got != 3 {
				t.Fatalf("attack got %d guesses checked, want the burst 3", got)
			}
			if got := e.login(tt.client, "password1"); got != tt.want {
				t.Errorf("real user's login from %s = %d, want %d", tt.client, got, tt.want)
			}
		})
	}

	t.Run("known client keeps logging in while the attack goes on", func(t *testing.T) {
		e := newLoginEnv(t, cfg)
		e.login(home, "password1")
		for round := range 20 {
			e.now = e.now.Add(time.Minute) // one account attempt back each round: the attacker takes it
			e.attack(20)
			if got := e.login(home, "password1"); got != 200 {
				t.Fatalf("round %d: the known client got %d during the attack", round, got)
			}
		}
	})

	t.Run("known client's own wrong guesses are still limited", func(t *testing.T) {
		e := newLoginEnv(t, cfg)
		e.login(home, "password1")
		for i := range 3 {
			if got := e.login(home, "guess-guess"); got != 401 {
				t.Fatalf("wrong guess %d from the known client: %d, want 401", i+1, got)
			}
		}
		if got := e.login(home, "guess-guess"); got != 429 {
			t.Fatalf("4th wrong guess from the known client: %d, want 429", got)
		}
		// Its guesses were not charged to the shared account bucket.
		if got := e.attack(10); got != 3 {
			t.Errorf("other clients got %d guesses, want the untouched burst 3", got)
		}
	})

	t.Run("window zero trusts no one", func(t *testing.T) {
		c := cfg
		c.TrustedWindow = 0
		e := newLoginEnv(t, c)
		e.login(home, "password1")
		e.attack(10)
		if got := e.login(home, "password1"); got != 429 {
			t.Errorf("a zero window still trusted the client: %d", got)
		}
	})

	t.Run("trusted pairs are bounded", func(t *testing.T) {
		c := cfg
		c.MaxKeys = 100
		th := newLoginThrottle(c, func() time.Time { return testNow }, newMemRates(func() time.Time { return testNow }))
		for i := range 1000 {
			th.trust(fmt.Sprintf("user%d", i), "10.0.0.1")
		}
		if n := th.trusted.Len(); n != 100 {
			t.Errorf("%d pairs trusted, want the cap 100", n)
		}
		if th.bucketKey("user0", "10.0.0.1") != accountKey("user0") || th.bucketKey("user999", "10.0.0.1") != pairKey("user999", "10.0.0.1") {
			t.Error("want the oldest pair forgotten and the newest kept")
		}
	})
}

// TestLoginThrottleSharedAcrossReplicas: two API processes sharing one
// rate store (as they share PostgreSQL) give an attacker the account's
// burst once, not once per process.
// TestLoginEveryFailureCounts: a successful login writes nothing to the
// shared store; a wrong guess one write; invalid names, malformed bodies
// and database failures all spend the client's attempts, so a client
// cannot fail forever without being throttled.
func TestLoginEveryFailureCounts(t *testing.T) {
	cfg := throttleConfig{AccountBurst: 5, AccountInterval: time.Minute, ClientBurst: 4, ClientInterval: time.Minute, MaxKeys: 1000}
	e := newLoginEnv(t, cfg)
	rates := e.env.store.rates
	if got := e.login("192.0.2.1", "password1"); got != 200 {
		t.Fatalf("login: %d", got)
	}
	if rates.takes != 0 {
		t.Errorf("a successful login wrote the shared store %d times, want 0", rates.takes)
	}
	if got := e.login("192.0.2.1", "guess-guess"); got != 401 || rates.takes != 1 {
		t.Errorf("a wrong guess: %d with %d writes, want 401 with 1", got, rates.takes)
	}

	failures := map[string]func() *http.Request{
		"NUL in the name": func() *http.Request { return loginRequest("alice\x00", "x", "192.0.2.2") },
		"malformed body": func() *http.Request {
			r := newRequest("POST", "/api/v1/login", strings.NewReader(`{"username":`), "")
			r.RemoteAddr = "192.0.2.2:1"
			return r
		},
		"invalid UTF-8 in Basic": func() *http.Request {
			r := newRequest("POST", "/api/v1/login", nil, "")
			r.SetBasicAuth("al\xffice", "x")
			r.RemoteAddr = "192.0.2.2:1"
			return r
		},
		"name too long": func() *http.Request { return loginRequest(strings.Repeat("a", 65), "x", "192.0.2.2") },
	}
	for name, req := range failures {
		t.Run(name, func(t *testing.T) {
			checkProblem(t, serveWith(e.h, req()), 400)
		})
	}
	// Four failures of any kind spent 192.0.2.2's four attempts.
	checkProblem(t, serveWith(e.h, loginRequest("alice", "password1", "192.0.2.2")), 429)

	t.Run("database down", func(t *testing.T) {
		e := newLoginEnv(t, cfg)
		e.env.store.userByName = func(context.Context, string) (postgres.User, error) {
			return postgres.User{}, fmt.Errorf("find user: %w", postgres.ErrUnavailable)
		}
		for range 4 {
			checkProblem(t, serveWith(e.h, loginRequest("alice", "password1", "192.0.2.3")), 503)
		}
		checkProblem(t, serveWith(e.h, loginRequest("alice", "password1", "192.0.2.3")), 429)
		e.env.store.rates.fail = errors.New("rate store down")
		checkProblem(t, serveWith(e.h, loginRequest("alice", "password1", "192.0.2.4")), 500)
	})
}

// TestLoginHostileNamesBoundedLogs: the attack of issue 17 (a megabyte
// username ending in NUL, which PostgreSQL refuses) neither reaches the
// store nor grows the log by more than a bounded line per request.
func TestLoginHostileNamesBoundedLogs(t *testing.T) {
	cfg := throttleConfig{AccountBurst: 5, AccountInterval: time.Minute, ClientBurst: 20, ClientInterval: time.Minute, MaxKeys: 1000}
	env := newTestEnv(t)
	env.store.userByName = func(_ context.Context, name string) (postgres.User, error) {
		// As PostgreSQL does, quoting the value in its error.
		return postgres.User{}, fmt.Errorf("find user %q: invalid byte sequence for encoding UTF8: 0x00", name)
	}
	now := testNow
	h := env.handler(t, &now, withLoginThrottle(newLoginThrottle(cfg, func() time.Time { return now }, env.store)))
	huge := strings.Repeat("a", 1_000_000) // within the 1 MiB body limit
	basic := strings.Repeat("a", 20_000)   // within the 32 KiB header limit
	statuses := map[int]int{}
	for i := range 30 {
		var r *http.Request
		if i%2 == 0 {
			r = loginRequest(huge+"\x00", "x", "192.0.2.9")
		} else {
			r = newRequest("POST", "/api/v1/login", nil, "")
			r.SetBasicAuth(basic+"\xff", "x")
			r.RemoteAddr = "192.0.2.9:1"
		}
		statuses[serveWith(h, r).Code]++
	}
	if statuses[400] != 20 || statuses[429] != 10 {
		t.Errorf("statuses %v, want 20 x 400 then 10 x 429 (every failure counts)", statuses)
	}
	if n := len(env.logs.String()); n > 30*1024 {
		t.Errorf("30 requests logged %d bytes, want at most 1 KiB each", n)
	}
}

// TestLoginConcurrentGuessesBounded: many guesses at once reach bcrypt
// at most burst times, and answer 401 exactly burst times.
func TestLoginConcurrentGuessesBounded(t *testing.T) {
	cfg := throttleConfig{AccountBurst: 3, AccountInterval: time.Hour, ClientBurst: 1000, ClientInterval: time.Second, MaxKeys: 1000}
	env := newTestEnv(t)
	var compares atomic.Int64
	cmp := env.pw.compare
	env.pw.compare = func(hash, pw []byte) error {
		compares.Add(1)
		time.Sleep(5 * time.Millisecond)
		return cmp(hash, pw)
	}
	now := testNow
	h := env.handler(t, &now, withLoginThrottle(newLoginThrottle(cfg, func() time.Time { return now }, env.store)))
	var wg sync.WaitGroup
	var unauthorized atomic.Int64
	for i := range 50 {
		wg.Go(func() {
			switch w := serveWith(h, loginRequest("alice", "guess-guess", fmt.Sprintf("192.0.2.%d", i))); w.Code {
			case 401:
				unauthorized.Add(1)
			case 429:
			default:
				t.Errorf("status %d", w.Code)
			}
		})
	}
	wg.Wait()
	if n := compares.Load(); n > 3 {
		t.Errorf("%d password checks ran, want at most the burst 3", n)
	}
	if n := unauthorized.Load(); n != 3 {
		t.Errorf("%d answers were 401, want the burst 3", n)
	}
}
