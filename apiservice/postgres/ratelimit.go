package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Limit is a rate limit: Burst attempts at once, then one more per
// Interval. Both must be > 0.
type Limit struct {
	Burst    int
	Interval time.Duration
}

// A limit's state is one row per key in rate_limits, the theoretical
// arrival time tat of the generic cell rate algorithm: an attempt is
// admitted when greatest(tat, now) + interval <= now + burst*interval, and
// moves tat there. The database's clock and one conditional statement per
// attempt keep every API replica on one bucket without overshooting it.
//
// takeRateSQL answers the upsert's row when admitted, else the wait from
// the row as found. @interval and @window (burst*interval) are in µs.
const takeRateSQL = `WITH up AS (
		INSERT INTO rate_limits AS r (key, tat)
		VALUES (@key, now() + CAST(@interval AS float8) * interval '1 microsecond')
		ON CONFLICT (key) DO UPDATE
			SET tat = greatest(r.tat, now()) + CAST(@interval AS float8) * interval '1 microsecond'
			WHERE greatest(r.tat, now()) + CAST(@interval AS float8) * interval '1 microsecond' <= now() + CAST(@window AS float8) * interval '1 microsecond'
		RETURNING tat
	)
	SELECT true, 0 FROM up
	UNION ALL
	SELECT false, (extract(epoch FROM tat - now()) * 1e6 + CAST(@interval AS float8) - CAST(@window AS float8))::bigint
		FROM rate_limits WHERE key = @key AND NOT EXISTS (SELECT 1 FROM up)`

// TakeRate spends one attempt of key's bucket under l if it has one left,
// atomically across every process sharing the database. When none is
// left it spends nothing and reports how long until one is back.
func (db *DB) TakeRate(ctx context.Context, key string, l Limit) (ok bool, retryAfter time.Duration, err error) {
	interval, window := l.Interval.Microseconds(), int64(l.Burst)*l.Interval.Microseconds()
	var admitted bool
	var wait int64
	err = db.gorm.WithContext(ctx).Raw(takeRateSQL, map[string]any{"key": key, "interval": interval, "window": window}).
		Row().Scan(&admitted, &wait)
	switch {
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return false, 0, wrapErr(fmt.Sprintf("take rate %.64q", key), err)
	case admitted:
		return true, 0, nil
	case err == nil && wait > 0:
		return false, time.Duration(wait) * time.Microsecond, nil
	}
	// Refused, but the statement's snapshot predates the attempt that
	// emptied the bucket (no row, or an older one): read the wait again.
	if _, retryAfter, err = db.PeekRate(ctx, key, l); err != nil {
		return false, 0, err
	}
	if retryAfter <= 0 {
		retryAfter = l.Interval
	}
	return false, retryAfter, nil
}

// PeekRate reports how many attempts key's bucket under l has left now
// (0 to Burst), and when none is left how long until one is back,
// without spending any: a read only.
func (db *DB) PeekRate(ctx context.Context, key string, l Limit) (available int, retryAfter time.Duration, err error) {
	var us int64
	err = db.gorm.WithContext(ctx).Raw(`SELECT (extract(epoch FROM greatest(tat - now(), interval '0')) * 1e6)::bigint
		FROM rate_limits WHERE key = @key`, map[string]any{"key": key}).Row().Scan(&us)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return l.Burst, 0, nil
	case err != nil:
		return 0, 0, wrapErr(fmt.Sprintf("peek rate %.64q", key), err)
	}
	backlog := time.Duration(us) * time.Microsecond
	if n := l.Burst - int((backlog+l.Interval-1)/l.Interval); n > 0 { // whole attempts left
		return n, 0, nil
	}
	return 0, backlog + l.Interval - time.Duration(l.Burst)*l.Interval, nil
}

// ChargeRate spends one attempt of key's bucket under l even if none is
// left (then the bucket owes it, and the next attempt waits longer): for
// an attempt that was made before it was known to cost anything.
func (db *DB) ChargeRate(ctx context.Context, key string, l Limit) error {
	err := db.gorm.WithContext(ctx).Exec(`INSERT INTO rate_limits AS r (key, tat)
		VALUES (@key, now() + CAST(@interval AS float8) * interval '1 microsecond')
		ON CONFLICT (key) DO UPDATE
			SET tat = greatest(r.tat, now()) + CAST(@interval AS float8) * interval '1 microsecond'`,
		map[string]any{"key": key, "interval": l.Interval.Microseconds()}).Error
	return wrapErr(fmt.Sprintf("charge rate %.64q", key), err)
}

// SweepRates deletes the rows of full buckets, keeping rate_limits about
// the size of the set of keys used recently, and returns how many.
func (db *DB) SweepRates(ctx context.Context) (int64, error) {
	res := db.gorm.WithContext(ctx).Exec(`DELETE FROM rate_limits WHERE tat < now()`)
	return res.RowsAffected, wrapErr("sweep rate limits", res.Error)
}
