package postgres

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// migrateLockKey is the pg_advisory_xact_lock key that serializes Migrate
// across processes ("stockquo" in ASCII).
const migrateLockKey int64 = 0x73746f636b71756f

// migration is one schema step. Steps are append-only: never edit or
// reorder a step that has shipped; add a new one.
type migration struct {
	version    int
	statements []string // one statement each (the extended protocol runs one at a time)
}

// migrations is the schema, in order. The DDL is explicit SQL rather than
// GORM's AutoMigrate so that column types, constraints and especially the
// indexes (descending keys, expressions) are exactly what the queries
// need. Every statement is also IF NOT EXISTS, so a database created
// before schema_migrations existed is adopted rather than broken.
var migrations = []migration{
	{version: 1, statements: []string{
		`CREATE TABLE IF NOT EXISTS users (
			id            bigserial   PRIMARY KEY,
			username      text        NOT NULL,
			email         text        NOT NULL DEFAULT '',
			password_hash text        NOT NULL,
			superuser     boolean     NOT NULL DEFAULT false,
			created_at    timestamptz NOT NULL DEFAULT now(),
			CONSTRAINT users_username_key UNIQUE (username)
		)`,
		`CREATE TABLE IF NOT EXISTS history (
			id           bigserial        PRIMARY KEY,
			user_id      bigint           NOT NULL REFERENCES users (id) ON DELETE CASCADE,
			requested_at timestamptz      NOT NULL,
			symbol       text             NOT NULL,
			name         text             NOT NULL DEFAULT '',
			open         double precision NOT NULL,
			high         double precision NOT NULL,
			low          double precision NOT NULL,
			close        double precision NOT NULL,
			volume       bigint           NOT NULL DEFAULT 0,
			quoted_at    timestamptz
		)`,
		// Serves History's keyset pagination: equality on user_id, then
		// the (requested_at, id) row comparison and ORDER BY, in index order.
		`CREATE INDEX IF NOT EXISTS history_user_requested_idx
			ON history (user_id, requested_at DESC, id DESC)`,
		// Serves TopStocks' GROUP BY lower(symbol) in index order, without
		// a sort. INCLUDE (symbol) allows an index-only scan: the planner
		// only uses one for an expression index when the expression's
		// columns are in the index too.
		`CREATE INDEX IF NOT EXISTS history_lower_symbol_idx
			ON history (lower(symbol)) INCLUDE (symbol)`,
	}},
	// /stats at 10M history rows: even an index-only scan of
	// history_lower_symbol_idx reads every row (seconds). stock_counts keeps
	// the counts, maintained by triggers in the same transaction as each
	// history insert or delete, so they are always exact. Each symbol's
	// count is spread over 16 rows (history id % 16), so that
	// concurrent inserts of one hot symbol do not all queue on one row
	// lock; TopStocks sums the shards.
	{version: 2, statements: []string{
		// Existing rows are counted below; hold off writers until then.
		`LOCK TABLE history IN SHARE ROW EXCLUSIVE MODE`,
		`CREATE TABLE IF NOT EXISTS stock_counts (
			stock text     NOT NULL,
			shard smallint NOT NULL,
			n     bigint   NOT NULL,
			PRIMARY KEY (stock, shard)
		)`,
		`CREATE OR REPLACE FUNCTION stock_counts_track() RETURNS trigger
		LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'INSERT' THEN
				INSERT INTO stock_counts AS c (stock, shard, n)
				VALUES (lower(NEW.symbol), NEW.id % 16, 1)
				ON CONFLICT (stock, shard) DO UPDATE SET n = c.n + 1;
				RETURN NEW;
			END IF;
			UPDATE stock_counts SET n = n - 1
			WHERE stock = lower(OLD.symbol) AND shard = OLD.id % 16;
			RETURN OLD;
		END
		$$`,
		`DROP TRIGGER IF EXISTS history_count_insert ON history`,
		`CREATE TRIGGER history_count_insert AFTER INSERT ON history
			FOR EACH ROW EXECUTE FUNCTION stock_counts_track()`,
		`DROP TRIGGER IF EXISTS history_count_delete ON history`,
		`CREATE TRIGGER history_count_delete AFTER DELETE ON history
			FOR EACH ROW EXECUTE FUNCTION stock_counts_track()`,
		`DELETE FROM stock_counts`,
		`INSERT INTO stock_counts (stock, shard, n)
			SELECT lower(symbol), id % 16, count(*) FROM history GROUP BY 1, 2`,
	}},
	// For the API's former user cache (migration 7 drops it again): every
	// UPDATE or DELETE of a user row notifies its id, and a TRUNCATE
	// notifies an empty payload, meaning "all users".
	{version: 3, statements: []string{
		`CREATE OR REPLACE FUNCTION users_notify_change() RETURNS trigger
		LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'TRUNCATE' THEN
				PERFORM pg_notify('stockquote_users', '');
				RETURN NULL;
			END IF;
			PERFORM pg_notify('stockquote_users', OLD.id::text);
			RETURN NULL;
		END
		$$`,
		`DROP TRIGGER IF EXISTS users_notify_change ON users`,
		`CREATE TRIGGER users_notify_change AFTER UPDATE OR DELETE ON users
			FOR EACH ROW EXECUTE FUNCTION users_notify_change()`,
		`DROP TRIGGER IF EXISTS users_notify_truncate ON users`,
		`CREATE TRIGGER users_notify_truncate AFTER TRUNCATE ON users
			FOR EACH STATEMENT EXECUTE FUNCTION users_notify_change()`,
	}},
	// The counters of migration 2, per statement instead of per row: the
	// API saves several history rows per INSERT under load (see
	// historyWriters), and row triggers would then update one symbol's
	// shards in row order inside one transaction, which deadlocks against
	// another batch taking them in another order. A statement trigger adds
	// up its rows first and updates each symbol once, on the shard of its
	// own backend (pg_backend_pid() % 16: concurrent writers, even for one
	// hot symbol, update different rows), in symbol order, so two writers
	// that do share a shard take the row locks in the same order. A shard
	// may go below zero after deletes; only the sums are read.
	{version: 4, statements: []string{
		`CREATE OR REPLACE FUNCTION stock_counts_add() RETURNS trigger
		LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO stock_counts AS c (stock, shard, n)
			SELECT lower(symbol), pg_backend_pid() % 16, count(*) FROM new_rows
			GROUP BY 1 ORDER BY 1
			ON CONFLICT (stock, shard) DO UPDATE SET n = c.n + excluded.n;
			RETURN NULL;
		END
		$$`,
		`CREATE OR REPLACE FUNCTION stock_counts_remove() RETURNS trigger
		LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO stock_counts AS c (stock, shard, n)
			SELECT lower(symbol), pg_backend_pid() % 16, -count(*) FROM old_rows
			GROUP BY 1 ORDER BY 1
			ON CONFLICT (stock, shard) DO UPDATE SET n = c.n + excluded.n;
			RETURN NULL;
		END
		$$`,
		`DROP TRIGGER IF EXISTS history_count_insert ON history`,
		`CREATE TRIGGER history_count_insert AFTER INSERT ON history
			REFERENCING NEW TABLE AS new_rows
			FOR EACH STATEMENT EXECUTE FUNCTION stock_counts_add()`,
		`DROP TRIGGER IF EXISTS history_count_delete ON history`,
		`CREATE TRIGGER history_count_delete AFTER DELETE ON history
			REFERENCING OLD TABLE AS old_rows
			FOR EACH STATEMENT EXECUTE FUNCTION stock_counts_remove()`,
		`DROP FUNCTION IF EXISTS stock_counts_track()`,
	}},
	// Usernames are unique whatever their case: "Admin" and "admin" are
	// one name to a person reading a log or an admin screen, so they must
	// be one account. Login still matches the name exactly as created
	// (UserByName uses users_username_key). Rows that already clash are
	// not renamed or removed behind anyone's back: the migration stops,
	// names them, and changes nothing until an operator has renamed all
	// but one of each group.
	{version: 5, statements: []string{
		`DO $$
		DECLARE clashes text;
		BEGIN
			SELECT string_agg(names, '; ') INTO clashes FROM (
				SELECT string_agg(format('%s (id %s)', username, id), ', ' ORDER BY id) AS names
				FROM users GROUP BY lower(username) HAVING count(*) > 1
			) c;
			IF clashes IS NOT NULL THEN
				RAISE EXCEPTION 'usernames that differ only in case: %', clashes
					USING HINT = 'rename all but one of each group (UPDATE users SET username = ... WHERE id = ...), then migrate again';
			END IF;
		END
		$$`,
		`CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower_key ON users (lower(username))`,
	}},
	// Rate limits every API replica shares (login attempts per account,
	// /stock quotas per user): one row per key, see ratelimit.go.
	// UNLOGGED: no WAL for a row updated on every attempt; a crash or a
	// failover to a standby empties the table, which gives every key its
	// burst once more, an acceptable loss for limits measured in minutes.
	{version: 6, statements: []string{
		`CREATE UNLOGGED TABLE IF NOT EXISTS rate_limits (
			key text        PRIMARY KEY,
			tat timestamptz NOT NULL
		)`,
	}},
	// The in-memory user cache that migration 3's NOTIFY triggers fed is
	// gone: every request reads its user, so nothing listens any more.
	{version: 7, statements: []string{
		`DROP TRIGGER IF EXISTS users_notify_change ON users`,
		`DROP TRIGGER IF EXISTS users_notify_truncate ON users`,
		`DROP FUNCTION IF EXISTS users_notify_change()`,
	}},
}

// Migrate creates or updates the schema, indexes included. Idempotent, and
// safe to run from several processes at once: everything runs in one
// transaction holding an advisory lock, and PostgreSQL DDL is
// transactional, so a failed step leaves the schema as it was.
func (db *DB) Migrate(ctx context.Context) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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
		for _, m := range migrations {
			if m.version <= current {
				continue
			}
			for i, stmt := range m.statements {
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("migration %d statement %d: %w", m.version, i+1, err)
				}
			}
			if err := tx.Exec(`INSERT INTO schema_migrations (version) VALUES (?)`, m.version).Error; err != nil {
				return fmt.Errorf("record migration %d: %w", m.version, err)
			}
		}
		return nil
	})
	return wrapErr("migrate", err)
}
