CREATE TABLE IF NOT EXISTS users (
	id            bigserial   PRIMARY KEY,
	username      text        NOT NULL,
	email         text        NOT NULL DEFAULT '',
	password_hash text        NOT NULL,
	superuser     boolean     NOT NULL DEFAULT false,
	created_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT users_username_key UNIQUE (username)
);

CREATE TABLE IF NOT EXISTS history (
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
);

-- Serves History's keyset pagination: equality on user_id, then
-- the (requested_at, id) row comparison and ORDER BY, in index order.
CREATE INDEX IF NOT EXISTS history_user_requested_idx
	ON history (user_id, requested_at DESC, id DESC);

-- Serves TopStocks' GROUP BY lower(symbol) in index order, without
-- a sort. INCLUDE (symbol) allows an index-only scan: the planner
-- only uses one for an expression index when the expression's
-- columns are in the index too.
CREATE INDEX IF NOT EXISTS history_lower_symbol_idx
	ON history (lower(symbol)) INCLUDE (symbol);
