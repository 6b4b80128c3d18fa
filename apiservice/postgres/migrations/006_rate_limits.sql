-- Rate limits every API replica shares (login attempts per account,
-- /stock quotas per user): one row per key, see ratelimit.go.
-- UNLOGGED: no WAL for a row updated on every attempt; a crash or a
-- failover to a standby empties the table, which gives every key its
-- burst once more, an acceptable loss for limits measured in minutes.

CREATE UNLOGGED TABLE IF NOT EXISTS rate_limits (
	key text        PRIMARY KEY,
	tat timestamptz NOT NULL
);
