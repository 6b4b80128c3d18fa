-- The counters of migration 2, per statement instead of per row: the
-- API saves several history rows per INSERT under load (see
-- historyWriters), and row triggers would then update one symbol's
-- shards in row order inside one transaction, which deadlocks against
-- another batch taking them in another order. A statement trigger adds
-- up its rows first and updates each symbol once, on the shard of its
-- own backend (pg_backend_pid() % 16: concurrent writers, even for one
-- hot symbol, update different rows), in symbol order, so two writers
-- that do share a shard take the row locks in the same order. A shard
-- may go below zero after deletes; only the sums are read.

CREATE OR REPLACE FUNCTION stock_counts_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO stock_counts AS c (stock, shard, n)
	SELECT lower(symbol), pg_backend_pid() % 16, count(*) FROM new_rows
	GROUP BY 1 ORDER BY 1
	ON CONFLICT (stock, shard) DO UPDATE SET n = c.n + excluded.n;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION stock_counts_remove() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO stock_counts AS c (stock, shard, n)
	SELECT lower(symbol), pg_backend_pid() % 16, -count(*) FROM old_rows
	GROUP BY 1 ORDER BY 1
	ON CONFLICT (stock, shard) DO UPDATE SET n = c.n + excluded.n;
	RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS history_count_insert ON history;
CREATE TRIGGER history_count_insert AFTER INSERT ON history
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION stock_counts_add();

DROP TRIGGER IF EXISTS history_count_delete ON history;
CREATE TRIGGER history_count_delete AFTER DELETE ON history
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION stock_counts_remove();

DROP FUNCTION IF EXISTS stock_counts_track();
