package main

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestBucketSet(t *testing.T) {
	now := testNow
	s := newBucketSet(3, time.Minute, 100)
	for i := 0; i < 3; i++ {
		if ok, _ := s.take("k", now); !ok {
			t.Fatalf("take %d refused within the burst", i+1)
		}
	}
	ok, retry := s.take("k", now)
	if ok || retry != time.Minute {
		t.Fatalf("take after the burst = %v, %v; want refused, retry in 1m", ok, retry)
	}
	// Refused attempts cost nothing: 30s later half a token is back.
	now = now.Add(30 * time.Second)
	if ok, retry := s.take("k", now); ok || retry != 30*time.Second {
		t.Fatalf("take 30s later = %v, %v; want refused, retry in 30s", ok, retry)
	}
	// A trickle: one attempt per interval.
	now = now.Add(30 * time.Second)
	if ok, _ := s.take("k", now); !ok {
		t.Fatal("take one interval after draining refused")
	}
	if ok, _ := s.take("k", now); ok {
		t.Fatal("second take in the same interval allowed")
	}
	// Other keys are independent.
	if ok, _ := s.take("other", now); !ok {
		t.Fatal("another key was throttled")
	}
	// Decay: left alone for burst*interval, the key is as good as new.
	now = now.Add(3 * time.Minute)
	for i := 0; i < 3; i++ {
		if ok, _ := s.take("k", now); !ok {
			t.Fatalf("take %d after full refill refused", i+1)
		}
	}
	// Refund gives a token back, never above the burst.
	s.refund("k", now)
	if ok, _ := s.take("k", now); !ok {
		t.Fatal("refunded token not usable")
	}
	for i := 0; i < 10; i++ {
		s.refund("fresh", now)
	}
	n := 0
	for {
		if ok, _ := s.take("fresh", now); !ok {
			break
		}
		n++
	}
	if n != 3 {
		t.Errorf("a refunded fresh key allowed %d takes, want the burst 3", n)
	}
	// A clock that steps back neither refills nor panics.
	if ok, _ := s.take("fresh", now.Add(-time.Hour)); ok {
		t.Error("clock stepping back refilled the bucket")
	}
}

func TestBucketSetBounded(t *testing.T) {
	const max = 16
	s := newBucketSet(1, time.Hour, max)
	// "victim" is drained and kept in use while an attacker sprays keys.
	s.take("victim", testNow)
	for i := 0; i < 10000; i++ {
		s.take(fmt.Sprintf("spray-%d", i), testNow)
		if i%(max/2) == 0 {
			if ok, _ := s.take("victim", testNow); ok {
				t.Fatalf("victim key forgotten after %d sprayed keys while still in use", i)
			}
		}
		if n := s.len(); n > max {
			t.Fatalf("tracking %d keys, cap %d", n, max)
		}
	}
	// The least recently used keys are the ones forgotten.
	if ok, _ := s.take("spray-0", testNow); !ok {
		t.Error("spray-0 (least recently used) is still tracked")
	}
}

func TestLoginThrottle(t *testing.T) {
	now := testNow
	clock := func() time.Time { return now }
	cfg := throttleConfig{AccountBurst: 3, AccountInterval: time.Minute, ClientBurst: 5, ClientInterval: 10 * time.Second, MaxKeys: 1000}

	t.Run("per account across client addresses", func(t *testing.T) {
		th := newLoginThrottle(cfg, clock)
		for i := 0; i < 3; i++ {
			done, _, ok := th.begin("alice", fmt.Sprintf("10.0.0.%d", i))
			if !ok {
				t.Fatalf("attempt %d refused", i+1)
			}
			done(true)
		}
		_, retry, ok := th.begin("alice", "10.0.0.99")
		if ok || retry != time.Minute {
			t.Fatalf("4th wrong guess from a new address = %v, retry %v; want refused, 1m", ok, retry)
		}
		if done, _, ok := th.begin("bob", "10.0.0.99"); !ok {
			t.Fatal("the address was charged for the refused attempt")
		} else {
			done(true)
		}
	})

	t.Run("per client across usernames", func(t *testing.T) {
		th := newLoginThrottle(cfg, clock)
		for i := 0; i < 5; i++ {
			done, _, ok := th.begin(fmt.Sprintf("user%d", i), "10.0.0.1")
			if !ok {
				t.Fatalf("attempt %d refused", i+1)
			}
			done(true)
		}
		if _, retry, ok := th.begin("user-new", "10.0.0.1"); ok || retry != 10*time.Second {
			t.Fatalf("6th wrong guess from one address = %v, retry %v; want refused, 10s", ok, retry)
		}
		if done, _, ok := th.begin("user-new", "10.0.0.2"); !ok {
			t.Fatal("another address was throttled")
		} else {
			done(true)
		}
	})

	t.Run("successes cost nothing", func(t *testing.T) {
		th := newLoginThrottle(cfg, clock)
		for i := 0; i < 100; i++ {
			done, _, ok := th.begin("alice", "10.0.0.1")
			if !ok {
				t.Fatalf("successful login %d refused", i+1)
			}
			done(false)
		}
	})

	t.Run("concurrent guesses are all counted", func(t *testing.T) {
		th := newLoginThrottle(cfg, clock)
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowed := 0
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				done, _, ok := th.begin("alice", fmt.Sprintf("10.1.0.%d", i))
				if !ok {
					return
				}
				mu.Lock()
				allowed++
				mu.Unlock()
				done(true)
			}(i)
		}
		wg.Wait()
		if allowed != 3 {
			t.Errorf("%d concurrent guesses allowed, want the burst 3", allowed)
		}
	})

	t.Run("long usernames share one key", func(t *testing.T) {
		th := newLoginThrottle(cfg, clock)
		long := string(make([]byte, 200))
		for i := 0; i < 3; i++ {
			done, _, _ := th.begin(long+fmt.Sprint(i), fmt.Sprintf("10.2.0.%d", i))
			if done != nil {
				done(true)
			}
		}
		if _, _, ok := th.begin(long+"x", "10.2.0.9"); ok {
			t.Error("varying the tail of an over-long username escaped the account limit")
		}
	})
}

func TestLoginThrottleTrustedClient(t *testing.T) {
	now := testNow
	clock := func() time.Time { return now }
	cfg := throttleConfig{
		AccountBurst: 3, AccountInterval: time.Minute,
		ClientBurst: 5, ClientInterval: 10 * time.Second,
		MaxKeys: 1000, TrustedWindow: 24 * time.Hour,
	}
	const home = "192.0.2.7" // the real user's usual address

	// attack exhausts alice's account bucket from rotating addresses and
	// reports how many guesses got through.
	attack := func(th *loginThrottle, n int) (allowed int) {
		for i := 0; i < n; i++ {
			done, _, ok := th.begin("alice", fmt.Sprintf("10.9.%d.%d", i/250, i%250))
			if ok {
				allowed++
				done(true)
			}
		}
		return allowed
	}
	// login is one successful login of alice from client, as the handler
	// does it.
	login := func(th *loginThrottle, client string) bool {
		done, _, ok := th.begin("alice", client)
		if !ok {
			return false
		}
		done(false)
		th.trust("alice", client)
		return true
	}

	tests := []struct {
		name    string
		trustAt string        // client that logged in before the attack, "" for none
		later   time.Duration // time between that login and the attack
		client  string        // client the real user tries after the attack
		want    bool
	}{
		{"known client still logs in", home, time.Hour, home, true},
		{"unknown client is throttled", home, time.Hour, "198.51.100.1", false},
		{"no earlier login, throttled", "", 0, home, false},
		{"trust expires after the window", home, 24 * time.Hour, home, false},
		{"trust just inside the window", home, 24*time.Hour - time.Second, home, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = testNow
			th := newLoginThrottle(cfg, clock)
			if tt.trustAt != "" && !login(th, tt.trustAt) {
				t.Fatal("first login refused")
			}
			now = now.Add(tt.later)
			if got := attack(th, 1000); got != 3 {
				t.Fatalf("attack got %d guesses through, want the burst 3", got)
			}
			if got := login(th, tt.client); got != tt.want {
				t.Errorf("real user's login from %s allowed = %v, want %v", tt.client, got, tt.want)
			}
		})
	}

	t.Run("known client keeps logging in while the attack goes on", func(t *testing.T) {
		now = testNow
		th := newLoginThrottle(cfg, clock)
		login(th, home)
		for round := 0; round < 20; round++ {
			now = now.Add(time.Minute) // one account token back each round: the attacker takes it
			attack(th, 50)
			if !login(th, home) {
				t.Fatalf("round %d: the known client was throttled by the attack", round)
			}
		}
	})

	t.Run("known client's own wrong guesses are still limited", func(t *testing.T) {
		now = testNow
		th := newLoginThrottle(cfg, clock)
		login(th, home)
		for i := 0; i < 3; i++ {
			done, _, ok := th.begin("alice", home)
			if !ok {
				t.Fatalf("wrong guess %d refused", i+1)
			}
			done(true)
		}
		if _, retry, ok := th.begin("alice", home); ok || retry != time.Minute {
			t.Fatalf("4th wrong guess from the known client = %v, retry %v; want refused, 1m", ok, retry)
		}
		// Its guesses were not charged to the shared account bucket.
		if got := attack(th, 10); got != 3 {
			t.Errorf("other clients got %d guesses, want the untouched burst 3", got)
		}
	})

	t.Run("per client bucket still applies to a known client", func(t *testing.T) {
		now = testNow
		th := newLoginThrottle(cfg, clock)
		login(th, home)
		for i := 0; i < 5; i++ {
			done, _, ok := th.begin(fmt.Sprintf("user%d", i), home)
			if !ok {
				t.Fatalf("attempt %d refused", i+1)
			}
			done(true)
		}
		if _, _, ok := th.begin("alice", home); ok {
			t.Error("a known client escaped its per-client limit")
		}
	})

	t.Run("answers for a missing user match an existing one", func(t *testing.T) {
		now = testNow
		th := newLoginThrottle(cfg, clock)
		login(th, home) // alice exists and has a known client; ghost does not
		for _, user := range []string{"alice", "ghost"} {
			for i := 0; i < 3; i++ {
				done, _, _ := th.begin(user, fmt.Sprintf("10.8.0.%d", i))
				done(true)
			}
			if _, retry, ok := th.begin(user, "10.8.0.99"); ok || retry != time.Minute {
				t.Errorf("%s: 4th guess = %v, retry %v; want refused, 1m", user, ok, retry)
			}
		}
	})

	t.Run("window zero trusts no one", func(t *testing.T) {
		now = testNow
		c := cfg
		c.TrustedWindow = 0
		th := newLoginThrottle(c, clock)
		login(th, home)
		attack(th, 10)
		if login(th, home) {
			t.Error("a zero window still trusted the client")
		}
	})

	t.Run("memory bound holds", func(t *testing.T) {
		now = testNow
		c := cfg
		c.MaxKeys = 100
		th := newLoginThrottle(c, clock)
		for i := 0; i < 10_000; i++ {
			client := fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)
			th.trust(fmt.Sprintf("user%d", i), client)
			if done, _, ok := th.begin(fmt.Sprintf("user%d", i), client); ok {
				done(true)
			}
		}
		for name, n := range map[string]int{"trusted": th.trusted.len(), "known": th.known.len(), "account": th.account.len(), "client": th.client.len()} {
			if n > 100 {
				t.Errorf("%s: %d keys tracked, want at most 100", name, n)
			}
		}
		if th.trusted.len() != 100 || th.known.len() != 100 {
			t.Errorf("trusted %d, known %d; want both filled to the cap 100", th.trusted.len(), th.known.len())
		}
		// The oldest pair was forgotten, the newest is still trusted.
		if th.trusted.has(pairKey("user0", "10.0.0.0"), now) {
			t.Error("the least recently used pair was kept past the cap")
		}
		if !th.trusted.has(pairKey("user9999", "10.0.39.15"), now) {
			t.Error("the newest pair was forgotten")
		}
	})
}

// TestLoginKnownClientDuringAttack drives the login handler: the real
// user's earlier successful login makes its address immune to an attack
// that drains the account bucket from other addresses, while a new
// address of the same user is still throttled.
func TestLoginKnownClientDuringAttack(t *testing.T) {
	cfg := throttleConfig{AccountBurst: 3, AccountInterval: time.Minute, ClientBurst: 10, ClientInterval: time.Minute, MaxKeys: 1000, TrustedWindow: 24 * time.Hour}
	env := newTestEnv(t)
	now := testNow
	h := env.handler(t, &now, withLoginThrottle(newLoginThrottle(cfg, func() time.Time { return now })))
	const home = "198.51.100.7"
	if w := serveWith(h, loginRequest("alice", "password1", home)); w.Code != 200 {
		t.Fatalf("first login: status %d, body %s", w.Code, w.Body)
	}
	for i := 0; i < 3; i++ {
		checkProblem(t, serveWith(h, loginRequest("alice", "guess-guess", fmt.Sprintf("192.0.2.%d", i+1))), 401)
	}
	checkProblem(t, serveWith(h, loginRequest("alice", "guess-guess", "192.0.2.50")), 429)
	if w := serveWith(h, loginRequest("alice", "password1", home)); w.Code != 200 {
		t.Fatalf("known client during the attack: status %d, body %s", w.Code, w.Body)
	}
	checkProblem(t, serveWith(h, loginRequest("alice", "password1", "198.51.100.8")), 429)
	// After the window, the known address is just another address.
	now = now.Add(24 * time.Hour)
	for i := 0; i < 3; i++ {
		checkProblem(t, serveWith(h, loginRequest("alice", "guess-guess", fmt.Sprintf("192.0.2.%d", i+100))), 401)
	}
	checkProblem(t, serveWith(h, loginRequest("alice", "password1", home)), 429)
}
