//go:build integration

package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockquote/stockquote/apiservice/postgres"
	"github.com/stockquote/stockquote/apiservice/postgres/pgtest"
)

// userCacheEnv is a migrated database, a user cache in front of it and the
// listener feeding the cache.
type userCacheEnv struct {
	db    *postgres.DB
	cache *userCache
	admin *pgx.Conn // a separate connection that changes users behind the API's back
}

func newUserCacheEnv(t *testing.T) userCacheEnv {
	t.Helper()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })

	cache := newUserCache(db, 100, discardLogger())
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- db.WatchUsers(watchCtx, cache) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("WatchUsers returned %v, want context.Canceled", err)
		}
	})
	env := userCacheEnv{db: db, cache: cache, admin: admin}
	env.waitFor(t, "listener up", func() bool { return cache.stats().Live })
	return env
}

// waitFor polls cond for up to 2 s (generous: the machine is shared).
func (e userCacheEnv) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2s (cache %+v)", what, e.cache.stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e userCacheEnv) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.admin.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// lookup loads id through the cache and reports the user and whether the
// lookup was a hit.
func (e userCacheEnv) lookup(t *testing.T, id int64) (postgres.User, error, bool) {
	t.Helper()
	before := e.cache.stats().Hits
	u, err := e.cache.UserByID(context.Background(), id)
	return u, err, e.cache.stats().Hits > before
}

func TestUserCacheInvalidatedByPostgres(t *testing.T) {
	t.Parallel()
	e := newUserCacheEnv(t)
	ctx := context.Background()
	eve, err := e.db.CreateUser(ctx, postgres.User{Username: "eve", PasswordHash: "x", Superuser: true})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := e.db.CreateUser(ctx, postgres.User{Username: "bob", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}

	// Repeated lookups are served from memory.
	for i := range 5 {
		u, err, hit := e.lookup(t, eve.ID)
		if err != nil || !u.Superuser {
			t.Fatalf("lookup %d: %+v, %v", i, u, err)
		}
		if hit != (i > 0) {
			t.Errorf("lookup %d: hit = %v, want %v", i, hit, i > 0)
		}
	}
	if _, _, hit := e.lookup(t, bob.ID); hit {
		t.Errorf("first lookup of bob was a hit")
	}

	// Demotion by plain SQL: the next lookups see it.
	e.exec(t, "UPDATE users SET superuser = false WHERE id = $1", eve.ID)
	e.waitFor(t, "demotion seen", func() bool {
		u, err, _ := e.lookup(t, eve.ID)
		return err == nil && !u.Superuser
	})
	if _, _, hit := e.lookup(t, bob.ID); !hit {
		t.Errorf("bob was evicted by eve's change")
	}

	// Deletion by plain SQL.
	e.exec(t, "DELETE FROM users WHERE id = $1", eve.ID)
	e.waitFor(t, "deletion seen", func() bool {
		_, err, _ := e.lookup(t, eve.ID)
		return errors.Is(err, postgres.ErrNotFound)
	})

	// A rolled-back change notifies nothing and evicts nothing.
	tx, err := e.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE users SET superuser = true WHERE id = $1", bob.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if u, _, hit := e.lookup(t, bob.ID); !hit || u.Superuser {
		t.Errorf("after a rolled-back promotion: bob %+v hit=%v, want cached non-superuser", u, hit)
	}

	// TRUNCATE flushes everything.
	e.exec(t, "TRUNCATE users CASCADE")
	e.waitFor(t, "truncate seen", func() bool {
		_, err, _ := e.lookup(t, bob.ID)
		return errors.Is(err, postgres.ErrNotFound)
	})
}

func TestUserCacheListenerKilled(t *testing.T) {
	t.Parallel()
	e := newUserCacheEnv(t)
	ctx := context.Background()
	eve, err := e.db.CreateUser(ctx, postgres.User{Username: "eve", PasswordHash: "x", Superuser: true})
	if err != nil {
		t.Fatal(err)
	}
	e.lookup(t, eve.ID)
	if _, _, hit := e.lookup(t, eve.ID); !hit {
		t.Fatalf("second lookup missed; cache %+v", e.cache.stats())
	}

	// Kill the listener's backend. pg_stat_activity shows it by
	// application_name, in this test's own database.
	var killed int
	err = e.admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, postgres.WatchApplicationName).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminate listener: killed %d, err %v; want 1", killed, err)
	}
	e.waitFor(t, "listener loss noticed", func() bool { return !e.cache.stats().Live })

	// While the listener is down the cache is bypassed; it may be back
	// already (the first reconnect is 100 ms away), so only check a
	// lookup that starts while it is down.
	if s := e.cache.stats(); !s.Live && s.Entries != 0 {
		t.Errorf("cache holds %d users after listener loss, want 0", s.Entries)
	}

	// A change made around the reconnect is never missed: it is either
	// notified or the reconnect flushed.
	e.exec(t, "UPDATE users SET superuser = false WHERE id = $1", eve.ID)
	e.waitFor(t, "listener back", func() bool { return e.cache.stats().Live })
	e.waitFor(t, "demotion seen", func() bool {
		u, err, _ := e.lookup(t, eve.ID)
		return err == nil && !u.Superuser
	})
	if u, _, hit := e.lookup(t, eve.ID); !hit || u.Superuser {
		t.Errorf("after recovery: %+v hit=%v, want a cached demoted user", u, hit)
	}
}

// BenchmarkUserByID compares the bearer middleware's user lookup straight
// from PostgreSQL (USER_CACHE=off) with the listening cache (on), run in
// parallel as the middleware runs it:
//
//	go test -tags integration -run '^$' -bench UserByID -benchtime 2s ./apiservice/
func BenchmarkUserByID(b *testing.B) {
	url := pgtest.NewDatabase(b)
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	u, err := db.CreateUser(ctx, postgres.User{Username: "alice", PasswordHash: "x"})
	if err != nil {
		b.Fatal(err)
	}
	cache := newUserCache(db, 100, discardLogger())
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- db.WatchUsers(watchCtx, cache) }()
	defer func() { stop(); <-done }()
	for !cache.stats().Live {
		time.Sleep(5 * time.Millisecond)
	}
	for _, bb := range []struct {
		name  string
		users userByIDer
	}{{"database", db}, {"cache", cache}} {
		b.Run(bb.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bb.users.UserByID(ctx, u.ID); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
