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

// loginThrottle limits login attempts per attempted username (whether or
// not the user exists, so the answer tells nothing about existence) and
// per client address. Every attempt takes a token from both buckets before
// the password is checked, so concurrent guesses are counted too; an
// attempt that turns out not to be a wrong guess (a successful login, a
// database failure) gives both back, so only wrong guesses count.
type loginThrottle struct {
	account *bucketSet
	client  *bucketSet
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
}

// newLoginThrottle returns a loginThrottle reading the clock now.
func newLoginThrottle(c throttleConfig, now func() time.Time) *loginThrottle {
	return &loginThrottle{
		account: newBucketSet(c.AccountBurst, c.AccountInterval, c.MaxKeys),
		client:  newBucketSet(c.ClientBurst, c.ClientInterval, c.MaxKeys),
		now:     now,
	}
}

// maxAccountKeyLen bounds the per-account key: longer names cannot exist
// (usernames are at most 64 bytes), so their tail carries no information.
const maxAccountKeyLen = 65

// begin asks to try a login for username from client. If allowed, done
// must be called once the password was checked, saying whether it was a
// wrong guess; otherwise retryAfter says when to come back.
func (t *loginThrottle) begin(username, client string) (done func(wrongGuess bool), retryAfter time.Duration, ok bool) {
	if len(username) > maxAccountKeyLen {
		username = username[:maxAccountKeyLen]
	}
	now := t.now()
	if ok, retry := t.client.take(client, now); !ok {
		return nil, retry, false
	}
	if ok, retry := t.account.take(username, now); !ok {
		// A refused attempt checks no password: it costs the client nothing.
		t.client.refund(client, now)
		return nil, retry, false
	}
	return func(wrongGuess bool) {
		if !wrongGuess {
			now := t.now()
			t.account.refund(username, now)
			t.client.refund(client, now)
		}
	}, 0, true
}
