package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockquote/stockquote/apiservice/postgres"
)

// defaultUserCacheSize bounds the user cache (USER_CACHE_SIZE): a few
// hundred bytes per user.
const defaultUserCacheSize = 10000

// userCache remembers users loaded by id, so the bearer middleware does not
// query the database on every request, without giving up "a removed or
// demoted user loses access at once": a change to a user row is announced
// by a trigger (LISTEN/NOTIFY, see postgres.DB.WatchUsers) and evicts the
// user. The rules that keep it exact:
//
//   - The cache is used only while the listener is LISTENing. When the
//     listener fails it is flushed and bypassed (every lookup reads the
//     database) until the listener is back and has flushed it again.
//   - Every invalidation or flush bumps a generation; a user loaded from
//     the database is stored only if the generation did not change while
//     it loaded, so a lookup that raced with a change cannot put back the
//     old row.
//   - Failed lookups, "not found" included, are never cached.
//
// What remains is NOTIFY's delivery latency: between a change's commit and
// the listener reading its notification (normally well under a
// millisecond) a cached user may still be served. A listener connection
// that dies silently is found by an idle ping within seconds.
//
// userCache implements userByIDer and postgres.UserWatcher.
type userCache struct {
	next   userByIDer
	max    int
	logger *slog.Logger

	mu     sync.Mutex
	live   bool   // the listener is LISTENing
	warned bool   // the current outage was logged at warn level
	gen    uint64 // bumped on every invalidation and flush
	users  map[int64]postgres.User
	hits   uint64
	misses uint64 // lookups that went to the database
}

// newUserCache returns a userCache in front of next holding at most max
// users. It starts bypassed, until Listening is called.
func newUserCache(next userByIDer, max int, logger *slog.Logger) *userCache {
	if max <= 0 {
		max = defaultUserCacheSize
	}
	return &userCache{next: next, max: max, logger: logger, users: make(map[int64]postgres.User)}
}

// UserByID implements userByIDer.
func (c *userCache) UserByID(ctx context.Context, id int64) (postgres.User, error) {
	c.mu.Lock()
	if c.live {
		if u, ok := c.users[id]; ok {
			c.hits++
			c.mu.Unlock()
			return u, nil
		}
	}
	c.misses++
	live, gen := c.live, c.gen
	c.mu.Unlock()

	u, err := c.next.UserByID(ctx, id)
	if err != nil || !live {
		return u, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live && c.gen == gen {
		if _, ok := c.users[id]; !ok && len(c.users) >= c.max {
			// Evict an arbitrary user (map order): cheap, and any
			// choice is correct; a miss only costs one query.
			for k := range c.users {
				delete(c.users, k)
				break
			}
		}
		c.users[id] = u
	}
	return u, nil
}

// Listening implements postgres.UserWatcher: flush (changes may have been
// missed while not listening) and start using the cache.
func (c *userCache) Listening() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
	c.live = true
	c.warned = false
	c.logger.Info("user cache on: listening for user changes")
}

// UserChanged implements postgres.UserWatcher: evict the user, or all.
func (c *userCache) UserChanged(id int64, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if all {
		c.flushLocked()
		return
	}
	delete(c.users, id)
}

// Lost implements postgres.UserWatcher: flush and bypass the cache until
// the listener is back.
func (c *userCache) Lost(err error) {
	c.mu.Lock()
	first := !c.warned
	c.warned = true
	c.live = false
	c.flushLocked()
	c.mu.Unlock()
	if first {
		c.logger.Warn("user cache bypassed: user change listener lost", "error", err)
	} else {
		c.logger.Debug("user change listener still down", "error", err)
	}
}

func (c *userCache) flushLocked() {
	c.gen++
	clear(c.users)
}

// userCacheStats is a snapshot of the cache's counters.
type userCacheStats struct {
	Live         bool
	Entries      int
	Hits, Misses uint64
}

// stats returns the counters.
func (c *userCache) stats() userCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return userCacheStats{Live: c.live, Entries: len(c.users), Hits: c.hits, Misses: c.misses}
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

// userCacheCollectors returns the cache's metrics: hits, misses (lookups
// that read the database), entries, and whether it is in use.
func userCacheCollectors(c *userCache) []prometheus.Collector {
	stat := func(f func(userCacheStats) float64) func() float64 {
		return func() float64 { return f(c.stats()) }
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "stockquote_user_cache_hits_total",
			Help: "Bearer user lookups answered from the user cache."},
			stat(func(s userCacheStats) float64 { return float64(s.Hits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "stockquote_user_cache_misses_total",
			Help: "Bearer user lookups that read the database (not cached, or cache bypassed)."},
			stat(func(s userCacheStats) float64 { return float64(s.Misses) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stockquote_user_cache_entries",
			Help: "Users in the user cache."},
			stat(func(s userCacheStats) float64 { return float64(s.Entries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stockquote_user_cache_listening",
			Help: "1 while the user change listener is connected and the cache is used; 0 while it is bypassed."},
			stat(func(s userCacheStats) float64 {
				if s.Live {
					return 1
				}
				return 0
			})),
	}
}
