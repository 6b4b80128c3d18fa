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
