package postgres

import (
	"context"
	"fmt"
)

// StockCount is how often a stock was requested over all users.
type StockCount struct {
	Stock          string // lower-case symbol
	TimesRequested int64
}

// TopStocks returns the n most requested stocks over all users, counted
// case-insensitively, most requested first, ties broken by symbol ascending
// (byte order, whatever the database's collation). n must be positive.
// The result is never nil.
func (db *DB) TopStocks(ctx context.Context, n int) ([]StockCount, error) {
	op := fmt.Sprintf("top %d stocks", n)
	if n <= 0 {
		return nil, fmt.Errorf("%s: n is not positive", op)
	}
	var rows []struct {
		Stock          string
		TimesRequested int64
	}
	err := db.gorm.WithContext(ctx).Raw(`
		SELECT lower(symbol) AS stock, count(*) AS times_requested
		FROM history
		GROUP BY 1
		ORDER BY 2 DESC, lower(symbol) COLLATE "C" ASC
		LIMIT ?`, n).Scan(&rows).Error
	if err != nil {
		return nil, wrapErr(op, err)
	}
	out := make([]StockCount, len(rows))
	for i, r := range rows {
		out[i] = StockCount{Stock: r.Stock, TimesRequested: r.TimesRequested}
	}
	return out, nil
}
