package main

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// usersByID is a fake userByIDer over a map, counting lookups.
type usersByID struct {
	mu    sync.Mutex
	users map[int64]postgres.User
	calls int
}

func (f *usersByID) UserByID(_ context.Context, id int64) (postgres.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	u, ok := f.users[id]
	if !ok {
		return postgres.User{}, postgres.ErrNotFound
	}
	return u, nil
}

func (f *usersByID) set(u postgres.User) { f.mu.Lock(); f.users[u.ID] = u; f.mu.Unlock() }
func (f *usersByID) remove(id int64)     { f.mu.Lock(); delete(f.users, id); f.mu.Unlock() }

func TestUserCacheBoundsStaleness(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return clock }
	const ttl = 2 * time.Second
	alice := postgres.User{ID: 7, Username: "alice", Superuser: true}
	db := &usersByID{users: map[int64]postgres.User{7: alice}}
	c := newUserCache(db, ttl, now)
	ctx := context.Background()

	steps := []struct {
		name      string
		change    func()
		advance   time.Duration
		wantSuper bool
		wantErr   error
		wantCalls int
	}{
		{name: "first lookup reads the store", wantSuper: true, wantCalls: 1},
		{name: "within ttl from cache", advance: time.Second, wantSuper: true, wantCalls: 1},
		{name: "demotion not yet seen", change: func() { db.set(postgres.User{ID: 7, Username: "alice"}) }, advance: 999 * time.Millisecond, wantSuper: true, wantCalls: 1},
		{name: "demotion seen after ttl", advance: time.Millisecond, wantSuper: false, wantCalls: 2},
		{name: "removal seen after ttl", change: func() { db.remove(7) }, advance: ttl, wantErr: postgres.ErrNotFound, wantCalls: 3},
		{name: "not found is not cached", wantErr: postgres.ErrNotFound, wantCalls: 4},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		clock = clock.Add(s.advance)
		u, err := c.UserByID(ctx, 7)
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil && err != nil) {
			t.Fatalf("%s: error = %v, want %v", s.name, err, s.wantErr)
		}
		if err == nil && u.Superuser != s.wantSuper {
			t.Errorf("%s: superuser = %v, want %v", s.name, u.Superuser, s.wantSuper)
		}
		if db.calls != s.wantCalls {
			t.Errorf("%s: store asked %d times, want %d", s.name, db.calls, s.wantCalls)
		}
	}
}

func TestWithUserCacheZeroIsOff(t *testing.T) {
	var st store = fakeStoreForCache{}
	if got := withUserCache(st, 0, time.Now); got != st {
		t.Errorf("withUserCache(ttl 0) wrapped the store")
	}
	if _, ok := withUserCache(st, time.Second, time.Now).(cachedUserStore); !ok {
		t.Errorf("withUserCache(ttl 1s) did not wrap the store")
	}
}

// fakeStoreForCache satisfies store; only its identity matters.
type fakeStoreForCache struct{ store }
