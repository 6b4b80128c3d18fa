-- Usernames are unique whatever their case: "Admin" and "admin" are
-- one name to a person reading a log or an admin screen, so they must
-- be one account. Login still matches the name exactly as created
-- (UserByName uses users_username_key). Rows that already clash are
-- not renamed or removed behind anyone's back: the migration stops,
-- names them, and changes nothing until an operator has renamed all
-- but one of each group.

DO $$
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
$$;

CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower_key ON users (lower(username));
