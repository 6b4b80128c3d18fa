package postgres

import (
	"context"
	"fmt"
	"time"
)

// HistoryEntry is one quote a user requested.
type HistoryEntry struct {
	ID          int64
	RequestedAt time.Time // when the user asked (UTC)
	Symbol      string    // as stooq returned it, e.g. AAPL.US
	Name        string
	Open        float64
	High        float64
	Low         float64
	Close       float64
	Volume      int64
	QuotedAt    time.Time // the quote's own date and time (UTC); zero if unknown
}

// historyRow is the GORM model of the history table.
type historyRow struct {
	ID          int64 `gorm:"primaryKey"`
	UserID      int64
	RequestedAt time.Time
	Symbol      string
	Name        string
	Open        float64
	High        float64
	Low         float64
	Close       float64
	Volume      int64
	QuotedAt    *time.Time // NULL when the quote carried no time
}

func (historyRow) TableName() string { return "history" }

func (r historyRow) entry() HistoryEntry {
	e := HistoryEntry{
		ID:          r.ID,
		RequestedAt: r.RequestedAt.UTC(),
		Symbol:      r.Symbol,
		Name:        r.Name,
		Open:        r.Open,
		High:        r.High,
		Low:         r.Low,
		Close:       r.Close,
		Volume:      r.Volume,
	}
	if r.QuotedAt != nil {
		e.QuotedAt = r.QuotedAt.UTC()
	}
	return e
}

// AddHistory stores e for userID (a zero RequestedAt is now) and returns
// exactly what was stored (UTC, microseconds), ID set, so it can serve as
// a HistoryCursor. No user with userID is ErrNotFound, from the foreign
// key: callers need not load the user first.
func (db *DB) AddHistory(ctx context.Context, userID int64, e HistoryEntry) (HistoryEntry, error) {
	if e.RequestedAt.IsZero() {
		e.RequestedAt = now()
	}
	row := historyRow{
		UserID:      userID,
		RequestedAt: e.RequestedAt.UTC().Truncate(time.Microsecond),
		Symbol:      e.Symbol,
		Name:        e.Name,
		Open:        e.Open,
		High:        e.High,
		Low:         e.Low,
		Close:       e.Close,
		Volume:      e.Volume,
	}
	if !e.QuotedAt.IsZero() {
		q := e.QuotedAt.UTC().Truncate(time.Microsecond)
		row.QuotedAt = &q
	}
	if err := db.writers.add(ctx, &row); err != nil {
		return HistoryEntry{}, wrapErr(fmt.Sprintf("add history %q for user %d", e.Symbol, userID), err)
	}
	return row.entry(), nil
}

// HistoryCursor is a keyset position: the last entry of the previous page.
type HistoryCursor struct {
	RequestedAt time.Time
	ID          int64
}

// History returns up to limit of userID's entries, newest first (ordered by
// RequestedAt, then ID, both descending), strictly after the cursor when
// one is given. limit must be positive. The result is never nil.
func (db *DB) History(ctx context.Context, userID int64, limit int, after *HistoryCursor) ([]HistoryEntry, error) {
	op := fmt.Sprintf("list history of user %d", userID)
	if limit <= 0 {
		return nil, fmt.Errorf("%s: limit %d is not positive", op, limit)
	}
	q := db.gorm.WithContext(ctx).Where("user_id = ?", userID)
	if after != nil {
		// A row comparison: one range of history_user_requested_idx.
		q = q.Where("(requested_at, id) < (?, ?)", after.RequestedAt.UTC(), after.ID)
	}
	var rows []historyRow
	if err := q.Order("requested_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, wrapErr(op, err)
	}
	out := make([]HistoryEntry, len(rows))
	for i, r := range rows {
		out[i] = r.entry()
	}
	return out, nil
}
