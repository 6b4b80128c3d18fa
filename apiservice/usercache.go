package main

import (
	"context"
	"sync"
	"time"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// userCache remembers users loaded by id for a short ttl, so the bearer
// middleware does not query the database on every request. The price is
// staleness: a removed user keeps access, and a demoted superuser keeps
// superuser rights, for up to ttl after the change (AUTH_CACHE_TTL; 0,
// the default, turns the cache off and every request reads the database).
// Lookups that fail, "not found" included, are never cached.
type userCache struct {
	next userByIDer
	ttl  time.Duration
	now  func() time.Time

	mu        sync.Mutex
	users     map[int64]cachedUser
	nextSweep time.Time
}

type cachedUser struct {
	user    postgres.User
	expires time.Time
}

// newUserCache returns a userCache in front of next.
func newUserCache(next userByIDer, ttl time.Duration, now func() time.Time) *userCache {
	return &userCache{next: next, ttl: ttl, now: now, users: map[int64]cachedUser{}}
}

// UserByID implements userByIDer.
func (c *userCache) UserByID(ctx context.Context, id int64) (postgres.User, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.users[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.user, nil
	}
	u, err := c.next.UserByID(ctx, id)
	if err != nil {
		return postgres.User{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !now.Before(c.nextSweep) {
		for k, e := range c.users {
			if !now.Before(e.expires) {
				delete(c.users, k)
			}
		}
		c.nextSweep = now.Add(c.ttl)
	}
	c.users[id] = cachedUser{user: u, expires: now.Add(c.ttl)}
	return u, nil
}

// cachedUserStore is a store whose UserByID goes through a userCache.
type cachedUserStore struct {
	store
	users *userCache
}

// UserByID implements userByIDer through the cache.
func (s cachedUserStore) UserByID(ctx context.Context, id int64) (postgres.User, error) {
	return s.users.UserByID(ctx, id)
}

// withUserCache returns st with user lookups by id cached for ttl, or st
// itself when ttl is 0.
func withUserCache(st store, ttl time.Duration, now func() time.Time) store {
	if ttl <= 0 {
		return st
	}
	return cachedUserStore{store: st, users: newUserCache(st, ttl, now)}
}
