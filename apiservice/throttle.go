package main

import (
	"container/list"
	"math"
	"sync"
	"time"
)

// bucketSet holds one token bucket per key (a username or a client
// address). A bucket starts full with burst tokens, regains one token per
// interval up to burst, and an attempt costs one token. So a key that keeps
// failing is slowed to one attempt per interval (a trickle, never a
// permanent lockout), and a key left alone for burst*interval is as good as
// new.
//
// Memory is bounded: at most max keys are tracked; when a new key arrives
// at the cap, the key used least recently is forgotten (it starts over
// full if it comes back). The state lives in this process only: with
// several API replicas each keeps its own count.
type bucketSet struct {
	burst    float64
	interval time.Duration
	max      int

	mu   sync.Mutex
	lru  *list.List               // of *bucket, most recently used first
	keys map[string]*list.Element // key -> element of lru
}

// bucket is one key's state: tokens as of at.
type bucket struct {
	key    string
	tokens float64
	at     time.Time
}

// newBucketSet returns a bucketSet; burst, interval and max must be > 0.
func newBucketSet(burst int, interval time.Duration, max int) *bucketSet {
	return &bucketSet{
		burst:    float64(burst),
		interval: interval,
		max:      max,
		lru:      list.New(),
		keys:     make(map[string]*list.Element),
	}
}

// get returns key's bucket refilled up to now, creating it (full) if it
// is not tracked, and marks it most recently used. s.mu must be held.
func (s *bucketSet) get(key string, now time.Time) *bucket {
	if e, ok := s.keys[key]; ok {
		s.lru.MoveToFront(e)
		b := e.Value.(*bucket)
		if elapsed := now.Sub(b.at); elapsed > 0 {
			b.tokens = math.Min(s.burst, b.tokens+float64(elapsed)/float64(s.interval))
			b.at = now
		}
		return b
	}
	for s.lru.Len() >= s.max {
		oldest := s.lru.Back()
		s.lru.Remove(oldest)
		delete(s.keys, oldest.Value.(*bucket).key)
	}
	b := &bucket{key: key, tokens: s.burst, at: now}
	s.keys[key] = s.lru.PushFront(b)
	return b
}

// take spends one of key's tokens. When none is left it spends nothing and
// reports how long until one is back.
func (s *bucketSet) take(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.get(key, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(s.interval))
}

// refund gives back a token take spent (a successful login costs nothing).
func (s *bucketSet) refund(key string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.get(key, now)
	b.tokens = math.Min(s.burst, b.tokens+1)
}

// len reports how many keys are tracked.
func (s *bucketSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// trustSet remembers, for at most max (username, client) pairs, when that
// client last logged in successfully as that username. An entry older than
// window no longer counts and is dropped when looked at; when a new pair
// arrives at the cap, the pair used least recently is forgotten.
type trustSet struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	lru  *list.List               // of *trustEntry, most recently used first
	keys map[string]*list.Element // key -> element of lru
}

// trustEntry is one pair's last successful login.
type trustEntry struct {
	key string
	at  time.Time
}

// newTrustSet returns a trustSet; max must be > 0. A window <= 0 trusts
// no one.
func newTrustSet(window time.Duration, max int) *trustSet {
	return &trustSet{window: window, max: max, lru: list.New(), keys: make(map[string]*list.Element)}
}

// add records a successful login of key at now.
func (s *trustSet) add(key string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.keys[key]; ok {
		s.lru.MoveToFront(e)
		e.Value.(*trustEntry).at = now
		return
	}
	for s.lru.Len() >= s.max {
		oldest := s.lru.Back()
		s.lru.Remove(oldest)
		delete(s.keys, oldest.Value.(*trustEntry).key)
	}
	s.keys[key] = s.lru.PushFront(&trustEntry{key: key, at: now})
}

// has reports whether key logged in successfully within the window
// before now, forgetting it if its entry has expired.
func (s *trustSet) has(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.keys[key]
	if !ok {
		return false
	}
	if now.Sub(e.Value.(*trustEntry).at) >= s.window {
		s.lru.Remove(e)
		delete(s.keys, key)
		return false
	}
	return true
}

// len reports how many pairs are tracked.
func (s *trustSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// loginThrottle limits login attempts per attempted username (whether or
// not the user exists, so the answer tells nothing about existence) and
// per client address. Every attempt takes a token from both buckets before
// the password is checked, so concurrent guesses are counted too; an
// attempt that turns out not to be a wrong guess (a successful login, a
// database failure) gives both back, so only wrong guesses count.
//
// So that an attacker exhausting a username's bucket from other addresses
// cannot lock its real user out, a client address that logged in
// successfully as that username within TrustedWindow (see trust) is
// charged to its own (username, client) bucket, with the account limits,
// instead of the shared per-account one (OWASP's "device cookie" idea,
// keyed on the client address since the API has no cookies). The
// per-client bucket applies to every attempt either way.
type loginThrottle struct {
	account *bucketSet
	known   *bucketSet // per (username, trusted client)
	client  *bucketSet
	trusted *trustSet
	now     func() time.Time
}

// throttleConfig sets the login limits; see securityConfig for the
// environment variables and defaults.
type throttleConfig struct {
	AccountBurst    int
	AccountInterval time.Duration
	ClientBurst     int
	ClientInterval  time.Duration
	MaxKeys         int
	TrustedWindow   time.Duration // how long a successful login keeps its client trusted; <= 0 trusts no one
}

// newLoginThrottle returns a loginThrottle reading the clock now.
func newLoginThrottle(c throttleConfig, now func() time.Time) *loginThrottle {
	return &loginThrottle{
		account: newBucketSet(c.AccountBurst, c.AccountInterval, c.MaxKeys),
		known:   newBucketSet(c.AccountBurst, c.AccountInterval, c.MaxKeys),
		client:  newBucketSet(c.ClientBurst, c.ClientInterval, c.MaxKeys),
		trusted: newTrustSet(c.TrustedWindow, c.MaxKeys),
		now:     now,
	}
}

// maxAccountKeyLen bounds the per-account key: longer names cannot exist
// (usernames are at most 64 bytes), so their tail carries no information.
const maxAccountKeyLen = 65

// accountKey is the per-account key of username.
func accountKey(username string) string {
	if len(username) > maxAccountKeyLen {
		return username[:maxAccountKeyLen]
	}
	return username
}

// pairKey is the key of a (username, client) pair; the NUL cannot occur
// in a client address, so pairs cannot collide.
func pairKey(username, client string) string {
	return accountKey(username) + "\x00" + client
}

// begin asks to try a login for username from client. If allowed, done
// must be called once the password was checked, saying whether it was a
// wrong guess; otherwise retryAfter says when to come back.
func (t *loginThrottle) begin(username, client string) (done func(wrongGuess bool), retryAfter time.Duration, ok bool) {
	now := t.now()
	accounts, key := t.account, accountKey(username)
	if pair := pairKey(username, client); t.trusted.has(pair, now) {
		accounts, key = t.known, pair
	}
	if ok, retry := t.client.take(client, now); !ok {
		return nil, retry, false
	}
	if ok, retry := accounts.take(key, now); !ok {
		// A refused attempt checks no password: it costs the client nothing.
		t.client.refund(client, now)
		return nil, retry, false
	}
	return func(wrongGuess bool) {
		if !wrongGuess {
			now := t.now()
			accounts.refund(key, now)
			t.client.refund(client, now)
		}
	}, 0, true
}

// trust records that client has just logged in successfully as username:
// for the trusted window its attempts at that username no longer share
// the per-account bucket. Call it only after a correct password.
func (t *loginThrottle) trust(username, client string) {
	t.trusted.add(pairKey(username, client), t.now())
}
