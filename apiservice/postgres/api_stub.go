// Package postgres is the API service's store: users and quote history in
// PostgreSQL through GORM. It is the only package that imports GORM; its
// GORM models stay unexported and never leave it.
//
// THIS FILE IS THE AGREED API, WITH STUB BODIES. The store implementer
// replaces it; other packages code against these signatures only.
package postgres

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors.
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("already exists")
	// ErrUnavailable wraps failures to reach the database (connection
	// refused, reset, pool exhausted past the context deadline), so the
	// API can answer 503 instead of 500.
	ErrUnavailable = errors.New("database unavailable")
)

// Config configures the connection pool.
type Config struct {
	URL             string // postgres:// URL or DSN, may hold a password
	MaxOpenConns    int    // default 20
	MaxIdleConns    int    // default = MaxOpenConns
	ConnMaxLifetime time.Duration
}

// DB is the store. It is safe for concurrent use.
type DB struct{}

// Open connects and pings. It does not migrate.
func Open(ctx context.Context, cfg Config) (*DB, error) { panic("unimplemented") }

// Migrate creates or updates the schema, indexes included. Idempotent.
func (db *DB) Migrate(ctx context.Context) error { panic("unimplemented") }

// Ping checks the database is usable (for /readyz).
func (db *DB) Ping(ctx context.Context) error { panic("unimplemented") }

// Close closes the pool.
func (db *DB) Close() error { panic("unimplemented") }

// User is an account.
type User struct {
	ID           int64
	Username     string
	Email        string
	PasswordHash string // bcrypt
	Superuser    bool
	CreatedAt    time.Time
}

// CreateUser inserts u (ID and CreatedAt are set by the store) and returns
// it. A taken username gives an error wrapping ErrDuplicate.
func (db *DB) CreateUser(ctx context.Context, u User) (User, error) { panic("unimplemented") }

// UserByName finds a user by exact username; ErrNotFound if none.
func (db *DB) UserByName(ctx context.Context, username string) (User, error) {
	panic("unimplemented")
}

// UserByID finds a user by id; ErrNotFound if none.
func (db *DB) UserByID(ctx context.Context, id int64) (User, error) { panic("unimplemented") }

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
	QuotedAt    time.Time // the quote's own date and time (UTC)
}

// AddHistory stores e for userID and returns it with its ID set.
func (db *DB) AddHistory(ctx context.Context, userID int64, e HistoryEntry) (HistoryEntry, error) {
	panic("unimplemented")
}

// HistoryCursor is a keyset position: the last entry of the previous page.
type HistoryCursor struct {
	RequestedAt time.Time
	ID          int64
}

// History returns up to limit of userID's entries, newest first (ordered by
// RequestedAt, then ID, both descending), strictly after the cursor when
// one is given.
func (db *DB) History(ctx context.Context, userID int64, limit int, after *HistoryCursor) ([]HistoryEntry, error) {
	panic("unimplemented")
}

// StockCount is how often a stock was requested over all users.
type StockCount struct {
	Stock          string // lower-case symbol
	TimesRequested int64
}

// TopStocks returns the n most requested stocks over all users, counted
// case-insensitively, most requested first, ties broken by symbol ascending.
func (db *DB) TopStocks(ctx context.Context, n int) ([]StockCount, error) {
	panic("unimplemented")
}
