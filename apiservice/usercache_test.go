package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// usersByID is a fake userByIDer over a map, counting lookups. If during
// is set, it runs inside each lookup after the row was read, to stage a
// change that races with the load.
type usersByID struct {
	mu     sync.Mutex
	users  map[int64]postgres.User
	calls  int
	during func()
}

func (f *usersByID) UserByID(_ context.Context, id int64) (postgres.User, error) {
	f.mu.Lock()
	f.calls++
	u, ok := f.users[id]
	during := f.during
	f.mu.Unlock()
	if during != nil {
		during()
	}
	if !ok {
		return postgres.User{}, postgres.ErrNotFound
	}
	return u, nil
}

func (f *usersByID) set(u postgres.User) { f.mu.Lock(); f.users[u.ID] = u; f.mu.Unlock() }
func (f *usersByID) remove(id int64)     { f.mu.Lock(); delete(f.users, id); f.mu.Unlock() }
func (f *usersByID) count() int          { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestUserCacheFollowsChanges walks one user through the cache's life:
// each step changes something and checks what a lookup returns and
// whether it reached the database.
func TestUserCacheFollowsChanges(t *testing.T) {
	alice := postgres.User{ID: 7, Username: "alice", Superuser: true}
	demoted := alice
	demoted.Superuser = false
	db := &usersByID{users: map[int64]postgres.User{7: alice}}
	c := newUserCache(db, 10, discardLogger())
	ctx := context.Background()

	steps := []struct {
		name      string
		change    func()
		wantSuper bool
		wantErr   error
		wantDB    bool // the lookup reached the database
	}{
		{"not listening yet: bypassed", nil, true, nil, true},
		{"still bypassed: nothing was stored", nil, true, nil, true},
		{"listening: first lookup loads", c.Listening, true, nil, true},
		{"second lookup is a hit", nil, true, nil, false},
		{"demoted without notification: stale by design", func() { db.set(demoted) }, true, nil, false},
		{"notification evicts", func() { c.UserChanged(7, false) }, false, nil, true},
		{"hit again", nil, false, nil, false},
		{"another user's change keeps alice", func() { c.UserChanged(8, false) }, false, nil, false},
		{"removed and notified", func() { db.remove(7); c.UserChanged(7, false) }, false, postgres.ErrNotFound, true},
		{"not found is never cached", nil, false, postgres.ErrNotFound, true},
		{"back, truncate notification flushes all", func() { db.set(alice); c.UserChanged(0, true) }, true, nil, true},
		{"hit", nil, true, nil, false},
		{"listener lost: flushed and bypassed", func() { c.Lost(errors.New("conn reset")) }, true, nil, true},
		{"still bypassed while lost", func() { db.set(demoted) }, false, nil, true},
		{"listening again: flushed, loads", c.Listening, false, nil, true},
		{"hit after recovery", nil, false, nil, false},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		before := db.count()
		u, err := c.UserByID(ctx, 7)
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: err = %v, want %v", s.name, err, s.wantErr)
		}
		if err == nil && u.Superuser != s.wantSuper {
			t.Errorf("%s: superuser = %v, want %v", s.name, u.Superuser, s.wantSuper)
		}
		if got := db.count() > before; got != s.wantDB {
			t.Errorf("%s: reached database = %v, want %v", s.name, got, s.wantDB)
		}
	}
}

// TestUserCacheRaceDoesNotStoreStale checks the generation rule: a user
// loaded before an invalidation that arrives during the load must not be
// stored, or it would be served stale after the notification.
func TestUserCacheRaceDoesNotStoreStale(t *testing.T) {
	for _, tt := range []struct {
		name   string
		during func(c *userCache)
	}{
		{"notification for the user", func(c *userCache) { c.UserChanged(7, false) }},
		{"truncate notification", func(c *userCache) { c.UserChanged(0, true) }},
		{"listener lost and back", func(c *userCache) { c.Lost(errors.New("eof")); c.Listening() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			alice := postgres.User{ID: 7, Username: "alice", Superuser: true}
			db := &usersByID{users: map[int64]postgres.User{7: alice}}
			c := newUserCache(db, 10, discardLogger())
			c.Listening()
			ctx := context.Background()
			// The load reads superuser=true, then the demotion commits
			// and its notification arrives before the load returns.
			db.during = func() {
				db.during = nil
				demoted := alice
				demoted.Superuser = false
				db.set(demoted)
				tt.during(c)
			}
			u, err := c.UserByID(ctx, 7)
			if err != nil || !u.Superuser {
				t.Fatalf("racing lookup = %+v, %v; want the old row (it was read first)", u, err)
			}
			if n := c.stats().Entries; n != 0 {
				t.Fatalf("cache holds %d users after a raced load, want 0", n)
			}
			u, err = c.UserByID(ctx, 7)
			if err != nil || u.Superuser {
				t.Errorf("next lookup = %+v, %v; want the demoted user", u, err)
			}
		})
	}
}

func TestUserCacheLostDuringLoadIsNotStored(t *testing.T) {
	db := &usersByID{users: map[int64]postgres.User{7: {ID: 7}}}
	c := newUserCache(db, 10, discardLogger())
	c.Listening()
	db.during = func() { c.Lost(errors.New("eof")) }
	if _, err := c.UserByID(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	if s := c.stats(); s.Live || s.Entries != 0 {
		t.Errorf("stats = %+v, want not live and empty", s)
	}
}

func TestUserCacheBounded(t *testing.T) {
	const max = 5
	db := &usersByID{users: map[int64]postgres.User{}}
	for id := int64(1); id <= 50; id++ {
		db.set(postgres.User{ID: id})
	}
	c := newUserCache(db, max, discardLogger())
	c.Listening()
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		for id := int64(1); id <= 50; id++ {
			u, err := c.UserByID(ctx, id)
			if err != nil || u.ID != id {
				t.Fatalf("UserByID(%d) = %+v, %v", id, u, err)
			}
			if n := c.stats().Entries; n > max {
				t.Fatalf("cache holds %d users, want at most %d", n, max)
			}
		}
	}
	if n := c.stats().Entries; n != max {
		t.Errorf("cache holds %d users after 150 lookups, want %d (full)", n, max)
	}
	// A hit must not grow or evict: the last user looked up is cached.
	before := db.count()
	if _, err := c.UserByID(ctx, 50); err != nil {
		t.Fatal(err)
	}
	if db.count() != before {
		t.Errorf("lookup of the most recent user reached the database")
	}
}

// TestUserCacheConcurrent runs lookups against invalidations under -race,
// and checks that after the last invalidation no lookup sees the old row.
func TestUserCacheConcurrent(t *testing.T) {
	db := &usersByID{users: map[int64]postgres.User{}}
	for id := int64(1); id <= 8; id++ {
		db.set(postgres.User{ID: id, Superuser: true})
	}
	c := newUserCache(db, 4, discardLogger())
	c.Listening()
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.UserByID(ctx, 1+i%8); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		id := int64(1 + i%8)
		switch i % 100 {
		case 50:
			c.Lost(errors.New("eof"))
		case 51:
			c.Listening()
		default:
			c.UserChanged(id, false)
		}
	}
	for id := int64(1); id <= 8; id++ {
		db.set(postgres.User{ID: id, Superuser: false})
		c.UserChanged(id, false)
	}
	close(stop)
	wg.Wait()
	for id := int64(1); id <= 8; id++ {
		u, err := c.UserByID(ctx, id)
		if err != nil || u.Superuser {
			t.Errorf("user %d after demotion = %+v, %v; want demoted", id, u, err)
		}
	}
}

func TestUserCacheMetrics(t *testing.T) {
	db := &usersByID{users: map[int64]postgres.User{7: {ID: 7}}}
	c := newUserCache(db, 10, discardLogger())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(userCacheCollectors(c)...)
	c.Listening()
	for range 3 {
		if _, err := c.UserByID(context.Background(), 7); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP stockquote_user_cache_entries Users in the user cache.
# TYPE stockquote_user_cache_entries gauge
stockquote_user_cache_entries 1
# HELP stockquote_user_cache_hits_total Bearer user lookups answered from the user cache.
# TYPE stockquote_user_cache_hits_total counter
stockquote_user_cache_hits_total 2
# HELP stockquote_user_cache_listening 1 while the user change listener is connected and the cache is used; 0 while it is bypassed.
# TYPE stockquote_user_cache_listening gauge
stockquote_user_cache_listening 1
# HELP stockquote_user_cache_misses_total Bearer user lookups that read the database (not cached, or cache bypassed).
# TYPE stockquote_user_cache_misses_total counter
stockquote_user_cache_misses_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
