// Package postgres is the API service's store: users and quote history in
// PostgreSQL through GORM. It is the only package that imports GORM; its
// GORM models stay unexported and never leave it.
package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Config configures the connection pool.
type Config struct {
	URL          string // postgres:// URL or DSN, may hold a password
	MaxOpenConns int    // default 20; all of them may stay idle
	// HistoryWriters is how many INSERTs AddHistory runs at once; default DefaultHistoryWriters.
	HistoryWriters int
}

// DB is the store. It is safe for concurrent use.
type DB struct {
	gorm    *gorm.DB
	sql     *sql.DB // the pool underneath gorm
	writers *historyWriters
}

// Open connects and pings. It does not migrate. A database that cannot be
// reached gives an error wrapping ErrUnavailable. Error messages never
// include the password from cfg.URL.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.URL == "" {
		return nil, errors.New("open database: empty URL")
	}
	cfg.MaxOpenConns = cmp.Or(cfg.MaxOpenConns, 20)

	g, err := gorm.Open(postgres.New(postgres.Config{DSN: cfg.URL}), &gorm.Config{
		// GORM's logger prints SQL with its arguments (password hashes,
		// among others); errors reach the caller as return values instead.
		Logger:                 logger.Discard,
		PrepareStmt:            true,
		SkipDefaultTransaction: true,
		// gorm.Open's own ping has no context; Open pings with ctx below.
		DisableAutomaticPing: true,
		NowFunc:              now,
	})
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB.SetMaxOpenConns(cfg.MaxOpenConns)
	sqlDB.SetMaxIdleConns(cfg.MaxOpenConns)
	sqlDB.SetConnMaxLifetime(30 * time.Minute) // picks up a failover or DNS change without a restart

	db := &DB{gorm: g, sql: sqlDB}
	if err := db.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.writers = newHistoryWriters(sqlDB, min(cmp.Or(cfg.HistoryWriters, DefaultHistoryWriters), cfg.MaxOpenConns))
	return db, nil
}

// now is the store's clock for CreatedAt: UTC, at PostgreSQL's microsecond
// precision, so what CreateUser returns equals what a later read returns.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// SQL returns the connection pool underneath the store, for its statistics.
func (db *DB) SQL() *sql.DB { return db.sql }

// Ping checks the database is usable (for /readyz).
func (db *DB) Ping(ctx context.Context) error {
	return wrapErr("ping", db.sql.PingContext(ctx))
}

// Close stops the history writers and closes the pool.
func (db *DB) Close() error {
	db.writers.close()
	// Release the cached prepared statements before their connections go.
	if p, ok := db.gorm.ConnPool.(*gorm.PreparedStmtDB); ok {
		p.Close()
	}
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}
