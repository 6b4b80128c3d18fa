-- /stats at 10M history rows: even an index-only scan of
-- history_lower_symbol_idx reads every row (seconds). stock_counts keeps
-- the counts, maintained by triggers in the same transaction as each
-- history insert or delete, so they are always exact. Each symbol's
-- count is spread over 16 rows (history id % 16), so that
-- concurrent inserts of one hot symbol do not all queue on one row
-- lock; TopStocks sums the shards.

-- Existing rows are counted below; hold off writers until then.
LOCK TABLE history IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE IF NOT EXISTS stock_counts (
	stock text     NOT NULL,
	shard smallint NOT NULL,
	n     bigint   NOT NULL,
	PRIMARY KEY (stock, shard)
);

CREATE OR REPLACE FUNCTION stock_counts_track() RETURNS trigger
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
$$;

DROP TRIGGER IF EXISTS history_count_insert ON history;
CREATE TRIGGER history_count_insert AFTER INSERT ON history
	FOR EACH ROW EXECUTE FUNCTION stock_counts_track();

DROP TRIGGER IF EXISTS history_count_delete ON history;
CREATE TRIGGER history_count_delete AFTER DELETE ON history
	FOR EACH ROW EXECUTE FUNCTION stock_counts_track();

DELETE FROM stock_counts;

INSERT INTO stock_counts (stock, shard, n)
	SELECT lower(symbol), id % 16, count(*) FROM history GROUP BY 1, 2;
