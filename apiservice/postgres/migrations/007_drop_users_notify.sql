-- The in-memory user cache that migration 3's NOTIFY triggers fed is
-- gone: every request reads its user, so nothing listens any more.

DROP TRIGGER IF EXISTS users_notify_change ON users;
DROP TRIGGER IF EXISTS users_notify_truncate ON users;
DROP FUNCTION IF EXISTS users_notify_change();
