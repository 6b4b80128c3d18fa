package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// migrations is the schema, one file per version (NNN_name.sql), in order.
// Applied files are never edited: a change is a new file. Explicit SQL, not
// AutoMigrate, so types, constraints and indexes are exactly what the
// queries need.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrateLockKey is the pg_advisory_xact_lock key that serializes Migrate
// across processes ("stockquo" in ASCII).
const migrateLockKey int64 = 0x73746f636b71756f

// Migrate creates or updates the schema. It is idempotent and safe to run
// from several processes at once: one transaction holds an advisory lock,
// and a failed step leaves the schema as it was (DDL is transactional).
func (db *DB) Migrate(ctx context.Context) error {
	files, err := fs.Glob(migrations, "migrations/*.sql") // sorted by name
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// A file holds several statements, which only the simple protocol runs:
	// a dedicated connection bypasses GORM's prepared statements.
	err = db.gorm.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		return conn.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`SELECT pg_advisory_xact_lock(?)`, migrateLockKey).Error; err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
			if err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
				version    integer     PRIMARY KEY,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`).Error; err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var current int
			if err := tx.Raw(`SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current).Error; err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			for _, name := range files {
				version, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, "migrations/"), "_", 2)[0])
				if err != nil {
					return fmt.Errorf("migration file %s: no version number", name)
				}
				if version <= current {
					continue
				}
				sql, err := migrations.ReadFile(name)
				if err != nil {
					return err
				}
				if err := tx.Exec(string(sql)).Error; err != nil {
					return fmt.Errorf("migration %s: %w", name, err)
				}
				if err := tx.Exec(`INSERT INTO schema_migrations (version) VALUES (?)`, version).Error; err != nil {
					return fmt.Errorf("record migration %d: %w", version, err)
				}
			}
			return nil
		})
	})
	return wrapErr("migrate", err)
}
