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
	out := []StockCount{} // never nil
	// stock_counts holds exact counts (see migration 2), a few rows per
	// symbol, so this reads thousands of rows rather than every history row.
	err := db.gorm.WithContext(ctx).Raw(`
		SELECT stock, sum(n)::bigint AS times_requested
		FROM stock_counts
		GROUP BY stock
		HAVING sum(n) > 0
		ORDER BY 2 DESC, stock COLLATE "C" ASC
		LIMIT ?`, n).Scan(&out).Error
	if err != nil {
		return nil, wrapErr(op, err)
	}
	return out, nil
}
