package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// usersChannel is the NOTIFY channel the users trigger (migration 3)
// announces changed and removed user ids on.
const usersChannel = "stockquote_users"

// WatchApplicationName is the application_name of WatchUsers' connection,
// to find it in pg_stat_activity.
const WatchApplicationName = "stockquote users listener"

// Watch timing: reconnect backoff, and how long the listener may sit idle
// before it proves its connection alive with a round trip (a connection
// that died silently would otherwise drop notifications unnoticed).
const (
	watchMinBackoff = 100 * time.Millisecond
	watchMaxBackoff = 5 * time.Second
	watchIdlePing   = 5 * time.Second
	watchPingWait   = 5 * time.Second
)

// UserWatcher receives WatchUsers' events. All three are called from the
// watching goroutine, one at a time.
type UserWatcher interface {
	// Listening reports that LISTEN is in effect on a fresh connection:
	// every change committed from now on will be reported, but changes
	// made while not listening were missed, so anything cached before
	// must be dropped.
	Listening()
	// UserChanged reports that the user with this id was updated or
	// deleted; all is true when every user may have changed (TRUNCATE).
	UserChanged(id int64, all bool)
	// Lost reports that the listening connection failed: changes may go
	// unreported until the next Listening.
	Lost(err error)
}

// WatchUsers holds one dedicated connection (outside the pool) that
// LISTENs for changes to users and reports them to w. On any failure it
// calls w.Lost, reconnects with backoff and calls w.Listening again. It
// returns only when ctx is done, with ctx's error.
func (db *DB) WatchUsers(ctx context.Context, w UserWatcher) error {
	backoff := watchMinBackoff
	for {
		err := db.watchOnce(ctx, w)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.Lost(err)
		if err == nil || errors.Is(err, errWatchHealthy) {
			backoff = watchMinBackoff
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, watchMaxBackoff)
	}
}

// errWatchHealthy marks a failure after the connection had been listening,
// so the next reconnect starts from the shortest backoff.
var errWatchHealthy = errors.New("listener was healthy")

// watchOnce connects, LISTENs and reports notifications until the
// connection fails or ctx is done.
func (db *DB) watchOnce(ctx context.Context, w UserWatcher) error {
	cfg, err := pgx.ParseConfig(db.url)
	if err != nil {
		return fmt.Errorf("watch users: %w", err)
	}
	cfg.RuntimeParams["application_name"] = WatchApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("watch users: %w", wrapErr("connect", err))
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+usersChannel); err != nil {
		return fmt.Errorf("watch users: listen: %w", err)
	}
	w.Listening()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, watchIdlePing)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			id, perr := strconv.ParseInt(n.Payload, 10, 64)
			w.UserChanged(id, perr != nil)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Idle: prove the connection is alive. The reply comes after
			// any notification already sent on this connection, and
			// WaitForNotification picks those up next.
			pingCtx, cancel := context.WithTimeout(ctx, watchPingWait)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return fmt.Errorf("watch users: %w: ping: %w", errWatchHealthy, err)
			}
		default:
			return fmt.Errorf("watch users: %w: wait: %w", errWatchHealthy, err)
		}
	}
}
