-- For the API's former user cache (migration 7 drops it again): every
-- UPDATE or DELETE of a user row notifies its id, and a TRUNCATE
-- notifies an empty payload, meaning "all users".

CREATE OR REPLACE FUNCTION users_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM pg_notify('stockquote_users', '');
		RETURN NULL;
	END IF;
	PERFORM pg_notify('stockquote_users', OLD.id::text);
	RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS users_notify_change ON users;
CREATE TRIGGER users_notify_change AFTER UPDATE OR DELETE ON users
	FOR EACH ROW EXECUTE FUNCTION users_notify_change();

DROP TRIGGER IF EXISTS users_notify_truncate ON users;
CREATE TRIGGER users_notify_truncate AFTER TRUNCATE ON users
	FOR EACH STATEMENT EXECUTE FUNCTION users_notify_change();
